"""Sample-based search strategies, one module each (``nni_nasext.strategies``).

Each is a :class:`nni_nasext.searcher.Searcher`; wrap it with
:class:`nni_nasext.adapters.SearcherStrategy` for ``NasExperiment`` or use it by its
registered name behind ``nnictl`` (:mod:`nni_nasext.adapters.tuner`).
"""
from .bohb import BOHB
from .hyperband import Hyperband, SuccessiveHalving
from .metaqnn import MetaQNN
from .random_search import RandomSearch
from .regularized_evolution import RegularizedEvolution
from .reinforce import ReinforceController
from .tpe import TPE

__all__ = ['BOHB', 'TPE', 'Hyperband', 'SuccessiveHalving', 'MetaQNN', 'RandomSearch', 'RegularizedEvolution', 'ReinforceController']
