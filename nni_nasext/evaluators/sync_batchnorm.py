"""Batch norm over the global batch of a data-parallel run, on any device (CPU included).

Under DDP each process sees its share of every global batch; plain batch norm normalises with the
statistics of that share only, so two processes with 32 images each do not compute what one
process with 64 does. torch's ``SyncBatchNorm`` pools the statistics, but on GPUs only (its forward
refuses CPU tensors), which is how our CPU DDP runs parted from one-process runs (README,
"Scale-out"). :class:`GlobalBatchNorm` does the pooling with torch's *differentiable* all-reduce
(``torch.distributed.nn.functional.all_reduce``): per channel, each process contributes its count,
``count · mean`` and ``count · (var + mean²)``; their sums give the global mean and (biased)
variance that normalise, and the backward pass all-reduces the gradients of those statistics, as
torch's ``SyncBatchNorm`` does (Ioffe & Szegedy 2015 for the layer; the pooled statistics follow
the parallel-variance combination of Chan, Golub & LeVeque 1979). Running statistics are updated
as ``nn.BatchNorm`` does (momentum, unbiased variance of the global batch).

:class:`~nni_nasext.evaluators.layer_sync.GlobalBatchNormSync` (importable from here too) is the
Lightning ``LayerSync`` plugin that switches every plain ``nn.BatchNorm1d/2d/3d`` of a model to it
for a fit and back afterwards, by changing the class of the module in place (parameters, buffers and every reference to the module stay as they are:
a one-shot supernet keeps its candidates). Subclasses of batch norm (NNI's mutable batch norm,
a supernet's mixed batch norm) are left alone.
"""
from __future__ import annotations

from typing import Dict, Type

import torch
import torch.distributed as dist
from torch import nn

__all__ = ['GlobalBatchNorm', 'GlobalBatchNormSync', 'to_global', 'to_local']


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1



class GlobalBatchNorm:
    """Mixed into ``nn.BatchNorm1d/2d/3d`` (see :func:`to_global`): batch statistics pooled over
    every process of the default process group when there is more than one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # noqa: D102 (nn.Module.forward)
        uses_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        if not uses_batch_stats or _world() <= 1:
            return super().forward(x)
        self._check_input_dim(x)
        from torch.distributed.nn.functional import all_reduce
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        n = x.new_full((1,), float(x.numel() // max(c, 1)), dtype=torch.float64)
        m64, v64 = mean.double(), var.double()
        local = torch.cat([n * m64, n * (v64 + m64 * m64), n])
        total = all_reduce(local)   # sums over the processes; its backward sums the gradients
        count = total[-1]
        g_mean = total[:c] / count
        g_var = (total[c:2 * c] / count - g_mean * g_mean).clamp_min(0.0)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - g_mean.to(x.dtype).view(shape)) * torch.rsqrt(g_var.to(x.dtype).view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = g_var * (count / (count - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - momentum).add_(momentum * g_mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))
        return y


class GlobalBatchNorm1d(GlobalBatchNorm, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(GlobalBatchNorm, nn.BatchNorm2d):
    pass


class GlobalBatchNorm3d(GlobalBatchNorm, nn.BatchNorm3d):
    pass


_TO_GLOBAL: Dict[Type[nn.Module], Type[nn.Module]] = {
    nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d, nn.BatchNorm3d: GlobalBatchNorm3d}
_TO_LOCAL = {v: k for k, v in _TO_GLOBAL.items()}


def _switch(model: nn.Module, classes: Dict[Type[nn.Module], Type[nn.Module]]) -> int:
    count = 0
    for m in model.modules():
        cls = classes.get(type(m))
        if cls is not None:
            m.__class__ = cls
            count += 1
    return count


def to_global(model: nn.Module) -> int:
    """Switch every plain batch norm of ``model`` to :class:`GlobalBatchNorm`, in place; returns
    how many."""
    return _switch(model, _TO_GLOBAL)


def to_local(model: nn.Module) -> int:
    """Undo :func:`to_global`, in place; returns how many."""
    return _switch(model, _TO_LOCAL)


def __getattr__(name: str):
    # the Lightning plugin lives in .layer_sync: the layers themselves need torch only (a process
    # of torch's own DDP does not pay for importing Lightning)
    if name == 'GlobalBatchNormSync':
        from nni_nasext.evaluators.layer_sync import GlobalBatchNormSync
        return GlobalBatchNormSync
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
