"""Sample-based searchers: ask/tell :class:`nni_nasext.searcher.Searcher` subclasses, one per module.

Wrap one with :class:`nni_nasext.adapters.SearcherStrategy` for ``NasExperiment``, or use it by its
registered name behind ``nnictl`` (:mod:`nni_nasext.adapters.tuner`). The multi-fidelity ones
(Hyperband, successive halving, BOHB, PDH) are :class:`nni_nasext.searcher.MultiFidelitySearcher`.
"""
from nni_nasext.lazy import lazy_exports
from nni_nasext.searcher import MultiFidelitySearcher, NoRepeatSearcher, Searcher

_WHERE = {
    'RandomSearch': '.random_search', 'RegularizedEvolution': '.regularized_evolution',
    'ReinforceController': '.reinforce', 'MetaQNN': '.metaqnn', 'TPE': '.optuna_sampler', 'PNAS': '.pnas',
    'NeuralPredictor': '.neural_predictor', 'NeuralPredictorGCN': '.neural_predictor',
    'Hyperband': '.hyperband', 'SuccessiveHalving': '.hyperband', 'BOHB': '.bohb',
    'ProgressiveDynamicHurdles': '.pdh', 'ConstrainedEvolution': '.multi_objective',
    'MnasNetEvolution': '.multi_objective', 'ParetoEvolution': '.multi_objective',
    'OptunaSearcher': '.optuna_sampler', 'OptunaTPE': '.optuna_sampler', 'OptunaCmaEs': '.optuna_sampler',
    'OptunaNSGAII': '.optuna_sampler', 'OptunaGP': '.optuna_sampler', 'OptunaQMC': '.optuna_sampler',
    'OptunaRandom': '.optuna_sampler',
}
__all__ = ['MultiFidelitySearcher', 'NoRepeatSearcher', 'Searcher'] + sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
