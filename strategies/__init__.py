"""Search strategies (``nni_nasext.strategies``), one sub-package per kind:

* :mod:`.searchers` -- sample-based ask/tell searchers, each a :class:`nni_nasext.searcher.Searcher`
  (random, regularized evolution, REINFORCE, MetaQNN, TPE, PNAS, neural predictors,
  Hyperband / successive halving / BOHB / PDH, multi-objective evolution);
* :mod:`.oneshot` -- weight-sharing methods, each a :class:`.oneshot.OneShotModule` over the
  supernet of any NNI model space (DARTS and its successors, ENAS, ProxylessNAS, SPOS, ...),
  and Once-for-All;
* :mod:`.zero_shot` -- training-free searches (Zen-NAS, proxy warm start, TE-NAS);
* :mod:`.transfer` -- methods that learn from source datasets before searching the target
  (TAPAS, TransferGP, XferNAS, RapidNAS, T-NAS).

Every public class is importable from here too (``from nni_nasext.strategies import TPE``);
the registry (:mod:`nni_nasext.registry`) names each with its kind, paper and NNI face.
"""
from nni_nasext.lazy import lazy_exports

_S, _Z, _T = '.searchers.', '.zero_shot.', '.transfer.'
#: class -> module, imported on first use so that a tuner process loads only its own strategy.
_WHERE = {
    'RandomSearch': _S + 'random_search', 'RegularizedEvolution': _S + 'regularized_evolution',
    'ReinforceController': _S + 'reinforce', 'MetaQNN': _S + 'metaqnn', 'TPE': _S + 'optuna_sampler', 'PNAS': _S + 'pnas',
    'NeuralPredictor': _S + 'neural_predictor', 'NeuralPredictorGCN': _S + 'neural_predictor',
    'Hyperband': _S + 'hyperband', 'SuccessiveHalving': _S + 'hyperband', 'BOHB': _S + 'bohb',
    'ProgressiveDynamicHurdles': _S + 'pdh', 'ConstrainedEvolution': _S + 'multi_objective',
    'MnasNetEvolution': _S + 'multi_objective', 'ParetoEvolution': _S + 'multi_objective',
    'OptunaSearcher': _S + 'optuna_sampler', 'OptunaTPE': _S + 'optuna_sampler',
    'ZenNAS': _Z + 'zen_nas', 'ProxyWarmStart': _Z + 'zen_nas', 'TENAS': _Z + 'te_nas',
    'TAPAS': _T + 'tapas', 'TransferGP': _T + 'transfer_gp', 'XferNAS': _T + 'xfernas', 'RapidNAS': _T + 'rapidnas',
    'TNAS': _T + 'tnas',
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
