"""Adapters that give one :class:`~nni_nasext.searcher.Searcher` its two NNI faces.

Imported lazily: the nnictl dispatcher imports only :mod:`.tuner`, and must connect to the
NNI manager within 10 seconds, so it should not pay for NNI's NAS execution engine
(:mod:`.strategy` imports it) on a busy machine.
"""
import importlib

__all__ = ['CheckpointingNasExperiment', 'OFAStrategy', 'OneShotStrategy', 'SearcherStrategy', 'SearcherTuner']
_WHERE = {'SearcherStrategy': '.strategy', 'SearcherTuner': '.tuner', 'OneShotStrategy': '.oneshot_strategy',
          'OFAStrategy': '.ofa_strategy', 'CheckpointingNasExperiment': '.experiment'}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
