"""The NAS-Bench-201 lookup itself, without torch, Lightning or NNI's NAS modules.

:class:`NB201Query` is what :class:`~nni_nasext.evaluators.nb201_lookup.NasBench201Lookup` (NNI's
``BenchmarkEvaluator`` kind) does with a sample: check the dataset and schedule, look the cell up
in :class:`~nni_nasext.benchmarks.NasBench201Table` (at the epochs a multi-fidelity sample asks
for), add up the simulated cost and report ``{"default": accuracy, "cost": seconds, "params":
millions}`` through NNI's trial API. ``NasBench201Lookup`` inherits it, so both give the same
answers; the nnictl trial program uses it directly for lookup trials
(:func:`nni_nasext.trial_code.run.run_lookup_trial`), which then start in about a second.
"""
from __future__ import annotations

from typing import Any, Dict

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table
from nni_nasext.fidelity import split_budget

__all__ = ['NB201Query']


class NB201Query:
    """Look up NB201 cells on ``dataset`` after ``epochs`` (12 or 200) epochs."""

    #: the training budgets (epochs) a sample may ask for through ``nasext_budget``
    fidelities = (12, 200)

    def __init__(self, dataset: str = 'cifar10-valid', epochs: int = 12):
        if dataset not in NB201_DATASETS:
            raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {NB201_DATASETS}')
        if epochs not in (12, 200):
            raise ValueError(f'NB201 tables here hold 12 and 200 epochs, not {epochs}')
        self.dataset, self.epochs = dataset, epochs
        self.table = NasBench201Table()
        self.total_cost = 0.
        self.num_queries = 0

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
        import nni
        record = self.query(sample)
        nni.report_final_result({'default': record.accuracy, 'cost': record.cost, 'params': record.params})
        return record.accuracy
