"""NAS-Bench-Graph lookup as an NNI evaluator.

NAS-Bench-Graph (Y. Qin, Z. Zhang, X. Wang, Z. Zhang and W. Zhu, "NAS-Bench-Graph: Benchmarking
Graph Neural Architecture Search", NeurIPS 2022 Datasets and Benchmarks) trained each of the
26,206 distinct GNN architectures of
:class:`~nni_nasext.search_spaces.nas_bench_graph.NasBenchGraphSpace` on 9 node-classification
datasets (2,021 architectures of 5 operations on ogbn-proteins), 3 seeds each. The
``nas-bench-graph`` package (PyPI, a dependency) ships the "light" tables: per architecture the
validation and test performance (means over the seeds; accuracy, ROC-AUC on proteins), the
inference latency (seconds) and the parameter count (millions). The per-epoch curves of the
full benchmark are a separate figshare download, so there is one fidelity here and no
multi-fidelity search (Hyperband, BOHB).

The package is used as a library: :func:`nas_bench_graph.light_read` reads a table and
``nas_bench_graph.Arch(link, ops).valid_hash()`` maps an architecture to its key (isomorphic
architectures share a key). Without the package a query raises :class:`ImportError` naming it.

The paper's protocol selects architectures by validation performance and reports the test
performance of the selected one; so the evaluator's reward (``metric='valid'``, the default)
is the validation figure, and the report carries both. The table has no training time: a query
costs 1, ``total_cost`` counts queries and ``SimulatedBudgetEngine(evaluator, budget=N)`` stops
a search after N queries.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import nni
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace

from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine
from nni_nasext.search_spaces.nas_bench_graph import DATASETS, LABELS, NUM_NODES, ops_for, sample_to_arch

__all__ = ['GraphRecord', 'NasBenchGraphTable', 'NasBenchGraphLookup', 'simulate_graph_search', 'bench_key',
           'load_package', 'METRICS']

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


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f'Unknown NAS-Bench-Graph dataset {dataset!r}; expected one of {list(DATASETS)}')
    return dataset


@functools.lru_cache(maxsize=None)
def _load_table(dataset: str) -> Dict[int, GraphRecord]:
    raw = load_package().light_read(_check_dataset(dataset))
    return {int(k): GraphRecord(int(k), 100 * float(v['valid_perf']), 100 * float(v['perf']), float(v['latency']),
                                float(v['para']))
            for k, v in raw.items()}


def bench_key(arch: GraphArch, dataset: str = 'cora') -> int:
    """A sample dict or ``(link, ops)`` -> the benchmark key (``Arch(link, ops).valid_hash()`` of the
    package). Refuses a malformed architecture, operations the dataset has no data for, and the
    all-``skip`` cell (not in the benchmark)."""
    ops_allowed = ops_for(_check_dataset(dataset))
    if isinstance(arch, Mapping):
        link, ops = sample_to_arch(arch, ops_allowed)
    else:
        try:
            link, ops = arch
        except (TypeError, ValueError):
            raise TypeError(f'A NAS-Bench-Graph architecture is a sample dict or (link, ops), got {arch!r}') from None
        from nni_nasext.search_spaces.nas_bench_graph import arch_to_sample
        link, ops = sample_to_arch(arch_to_sample(list(link), list(ops)), ops_allowed)
    if all(o == 'skip' for o in ops):
        raise ValueError('The all-skip cell is not in NAS-Bench-Graph (its network has no graph layer)')
    return int(load_package().Arch(list(link), list(ops)).valid_hash())


class NasBenchGraphTable:
    """Query one dataset of NAS-Bench-Graph: ``query(arch) -> GraphRecord``."""

    def __init__(self, dataset: str = 'cora'):
        self.dataset = _check_dataset(dataset)

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


class NasBenchGraphLookup(BenchmarkEvaluator):
    """Look up a sample of :class:`~nni_nasext.search_spaces.nas_bench_graph.NasBenchGraphSpace` in
    NAS-Bench-Graph (Qin et al., NeurIPS 2022 D&B).

    Reports through NNI's trial API ``{"default": reward, "valid": %, "test": %, "latency_ms": ms,
    "params": millions}`` and returns the reward.

    Parameters
    ----------
    dataset
        one of ``cora, citeseer, pubmed, cs, physics, photo, computers, arxiv, proteins``.
    metric
        the reward: ``'valid'`` (default; the paper selects by validation) or ``'test'``.
    """

    def __init__(self, dataset: str = 'cora', metric: str = 'valid'):
        super().__init__()
        _check_dataset(dataset)
        if metric not in METRICS:
            raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
        load_package()  # a clear error now, not at the first query
        self.dataset, self.metric = dataset, metric
        self.table = NasBenchGraphTable(dataset)
        self.total_cost = 0.
        self.num_queries = 0

    def extra_repr(self) -> str:
        return f'dataset={self.dataset!r}, metric={self.metric!r}'

    @classmethod
    def default_space(cls, dataset: str = 'cora') -> SlimBenchmarkSpace:
        ops = ops_for(dataset)
        mutables = {f'input_{i}': Categorical(list(range(i)), label=f'input_{i}') for i in range(2, NUM_NODES + 1)}
        mutables.update({f'op_{i}': Categorical(list(ops), label=f'op_{i}') for i in range(1, NUM_NODES + 1)})
        return SlimBenchmarkSpace(mutables)

    def validate_space(self, space) -> Dict[str, Any]:
        simplified = space.simplify()
        if SlimBenchmarkSpace(simplified) != self.default_space(self.dataset):
            raise ValueError(f'NasBenchGraphLookup({self.dataset!r}) needs the NAS-Bench-Graph space of that dataset '
                             f'(labels {LABELS} over {list(ops_for(self.dataset))}), got {list(simplified)}')
        return simplified

    def query(self, arch: GraphArch) -> GraphRecord:
        """One table query; counts 1 towards ``total_cost`` and ``num_queries``."""
        record = self.table.query(arch)
        self.total_cost += 1
        self.num_queries += 1
        return record

    def evaluate(self, sample: Dict[str, Any]) -> float:
        record = self.query(sample)
        value = getattr(record, self.metric)
        nni.report_final_result({'default': value, 'valid': record.valid, 'test': record.test,
                                 'latency_ms': 1e3 * record.latency, 'params': record.params})
        return value

    def _execute(self, model) -> Any:
        if model.sample is None:
            raise ValueError('NasBenchGraphLookup needs a sampled model (model.sample is None)')
        return self.evaluate(model.sample)


def simulate_graph_search(strategy, evaluator: NasBenchGraphLookup, budget: int, space=None) -> SimulatedBudgetEngine:
    """Run any NNI strategy on NAS-Bench-Graph until ``budget`` queries; the default space is the
    evaluator's dataset's. A refused sample (all-skip) is a failed model that costs no query."""
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.search_spaces.nas_bench_graph import NasBenchGraphSpace
    engine = SimulatedBudgetEngine(evaluator, budget)
    if space is None:
        space = NasBenchGraphSpace(dataset=evaluator.dataset)
    strategy(RawFormatModelSpace.from_model(space, evaluator), engine)
    return engine
