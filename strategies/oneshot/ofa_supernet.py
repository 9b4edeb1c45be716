"""The Once-for-All elastic supernet over :class:`~nni_nasext.search_spaces.mobile.OFASpace`.

H. Cai, C. Gan, T. Wang, Z. Zhang, S. Han, "Once-for-All: Train One Network and Specialize it
for Efficient Deployment", ICLR 2020, Section 3. One network holds the weights of every
sub-network of the space:

* **elastic kernel** (Sec. 3.2, Fig. 3): every depthwise conv stores one 7x7 kernel; the 5x5
  kernel is its centre 5x5 passed through a learned 25x25 *kernel transformation matrix*, the
  3x3 kernel the centre of that 5x5 through a 9x9 matrix. The matrices are shared by the
  channels of a layer and start as the identity.
* **elastic depth**: a stage of depth ``d`` runs its first ``d`` blocks.
* **elastic expansion (width)**: a block of expansion ``e`` uses the first
  ``make_divisible(c_in * e)`` hidden channels (and the first squeeze channels of its SE).
  :meth:`ElasticMBConv.sort_channels` orders the hidden channels by importance (the L1 norm
  of their weights in the projection conv) before expansion is made elastic, so that the
  channels kept by narrow sub-networks are the important ones.
* **elastic resolution**: the input is resized to the sampled resolution.

Batch normalisation uses the first channels' statistics, as the paper does; since the
statistics are shared between sub-networks, a sub-network's statistics are re-estimated on a
few training batches before it is evaluated (:func:`calibrate_bn`).

:meth:`OFASupernet.export` copies the weights of a sub-network into the plain network that
``OFASpace(...).freeze(sample)`` builds (kernels transformed, channels cut), so a searched
sub-network is deployed with no retraining; the copy computes exactly what the supernet
computes with that sample active (tested).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.mobile import (
    OFA_DEPTHS, OFA_EXPANSIONS, OFA_KERNELS, OFA_STAGES, MBConv, OFASpace, activation, build_ofa, make_divisible,
    ofa_canonical_sample, ofa_max_sample,
)

__all__ = ['ElasticMBConv', 'OFASupernet', 'calibrate_bn', 'ofa_min_sample']

_MAX_K, _MAX_E, _MAX_D = max(OFA_KERNELS), max(OFA_EXPANSIONS), max(OFA_DEPTHS)


def ofa_min_sample(resolution: int) -> Dict[str, Any]:
    """The smallest OFA network (depth 2, kernel 3, expansion 3 everywhere)."""
    sample: Dict[str, Any] = {'resolution': resolution}
    for s in range(len(OFA_STAGES)):
        sample[f'stage{s}_depth'] = min(OFA_DEPTHS)
        for b in range(_MAX_D):
            sample[f'stage{s}_block{b}_kernel'] = min(OFA_KERNELS)
            sample[f'stage{s}_block{b}_expand'] = min(OFA_EXPANSIONS)
    return sample


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
    """``bn`` restricted to its first ``c`` channels (the running statistics are updated in place)."""
    momentum = bn.momentum
    if bn.training:
        bn.num_batches_tracked.add_(1)
        if momentum is None:   # cumulative average (used by calibrate_bn)
            momentum = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                        bn.training, momentum or 0.0, bn.eps)


class ElasticMBConv(nn.Module):
    """An inverted-residual block with elastic kernel (3/5/7) and expansion (3/4/6); the same
    layout as :class:`~nni_nasext.search_spaces.mobile.MBConv` ``'mbconv'`` at every setting."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str, se: bool):
        super().__init__()
        self.c_in, self.c_out, self.stride, self.se = c_in, c_out, stride, se
        self.residual = stride == 1 and c_in == c_out
        hidden = self.hidden(_MAX_E)
        self.expand = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, _MAX_K, stride, _MAX_K // 2, groups=hidden, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(hidden)
        # kernel transformation matrices 7->5 and 5->3 (Sec. 3.2), identity at the start
        self.transform = nn.ParameterDict({str(k): nn.Parameter(torch.eye(k * k))
                                           for k in sorted(OFA_KERNELS, reverse=True)[1:]})
        if se:
            squeeze = self.squeeze(_MAX_E)
            self.se_reduce = nn.Conv2d(hidden, squeeze, 1)
            self.se_expand = nn.Conv2d(squeeze, hidden, 1)
        self.project = nn.Conv2d(hidden, c_out, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(c_out)
        self.act = activation(act)
        self.kernel, self.expansion = _MAX_K, _MAX_E

    def hidden(self, expansion: int) -> int:
        return make_divisible(self.c_in * expansion)

    def squeeze(self, expansion: int) -> int:
        return make_divisible(self.hidden(expansion) // 4)

    def kernel_weight(self, kernel: int, hidden: Optional[int] = None) -> torch.Tensor:
        """The depthwise kernel of size ``kernel`` (first ``hidden`` channels)."""
        w = self.depthwise.weight[:hidden] if hidden else self.depthwise.weight
        size = _MAX_K
        for k in sorted(OFA_KERNELS, reverse=True)[1:]:
            if k < kernel:
                break
            lo = (size - k) // 2
            centre = w[:, :, lo:lo + k, lo:lo + k]
            w = (centre.reshape(-1, k * k) @ self.transform[str(k)]).reshape(-1, 1, k, k)
            size = k
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.expansion)
        out = self.act(_bn(F.conv2d(x, self.expand.weight[:h]), self.expand_bn, h))
        k = self.kernel
        out = F.conv2d(out, self.kernel_weight(k, h), None, self.stride, k // 2, 1, h)
        out = self.act(_bn(out, self.depthwise_bn, h))
        if self.se:
            q = self.squeeze(self.expansion)
            s = F.adaptive_avg_pool2d(out, 1)
            s = F.relu(F.conv2d(s, self.se_reduce.weight[:q, :h], self.se_reduce.bias[:q]))
            s = F.hardsigmoid(F.conv2d(s, self.se_expand.weight[:h, :q], self.se_expand.bias[:h]))
            out = out * s
        out = _bn(F.conv2d(out, self.project.weight[:, :h]), self.project_bn, self.c_out)
        return out + x if self.residual else out

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder the hidden (and squeeze) channels by decreasing importance, without changing the
        function of the full block (OFA's channel sorting before elastic width)."""
        order = self.project.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
        self.expand.weight.copy_(self.expand.weight[order])
        self.depthwise.weight.copy_(self.depthwise.weight[order])
        for bn in (self.expand_bn, self.depthwise_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        self.project.weight.copy_(self.project.weight[:, order])
        if self.se:
            self.se_reduce.weight.copy_(self.se_reduce.weight[:, order])
            self.se_expand.weight.copy_(self.se_expand.weight[order])
            self.se_expand.bias.copy_(self.se_expand.bias[order])
            sq = self.se_expand.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
            self.se_reduce.weight.copy_(self.se_reduce.weight[sq])
            self.se_reduce.bias.copy_(self.se_reduce.bias[sq])
            self.se_expand.weight.copy_(self.se_expand.weight[:, sq])

    @torch.no_grad()
    def export_into(self, block: MBConv, kernel: int, expansion: int) -> None:
        """Copy the sub-block (``kernel``, ``expansion``) into a frozen ``MBConv``."""
        h = self.hidden(expansion)
        layers = list(block.block)
        expand, depthwise = layers[0], layers[1]
        expand[0].weight.copy_(self.expand.weight[:h])
        depthwise[0].weight.copy_(self.kernel_weight(kernel, h))
        _copy_bn(expand[1], self.expand_bn, h)
        _copy_bn(depthwise[1], self.depthwise_bn, h)
        if self.se:
            se, q = layers[2], self.squeeze(expansion)
            se.reduce.weight.copy_(self.se_reduce.weight[:q, :h])
            se.reduce.bias.copy_(self.se_reduce.bias[:q])
            se.expand.weight.copy_(self.se_expand.weight[:h, :q])
            se.expand.bias.copy_(self.se_expand.bias[:h])
        project = layers[-1]
        project[0].weight.copy_(self.project.weight[:, :h])
        _copy_bn(project[1], self.project_bn, self.c_out)


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        getattr(dst, name).copy_(getattr(src, name)[:c])
    dst.eps, dst.momentum = src.eps, src.momentum


class OFASupernet(nn.Module):
    """All sub-networks of ``OFASpace(num_classes, resolutions, width_mult, in_channels, dropout)``.

    :meth:`set_active` selects a sub-network by its sample; :meth:`forward` runs it;
    :meth:`export` builds it as the space's frozen network with the supernet's weights;
    :meth:`macs` counts its multiply-accumulates without building it.
    """

    def __init__(self, num_classes: int = 1000, resolutions: Sequence[int] = (160, 176, 192, 208, 224),
                 width_mult: float = 1.0, in_channels: int = 3, dropout: float = 0.1):
        super().__init__()
        self.space_args = dict(num_classes=num_classes, resolutions=[int(r) for r in resolutions],
                               width_mult=width_mult, in_channels=in_channels, dropout=dropout)
        self.space = OFASpace(**self.space_args)   # validates the arguments; the space searched
        self.resolutions = list(self.space.resolutions)
        # the fixed parts (stem, first block, head, feature, classifier) as in the frozen network
        largest = build_ofa(ofa_max_sample(self.resolutions[-1]), num_classes, width_mult, in_channels, dropout)
        self.stem, self.first = largest.stem, largest.blocks[0]
        self.head, self.feature, self.dropout, self.classifier = (largest.head, largest.feature, largest.dropout,
                                                                  largest.classifier)
        self.stages = nn.ModuleList()
        c_in = self.first.block[-1][0].out_channels
        for c, stride, act, se in OFA_STAGES:
            c_out = make_divisible(c * width_mult)
            blocks = nn.ModuleList()
            for b in range(_MAX_D):
                blocks.append(ElasticMBConv(c_in, c_out, stride if b == 0 else 1, act, se))
                c_in = c_out
            self.stages.append(blocks)
        self.set_active(ofa_max_sample(self.resolutions[-1]))

    # ------------------------------------------------------------------ sub-networks
    def check_sample(self, sample: Mapping[str, Any]) -> Dict[str, Any]:
        """``sample`` checked against the space (every label present, every value allowed)."""
        return _validate(self.space, sample)

    def set_active(self, sample: Mapping[str, Any]) -> None:
        self.active = dict(sample)
        for s, blocks in enumerate(self.stages):
            for b, block in enumerate(blocks):
                block.kernel = sample[f'stage{s}_block{b}_kernel']
                block.expansion = sample[f'stage{s}_block{b}_expand']

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.active['resolution']
        if tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x, size=(r, r), mode='bilinear', align_corners=False)
        x = self.first(self.stem(x))
        for s, blocks in enumerate(self.stages):
            for block in blocks[:self.active[f'stage{s}_depth']]:
                x = block(x)
        x = self.pool_features(x)
        return self.classifier(self.dropout(x))

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.head(x), 1)
        return torch.flatten(self.feature(x), 1)

    @torch.no_grad()
    def export(self, sample: Optional[Mapping[str, Any]] = None) -> nn.Module:
        """The frozen network of ``sample`` (default: the active one) with this supernet's weights."""
        sample = dict(self.active if sample is None else sample)
        _validate(self.space, sample)
        net = self.space.freeze(sample).net
        for dst, src in ((net.stem, self.stem), (net.blocks[0], self.first), (net.head, self.head),
                         (net.feature, self.feature), (net.classifier, self.classifier)):
            dst.load_state_dict(src.state_dict())
        i = 1
        for s, blocks in enumerate(self.stages):
            for b in range(sample[f'stage{s}_depth']):
                blocks[b].export_into(net.blocks[i], sample[f'stage{s}_block{b}_kernel'],
                                      sample[f'stage{s}_block{b}_expand'])
                i += 1
        return net.train(self.training)

    def sort_channels(self) -> None:
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels()

    def macs(self, sample: Mapping[str, Any]) -> int:
        """Multiply-accumulates of the conv and linear layers of ``sample``'s network for one input
        (what :func:`~nni_nasext.evaluators.proxies.score_flops` counts, times 10**6)."""
        def out(h, stride):
            return -(-h // stride)
        h = out(sample['resolution'], 2)
        stem, first = self.stem[0], self.first.block
        total = h * h * stem.weight[0].numel() * stem.out_channels
        total += sum(h * h * m.weight[0].numel() * m.out_channels for m in first.modules() if isinstance(m, nn.Conv2d))
        for s, blocks in enumerate(self.stages):
            for b in range(sample[f'stage{s}_depth']):
                block = blocks[b]
                k, e = sample[f'stage{s}_block{b}_kernel'], sample[f'stage{s}_block{b}_expand']
                hid = block.hidden(e)
                total += h * h * block.c_in * hid
                h = out(h, block.stride)
                total += h * h * k * k * hid + h * h * hid * block.c_out
                if block.se:
                    total += 2 * hid * block.squeeze(e)
        total += h * h * self.head[0].weight[0].numel() * self.head[0].out_channels
        feature = [m for m in self.feature.modules() if isinstance(m, nn.Conv2d)]
        total += sum(m.weight.numel() for m in feature)
        return total + self.classifier.weight.numel()

    def random_sample(self, gen: torch.Generator, kernels: Sequence[int] = tuple(OFA_KERNELS),
                      depths: Sequence[int] = tuple(OFA_DEPTHS), expansions: Sequence[int] = tuple(OFA_EXPANSIONS),
                      resolutions: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """A uniformly random sub-network over the given choices (progressive shrinking widens them)."""
        def pick(options):
            options = list(options)
            return options[int(torch.randint(len(options), (1,), generator=gen))]
        sample: Dict[str, Any] = {'resolution': pick(resolutions or self.resolutions)}
        for s in range(len(OFA_STAGES)):
            sample[f'stage{s}_depth'] = pick(depths)
            for b in range(_MAX_D):
                sample[f'stage{s}_block{b}_kernel'] = pick(kernels)
                sample[f'stage{s}_block{b}_expand'] = pick(expansions)
        return ofa_canonical_sample(sample)


def _validate(space: OFASpace, sample: Mapping[str, Any]) -> Dict[str, Any]:
    """Every decision of the space present with an allowed value; else a ``ValueError`` naming it."""
    allowed = {label: list(m.values) for label, m in space.simplify().items()}
    for label, values in allowed.items():
        if label not in sample:
            raise ValueError(f'Sample misses the decision {label!r} of the OFA space')
        if sample[label] not in values:
            raise ValueError(f'Sample value {sample[label]!r} of {label!r} is not allowed; expected one of {values}')
    extra = sorted(set(sample) - set(allowed))
    if extra:
        raise ValueError(f'Sample has labels that the OFA space does not: {extra}')
    return dict(sample)


def _bn_layers(net: nn.Module) -> List[nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def calibrate_bn(net: nn.Module, batches: Iterable, restore: bool = True):
    """Re-estimate ``net``'s batch-norm statistics on ``batches`` (cumulative average, no weight
    changes), run the body with the network in eval mode, then put the old statistics and mode
    back (``restore``). OFA does this for every sub-network it evaluates."""
    bns = _bn_layers(net)
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(), bn.momentum)
             for bn in bns]
    was_training = net.training
    try:
        for bn in bns:
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.num_batches_tracked.zero_()
            bn.momentum = None     # cumulative moving average over the calibration batches
        net.train()
        with torch.no_grad():
            for x, _ in batches:
                net(x)
        net.eval()
        yield net
    finally:
        if restore:
            for bn, (mean, var, tracked, momentum) in zip(bns, saved):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(tracked)
                bn.momentum = momentum
        else:
            for bn, (_, _, _, momentum) in zip(bns, saved):
                bn.momentum = momentum
        net.train(was_training)
