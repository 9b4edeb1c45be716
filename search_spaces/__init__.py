"""Search spaces declared with NNI's model-space primitives (``nni_nasext.search_spaces``)."""
from .nasbench201 import NasBench201Space, QuickstartSpace

__all__ = ['NasBench201Space', 'QuickstartSpace']
