"""Mobile (inverted-residual) search spaces, declared with NNI's model-space primitives.

* :class:`ProxylessSpace` -- ProxylessNAS (H. Cai, L. Zhu and S. Han, "ProxylessNAS: Direct Neural
  Architecture Search on Target Task and Hardware", ICLR 2019) on the MobileNetV2 backbone
  (M. Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018). This is a thin
  wrapper of NNI's hub space :class:`nni.nas.hub.pytorch.ProxylessNAS`, which constructs, freezes and runs on
  the installed torch and whose mutables (``LayerChoice`` and ``Repeat`` depth) :class:`SpaceSpec` encodes as
  plain ``choice`` decisions.
* :class:`MnasNetSpace` -- the factorized hierarchical space of MnasNet (M. Tan et al., "MnasNet: Platform-Aware
  Neural Architecture Search for Mobile", CVPR 2019), reduced (see the class docstring).
* :class:`OFASpace` -- the Once-for-All elastic space (H. Cai, C. Gan, T. Wang, Z. Zhang and S. Han,
  "Once-for-All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020): elastic depth,
  kernel, expansion and input resolution on the MobileNetV3 backbone (A. Howard et al., "Searching for
  MobileNetV3", ICCV 2019).
* :class:`EfficientNetScalingSpace` -- compound scaling (M. Tan and Q. V. Le, "EfficientNet: Rethinking Model
  Scaling for Convolutional Neural Networks", ICML 2019) as a space over the depth/width/resolution
  coefficients, with the FLOPs constraint ``alpha * beta**2 * gamma**2 ~ 2`` checked at freeze.

The spaces written here (all but ProxylessNAS) follow the pattern of ``nasrl.py``: one ``MutableModule`` under
``space.net`` holds the ``nni.mutable.Categorical`` decisions, and ``space.freeze(sample).net`` is a plain
:class:`MobileNetwork`. Every decision is always present in a sample (also those a sample ignores, e.g. the
blocks beyond a stage's depth in OFA), so every point of the :class:`SpaceSpec` is a valid sample -- except in
:class:`EfficientNetScalingSpace`, whose infeasible coefficient triples are refused at freeze
(:class:`InfeasibleSampleError`) and flagged by :meth:`EfficientNetScalingSpace.is_feasible`, since a
SpaceSpec cannot carry constraints.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from nni.mutable import Categorical
from nni.nas.hub.pytorch import ProxylessNAS
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = [
    'make_divisible', 'MBConv', 'MobileNetwork',
    'ProxylessSpace', 'PROXYLESS_WIDTHS', 'MOBILENET_V2_WIDTHS', 'mobilenet_v2_sample', 'proxyless_block_ops_to_sample',
    'MnasNetSpace', 'MNAS_STAGES', 'MNAS_OPS', 'mnasnet_mobilenet_v2_sample',
    'OFASpace', 'OFA_STAGES', 'ofa_canonical_sample', 'ofa_max_sample',
    'EfficientNetScalingSpace', 'EFFICIENTNET_B0', 'TINY_BASE', 'InfeasibleSampleError', 'compound_coefficients',
]


# ============================================================================ building blocks

def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``), never more than 10 %
    down -- the channel rounding of MobileNetV2 / MnasNet / EfficientNet."""
    min_value = min_value or divisor
    out = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if out < 0.9 * v:
        out += divisor
    return out


_ACTS = {'relu': nn.ReLU, 'relu6': nn.ReLU6, 'swish': nn.SiLU, 'hswish': nn.Hardswish}
_GATES = {'sigmoid': nn.Sigmoid, 'hsigmoid': nn.Hardsigmoid}


def activation(name: str) -> nn.Module:
    """A new activation module by name (``relu``, ``relu6``, ``hswish``, ... as in ``_ACTS``)."""
    if name not in _ACTS:
        raise ValueError(f'Unknown activation {name!r}; expected one of {sorted(_ACTS)}')
    return _ACTS[name](inplace=True)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
            act: Optional[str] = 'relu') -> nn.Sequential:
    layers: List[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): pool - conv1x1 (bias) - act - conv1x1 (bias) - gate."""

    def __init__(self, channels: int, squeeze: int, act: str = 'relu', gate: str = 'sigmoid'):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = _GATES[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.expand(self.act(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        return x * s


class MBConv(nn.Module):
    """Block of a mobile network, with an identity residual when ``stride == 1`` and ``c_in == c_out``.

    ``op``:

    * ``'mbconv'``: inverted residual (Sandler et al. 2018): conv1x1 (c_in -> hidden) - BN - act (left out when
      ``expansion == 1``) - depthwise kxk (stride) - BN - act - [SE] - conv1x1 (-> c_out) - BN;
      ``hidden = make_divisible(c_in * expansion)``.
    * ``'sepconv'``: depthwise-separable conv = the inverted residual at expansion 1.
    * ``'conv'``: regular kxk conv (c_in -> c_out, stride) - BN - act - [SE].

    ``se`` is the number of squeeze channels (0: no SE).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, op: str = 'mbconv', expansion: float = 6,
                 se: int = 0, act: str = 'relu', se_act: Optional[str] = None, se_gate: str = 'sigmoid'):
        super().__init__()
        self.residual = stride == 1 and c_in == c_out
        se_act = se_act or act
        layers: List[nn.Module] = []
        if op == 'conv':
            layers.append(conv_bn(c_in, c_out, kernel, stride, act=act))
            if se:
                layers.append(SqueezeExcite(c_out, se, se_act, se_gate))
        elif op in ('mbconv', 'sepconv'):
            hidden = c_in if op == 'sepconv' or expansion == 1 else make_divisible(c_in * expansion)
            if hidden != c_in:
                layers.append(conv_bn(c_in, hidden, 1, act=act))
            layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act))
            if se:
                layers.append(SqueezeExcite(hidden, se, se_act, se_gate))
            layers.append(conv_bn(hidden, c_out, 1, act=None))
        else:
            raise ValueError(f"Unknown block op {op!r}; expected 'conv', 'sepconv' or 'mbconv'")
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


class MobileNetwork(nn.Module):
    """A frozen mobile network: stem conv3x3 stride 2 - blocks - conv1x1 head - [feature layer] - global pool -
    dropout - linear. When ``resolution`` is set, inputs of another spatial size are first resized (bilinear)
    to ``resolution x resolution``, so that the chosen input resolution is part of the function."""

    def __init__(self, stem: int, blocks: Sequence[nn.Module], last_channels: int, head: int, num_classes: int,
                 act: str = 'relu', head_act: Optional[str] = None, feature: Optional[int] = None,
                 feature_act: Optional[str] = None, dropout: float = 0., in_channels: int = 3,
                 resolution: Optional[int] = None):
        super().__init__()
        self.resolution = resolution
        self.stem = conv_bn(in_channels, stem, 3, 2, act=act)
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(last_channels, head, 1, act=head_act or act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if feature:  # MobileNetV3 / OFA: a 1x1 conv without BN after pooling
            self.feature = nn.Sequential(nn.Conv2d(head, feature, 1, bias=False), activation(feature_act or act))
        else:
            self.feature = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature or head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if r is not None and tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x, size=(r, r), mode='bilinear', align_corners=False)
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(self.dropout(torch.flatten(self.feature(x), 1)))


def _check_positive(**kwargs):
    bad = {k: v for k, v in kwargs.items() if not v > 0}
    if bad:
        raise ValueError(f'Arguments must be positive: {bad}')


class _Searchable(MutableModule):
    """Holds the decisions; :meth:`freeze` builds the network (see ``nasrl.py``)."""

    def __init__(self, builder, mutables: Sequence[Categorical], **kwargs):
        super().__init__()
        self._builder = builder
        self._kwargs = kwargs
        for m in mutables:
            self.add_mutable(m)

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return self._builder(sample, **self._kwargs)

    def forward(self, x):
        raise NotImplementedError('Freeze the space with a sample before running it')


# ============================================================================ ProxylessNAS (NNI hub)

#: Stem, first block, the six searchable stages and the head of ProxylessNAS (NNI hub's default).
PROXYLESS_WIDTHS: Tuple[int, ...] = (32, 16, 32, 40, 80, 96, 192, 320, 1280)
#: The same positions with MobileNetV2's widths.
MOBILENET_V2_WIDTHS: Tuple[int, ...] = (32, 16, 24, 32, 64, 96, 160, 320, 1280)
_PROXYLESS_DEPTH_STAGES = (2, 3, 4, 5, 6)   # stage 7 is one block (op searchable, depth fixed)
_MBV2_DEPTHS = {2: 2, 3: 3, 4: 4, 5: 3, 6: 3}


class ProxylessSpace(ProxylessNAS):
    """ProxylessNAS space (Cai et al., ICLR 2019) on a MobileNetV2 backbone -- NNI's hub
    :class:`~nni.nas.hub.pytorch.ProxylessNAS` with this project's argument names.

    Skeleton: stem conv3x3 s2 (32) - depthwise-separable block (16, fixed) - stages ``s2`` .. ``s7`` of
    inverted residuals (ReLU6, strides 2, 2, 2, 1, 2, 1) - conv1x1 (1280) - pool - linear.
    Decisions (labels of the hub):

    * ``s{k}_i{j}`` (k = 2..7, j = 0..3; stage 7 only j = 0): the block's op among ``k{3,5,7}e{3,6}``
      (kernel 3/5/7, expansion 3/6);
    * ``s{k}_depth`` (k = 2..6): 1 .. 4 blocks. This is the hub's encoding of the paper's *zero* (skip) op,
      which any block but a stage's first may take: blocks after the first have equal in/out shapes, so a
      stage with some blocks zeroed is the same network as the stage with those blocks moved to the end, i.e.
      a shorter depth (use :func:`proxyless_block_ops_to_sample` to convert a per-block encoding). The ops
      ``s{k}_i{j}`` with ``j >= depth`` are present in every sample and ignored.

    ``base_widths=MOBILENET_V2_WIDTHS`` with :func:`mobilenet_v2_sample` is MobileNetV2 1.0 (3,504,872
    parameters at 1000 classes, as torchvision's). ``resolution`` records the input size the space is meant
    for (ProxylessNAS: 224); it is not a decision.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, resolution: int = 224,
                 base_widths: Tuple[int, ...] = PROXYLESS_WIDTHS, dropout_rate: float = 0.,
                 bn_eps: float = 1e-3, bn_momentum: float = 0.1):
        _check_positive(num_classes=num_classes, width_mult=width_mult, resolution=resolution)
        super().__init__(num_labels=num_classes, base_widths=tuple(base_widths), dropout_rate=dropout_rate,
                         width_mult=width_mult, bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.resolution = resolution


def mobilenet_v2_sample(kernel: int = 3, expansion: int = 6) -> Dict[str, Any]:
    """The ProxylessSpace sample of MobileNetV2 (depths 2, 3, 4, 3, 3; every op ``k3e6``)."""
    op = f'k{kernel}e{expansion}'
    sample: Dict[str, Any] = {f's{k}_depth': d for k, d in _MBV2_DEPTHS.items()}
    for k in _PROXYLESS_DEPTH_STAGES:
        sample.update({f's{k}_i{j}': op for j in range(4)})
    sample['s7_i0'] = op
    return sample


def proxyless_block_ops_to_sample(stage_ops: Mapping[int, Sequence[str]], s7_op: str) -> Dict[str, Any]:
    """Per-block encoding with the paper's zero op -> a :class:`ProxylessSpace` sample.

    ``stage_ops[k]`` (k = 2..6) lists the 4 blocks' ops of stage ``k``, each ``'k{3,5,7}e{3,6}'`` or ``'zero'``
    (not allowed for the first block). The non-zero ops keep their order; the zeros become the depth."""
    sample: Dict[str, Any] = {}
    for k in _PROXYLESS_DEPTH_STAGES:
        ops = list(stage_ops[k])
        if len(ops) != 4 or ops[0] == 'zero':
            raise ValueError(f'Stage {k} needs 4 ops, the first not zero; got {ops}')
        kept = [op for op in ops if op != 'zero']
        sample[f's{k}_depth'] = len(kept)
        filler = kept[0]
        for j in range(4):
            sample[f's{k}_i{j}'] = kept[j] if j < len(kept) else filler
    sample['s7_i0'] = s7_op
    return sample


# ============================================================================ MnasNet

#: MnasNet's op types: regular conv, depthwise-separable conv, MBConv with expansion 3 or 6.
MNAS_OPS: List[str] = ['conv', 'sepconv', 'mb3', 'mb6']
MNAS_KERNELS: List[int] = [3, 5]
MNAS_FILTER_MULTS: List[float] = [0.75, 1.0, 1.25]
#: (output channels, layers, stride) of the 7 stages: MobileNetV2's, the base MnasNet searches around.
MNAS_STAGES: Tuple[Tuple[int, int, int], ...] = (
    (16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))


def _mnas_layer_choices(n: int) -> List[int]:
    return sorted({max(1, n + d) for d in (-1, 0, 1)})


def _mnas_labels(i: int) -> Dict[str, str]:
    return {k: f'stage{i}_{k}' for k in ('op', 'kernel', 'se', 'layers', 'filters')}


def _build_mnas(sample: Mapping[str, Any], num_classes: int, width_mult: float, in_channels: int,
                dropout: float, resolution: int) -> MobileNetwork:
    stem = make_divisible(32 * width_mult)
    c_in, blocks = stem, []
    for i, (c, _, stride) in enumerate(MNAS_STAGES):
        lab = _mnas_labels(i)
        op, k, se = sample[lab['op']], sample[lab['kernel']], sample[lab['se']]
        c_out = make_divisible(c * sample[lab['filters']] * width_mult)
        for j in range(sample[lab['layers']]):
            squeeze = max(1, c_in // 4) if se else 0
            if op in ('mb3', 'mb6'):
                block = MBConv(c_in, c_out, k, stride if j == 0 else 1, 'mbconv', int(op[2:]), squeeze)
            else:
                block = MBConv(c_in, c_out, k, stride if j == 0 else 1, op, 1, squeeze)
            blocks.append(block)
            c_in = c_out
    head = make_divisible(1280 * width_mult) if width_mult > 1 else 1280
    return MobileNetwork(stem, blocks, c_in, head, num_classes, act='relu', dropout=dropout,
                         in_channels=in_channels, resolution=None)


class MnasNetSpace(ModelSpace):
    """MnasNet factorized hierarchical space (Tan et al., CVPR 2019), reduced.

    The network is split into the 7 stages of MobileNetV2 (:data:`MNAS_STAGES`) after a stem conv3x3 s2
    (32); every stage has its own decisions, shared by all the layers of the stage (the paper's
    factorization):

    * ``stage{i}_op``: ``conv`` (regular conv), ``sepconv`` (depthwise-separable), ``mb3`` / ``mb6``
      (MBConv, expansion 3 / 6);
    * ``stage{i}_kernel``: 3 or 5;
    * ``stage{i}_se``: squeeze-and-excite (ratio 0.25 of the block input) or not;
    * ``stage{i}_layers``: MobileNetV2's number of layers ``n`` + {-1, 0, +1} (at least 1);
    * ``stage{i}_filters``: output width multiplier 0.75 / 1.0 / 1.25 (rounded to multiples of 8).

    Deviation from the paper: its *skip op* decision (pooling / identity residual / none) is fixed to the
    identity residual wherever shapes allow. Size: ``96**2 * 144**5`` ~ 10**14.8 (the paper: ~10**13).
    :func:`mnasnet_mobilenet_v2_sample` gives MobileNetV2 1.0 (3,504,872 parameters at 1000 classes).
    ``space.freeze(sample).net`` is a :class:`MobileNetwork` (ReLU); ``resolution`` is recorded, not searched.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, resolution: int = 224,
                 in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        _check_positive(num_classes=num_classes, width_mult=width_mult, resolution=resolution,
                        in_channels=in_channels)
        self.resolution = resolution
        mutables = []
        for i, (_, n, _) in enumerate(MNAS_STAGES):
            lab = _mnas_labels(i)
            mutables += [Categorical(list(MNAS_OPS), label=lab['op']),
                         Categorical(list(MNAS_KERNELS), label=lab['kernel']),
                         Categorical([False, True], label=lab['se']),
                         Categorical(_mnas_layer_choices(n), label=lab['layers']),
                         Categorical(list(MNAS_FILTER_MULTS), label=lab['filters'])]
        self.net = _Searchable(_build_mnas, mutables, num_classes=num_classes, width_mult=width_mult,
                               in_channels=in_channels, dropout=dropout, resolution=resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mnasnet_mobilenet_v2_sample() -> Dict[str, Any]:
    """MobileNetV2 as a :class:`MnasNetSpace` sample: first stage ``sepconv``, the rest ``mb6``, kernel 3,
    no SE, MobileNetV2's layer counts, multiplier 1.0."""
    sample: Dict[str, Any] = {}
    for i, (_, n, _) in enumerate(MNAS_STAGES):
        lab = _mnas_labels(i)
        sample.update({lab['op']: 'sepconv' if i == 0 else 'mb6', lab['kernel']: 3, lab['se']: False,
                       lab['layers']: n, lab['filters']: 1.0})
    return sample


# ============================================================================ Once-for-All

#: (width, stride, activation, squeeze-excite) of OFA's 5 elastic stages (MobileNetV3-Large backbone).
OFA_STAGES: Tuple[Tuple[int, int, str, bool], ...] = (
    (24, 2, 'relu', False), (40, 2, 'relu', True), (80, 2, 'hswish', False),
    (112, 1, 'hswish', True), (160, 2, 'hswish', True))
OFA_DEPTHS: List[int] = [2, 3, 4]
OFA_KERNELS: List[int] = [3, 5, 7]
OFA_EXPANSIONS: List[int] = [3, 4, 6]
_OFA_MAX_DEPTH = max(OFA_DEPTHS)


def build_ofa(sample: Mapping[str, Any], num_classes: int, width_mult: float, in_channels: int,
               dropout: float) -> MobileNetwork:
    """The fixed OFA network (MobileNetV3-Large backbone) of one sample of :class:`OFASpace`."""
    def w(c: int) -> int:
        return make_divisible(c * width_mult)

    stem = w(16)
    blocks: List[nn.Module] = [MBConv(stem, stem, 3, 1, 'sepconv', act='relu')]
    c_in = stem
    for s, (c, stride, act, se) in enumerate(OFA_STAGES):
        c_out = w(c)
        for b in range(sample[f'stage{s}_depth']):
            e = sample[f'stage{s}_block{b}_expand']
            squeeze = make_divisible(make_divisible(c_in * e) // 4) if se else 0
            blocks.append(MBConv(c_in, c_out, sample[f'stage{s}_block{b}_kernel'], stride if b == 0 else 1,
                                 'mbconv', e, squeeze, act=act, se_act='relu', se_gate='hsigmoid'))
            c_in = c_out
    return MobileNetwork(stem, blocks, c_in, w(960), num_classes, act='hswish', feature=w(1280),
                         dropout=dropout, in_channels=in_channels, resolution=sample['resolution'])


class OFASpace(ModelSpace):
    """Once-for-All elastic space (Cai et al., ICLR 2020) on MobileNetV3-Large (Howard et al., ICCV 2019).

    Skeleton: stem conv3x3 s2 (16, h-swish) - depthwise-separable block (16) - 5 elastic stages
    (:data:`OFA_STAGES`: widths 24, 40, 80, 112, 160; strides 2, 2, 2, 1, 2; SE in stages 1, 3, 4) -
    conv1x1 (960) - pool - conv1x1 (1280, no BN) - linear. Decisions:

    * ``stage{s}_depth`` (s = 0..4): 2, 3 or 4 blocks;
    * ``stage{s}_block{b}_kernel`` (b = 0..3): 3, 5, 7; ``stage{s}_block{b}_expand``: 3, 4, 6;
    * ``resolution``: the input resolution (``resolutions``); the frozen network resizes its input to it.

    Depth handling: every block's kernel/expansion decision is always present, so every point of the
    SpaceSpec is a valid sample; blocks ``b >= depth`` are not built and their decisions are ignored (OFA keeps
    the first ``depth`` blocks of a stage). :func:`ofa_canonical_sample` resets the ignored decisions, for
    deduplication. Distinct networks: ``(9**2 + 9**3 + 9**4)**5 * len(resolutions)`` ~ 10**20
    (the paper: ~2 * 10**19 without resolution). ``space.freeze(sample).net`` is a :class:`MobileNetwork`.
    """

    def __init__(self, num_classes: int = 1000, resolutions: Sequence[int] = (160, 176, 192, 208, 224),
                 width_mult: float = 1.0, in_channels: int = 3, dropout: float = 0.1):
        super().__init__()
        _check_positive(num_classes=num_classes, width_mult=width_mult, in_channels=in_channels)
        resolutions = [int(r) for r in resolutions]
        if not resolutions or min(resolutions) < 1 or len(set(resolutions)) != len(resolutions):
            raise ValueError(f'resolutions must be distinct positive integers, got {resolutions}')
        self.resolutions = resolutions
        mutables = []
        for s in range(len(OFA_STAGES)):
            mutables.append(Categorical(list(OFA_DEPTHS), label=f'stage{s}_depth'))
            for b in range(_OFA_MAX_DEPTH):
                mutables.append(Categorical(list(OFA_KERNELS), label=f'stage{s}_block{b}_kernel'))
                mutables.append(Categorical(list(OFA_EXPANSIONS), label=f'stage{s}_block{b}_expand'))
        mutables.append(Categorical(resolutions, label='resolution'))
        self.net = _Searchable(build_ofa, mutables, num_classes=num_classes, width_mult=width_mult,
                               in_channels=in_channels, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def ofa_canonical_sample(sample: Mapping[str, Any]) -> Dict[str, Any]:
    """``sample`` with the decisions of blocks beyond their stage's depth set to kernel 3, expansion 3: two
    samples build the same network iff their canonical samples are equal."""
    out = dict(sample)
    for s in range(len(OFA_STAGES)):
        for b in range(sample[f'stage{s}_depth'], _OFA_MAX_DEPTH):
            out[f'stage{s}_block{b}_kernel'] = OFA_KERNELS[0]
            out[f'stage{s}_block{b}_expand'] = OFA_EXPANSIONS[0]
    return out


def ofa_max_sample(resolution: int = 224) -> Dict[str, Any]:
    """The largest OFA network (depth 4, kernel 7, expansion 6 everywhere)."""
    sample: Dict[str, Any] = {'resolution': resolution}
    for s in range(len(OFA_STAGES)):
        sample[f'stage{s}_depth'] = 4
        for b in range(_OFA_MAX_DEPTH):
            sample[f'stage{s}_block{b}_kernel'] = 7
            sample[f'stage{s}_block{b}_expand'] = 6
    return sample


# ============================================================================ EfficientNet compound scaling

class InfeasibleSampleError(ValueError):
    """A sample that violates a space's constraint (here: the compound-scaling FLOPs constraint)."""


#: EfficientNet-B0 (Tan & Le 2019, Table 1): stem width, stages (expansion, kernel, stride, width, layers),
#: head width. Blocks use swish and SE (squeeze = block input / 4).
EFFICIENTNET_B0: Dict[str, Any] = {
    'stem': 32, 'head': 1280,
    'stages': ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
               (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)),
}
#: A small B0-like base for tests and quick runs.
TINY_BASE: Dict[str, Any] = {
    'stem': 8, 'head': 64, 'stages': ((1, 3, 1, 8, 1), (6, 3, 2, 16, 1), (6, 5, 2, 24, 2)),
}
_BASES = {'b0': EFFICIENTNET_B0, 'tiny': TINY_BASE}


def _grid(low: float, high: float, step: float) -> List[float]:
    n = int(round((high - low) / step))
    return [round(low + i * step, 4) for i in range(n + 1)]


def compound_coefficients(sample: Mapping[str, Any]) -> Tuple[float, float, float]:
    """(depth, width, resolution) multipliers ``alpha**phi, beta**phi, gamma**phi`` of a sample."""
    phi = sample['phi']
    return sample['alpha'] ** phi, sample['beta'] ** phi, sample['gamma'] ** phi


def _constraint_violation(sample: Mapping[str, Any], flops_limit: float, tolerance: float) -> Optional[str]:
    ratio = sample['alpha'] * sample['beta'] ** 2 * sample['gamma'] ** 2
    if abs(ratio - flops_limit) <= tolerance + 1e-12:
        return None
    return (f'Compound-scaling constraint violated: alpha * beta^2 * gamma^2 = {ratio:.4f} for '
            f'(alpha, beta, gamma) = ({sample["alpha"]}, {sample["beta"]}, {sample["gamma"]}); '
            f'must be {flops_limit} +- {tolerance}')


def _build_efficientnet(sample: Mapping[str, Any], base: Mapping[str, Any], base_resolution: int,
                        num_classes: int, in_channels: int, dropout: float, flops_limit: float,
                        tolerance: float) -> MobileNetwork:
    problem = _constraint_violation(sample, flops_limit, tolerance)
    if problem:
        raise InfeasibleSampleError(problem)
    d, w, r = compound_coefficients(sample)
    stem = make_divisible(base['stem'] * w)
    c_in, blocks = stem, []
    for e, k, stride, c, n in base['stages']:
        c_out = make_divisible(c * w)
        for j in range(int(math.ceil(n * d))):
            blocks.append(MBConv(c_in, c_out, k, stride if j == 0 else 1, 'mbconv', e, max(1, c_in // 4),
                                 act='swish'))
            c_in = c_out
    head = make_divisible(base['head'] * w)
    return MobileNetwork(stem, blocks, c_in, head, num_classes, act='swish', dropout=dropout,
                         in_channels=in_channels, resolution=int(round(base_resolution * r)))


class EfficientNetScalingSpace(ModelSpace):
    """EfficientNet compound scaling (Tan & Le, ICML 2019) as a search space.

    Decisions: ``alpha`` (depth), ``beta`` (width), ``gamma`` (resolution) on grids (default 1.0 .. 2.0, 1.0 ..
    1.5, 1.0 .. 1.5, step 0.05) and the compound coefficient ``phi`` (``phis``, default ``(1,)``: the paper's
    step 1, a grid search for the triple at phi = 1). The frozen network is ``base`` scaled by
    depth ``alpha**phi`` (layers per stage ``ceil(n * d)``), width ``beta**phi`` (channels rounded to
    multiples of 8) and resolution ``gamma**phi`` (``round(base_resolution * r)``; the network resizes its
    input to it). ``base`` is ``'b0'`` (:data:`EFFICIENTNET_B0`), ``'tiny'`` (:data:`TINY_BASE`) or a dict of
    the same form.

    Constraint: ``|alpha * beta**2 * gamma**2 - flops_limit| <= tolerance`` (FLOPs grow by about
    ``flops_limit**phi``). A SpaceSpec cannot carry it, so :meth:`is_feasible` tells it and ``freeze`` refuses
    infeasible samples with :class:`InfeasibleSampleError`. The paper's triple (1.2, 1.1, 1.15) gives 1.92.
    With ``phi = 0`` the frozen network is the base itself (EfficientNet-B0: 5,288,548 parameters at 1000
    classes, as torchvision's). ``space.freeze(sample).net`` is a :class:`MobileNetwork`.
    """

    def __init__(self, base: Union[str, Mapping[str, Any]] = 'b0', flops_limit: float = 2.0,
                 tolerance: float = 0.1, phis: Sequence[int] = (1,), num_classes: int = 1000,
                 base_resolution: int = 224, alphas: Optional[Sequence[float]] = None,
                 betas: Optional[Sequence[float]] = None, gammas: Optional[Sequence[float]] = None,
                 in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        if isinstance(base, str):
            if base not in _BASES:
                raise ValueError(f'Unknown base {base!r}; expected one of {sorted(_BASES)} or a dict')
            base = _BASES[base]
        if not {'stem', 'head', 'stages'} <= set(base):
            raise ValueError("base needs 'stem', 'head' and 'stages' (expansion, kernel, stride, width, layers)")
        _check_positive(flops_limit=flops_limit, num_classes=num_classes, base_resolution=base_resolution,
                        in_channels=in_channels)
        if tolerance < 0:
            raise ValueError(f'tolerance must be >= 0, got {tolerance}')
        self.flops_limit, self.tolerance = float(flops_limit), float(tolerance)
        grids = {'alpha': alphas or _grid(1.0, 2.0, 0.05), 'beta': betas or _grid(1.0, 1.5, 0.05),
                 'gamma': gammas or _grid(1.0, 1.5, 0.05), 'phi': [int(p) for p in phis]}
        for name, values in grids.items():
            if not values or min(values) < (0 if name == 'phi' else 1e-9):
                raise ValueError(f'{name} values must be positive (phi: >= 0), got {values}')
        mutables = [Categorical([float(v) for v in grids[n]] if n != 'phi' else grids[n], label=n)
                    for n in ('alpha', 'beta', 'gamma', 'phi')]
        self.net = _Searchable(_build_efficientnet, mutables, base=dict(base), base_resolution=base_resolution,
                               num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                               flops_limit=self.flops_limit, tolerance=self.tolerance)

    def constraint_violation(self, sample: Mapping[str, Any]) -> Optional[str]:
        """None when ``sample`` meets the FLOPs constraint, else why not."""
        return _constraint_violation(sample, self.flops_limit, self.tolerance)

    def is_feasible(self, sample: Mapping[str, Any]) -> bool:
        return self.constraint_violation(sample) is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
