"""Transfer NAS: learn from source datasets (NAS-Bench-201 tables, few-shot episodes), then search the target.

* :class:`TAPAS`, :class:`TransferGP`, :class:`XferNAS`, :class:`RapidNAS` are ask/tell searchers
  over the NB201 cell that read source-dataset metadata before the first ask;
* :class:`TNAS` (:mod:`.tnas`) meta-learns the architecture and the weights over few-shot
  episodes (with :class:`MAML` as its baseline), on the NB201 supernet of :mod:`.nb201_supernet`.
"""
from nni_nasext.lazy import lazy_exports

_WHERE = {'TAPAS': '.tapas', 'TransferGP': '.transfer_gp', 'XferNAS': '.xfernas', 'RapidNAS': '.rapidnas',
          'TNAS': '.tnas', 'MAML': '.tnas'}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
