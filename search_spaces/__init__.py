"""Search spaces declared with NNI's model-space primitives (``nni_nasext.search_spaces``)."""
from .nasbench201 import NasBench201Space, QuickstartSpace
from .nasbench_macro import NasBenchMacroSpace

__all__ = ['NasBench201Space', 'QuickstartSpace', 'NasBenchMacroSpace']
