"""Search spaces declared with NNI's model-space primitives (``nni_nasext.search_spaces``).

Imported lazily: a trial loads only the space it trains (some modules pull in NNI's hub).
"""
from nni_nasext.lazy import lazy_exports

_WHERE = {
    'NasBench201Space': '.nasbench201', 'QuickstartSpace': '.nasbench201',
    'NasBenchMacroSpace': '.nasbench_macro', 'NasBench101Space': '.nasbench101',
    'NasRLSpace': '.nasrl', 'MetaQNNSpace': '.metaqnn',
    'NASNetSpace': '.cells', 'DARTSSpace': '.cells', 'ENASMicroSpace': '.cells',
    'AmoebaNetSpace': '.cells', 'PNASSpace': '.cells',
    'ProxylessSpace': '.mobile', 'MnasNetSpace': '.mobile', 'OFASpace': '.mobile',
    'EfficientNetScalingSpace': '.mobile', 'RNNCellSpace': '.rnn_cells', 'EnasMacroSpace': '.enas_macro',
    'NasBenchGraphSpace': '.nas_bench_graph',
    'RandWireSpace': '.randwire',
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
