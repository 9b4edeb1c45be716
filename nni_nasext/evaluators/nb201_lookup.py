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

from typing import Any, Dict, Optional

from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace
from nni.nas.execution import SequentialExecutionEngine

from nni_nasext.evaluators.nb201_query import NB201Query
from nni_nasext.nb201_cells import EDGE_LABELS, OPS


class NasBench201Lookup(NB201Query, BenchmarkEvaluator):
    """Look up a sample of :class:`~nni_nasext.search_spaces.NasBench201Space`
    (:class:`~nni_nasext.evaluators.nb201_query.NB201Query`, as an NNI ``BenchmarkEvaluator``).

    Parameters
    ----------
    dataset
        ``cifar10-valid``, ``cifar100`` or ``ImageNet16-120``.
    epochs
        12 (the NB201 search reward) or 200 (the final figure).
    device
        Also report the measured latency on this device (``latency_ms``) and the FLOPs
        (:func:`nni_nasext.hardware.latency.latency_devices` lists the 26 devices).
    """

    def __init__(self, dataset: str = 'cifar10-valid', epochs: int = 12, device: Optional[str] = None):
        BenchmarkEvaluator.__init__(self)
        NB201Query.__init__(self, dataset, epochs, device)

    def extra_repr(self) -> str:
        return f'dataset={self.dataset!r}, epochs={self.epochs}' + (f', device={self.device!r}' if self.device else '')

    @classmethod
    def default_space(cls) -> SlimBenchmarkSpace:
        return SlimBenchmarkSpace({label: Categorical(OPS, label=label) for label in EDGE_LABELS})

    def validate_space(self, space) -> Dict[str, Any]:
        simplified = space.simplify()
        if SlimBenchmarkSpace(simplified) != self.default_space():
            raise ValueError(f'NasBench201Lookup needs the NB201 cell space (labels {EDGE_LABELS} over {OPS}), '
                             f'got {list(simplified)}')
        return simplified

    def with_budget(self, budget) -> 'NasBench201Lookup':
        """A lookup at ``budget`` epochs (12 or 200) on the same dataset."""
        return type(self)(self.dataset, epochs=self._epochs_of(budget), device=self.device)

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
