"""Adapters that give one :class:`~nni_nasext.searcher.Searcher` its two NNI faces."""
from .strategy import SearcherStrategy

__all__ = ['SearcherStrategy']
