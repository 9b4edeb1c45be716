"""Search spaces declared with NNI's model-space primitives (``nni_nasext.search_spaces``).

Imported lazily: a trial loads only the space it trains (some modules pull in NNI's hub).
"""
import importlib

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


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
