"""NAS-Bench-Macro lookup as an NNI evaluator.

NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monto-Carlo [sic] Tree Search",
CVPR 2021; GitHub ``xiusu/NAS-Bench-Macro``) lists, for each of the 6,561 architectures of
:class:`~nni_nasext.search_spaces.nasbench_macro.NasBenchMacroSpace`, the CIFAR-10 test
accuracy of 3 independent trainings, their mean and (population) standard deviation, the
parameter count and the FLOPs (multiply-accumulates of convolutions and linear layers). The
repository's ``train/train.py`` trains 50 epochs (SGD, cosine schedule) and keeps, per run, the
best test-set accuracy over the epochs, so the accuracies are a slightly optimistic
estimate (the test set also picks the epoch).

The table is the file ``nas_bench_macro/nas-bench-macro_cifar10.json`` under ``NASEXT_DATA``
(or ``~/.cache/nasext``); it is read on the first query and cached for the process. Without it
a query raises :class:`~nni_nasext.data_paths.DataNotFoundError` naming where it looked.

The table carries no training time, so a query costs 1: ``total_cost`` counts queries and
``SimulatedBudgetEngine(evaluator, budget=N)`` stops a search after N queries.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import nni
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace

from nni_nasext.evaluators.macro_table import (  # noqa: F401 - re-exported
    MACRO_FILE, MacroArch, MacroRecord, NasBenchMacroTable, check_seed, clear_cache, record_metrics, to_key)
from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine
from nni_nasext.nasbench_macro_arch import LABELS, OPS

__all__ = ['MACRO_FILE', 'MacroRecord', 'NasBenchMacroTable', 'NasBenchMacroLookup', 'simulate_macro_search',
           'to_key', 'clear_cache']


class NasBenchMacroLookup(BenchmarkEvaluator):
    """Look up a sample of :class:`~nni_nasext.search_spaces.nasbench_macro.NasBenchMacroSpace`
    in NAS-Bench-Macro (Su et al., CVPR 2021).

    Reports through NNI's trial API the final result ``{"default": accuracy, "params": millions,
    "flops": millions}`` (FLOPs as multiply-accumulates) and returns the accuracy.

    Parameters
    ----------
    seed
        ``None`` (default): the mean test accuracy over the 3 trainings; ``0``, ``1`` or ``2``:
        the accuracy of that single training run (a noisy reward, as one real training gives).
    """

    def __init__(self, seed: Optional[int] = None):
        super().__init__()
        self.seed = check_seed(seed)
        self.table = NasBenchMacroTable()
        self.total_cost = 0.
        self.num_queries = 0

    def extra_repr(self) -> str:
        return f'seed={self.seed!r}'

    @classmethod
    def default_space(cls) -> SlimBenchmarkSpace:
        return SlimBenchmarkSpace({label: Categorical(OPS, label=label) for label in LABELS})

    def validate_space(self, space) -> Dict[str, Any]:
        simplified = space.simplify()
        if SlimBenchmarkSpace(simplified) != self.default_space():
            raise ValueError(f'NasBenchMacroLookup needs the NAS-Bench-Macro space (labels {LABELS} over {OPS}), '
                             f'got {list(simplified)}')
        return simplified

    def query(self, arch: MacroArch) -> MacroRecord:
        """One table query; counts 1 towards ``total_cost`` and ``num_queries``."""
        record = self.table.query(arch)
        self.total_cost += 1
        self.num_queries += 1
        return record

    def accuracy(self, record: MacroRecord) -> float:
        return record_metrics(record, self.seed)[0]

    def evaluate(self, sample: Dict[str, Any]) -> float:
        acc, final = record_metrics(self.query(sample), self.seed)
        nni.report_final_result(final)
        return acc

    def _execute(self, model) -> Any:
        if model.sample is None:
            raise ValueError('NasBenchMacroLookup needs a sampled model (model.sample is None)')
        return self.evaluate(model.sample)


def simulate_macro_search(strategy, evaluator: NasBenchMacroLookup, budget: int, space=None) -> SimulatedBudgetEngine:
    """Run any NNI strategy on NAS-Bench-Macro until ``budget`` queries (``simulate_search`` of
    :mod:`~nni_nasext.evaluators.nb201_lookup` with this space as the default)."""
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.search_spaces.nasbench_macro import NasBenchMacroSpace
    engine = SimulatedBudgetEngine(evaluator, budget)
    strategy(RawFormatModelSpace.from_model(space if space is not None else NasBenchMacroSpace(), evaluator), engine)
    return engine
