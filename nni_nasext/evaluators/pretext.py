"""UnNAS pretext-task evaluators: score an architecture without labels.

Reference: C. Liu, P. Dollár, K. He, R. Girshick, A. Yuille, S. Xie, "Are Labels Necessary
for Neural Architecture Search?", ECCV 2020. UnNAS trains each candidate on a
self-supervised *pretext task* built from the images alone and ranks architectures by the
pretext accuracy instead of the supervised one. :class:`PretextTask` is that score as an NNI
evaluator: it is :class:`~nni_nasext.evaluators.classification.ImageClassification` (the same
training loop, recipe, seeds, NNI reports, budgets, DDP and one-shot recipe) whose data
loaders yield ``(transformed image, pretext label)`` instead of ``(image, class)``; the class
labels are never read. So any sample-based strategy (``NasExperiment`` or the ``nnictl`` trial
program, ``--evaluator pretext``) and any one-shot method (``oneshot_recipe``) searches with it.

The tasks (``task=``):

``rotation`` (Gidaris, Singh & Komodakis, ICLR 2018)
    The image rotated by ``k * 90`` degrees (``torch.rot90``, counter-clockwise), ``k`` in
    0..3; label ``k``: a 4-way classification. By default every training image appears in all
    four rotations in each epoch (as Gidaris et al. and UnNAS's code), ``copies`` fewer.
``jigsaw`` (Noroozi & Favaro, ECCV 2016)
    The image (centre-cropped to a multiple of ``grid``) cut into ``grid x grid`` tiles,
    placed by one permutation of a fixed set (position ``p`` receives tile ``perm[p]``, tiles
    numbered row-major), each tile standardised on its own (zero mean, unit variance, so that
    the tiles' brightness does not give the order away, as Noroozi & Favaro); label: the
    permutation's index. ``grid=2`` uses all 24 permutations (UnNAS's CIFAR-10 setting, which
    suits 28x28 or 14x14 images: 14x14 or 7x7 tiles); ``grid=3`` chooses ``permutations`` of
    the 9! by Noroozi & Favaro's greedy maximal-Hamming-distance rule (seeded). One
    permutation per image is drawn anew every epoch (``copies=1``).
``colorization`` (Zhang, Isola & Efros, ECCV 2016)
    Input: the lightness ``L / 100`` of the CIE Lab image (:func:`rgb_to_lab`, sRGB with the
    D65 white). Target: the colour ``(a, b)``, averaged over each cell of a
    ``color_grid x color_grid`` grid of the image and quantised on a ``color_bins x color_bins``
    grid over ``[-128, 128]^2`` whose bin centres include grey (0, 0): one class in ``color_bins**2`` per cell, trained with
    cross-entropy summed over the cells (hard targets; Zhang et al. use 313 in-gamut bins per
    pixel, soft targets and class rebalancing). Accuracy: the share of cells whose colour
    bin is right. It needs colour images (``cifar10``, ``cifar100``): a grey dataset is an
    error when the evaluator is built.

The network's outputs: the space's networks end in a classifier whose width is the space's
``num_classes``; build the space with ``num_classes=evaluator.num_outputs`` (4 for rotation,
the number of permutations for jigsaw, ``color_grid**2 * color_bins**2`` for colorization,
whose flat output is read as one ``color_bins**2``-way prediction per cell). Every model is
checked on one example before training: a network with another output width is a clear
``ValueError`` naming the width it needs (under a one-shot search, the supernet's probe raises
it before training). The space's input channels: ``in_channels`` of the evaluator (rotation
and jigsaw: the dataset's unless set; colorization: 1, or 3 with the lightness repeated).

What differs from UnNAS: the networks are the space's own classifiers (UnNAS's jigsaw network
embeds each tile separately and concatenates, and its colorization network predicts each
pixel with a dense head); the pretext data come from the evaluator's training split, at the
evaluator's ``image_size``, without UnNAS's augmentations (flips, random crops, random tile
gaps, grey-scale jitter), so that a model's score is a function of its architecture and seed.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.evaluators.sampling import EpochSampler

__all__ = ['TASKS', 'PretextTask', 'PretextDataset', 'rotate', 'shuffle_tiles', 'inverse_permutation',
           'jigsaw_permutations', 'rgb_to_lab', 'colorization_targets']

TASKS = ('rotation', 'jigsaw', 'colorization')
#: datasets of :mod:`nni_nasext.datasets` with colour images (colorization needs them)
RGB_DATASETS = ('cifar10', 'cifar100')


# ----------------------------------------------------------------------------- the transforms

def rotate(images: torch.Tensor, k: int) -> torch.Tensor:
    """``images`` (``... x H x W``) rotated by ``k * 90`` degrees counter-clockwise."""
    return torch.rot90(images, int(k) % 4, dims=(-2, -1))


def inverse_permutation(perm: Sequence[int]) -> torch.Tensor:
    perm = torch.as_tensor(perm, dtype=torch.long)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return inv


def _tiles(images: torch.Tensor, grid: int) -> torch.Tensor:
    """``(..., C, H, W)`` -> ``(..., grid*grid, C, H/grid, W/grid)``, tiles row-major."""
    *lead, c, h, w = images.shape
    th, tw = h // grid, w // grid
    x = images.reshape(*lead, c, grid, th, grid, tw)
    n = len(lead)
    x = x.permute(*range(n), n + 1, n + 3, n, n + 2, n + 4)          # (..., gi, gj, C, th, tw)
    return x.reshape(*lead, grid * grid, c, th, tw)


def _untiles(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    *lead, _, c, th, tw = tiles.shape
    n = len(lead)
    x = tiles.reshape(*lead, grid, grid, c, th, tw).permute(*range(n), n + 2, n, n + 3, n + 1, n + 4)
    return x.reshape(*lead, c, grid * th, grid * tw)


def crop_to_grid(images: torch.Tensor, grid: int) -> torch.Tensor:
    """The centre crop of ``images`` whose height and width are multiples of ``grid``."""
    h, w = images.shape[-2:]
    hh, ww = h - h % grid, w - w % grid
    top, left = (h - hh) // 2, (w - ww) // 2
    return images[..., top:top + hh, left:left + ww]


def shuffle_tiles(images: torch.Tensor, perm: Sequence[int], grid: int) -> torch.Tensor:
    """Cut ``images`` (``... x C x H x W``, H and W multiples of ``grid``) into ``grid x grid``
    tiles (numbered row-major) and put tile ``perm[p]`` at position ``p``.
    ``shuffle_tiles(shuffle_tiles(x, perm, g), inverse_permutation(perm), g)`` is ``x``."""
    h, w = images.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f'{h}x{w} images do not cut into {grid}x{grid} tiles (crop_to_grid first)')
    perm = torch.as_tensor(perm, dtype=torch.long)
    if sorted(perm.tolist()) != list(range(grid * grid)):
        raise ValueError(f'{perm.tolist()} is not a permutation of the {grid * grid} tiles')
    tiles = _tiles(images, grid)
    return _untiles(tiles.index_select(-4, perm), grid)


def jigsaw_permutations(grid: int = 2, count: Optional[int] = None, seed: int = 0) -> torch.Tensor:
    """``count`` permutations of the ``grid * grid`` tiles, ``(count, grid*grid)``.

    All of them, in lexicographic order, when ``count`` is ``None`` or their number. Otherwise
    Noroozi & Favaro's greedy selection (their Algorithm 1, with the minimum instead of the
    average distance): start from a seeded random permutation, then repeatedly add the one
    whose smallest Hamming distance to those chosen is largest (ties: the first in
    lexicographic order), so that any two classes differ in as many tiles as possible."""
    n = grid * grid
    if grid < 2:
        raise ValueError(f'jigsaw grid must be >= 2, got {grid}')
    total = math.factorial(n)
    if count is None or count == total:
        if total > 100_000:
            raise ValueError(f'{grid}x{grid} jigsaw has {total} permutations: choose a number of them (permutations=)')
        return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)
    if not 2 <= count <= min(total, 10_000):
        raise ValueError(f'permutations must be between 2 and {min(total, 10_000)} for a {grid}x{grid} grid, got {count}')
    import numpy as np
    every = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    first = int(np.random.RandomState(seed).randint(total))
    chosen = [first]
    closest = (every != every[first]).sum(axis=1)
    for _ in range(count - 1):
        nxt = int(closest.argmax())
        chosen.append(nxt)
        closest = np.minimum(closest, (every != every[nxt]).sum(axis=1))
    return torch.from_numpy(every[chosen].astype(np.int64))


def _standardise_tiles(images: torch.Tensor, grid: int) -> torch.Tensor:
    tiles = _tiles(images, grid)
    flat = tiles.flatten(-3)
    flat = (flat - flat.mean(-1, keepdim=True)) / flat.std(-1, keepdim=True).clamp_min(1e-6)
    return _untiles(flat.reshape(tiles.shape), grid)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in ``[0, 1]`` (``... x 3 x H x W``) -> CIE Lab (D65 white): ``L`` in ``[0, 100]``,
    ``a, b`` roughly in ``[-128, 127]``. The standard formulas (IEC 61966-2-1 and CIE 1976)."""
    if rgb.shape[-3] != 3:
        raise ValueError(f'rgb_to_lab needs 3 colour channels, got {rgb.shape[-3]}')
    c = rgb.clamp(0, 1).double()
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                      [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
    xyz = torch.einsum('ij,...jhw->...ihw', m, linear)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64).view(3, 1, 1)
    t = xyz / white
    delta = 6 / 29
    f = torch.where(t > delta ** 3, t.clamp_min(1e-12) ** (1 / 3), t / (3 * delta ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    lab = torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)
    return lab.to(rgb.dtype if rgb.dtype.is_floating_point else torch.float32)


def colorization_targets(rgb: torch.Tensor, grid: int = 4, bins: int = 8) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(lightness, targets)`` of RGB images ``(N, 3, H, W)`` in ``[0, 1]``: ``L / 100``
    ``(N, 1, H, W)`` and, per cell of a ``grid x grid`` grid, the class ``i * bins + j`` of the
    cell's mean ``(a, b)`` on a ``bins x bins`` grid of bins ``256 / bins`` wide centred on multiples
    of that width (so grey is a bin centre, as in Zhang et al.'s grid; the outer bins take
    the rest of ``[-128, 128]``) ``(N, grid*grid)``."""
    lab = rgb_to_lab(rgb)
    ab = F.adaptive_avg_pool2d(lab[:, 1:], grid)                        # (N, 2, grid, grid)
    width = 256 / bins   # bin centres at multiples of the width: grey (a = b = 0) is a centre, not an edge
    idx = (torch.round(ab / width).long() + bins // 2).clamp(0, bins - 1)
    targets = (idx[:, 0] * bins + idx[:, 1]).flatten(1)
    return lab[:, :1] / 100, targets


# ----------------------------------------------------------------------------- the data

class PretextDataset(Dataset):
    """``(transformed image, pretext label)`` of (image index, transform id) ``pairs`` of ``base``
    (a dataset of ``(image, class)``; the class is dropped). For colorization the label is the
    ``grid*grid`` cell classes of :func:`colorization_targets`."""

    def __init__(self, base: Dataset, task: str, pairs: torch.Tensor, *, grid: int = 2,
                 perms: Optional[torch.Tensor] = None, normalize_tiles: bool = True, color_grid: int = 4,
                 color_bins: int = 8, in_channels: int = 1):
        if task not in TASKS:
            raise ValueError(f'Unknown pretext task {task!r}; expected one of {TASKS}')
        self.base, self.task, self.pairs = base, task, torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
        self.grid, self.perms, self.normalize_tiles = grid, perms, normalize_tiles
        self.color_grid, self.color_bins, self.in_channels = color_grid, color_bins, in_channels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):
        i, t = self.pairs[index].tolist()
        image = self.base[i][0]
        if self.task == 'rotation':
            return rotate(image, t), t
        if self.task == 'jigsaw':
            image = shuffle_tiles(crop_to_grid(image, self.grid), self.perms[t], self.grid)
            if self.normalize_tiles:
                image = _standardise_tiles(image, self.grid)
            return image, t
        lightness, targets = colorization_targets(image.unsqueeze(0), self.color_grid, self.color_bins)
        return lightness[0].expand(self.in_channels, -1, -1).contiguous(), targets[0]


def flatten_cell_targets(batch):
    """``collate_fn`` of colorization: images stacked, the cell targets of the batch flattened
    (``B * cells``), matching :class:`_PretextOutputs`' ``(B * cells, bins**2)`` logits."""
    images = torch.stack([b[0] for b in batch])
    targets = torch.stack([b[1] for b in batch]).reshape(-1)
    return images, targets


class _PretextOutputs(nn.Module):
    """The model, its output width checked; for colorization read as one prediction per cell."""

    def __init__(self, model: nn.Module, num_outputs: int, task: str, per_cell: int = 0):
        super().__init__()
        self.model, self.num_outputs, self.task, self.per_cell = model, num_outputs, task, per_cell

    def forward(self, x):
        out = self.model(x)
        if out.ndim != 2 or out.shape[1] != self.num_outputs:
            raise ValueError(f'The {self.task} pretext task needs a network with {self.num_outputs} outputs, '
                             f'this one gives {tuple(out.shape[1:])} per image: build the space with '
                             f'num_classes={self.num_outputs} (PretextTask.num_outputs)')
        return out.reshape(-1, self.per_cell) if self.per_cell else out


# ----------------------------------------------------------------------------- the evaluator

class PretextTask(ImageClassification):
    """Train a model on a self-supervised pretext task and score its pretext accuracy (UnNAS).

    Parameters
    ----------
    task
        ``'rotation'``, ``'jigsaw'`` or ``'colorization'`` (see the module docstring).
    copies
        Each epoch trains on ``copies`` times as many examples as there are training images,
        drawn anew (seeded by the epoch) without replacement from every (image, transform)
        pair; each validation image is scored under ``copies`` distinct transforms (a fixed
        seeded draw). Default: 4 for rotation (every rotation of every image), 1 otherwise.
    grid, permutations, normalize_tiles
        Jigsaw: tiles per side, the number of permutations (the classes; default all 24 for
        ``grid=2``, 100 for ``grid=3``), and whether each tile is standardised.
    color_grid, color_bins
        Colorization: cells per side of the target grid and colour bins per ``a``/``b`` axis.
    in_channels
        Input channels of the network: rotation and jigsaw as :class:`ImageClassification`
        (1 averages a colour image, 3 repeats a grey one); colorization 1 (default) or 3 (the
        lightness repeated).
    **recipe
        Everything else is :class:`ImageClassification`'s (dataset, epochs, optimiser, limit,
        image_size, seed, devices, ...).
    """

    def __init__(self, task: str = 'rotation', *, copies: Optional[int] = None, grid: int = 2,
                 permutations: Optional[int] = None, normalize_tiles: bool = True, color_grid: int = 4,
                 color_bins: int = 8, in_channels: Optional[int] = None, **recipe):
        if task not in TASKS:
            raise ValueError(f'Unknown pretext task {task!r}; expected one of {TASKS}')
        for name, value, low in (('copies', copies, 1), ('grid', grid, 2), ('permutations', permutations, 2),
                                 ('color_grid', color_grid, 1), ('color_bins', color_bins, 2)):
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                                      or value < low):
                raise ValueError(f'{name} must be a whole number >= {low}, got {value!r}')
        dataset = recipe.get('dataset', 'digits')
        if task == 'colorization':
            if isinstance(dataset, str) and dataset.lower() not in RGB_DATASETS:
                raise ValueError(f'colorization needs colour images; dataset {dataset!r} is grey '
                                 f'(colour datasets: {", ".join(RGB_DATASETS)})')
            if in_channels not in (None, 1, 3):
                raise ValueError(f'in_channels must be 1 or 3, got {in_channels}')
        # colorization reads the colour images as they are and feeds the lightness with in_channels channels
        super().__init__(in_channels=None if task == 'colorization' else in_channels, **recipe)
        self.task = task
        if task == 'jigsaw':
            count = permutations if permutations is not None else (None if grid == 2 else 100)
            self.perms = jigsaw_permutations(grid, count, seed=self.seed)
        else:
            if permutations is not None:
                raise ValueError(f'permutations is a jigsaw argument; task is {task!r}')
            self.perms = None
        self.num_transforms = {'rotation': 4, 'jigsaw': len(self.perms) if self.perms is not None else 0,
                               'colorization': 1}[task]
        default_copies = 4 if task == 'rotation' else 1
        self.copies = min(copies or default_copies, self.num_transforms)
        if copies is not None and copies > self.num_transforms:
            raise ValueError(f'copies={copies} exceeds the {self.num_transforms} transforms of {task}')
        self.grid, self.normalize_tiles = grid, bool(normalize_tiles)
        self.color_grid, self.color_bins = color_grid, color_bins
        self.input_channels = (in_channels or 1) if task == 'colorization' else in_channels
        #: the output width the network needs
        self.num_outputs = (color_grid ** 2 * color_bins ** 2 if task == 'colorization' else self.num_transforms)
        self._arguments.update(task=task, copies=copies, grid=grid, permutations=permutations,
                               normalize_tiles=bool(normalize_tiles), color_grid=color_grid, color_bins=color_bins,
                               in_channels=in_channels)

    def extra_repr(self) -> str:
        return f'task={self.task!r}, num_outputs={self.num_outputs}, ' + super().extra_repr()

    # -- data
    def _pretext_data(self, base: Dataset, train: bool) -> PretextDataset:
        n, k = len(base), self.num_transforms
        if train:   # every (image, transform) pair; the sampler draws n * copies of them per epoch
            pairs = torch.stack([torch.arange(n).repeat_interleave(k), torch.arange(k).repeat(n)], dim=1)
        else:       # a fixed seeded choice of `copies` distinct transforms per validation image
            g = torch.Generator().manual_seed(self.seed * 7919 + 17)
            chosen = torch.stack([torch.randperm(k, generator=g)[:self.copies] for _ in range(n)]) if k > 1 \
                else torch.zeros(n, 1, dtype=torch.long)
            chosen = chosen.sort(dim=1).values
            pairs = torch.stack([torch.arange(n).repeat_interleave(chosen.shape[1]), chosen.reshape(-1)], dim=1)
        return PretextDataset(base, self.task, pairs, grid=self.grid, perms=self.perms,
                              normalize_tiles=self.normalize_tiles, color_grid=self.color_grid,
                              color_bins=self.color_bins, in_channels=self.input_channels or 1)

    def dataloaders(self):
        """``(train_loader, val_loader)`` of pretext examples from the labelled data of
        :meth:`ImageClassification.dataloaders` (built once, kept for every model)."""
        if self._loaders is None:
            train, val = super().dataloaders()
            if self.task == 'colorization' and self.info.in_channels != 3:
                raise ValueError(f'colorization needs colour images; {self.dataset!r} has '
                                 f'{self.info.in_channels} channel(s)')
            train_ds, val_ds = self._pretext_data(train.dataset, True), self._pretext_data(val.dataset, False)
            collate = flatten_cell_targets if self.task == 'colorization' else None
            persistent = self.num_workers > 0
            self._loaders = (
                DataLoader(train_ds, batch_size=train.batch_size, collate_fn=collate,
                           sampler=EpochSampler(len(train_ds), seed=self.seed, auto_shard=True,
                                                num_samples=len(train.dataset) * self.copies),
                           num_workers=self.num_workers, persistent_workers=persistent),
                DataLoader(val_ds, batch_size=val.batch_size, collate_fn=collate,
                           sampler=EpochSampler(len(val_ds), shuffle=False, auto_shard=True),
                           num_workers=self.num_workers, persistent_workers=persistent))
            channels = self.input_channels if self.task == 'colorization' else self.info.in_channels
            self.info = dataclasses.replace(self.info, num_classes=self.num_outputs, in_channels=channels)
        return super().dataloaders()   # re-seeds the order for the next model

    # -- models
    def _wrap(self, model: nn.Module) -> _PretextOutputs:
        per_cell = self.color_bins ** 2 if self.task == 'colorization' else 0
        return _PretextOutputs(model, self.num_outputs, self.task, per_cell)

    def check_model(self, model: nn.Module) -> None:
        """Raise ``ValueError`` unless ``model`` runs on one pretext example and has
        :attr:`num_outputs` outputs (its weights and batch-norm statistics are left as they were)."""
        _, val = self.dataloaders()
        x = val.dataset[0][0].unsqueeze(0)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                self._wrap(model)(x)
        except (RuntimeError, IndexError) as err:
            raise ValueError(f'The network does not run on a {self.task} pretext example of shape {tuple(x.shape)} '
                             f'({type(err).__name__}: {err}); check the space\'s in_channels and image size') from err
        finally:
            model.train(was_training)

    def evaluate(self, model: nn.Module) -> float:
        """Train ``model`` on the pretext task; return (and report to NNI) its final pretext
        accuracy on the validation split. ``model`` is trained in place."""
        self.check_model(model)
        return super().evaluate(self._wrap(model))

    def oneshot_recipe(self, model: nn.Module):
        """:meth:`ImageClassification.oneshot_recipe` on the pretext data; the supernet's output
        width is checked on the search's first batch (its probe), before training."""
        return super().oneshot_recipe(self._wrap(model))
