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

from typing import Any, Dict, Optional

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table
from nni_nasext.fidelity import split_budget

__all__ = ['NB201Query']


class NB201Query:
    """Look up NB201 cells on ``dataset`` after ``epochs`` (12 or 200) epochs. With ``device``
    (a name of :func:`nni_nasext.hardware.latency.latency_devices`) the final result also carries the
    cell's measured latency there (``latency_ms``) and its FLOPs (``flops``, millions of
    multiply-accumulates), so that NNI's web UI shows every objective."""

    #: the training budgets (epochs) a sample may ask for through ``nasext_budget``
    fidelities = (12, 200)

    def __init__(self, dataset: str = 'cifar10-valid', epochs: int = 12, device: Optional[str] = None):
        if dataset not in NB201_DATASETS:
            raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {NB201_DATASETS}')
        if epochs not in (12, 200):
            raise ValueError(f'NB201 tables here hold 12 and 200 epochs, not {epochs}')
        if device is not None:
            from nni_nasext.hardware.latency import latency_table
            latency_table(device)   # a missing device or file is an error now, naming what exists
        self.dataset, self.epochs, self.device = dataset, epochs, device
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

    def metrics(self, sample: Dict[str, Any]) -> Dict[str, float]:
        """The final result of ``sample``: ``default`` (accuracy %), ``cost``, ``params`` and, with a
        device, ``latency_ms`` and ``flops``."""
        record = self.query(sample)
        out = {'default': record.accuracy, 'cost': record.cost, 'params': record.params}
        if self.device is not None:
            from nni_nasext.hardware.latency import latency_ms, nb201_flops
            arch, _ = split_budget(sample)
            out.update(latency_ms=latency_ms(arch, self.device), flops=nb201_flops(arch, self.dataset))
        return out

    def evaluate(self, sample: Dict[str, Any]) -> float:
        import nni
        metrics = self.metrics(sample)
        nni.report_final_result(metrics)
        return metrics['default']
