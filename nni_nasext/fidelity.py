"""Multi-fidelity samples: a training budget travelling with the architecture.

A multi-fidelity searcher (successive halving, Hyperband, BOHB) decides not only *which*
architecture to train but *how long*. It says so by adding one reserved entry,
:data:`BUDGET_KEY`, to the sample it asks for::

    {'0_1': 'nor_conv_3x3', ..., 'nasext_budget': 12}

The entry is not a decision of the space: the adapters pass it through unchanged (NNI shows it
in the web UI beside the other parameters), the evaluators read it and strip it before the
space sees the sample:

* :class:`~nni_nasext.evaluators.ImageClassification`: the budget is the number of training
  epochs (``max_epochs``), with the cosine schedule stretched over that many;
* :class:`~nni_nasext.evaluators.nb201_lookup.NasBench201Lookup`: the budget is the NB201
  training schedule, 12 or 200 epochs (the tables here hold only those two);
* the nnictl trial code (``python -m nni_nasext.trial_code``) calls the evaluator's
  ``with_budget(budget)``; an evaluator without it fails the trial with a clear message.

The value reported for a budgeted sample is the accuracy at that budget, so values at
different budgets are not comparable; :func:`incumbent` picks the best result at the highest
budget that has one, the rule Hyperband and BOHB use for their answer.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple

BUDGET_KEY = 'nasext_budget'

__all__ = ['BUDGET_KEY', 'split_budget', 'with_budget', 'incumbent']


def split_budget(sample: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[float]]:
    """``(architecture sample without the budget, budget or None)``; the input is not changed."""
    if not isinstance(sample, dict) or BUDGET_KEY not in sample:
        return sample, None
    arch = {k: v for k, v in sample.items() if k != BUDGET_KEY}
    budget = sample[BUDGET_KEY]
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(f'{BUDGET_KEY} must be a positive number, got {budget!r}')
    return arch, budget


def with_budget(sample: Dict[str, Any], budget: Optional[float]) -> Dict[str, Any]:
    """A copy of ``sample`` carrying ``budget`` (``None`` removes it)."""
    arch, _ = split_budget(sample)
    return dict(arch) if budget is None else {**arch, BUDGET_KEY: budget}


def incumbent(observations: Iterable[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The best successful observation at the highest budget that has one.

    Observations are dicts with ``sample`` and ``value`` (``None`` = failed); samples without a
    budget count as the highest budget. Ties go to the earliest.
    """
    best, best_key = None, None
    for obs in observations:
        if obs.get('value') is None:
            continue
        _, budget = split_budget(obs['sample'])
        key = (float('inf') if budget is None else float(budget), obs['value'])
        if best_key is None or key > best_key:
            best, best_key = obs, key
    return best
