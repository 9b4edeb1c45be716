"""Adapters that give one :class:`~nni_nasext.searcher.Searcher` its two NNI faces."""
from .strategy import SearcherStrategy
from .tuner import SearcherTuner

__all__ = ['SearcherStrategy', 'SearcherTuner']
