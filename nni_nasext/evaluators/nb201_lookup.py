"""NAS-Bench-201 lookup as an NNI evaluator: the result of a cell in microseconds.

It is an ``nni.nas.benchmark.BenchmarkEvaluator`` (NNI's kind for tabular benchmarks): it
reads the sample of the model instead of building the network, queries
:class:`nni_nasext.benchmarks.NasBench201Table`, and reports through NNI's trial API a final
result ``{"default": accuracy, "cost": seconds, "params": millions}``. ``total_cost`` adds up
the simulated training time of every query, so a search can be stopped at a simulated
budget (the NB201 paper's 12,000 s, see :class:`SimulatedBudgetEngine`).

Multi-fidelity: a sample carrying ``nasext_budget`` (:mod:`nni_nasext.fidelity`) of 12 or 200
is looked up, and paid for, at that many epochs instead of ``epochs``.
"""
from __future__ import annotations

from typing import Any, Dict

import nni
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace
from nni.nas.execution import SequentialExecutionEngine

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table
from nni_nasext.fidelity import split_budget
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS


class NasBench201Lookup(BenchmarkEvaluator):
    """Look up a sample of :class:`~nni_nasext.search_spaces.NasBench201Space`.

    Parameters
    ----------
    dataset
        ``cifar10-valid``, ``cifar100`` or ``ImageNet16-120``.
    epochs
        12 (the NB201 search reward) or 200 (the final figure).
    """

    def __init__(self, dataset: str = 'cifar10-valid', epochs: int = 12):
        super().__init__()
        if dataset not in NB201_DATASETS:
            raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {NB201_DATASETS}')
        if epochs not in (12, 200):
            raise ValueError(f'NB201 tables here hold 12 and 200 epochs, not {epochs}')
        self.dataset, self.epochs = dataset, epochs
        self.table = NasBench201Table()
        self.total_cost = 0.
        self.num_queries = 0

    def extra_repr(self) -> str:
        return f'dataset={self.dataset!r}, epochs={self.epochs}'

    @classmethod
    def default_space(cls) -> SlimBenchmarkSpace:
        return SlimBenchmarkSpace({label: Categorical(OPS, label=label) for label in EDGE_LABELS})

    def validate_space(self, space) -> Dict[str, Any]:
        simplified = space.simplify()
        if SlimBenchmarkSpace(simplified) != self.default_space():
            raise ValueError(f'NasBench201Lookup needs the NB201 cell space (labels {EDGE_LABELS} over {OPS}), '
                             f'got {list(simplified)}')
        return simplified

    #: the training budgets (epochs) a sample may ask for through ``nasext_budget``
    fidelities = (12, 200)

    def with_budget(self, budget) -> 'NasBench201Lookup':
        """A lookup at ``budget`` epochs (12 or 200) on the same dataset."""
        return type(self)(self.dataset, epochs=self._epochs_of(budget))

    def _epochs_of(self, budget) -> int:
        if budget is None:
            return self.epochs
        if budget not in self.fidelities:
            raise ValueError(f'NB201 budgets here are {self.fidelities} epochs, not {budget!r}')
        return int(budget)

    def query(self, sample: Dict[str, Any]):
        arch, budget = split_budget(sample)
        record = self.table.query(arch, self.dataset, self._epochs_of(budget))
        self.total_cost += record.cost
        self.num_queries += 1
        return record

    def evaluate(self, sample: Dict[str, Any]) -> float:
        record = self.query(sample)
        nni.report_final_result({'default': record.accuracy, 'cost': record.cost, 'params': record.params})
        return record.accuracy

    def _execute(self, model) -> Any:
        if model.sample is None:
            raise ValueError('NasBench201Lookup needs a sampled model (model.sample is None)')
        return self.evaluate(model.sample)


class SimulatedBudgetEngine(SequentialExecutionEngine):
    """Sequential engine whose budget is the simulated training time of a lookup evaluator.

    ``budget_available()`` is true while ``evaluator.total_cost < budget`` (seconds), so an
    NNI strategy and ours stop at the same simulated wall-clock as in the NB201 paper.
    The query that crosses the budget still counts, as in the paper's protocol.
    """

    def __init__(self, evaluator: NasBench201Lookup, budget: float):
        super().__init__(continue_on_failure=True)
        self.evaluator, self.budget = evaluator, budget

    def budget_available(self) -> bool:
        return self.evaluator.total_cost < self.budget


def simulate_search(strategy, evaluator: NasBench201Lookup, budget: float, space=None) -> SimulatedBudgetEngine:
    """Run any NNI strategy (ours through ``SearcherStrategy`` or NNI's own) on NAS-Bench-201
    until ``budget`` simulated seconds; returns the engine (``engine.list_models()``)."""
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    engine = SimulatedBudgetEngine(evaluator, budget)
    strategy(RawFormatModelSpace.from_model(space if space is not None else NasBench201Space(), evaluator), engine)
    return engine
