"""Sample-based search strategies, one module each (``nni_nasext.strategies``).

Each is a :class:`nni_nasext.searcher.Searcher`; wrap it with
:class:`nni_nasext.adapters.SearcherStrategy` for ``NasExperiment`` or use it by its
registered name behind ``nnictl`` (:mod:`nni_nasext.adapters.tuner`).
"""
import importlib

#: class -> module; imported on first use, so that a tuner process loads only its own strategy
#: (the nnictl dispatcher must connect to the NNI manager within 10 seconds).
_WHERE = {
    'BOHB': '.bohb', 'Hyperband': '.hyperband', 'SuccessiveHalving': '.hyperband', 'MetaQNN': '.metaqnn',
    'RandomSearch': '.random_search', 'RegularizedEvolution': '.regularized_evolution',
    'ReinforceController': '.reinforce', 'TPE': '.tpe', 'PNAS': '.pnas', 'NeuralPredictor': '.neural_predictor',
    'ZenNAS': '.zen_nas', 'ProxyWarmStart': '.zen_nas', 'TENAS': '.te_nas',
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
