"""The Lightning ``LayerSync`` plugin of :mod:`nni_nasext.evaluators.sync_batchnorm` (kept apart so that
the batch-norm layers import without Lightning)."""
from __future__ import annotations

from torch import nn

import pytorch_lightning as pl

from nni_nasext.evaluators.sync_batchnorm import to_global, to_local

__all__ = ['GlobalBatchNormSync']


class GlobalBatchNormSync(pl.plugins.LayerSync):
    """Lightning plugin (``Trainer(plugins=[GlobalBatchNormSync()])``): batch norm over the global
    batch while fitting with several processes, on CPU as on GPU."""

    def apply(self, model: nn.Module) -> nn.Module:
        to_global(model)
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        to_local(model)
        return model
