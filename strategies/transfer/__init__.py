"""Transfer NAS: learn from source datasets (NAS-Bench-201 tables, few-shot episodes), then search the target.

* :class:`TAPAS`, :class:`TransferGP`, :class:`XferNAS`, :class:`RapidNAS` are ask/tell searchers
  over the NB201 cell that read source-dataset metadata before the first ask; their public base,
  :class:`TransferSearcher` (:mod:`.base`), holds the target and the sources, the NB201 check and
  the leave-one-dataset-out protocol on the tables (:meth:`TransferSearcher.on_table`);
* :class:`TNAS` (:mod:`.tnas`) meta-learns the architecture and the weights over few-shot
  episodes (with :class:`MAML` as its baseline), on the NB201 supernet of :mod:`.nb201_supernet`.
"""
from nni_nasext.lazy import lazy_exports

_WHERE = {'TransferSearcher': '.base', 'TAPAS': '.tapas', 'TransferGP': '.transfer_gp', 'XferNAS': '.xfernas', 'RapidNAS': '.rapidnas',
          'TNAS': '.tnas', 'MAML': '.tnas'}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
