"""The training recipe an evaluator hands to a one-shot search.

A one-shot search (:mod:`nni_nasext.strategies.oneshot`) trains one supernet with the
evaluator's own Lightning module, data and Trainer settings. An evaluator that is not an NNI
Lightning evaluator offers them through ``oneshot_recipe(model) -> Recipe``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

__all__ = ['Recipe', 'metric_mode']

_MINIMISED = ('loss', 'mse', 'mae', 'error', 'perplexity', 'rmse')


@dataclasses.dataclass
class Recipe:
    """An evaluator's training recipe around one model.

    ``module``: the Lightning module that trains ``model`` (loss, metrics, optimiser);
    ``train`` / ``val``: its dataloaders (or ``datamodule``); ``trainer_kwargs``: the Trainer's
    arguments (``max_epochs``, ``accelerator``, ...); ``metric``: the name the module logs in
    ``validation_step`` that scores an architecture, ``mode`` whether it is maximised;
    ``ordered``: the data order matters (a text stream), so it is never reshuffled;
    ``arch_data``: the evaluator's preferred source of architecture batches (``'split'`` the
    training data, or ``'val'``); ``reset_parameters``: re-initialise the supernet's weights
    from the search's seed (the evaluator does so for every model it trains)."""
    module: Any
    train: Any = None
    val: Any = None
    datamodule: Any = None
    trainer_kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    metric: Optional[str] = None
    mode: str = 'max'
    seed: int = 0
    ordered: bool = False
    arch_data: str = 'split'
    reset_parameters: bool = False


def metric_mode(name: Optional[str]) -> str:
    """``'min'`` for losses, errors and perplexities, ``'max'`` otherwise."""
    return 'min' if name and any(t in name.lower() for t in _MINIMISED) else 'max'
