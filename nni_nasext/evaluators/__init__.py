"""NNI evaluators (``nni.nas.evaluator``): train with Lightning, or look up a tabular benchmark.

Imported lazily: a table-lookup trial (:mod:`.nb201_query`) must not pay for PyTorch Lightning.
"""
from nni_nasext.lazy import lazy_exports

__all__ = ['ImageClassification', 'LanguageModel', 'TrialFailed', 'NasBench201Lookup', 'SimulatedBudgetEngine',
           'simulate_search']
_WHERE = {'ImageClassification': '.classification', 'TrialFailed': '.classification', 'LanguageModel': '.language_model',
          'NasBench201Lookup': '.nb201_lookup', 'SimulatedBudgetEngine': '.nb201_lookup', 'simulate_search': '.nb201_lookup'}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
