"""NNI evaluators (``nni.nas.evaluator``): train with Lightning, or look up a tabular benchmark."""
from .classification import ImageClassification, TrialFailed
from .language_model import LanguageModel
from .nb201_lookup import NasBench201Lookup, SimulatedBudgetEngine, simulate_search

__all__ = ['ImageClassification', 'LanguageModel', 'TrialFailed', 'NasBench201Lookup', 'SimulatedBudgetEngine', 'simulate_search']
