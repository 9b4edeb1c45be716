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

from typing import Any, Dict

import nni
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace

from nni_nasext.evaluators.nas_bench_graph_table import (  # noqa: F401 - re-exported
    METRICS, GraphArch, GraphRecord, NasBenchGraphTable, bench_key, check_dataset, load_package, record_metrics)
from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine
from nni_nasext.nas_bench_graph_arch import LABELS, NUM_NODES, ops_for

__all__ = ['GraphRecord', 'NasBenchGraphTable', 'NasBenchGraphLookup', 'simulate_graph_search', 'bench_key',
           'load_package', 'METRICS']


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
        check_dataset(dataset)
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
        value, final = record_metrics(self.query(sample), self.metric)
        nni.report_final_result(final)
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
