"""Zero-shot (training-free) searches: the score of a network at initialisation stands in for training.

* :class:`ZenNAS` and :class:`ProxyWarmStart` (:mod:`.zen_nas`) are ask/tell searchers
  (:class:`nni_nasext.searcher.Searcher`) over any space, scored by a zero-cost proxy evaluator
  (:mod:`nni_nasext.evaluators.proxies`);
* :class:`TENAS` (:mod:`.te_nas`) prunes the supernet of any space by NTK condition number and
  linear regions, a :class:`nni_nasext.strategies.oneshot.OneShotModule` (NNI face:
  ``OneShotStrategy('te_nas')``).
"""
from nni_nasext.lazy import lazy_exports

_WHERE = {'ZenNAS': '.zen_nas', 'ProxyWarmStart': '.zen_nas', 'CostBudget': '.zen_nas', 'TENAS': '.te_nas'}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
