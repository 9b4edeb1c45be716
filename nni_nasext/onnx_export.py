"""ONNX export of a trained architecture: what ``nasext export`` / ``nasext run`` write beside
``best_model.pt``.

The trial program records the shape and dtype of one example the model was fed
(:class:`InputRecorder`, ``result.json['input']``); at export the architecture is rebuilt from its
space and sample, its trained weights loaded, and :func:`export_onnx` writes it with torch's
exporter (``torch.onnx.export(dynamo=True)``, torch's default, which needs the ``onnx`` and
``onnxscript`` packages) with the batch dimension dynamic. A network the exporter cannot translate
is not an error: a :class:`OnnxExportWarning` names the operators it stopped at, and the other
export files are written as before.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ['InputRecorder', 'OnnxExportWarning', 'export_onnx', 'unsupported_ops', 'rebuild_model']


class OnnxExportWarning(UserWarning):
    """The architecture was exported without its ONNX file (the message says why)."""


class InputRecorder:
    """Records the per-example shape and the dtype of the first tensor a model is called with
    (a forward pre-hook; :meth:`remove` takes it off)."""

    def __init__(self, model):
        self.input: Optional[Dict[str, Any]] = None
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        import torch
        if self.input is None and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 1:
            self.input = {'shape': list(args[0].shape[1:]), 'dtype': str(args[0].dtype).replace('torch.', '')}

    def remove(self) -> None:
        self._handle.remove()


def unsupported_ops(message: str) -> List[str]:
    """The ATen operators an exporter's error message names (``aten.linalg_svd.default``,
    ``aten::linalg_svd``), in order, without repeats."""
    ops: List[str] = []
    for m in re.finditer(r'aten(?:::|\.)([A-Za-z0-9_]+)', message):
        name = f'aten::{m.group(1)}'
        if name not in ops:
            ops.append(name)
    return ops


def export_onnx(model, input_spec: Dict[str, Any], path: Path, batch: int = 2) -> Optional[Path]:
    """Write ``model`` (in eval mode) to ``path`` as ONNX for inputs of ``input_spec``
    (``{'shape': per-example shape, 'dtype': 'float32'}``), batch dimension dynamic. Returns the
    path, or ``None`` after an :class:`OnnxExportWarning` when it cannot be exported."""
    import torch
    path = Path(path)
    dtype = getattr(torch, input_spec.get('dtype', 'float32'))
    shape = [batch] + [int(s) for s in input_spec['shape']]
    example = torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            torch.onnx.export(model, (example,), str(path), dynamo=True, verbose=False, report=False,
                              input_names=['input'], output_names=['output'],
                              dynamic_shapes=({0: torch.export.Dim('batch', min=1)},))
        return path
    except ImportError as err:
        warnings.warn(f'{path.name} not written: the ONNX exporter needs the onnx and onnxscript packages '
                      f'({err})', OnnxExportWarning, stacklevel=2)
    except Exception as err:   # the exporter's own errors: unsupported operators, untraceable code
        text = re.sub(r'\x1b\[[0-9;]*m', '', f'{type(err).__name__}: {err}')   # (the exporter colours its text)
        ops = unsupported_ops(text)
        what = f'it does not support {", ".join(ops)}' if ops else 'the exporter failed'
        first = text.split(': ', 1)[1].strip().splitlines()[0][:300] if str(err).strip() else ''
        warnings.warn(f'{path.name} not written: {what} ({type(err).__name__}: {first})', OnnxExportWarning,
                      stacklevel=2)
    finally:
        model.train(was_training)
    if path.exists():
        path.unlink()
    return None


def rebuild_model(result: Dict[str, Any], state_dict_path: Path):
    """The trained network of a trial's ``result.json``: its space (``space``, ``space_args``)
    frozen with its ``sample``, the weights of ``state_dict_path`` loaded."""
    import torch
    from nni_nasext import registry
    space = registry.build('space', result['space'], **(result.get('space_args') or {}))
    model = space.freeze(result['sample'])
    model.load_state_dict(torch.load(state_dict_path, map_location='cpu', weights_only=True))
    return model
