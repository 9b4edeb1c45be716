"""A latency predictor for the networks of any space: per-operation latency profiled on this
machine, summed per network, with a small learned correction.

How it works (in the spirit of ProxylessNAS's and FBNet's latency lookup tables: Cai et al., ICLR
2019; Wu et al., CVPR 2019):

1. *Operations.* A network's operations are its leaf modules (``Conv2d``, ``BatchNorm2d``,
   ``ReLU6``, ``Linear``, pooling, ...). One forward pass with hooks records the input shape each
   one sees. An operation is keyed by its type, its configuration (``extra_repr``: channels,
   kernel, stride, groups, ...) and its input shape, so a space's candidate operations are profiled
   once each, at the input shape where they occur, whatever network they occur in.
2. *Profiling.* An operation not in the table is timed alone on this machine (inference, one
   thread by default, median of ``repeats`` calls after ``warmup``), and kept in the table
   (:meth:`LatencyPredictor.state_dict` saves it).
3. *Prediction.* ``a · Σ latency(op) + b · #ops + c``: the sum of the table entries with a linear
   correction fitted (:meth:`LatencyPredictor.fit`) on a few networks measured end to end
   (:func:`measure_latency`). The correction absorbs what the sum misses: what runs outside leaf
   modules (additions, concatenations, resizing), the call overhead per module, and caches.

Nothing here depends on a particular space: it takes frozen networks (``space.freeze(sample)``).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

__all__ = ['LatencyPredictor', 'measure_latency', 'operation_name', 'time_ms']


def time_ms(fn, repeats: int = 10, inner: int = 3, warmup: int = 2) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls of ``fn``, in ms, after
    ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return 1e3 * statistics.median(times)


def operation_name(module: nn.Module) -> str:
    """``Type(configuration)`` of a leaf module, as torch writes it. A subclass of a torch layer
    (NNI's ``MutableConv2d``, ``MutableBatchNorm2d``, ... print an empty configuration) is named
    by the torch class it extends, so a supernet's layer and the frozen network's share a key;
    a module whose configuration is empty also gets its parameters' shapes, so two different
    layers never share one."""
    torch_cls = next((c for c in type(module).__mro__
                      if c.__module__.startswith('torch.nn.') and c is not nn.Module),
                     None)
    if torch_cls is not None:
        name, conf = torch_cls.__name__, torch_cls.extra_repr(module)
    else:
        name, conf = type(module).__name__, module.extra_repr()
    if not conf:
        conf = ','.join(str(tuple(p.shape)) for p in module.parameters(recurse=False))
    return f'{name}({conf})'


class _Threads:
    def __init__(self, n: Optional[int]):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)


@torch.no_grad()
def measure_latency(model: nn.Module, example, *, warmup: int = 3, repeats: int = 15, inner: int = 1,
                    threads: Optional[int] = 1) -> float:
    """End-to-end inference latency of ``model`` in milliseconds (:func:`time_ms` of its forward
    pass), in eval mode, with ``threads`` torch threads (``None``: as set); the model's mode and
    the thread count are restored. ``example``: the input (a tensor or a tuple of them), or the
    shape of a random one."""
    if torch.is_tensor(example):
        args = (example,)
    elif isinstance(example, tuple) and example and all(torch.is_tensor(a) for a in example):
        args = example
    else:
        args = (torch.randn(*example),)
    was = model.training
    model.eval()
    try:
        with _Threads(threads):
            return time_ms(lambda: model(*args), repeats, inner, warmup)
    finally:
        model.train(was)


class LatencyPredictor:
    """Per-operation latency table plus a linear correction (see the module docstring).

    Parameters
    ----------
    input_shape
        The input of the networks (batch included): ``(1, 3, 32, 32)`` is one 32x32 RGB image.
    warmup, repeats, threads
        How each operation is timed (and, in :meth:`measure`, each network).
    """

    def __init__(self, input_shape: Sequence[int], *, warmup: int = 3, repeats: int = 15, threads: Optional[int] = 1):
        self.input_shape = tuple(int(v) for v in input_shape)
        self.warmup, self.repeats, self.threads = int(warmup), int(repeats), threads
        #: operation key -> latency in ms
        self.table: Dict[str, float] = {}
        #: (a, b, c) of ``a · sum + b · count + c``; (1, 0, 0) before :meth:`fit`
        self.coef: Tuple[float, float, float] = (1.0, 0.0, 0.0)

    # ------------------------------------------------------------------ operations
    @staticmethod
    def _leaves(model: nn.Module) -> List[Tuple[str, nn.Module]]:
        return [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]

    @torch.no_grad()
    def operations(self, model: nn.Module) -> List[Tuple[str, nn.Module, Tuple[int, ...]]]:
        """``(key, module, input shape)`` of every leaf module the forward pass runs, in call order
        (a module called twice appears twice); leaves that take anything but one tensor are left
        out (the correction accounts for them)."""
        return self._trace(model.eval(), (torch.randn(*self.input_shape),))

    @torch.no_grad()
    def _trace(self, module: nn.Module, args: Sequence[Any], tag: str = '') -> List[Tuple[str, nn.Module, Tuple[int, ...]]]:
        seen: List[Tuple[str, nn.Module, Tuple[int, ...]]] = []

        def hook(leaf, inputs, _output):
            if len(inputs) == 1 and torch.is_tensor(inputs[0]):
                shape = tuple(inputs[0].shape)
                seen.append((f'{operation_name(leaf)}{tag}@{shape}', leaf, shape))

        handles = [m.register_forward_hook(hook) for _, m in self._leaves(module)]
        try:
            module(*args)
        finally:
            for h in handles:
                h.remove()
        return seen

    def _sum(self, ops) -> Tuple[float, int]:
        total, count = 0.0, 0
        for key, module, shape in ops:
            if key not in self.table:
                self.table[key] = self._profile(module, shape)
            total += self.table[key]
            count += 1
        return total, count

    def module_cost(self, module: nn.Module, args: Sequence[Any], *, tag: str = '') -> float:
        """What ``module`` run on ``args`` adds to a prediction: ``a · Σ latency(op) + b · #ops``
        over the leaf operations it runs (profiling new ones), without the constant ``c``; so the
        costs of a network's parts plus ``c`` are the network's prediction. ``tag`` is added to the
        operation keys, for a module whose forward depends on state its configuration does not
        show (a supernet's mixed layer at one of its choices). Run in eval mode, the mode restored."""
        was = module.training
        module.eval()
        try:
            total, count = self._sum(self._trace(module, tuple(args), tag))
        finally:
            module.train(was)
        a, b, _ = self.coef
        return a * total + b * count

    @torch.no_grad()
    def _profile(self, module: nn.Module, shape: Tuple[int, ...]) -> float:
        x = torch.randn(*shape)
        was = module.training
        module.eval()
        try:
            with _Threads(self.threads):
                return time_ms(lambda: module(x), self.repeats, 1, self.warmup)
        finally:
            module.train(was)

    def features(self, model: nn.Module) -> Tuple[float, int]:
        """(Σ table latency of the operations in ms, number of operations), profiling the new ones."""
        return self._sum(self.operations(model))

    # ------------------------------------------------------------------ prediction
    def predict(self, model: nn.Module) -> float:
        """Predicted latency of ``model`` in ms."""
        total, count = self.features(model)
        a, b, c = self.coef
        return a * total + b * count + c

    def measure(self, model: nn.Module) -> float:
        """Measured end-to-end latency in ms (:func:`measure_latency` with this predictor's settings)."""
        return measure_latency(model, self.input_shape, warmup=self.warmup, repeats=self.repeats, threads=self.threads)

    def fit(self, models: Sequence[nn.Module], measured: Sequence[float]) -> 'LatencyPredictor':
        """Fit the correction ``a · sum + b · count + c`` by least squares on networks measured end to end."""
        if len(models) != len(measured) or len(models) < 3:
            raise ValueError(f'fit needs at least 3 networks with one measurement each, got {len(models)} and '
                             f'{len(measured)}')
        feats = np.array([[*self.features(m), 1.0] for m in models], dtype=np.float64)
        coef, *_ = np.linalg.lstsq(feats, np.asarray(measured, dtype=np.float64), rcond=None)
        self.coef = tuple(float(v) for v in coef)
        return self

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> Dict[str, Any]:
        return {'input_shape': list(self.input_shape), 'table': dict(self.table), 'coef': list(self.coef),
                'warmup': self.warmup, 'repeats': self.repeats, 'threads': self.threads}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> 'LatencyPredictor':
        """A predictor rebuilt from :meth:`state_dict` (or the path of a JSON file holding one); a
        predictor is returned as it is, so any of the three can be passed where a predictor goes."""
        if isinstance(state, cls):
            return state
        if isinstance(state, (str, bytes)) or hasattr(state, '__fspath__'):
            import json
            from pathlib import Path
            state = json.loads(Path(state).read_text())
        if not isinstance(state, dict) or 'input_shape' not in state or 'table' not in state:
            raise ValueError('A latency predictor state needs input_shape, table and coef (LatencyPredictor.state_dict())')
        out = cls(state['input_shape'], warmup=state.get('warmup', 3), repeats=state.get('repeats', 15),
                  threads=state.get('threads', 1))
        out.load_state_dict(state)
        return out

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if tuple(state['input_shape']) != self.input_shape:
            raise ValueError(f'The saved table is for input {tuple(state["input_shape"])}, not {self.input_shape}')
        self.table = {str(k): float(v) for k, v in state['table'].items()}
        self.coef = tuple(float(v) for v in state['coef'])
