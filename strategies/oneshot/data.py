"""What a one-shot search takes from an evaluator, and its data protocol.

A :class:`Recipe` is the evaluator's training recipe around the supernet: its Lightning module
(loss, metrics, optimiser: the user's), its train and validation data, the Trainer settings
(epochs, accelerator) and the logged metric that scores an architecture. :func:`recipe_for`
makes one from

* NNI's Lightning evaluators (``nni.nas.evaluator.pytorch.Classification``, ``Regression``,
  ``Lightning``): their ``module`` (``set_model`` with the supernet), dataloaders or
  datamodule, and the arguments of their traced ``Trainer``;
* any evaluator with an ``oneshot_recipe(model)`` method (this project's
  :class:`~nni_nasext.evaluators.classification.ImageClassification`). Not yet the
  ``LanguageModel``: its module carries one recurrent state through the training stream, and a
  one-shot step reads two streams (and the ``rnn_cells`` space declares its choices as bare
  mutables, which no supernet can mix).

Data (:func:`paired_loaders`): the weight step and the architecture step of a one-shot step
each take one batch. ``arch_data='split'`` (DARTS' protocol, Liu et al. 2019, Section 3.1)
halves the training set into a weight half and an architecture half; ``'val'`` (NNI's
protocol) takes the architecture batches from the validation loader. Both are served paired,
``{'train': batch, 'arch': batch}`` per step (:class:`PairedBatches`: an epoch is one pass over
the weight data; the architecture data is cycled). Loaders over map-style datasets are rebuilt
with :class:`EpochSampler`, whose order
is a function of the seed and the epoch only, so that a search resumed from a checkpoint sees
the same batches as one never stopped.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, Subset

from nni_nasext.evaluators.recipe import Recipe, metric_mode
from nni_nasext.evaluators.sampling import EpochSampler

__all__ = ['EpochSampler', 'Paired', 'PairedBatches', 'Recipe', 'first_batch', 'metric_mode', 'paired_loaders', 'recipe_for']

_logger = logging.getLogger(__name__)

def recipe_for(evaluator, model) -> Recipe:
    """The :class:`Recipe` of ``evaluator`` around ``model`` (the supernet)."""
    if hasattr(evaluator, 'oneshot_recipe'):
        return evaluator.oneshot_recipe(model)
    from nni.nas.evaluator.pytorch import Lightning
    if isinstance(evaluator, Lightning):
        return _lightning_recipe(evaluator, model)
    raise TypeError(f'One-shot search trains the supernet with the evaluator\'s Lightning module; '
                    f'{type(evaluator).__name__} has none (not supported). Use an NNI Lightning evaluator '
                    '(nni.nas.evaluator.pytorch.Classification, Regression, Lightning) or '
                    'nni_nasext.evaluators.ImageClassification')


def _lightning_recipe(evaluator, model) -> Recipe:
    module = evaluator.module
    if getattr(evaluator, 'is_mutable', lambda: False)():
        raise ValueError('The evaluator holds choices of its own; one-shot search needs a fixed evaluator')
    module.set_model(model)
    if hasattr(module, 'export_onnx'):
        module.export_onnx = None  # NNI's modules export the model on the first validation step: not a supernet
    trainer = evaluator.trainer
    kwargs = dict(getattr(trainer, 'trace_kwargs', None) or {'max_epochs': trainer.max_epochs})
    if evaluator.datamodule is None and (evaluator.train_dataloaders is None or evaluator.val_dataloaders is None):
        raise ValueError('One-shot search needs both training and validation data in the evaluator '
                         '(train_dataloaders and val_dataloaders, or a datamodule)')
    metrics = list(getattr(module, 'metrics', {}) or {})
    metric = f'val_{metrics[0]}' if metrics else 'val_loss'
    return Recipe(module=module, train=evaluator.train_dataloaders, val=evaluator.val_dataloaders,
                  datamodule=evaluator.datamodule, trainer_kwargs=kwargs, metric=metric, mode=metric_mode(metric),
                  arch_data='val')


# ----------------------------------------------------------------------------- loaders

def _rebuild(loader: DataLoader, dataset: Dataset, sampler: Sampler) -> DataLoader:
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      persistent_workers=loader.num_workers > 0 and getattr(loader, 'persistent_workers', False),
                      worker_init_fn=loader.worker_init_fn)


def _map_style(loader) -> bool:
    return isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset) \
        and loader.batch_size is not None


def _draws(loader: DataLoader, n: int) -> int:
    """Examples per epoch of ``loader``: its sampler's ``num_samples`` when it has one (NNI's
    tests subsample with ``RandomSampler(num_samples=...)``), else the dataset size."""
    return int(getattr(loader.sampler, 'num_samples', n) or n)


class PairedBatches:
    """``{'train': weight batch, 'arch': architecture batch}`` per step: one pass over
    ``weights`` per epoch, ``arch`` cycled. Before each pass the samplers are set to the epoch
    that ``epoch_fn()`` gives (the Trainer's), so a resumed search sees the same order."""

    def __init__(self, weights, arch, samplers: List['EpochSampler']):
        self.weights, self.arch, self.samplers = weights, arch, samplers
        self.epoch_fn = lambda: 0
        #: ``(rank, world size)`` of this process, read when the batches are counted or served
        self.shard_fn = lambda: (0, 1)

    def _shard(self) -> None:
        rank, world = self.shard_fn()
        for s in self.samplers:
            s.set_shard(rank, world)

    def shardable(self) -> bool:
        """Whether both the weight and the architecture data are served by an :class:`EpochSampler`
        (which data parallelism needs to give each process its share)."""
        return all(isinstance(getattr(loader, 'sampler', None), EpochSampler) for loader in (self.weights, self.arch))

    def __len__(self) -> int:
        self._shard()
        return len(self.weights)

    def __iter__(self):
        epoch = int(self.epoch_fn())
        self._shard()
        for s in self.samplers:
            s.set_epoch(epoch)
        arch_iter = iter(self.arch)
        for batch in self.weights:
            try:
                other = next(arch_iter)
            except StopIteration:
                arch_iter = iter(self.arch)
                other = next(arch_iter)
            yield {'train': batch, 'arch': other}


@dataclasses.dataclass
class Paired:
    """The loaders of one search: ``train`` (paired ``{'train', 'arch'}`` batches), ``val``
    (the evaluator's validation data), ``arch`` (the architecture data alone, for scoring),
    and the :class:`EpochSampler` of each that we built (to re-seed per epoch)."""
    train: PairedBatches
    val: Any
    arch: Any
    samplers: List[EpochSampler]

    def score_batches(self, n: int) -> List[Any]:
        """The first ``n`` batches of the architecture data in a fixed order (epoch 0)."""
        loader = self.arch
        sampler = getattr(loader, 'sampler', None)
        if isinstance(sampler, EpochSampler):
            loader = _rebuild(loader, loader.dataset, EpochSampler(sampler.n, sampler.seed + 7, sampler.num_samples))
        out = []
        for batch in loader:
            out.append(batch)
            if len(out) >= n:
                break
        return out


def paired_loaders(recipe: Recipe, arch_data: Optional[str] = None, seed: Optional[int] = None) -> Paired:
    """The loaders of a search over ``recipe``'s data (see the module docstring)."""
    arch_data = arch_data or recipe.arch_data
    if arch_data not in ('split', 'val'):
        raise ValueError(f"arch_data must be 'split' (halve the training data) or 'val' (the validation data), "
                         f'got {arch_data!r}')
    seed = recipe.seed if seed is None else int(seed)
    train, val = recipe.train, recipe.val
    if recipe.datamodule is not None:
        dm = recipe.datamodule
        for stage in ('fit',):
            if hasattr(dm, 'prepare_data'):
                dm.prepare_data()
            if hasattr(dm, 'setup'):
                dm.setup(stage)
        train, val = dm.train_dataloader(), dm.val_dataloader()
    if isinstance(val, (list, tuple)) and len(val) == 1:
        val = val[0]
    samplers: List[EpochSampler] = []
    if arch_data == 'split':
        if recipe.ordered or not _map_style(train):
            raise ValueError("arch_data='split' needs a map-style training dataset in a DataLoader that can be "
                             "shuffled; use arch_data='val' (architecture batches from the validation data)")
        ds = train.dataset
        n = len(ds)
        if n < 2:
            raise ValueError(f'The training set has {n} example(s): too few to halve')
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        half = n // 2
        first, second = Subset(ds, perm[:half]), Subset(ds, perm[half:])
        per_epoch = max(1, _draws(train, n) // 2)
        s1, s2 = EpochSampler(len(first), seed, min(per_epoch, len(first))), EpochSampler(len(second), seed + 1)
        samplers += [s1, s2]
        weights, arch = _rebuild(train, first, s1), _rebuild(train, second, s2)
    else:
        weights, arch = train, val
        if not recipe.ordered and _map_style(train):
            s1 = EpochSampler(len(train.dataset), seed, _draws(train, len(train.dataset)))
            samplers.append(s1)
            weights = _rebuild(train, train.dataset, s1)
        if not recipe.ordered and _map_style(val):
            s2 = EpochSampler(len(val.dataset), seed + 1, _draws(val, len(val.dataset)))
            samplers.append(s2)
            arch = _rebuild(val, val.dataset, s2)
    return Paired(train=PairedBatches(weights, arch, samplers), val=val, arch=arch, samplers=samplers)


def first_batch(loader) -> Any:
    for batch in loader:
        return copy.copy(batch)
    raise ValueError('The training data is empty')
