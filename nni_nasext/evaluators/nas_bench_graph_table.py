"""The NAS-Bench-Graph tables without torch: query an architecture of one dataset.

NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks): see
:mod:`nni_nasext.evaluators.nas_bench_graph_lookup`, the NNI evaluator over these tables, which
re-exports everything here. Kept free of torch, Lightning and NNI's NAS modules so that a lookup
trial (``python3 -m nni_nasext.trial_code --space nas_bench_graph --evaluator nas_bench_graph``)
answers in well under a second.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

from nni_nasext.nas_bench_graph_arch import DATASETS, arch_to_sample, ops_for, sample_to_arch

__all__ = ['GraphRecord', 'NasBenchGraphTable', 'bench_key', 'load_package', 'check_dataset', 'record_metrics',
           'METRICS']

METRICS = ('valid', 'test')
_INSTALL = 'pip install nas-bench-graph (the NAS-Bench-Graph tables, Qin et al. 2022; PyPI package "nas-bench-graph")'

GraphArch = Union[Mapping[str, Any], Tuple[Sequence[int], Sequence[str]]]


@dataclasses.dataclass(frozen=True)
class GraphRecord:
    """One NAS-Bench-Graph row: ``valid`` / ``test`` in percent (ROC-AUC x 100 on proteins),
    ``latency`` in seconds, ``params`` in millions, as the table stores them."""
    key: int
    valid: float
    test: float
    latency: float
    params: float


def load_package():
    """The ``nas_bench_graph`` module, or an :class:`ImportError` that says how to install it."""
    try:
        import nas_bench_graph
    except ImportError as err:
        raise ImportError(f'NAS-Bench-Graph needs its package: {_INSTALL}') from err
    return nas_bench_graph


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f'Unknown NAS-Bench-Graph dataset {dataset!r}; expected one of {list(DATASETS)}')
    return dataset


@functools.lru_cache(maxsize=None)
def _load_table(dataset: str) -> Dict[int, GraphRecord]:
    raw = load_package().light_read(check_dataset(dataset))
    return {int(k): GraphRecord(int(k), 100 * float(v['valid_perf']), 100 * float(v['perf']), float(v['latency']),
                                float(v['para']))
            for k, v in raw.items()}


def bench_key(arch: GraphArch, dataset: str = 'cora') -> int:
    """A sample dict or ``(link, ops)`` -> the benchmark key (``Arch(link, ops).valid_hash()`` of the
    package). Refuses a malformed architecture, operations the dataset has no data for, and the
    all-``skip`` cell (not in the benchmark)."""
    ops_allowed = ops_for(check_dataset(dataset))
    if isinstance(arch, Mapping):
        link, ops = sample_to_arch(arch, ops_allowed)
    else:
        try:
            link, ops = arch
        except (TypeError, ValueError):
            raise TypeError(f'A NAS-Bench-Graph architecture is a sample dict or (link, ops), got {arch!r}') from None
        link, ops = sample_to_arch(arch_to_sample(list(link), list(ops)), ops_allowed)
    if all(o == 'skip' for o in ops):
        raise ValueError('The all-skip cell is not in NAS-Bench-Graph (its network has no graph layer)')
    return int(load_package().Arch(list(link), list(ops)).valid_hash())


class NasBenchGraphTable:
    """Query one dataset of NAS-Bench-Graph: ``query(arch) -> GraphRecord``."""

    def __init__(self, dataset: str = 'cora'):
        self.dataset = check_dataset(dataset)

    def query(self, arch: GraphArch) -> GraphRecord:
        key = bench_key(arch, self.dataset)
        table = _load_table(self.dataset)
        if key not in table:
            raise KeyError(f'NAS-Bench-Graph {self.dataset} has no record for key {key} ({arch!r})')
        return table[key]

    def best(self, by: str = 'valid') -> GraphRecord:
        """The record with the highest ``by`` (``'valid'``: the paper's selection; ``'test'``: the
        best test figure in the table). Ties go to the smaller key."""
        if by not in METRICS:
            raise ValueError(f'by must be one of {METRICS}, got {by!r}')
        return max(sorted(_load_table(self.dataset).values(), key=lambda r: r.key), key=lambda r: getattr(r, by))

    def records(self):
        return _load_table(self.dataset).values()

    def __len__(self) -> int:
        return len(_load_table(self.dataset))


def record_metrics(record: GraphRecord, metric: str = 'valid') -> Tuple[float, Dict[str, float]]:
    """``(reward, final result)`` of a record, as a trial reports it: the reward is ``metric``
    (``'valid'`` or ``'test'``); the final result ``{"default": reward, "valid": %, "test": %,
    "latency_ms": ms, "params": millions}``."""
    if metric not in METRICS:
        raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
    value = getattr(record, metric)
    return value, {'default': value, 'valid': record.valid, 'test': record.test, 'latency_ms': 1e3 * record.latency,
                   'params': record.params}
