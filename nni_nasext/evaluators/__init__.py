"""NNI evaluators (``nni.nas.evaluator``): train with Lightning, or look up a tabular benchmark.

Imported lazily: a table-lookup trial (:mod:`.nb201_query`) must not pay for PyTorch Lightning.
"""
import importlib

__all__ = ['ImageClassification', 'LanguageModel', 'TrialFailed', 'NasBench201Lookup', 'SimulatedBudgetEngine',
           'simulate_search']
_WHERE = {'ImageClassification': '.classification', 'TrialFailed': '.classification', 'LanguageModel': '.language_model',
          'NasBench201Lookup': '.nb201_lookup', 'SimulatedBudgetEngine': '.nb201_lookup', 'simulate_search': '.nb201_lookup'}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
