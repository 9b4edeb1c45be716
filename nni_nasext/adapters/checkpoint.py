"""``NasExperiment`` checkpoints that load under torch >= 2.6, without weakening ``torch.load``.

NNI 3.0 saves a NAS experiment's state (engine and strategy) with ``torch.save`` and loads it with
a plain ``torch.load`` (``nni.nas.utils.serializer.TorchSerializer``). Since torch 2.6 that load is
``weights_only=True`` and refuses the numpy arrays and numpy random states NNI's own strategies
keep (and, before this project stored plain ``str`` labels, NNI's ``label`` type): resuming any
NAS experiment fails. Turning ``weights_only`` off would let a checkpoint file run code.

:class:`SafeNasSerializer` keeps ``weights_only=True`` and allowlists exactly the data types these
states hold (numpy arrays, dtypes and scalars; NNI's ``label``), *only* for the duration of the
checkpoint load (``torch.serialization.safe_globals``): every other ``torch.load`` in the process
keeps torch's default. :func:`install` makes it NNI's default NAS serializer; importing
:mod:`nni_nasext.adapters` calls it. It writes the same ``state.ckpt.torch`` files as NNI.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List

from nni.nas.utils.serializer import TorchSerializer, get_default_serializer, set_default_serializer

__all__ = ['SafeNasSerializer', 'install', 'safe_types']


def safe_types() -> List[Any]:
    """The data types (no functions that run code, no modules) a NAS checkpoint may hold."""
    import numpy as np
    from nni.mutable.utils import label
    core = getattr(np, '_core', None) or np.core  # numpy 2 / numpy 1
    types: List[Any] = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, label]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25: one class per dtype
    if dtypes is not None:
        types += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return types


class SafeNasSerializer(TorchSerializer):
    """NNI's ``TorchSerializer``, loading with ``weights_only=True`` and the allowlist of
    :func:`safe_types` scoped to the call."""

    def load(self, path: Path):
        import torch
        with torch.serialization.safe_globals(safe_types()):
            return super().load(path)  # torch.load(..., map_location): weights_only is torch's default


def install() -> None:
    """Make :class:`SafeNasSerializer` NNI's default NAS serializer (unless a user set another)."""
    if type(get_default_serializer()) is TorchSerializer:
        set_default_serializer(SafeNasSerializer())
