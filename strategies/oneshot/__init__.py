"""One-shot (weight-sharing) NAS on any NNI model space.

The supernet (:mod:`.supernet`, :mod:`.mixed`, :mod:`.mixed_layers`) is made from the user's
``ModelSpace``; the base Lightning module (:mod:`.base`) wraps the evaluator's own Lightning
module; every method is one class overriding one policy of it:

* :mod:`.darts`: DARTS (first and second order), GDAS, SNAS, PC-DARTS, Fair DARTS;
* :mod:`.single_path`: RSPS, SPOS, Bender et al.'s one-shot model with path dropout;
* :mod:`.enas`: ENAS's controller; :mod:`.proxyless`: ProxylessNAS with the latency loss of
  :mod:`.latency`;
* :mod:`.remedies`: R-DARTS (DARTS-ES), DARTS+, P-DARTS, ASAP, DARTS-PT (also with fixed α);
* TE-NAS, training-free pruning over the same supernet, is a zero-shot method:
  :mod:`nni_nasext.strategies.zero_shot.te_nas`;
* :mod:`.ofa`, :mod:`.ofa_supernet`: Once-for-All (progressive shrinking, elastic supernet);
  :mod:`.shrink`: channel pruning of a trained mobile network to a budget.

:func:`~.search.search` runs one search; ``nni_nasext.adapters.oneshot_strategy.OneShotStrategy``
is the same inside ``NasExperiment``, ``python3 -m nni_nasext.trial_code.oneshot`` under nnictl.
The method names are the ``oneshot`` table of :mod:`nni_nasext.registry` (``nasext list oneshot``).
"""
from .base import OneShotModule, derive_from_strengths, random_sample
from .search import OneShotResult, check_method_args, method_class, search
from .supernet import Decision, Mix, OneShotUnsupported, Supernet, build_supernet, inherit

__all__ = ['Decision', 'METHODS', 'Mix', 'OneShotModule', 'OneShotResult', 'OneShotUnsupported', 'Supernet',
           'build_supernet', 'check_method_args', 'derive_from_strengths', 'inherit', 'method_class', 'random_sample',
           'search']


def __getattr__(name):
    if name == 'METHODS':
        from nni_nasext.registry import ONESHOT
        return tuple(ONESHOT)
    raise AttributeError(name)
