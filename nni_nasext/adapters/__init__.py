"""Adapters that give one :class:`~nni_nasext.searcher.Searcher` its two NNI faces.

Imported lazily: the nnictl dispatcher imports only :mod:`.tuner`, and must connect to the
NNI manager within 10 seconds, so it should not pay for NNI's NAS execution engine
(:mod:`.strategy` imports it) on a busy machine.
"""
from nni_nasext.lazy import lazy_exports

__all__ = ['CheckpointingNasExperiment', 'OFAStrategy', 'OneShotStrategy', 'SearcherStrategy', 'SearcherTuner']
_WHERE = {'SearcherStrategy': '.strategy', 'SearcherTuner': '.tuner', 'OneShotStrategy': '.oneshot_strategy',
          'OFAStrategy': '.ofa_strategy', 'CheckpointingNasExperiment': '.experiment'}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
