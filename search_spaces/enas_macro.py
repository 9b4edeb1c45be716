"""The ENAS *macro* search space (Pham et al.), declared with plain NNI mutables.

Reference: H. Pham, M. Y. Guan, B. Zoph, Q. V. Le and J. Dean, "Efficient Neural Architecture
Search via Parameter Sharing", ICML 2018 (Section 2.3, "Designing Convolutional Networks"); the
details the paper leaves open follow the official code, GitHub ``melodyguan/enas``,
``src/cifar10/general_child.py`` (``GeneralChild``) and ``scripts/cifar10_macro_{search,final}.sh``.

A network is a stem (3x3 conv, ``width`` channels, BN) and a chain of ``num_layers`` layers
(12 in the CIFAR-10 search). Each layer ``i`` takes the previous node's output and applies one of
6 operations, in the official index order::

    0 conv_3x3   1 sep_conv_3x3   2 conv_5x5   3 sep_conv_5x5   4 avg_pool_3x3   5 max_pool_3x3

and layers ``i >= 1`` choose any subset of *skip connections* from earlier nodes. As in the
official code, the skip candidates of layer ``i`` are the ``i`` nodes before its input: the stem
(written ``-1``) and layers ``0 .. i-2`` (layer ``i-1`` is always connected: it is the op's input).
So layer ``i`` has exactly ``i`` skip bits, like the official ``fixed_arc`` string.

Factorized reductions (stride 2, two shifted 1x1-conv paths, concat, BN) follow layers
``L//3 - 1`` and ``2*L//3 - 1`` (3 and 7 for L=12, 7 and 15 for L=24) and are applied to *every*
node kept for skips (stem included), as in ``GeneralChild._model``. The head is global average
pooling, dropout, and a linear layer (bias-free in the official code; here with bias).

Two compilations, ``style``:

* ``'search'`` (default; the weight-shared child, ``GeneralChild._enas_layer`` with
  ``whole_channels``): conv ops are conv1x1-BN-ReLU then conv kxk (or depthwise-separable kxk,
  channel multiplier 1) -BN-ReLU; pool ops are conv1x1-BN-ReLU then 3x3 stride-1 pooling; the
  skip inputs are **summed** with the op output, then BN. The width is constant (reductions keep
  ``width`` channels).
* ``'final'`` (the fixed-architecture child trained from scratch, ``GeneralChild._fixed_layer``):
  conv ops are ReLU-conv1x1-BN then ReLU-conv kxk-BN; the skip inputs are **concatenated** with
  the op output, then ReLU-conv1x1-BN back to the layer width; the width **doubles** at each
  reduction. The official fixed-arc code builds ops 1 and 3 as *plain* convolutions (its size
  table is ``[3, 3, 5, 5]`` with no separable branch) and leaves the pool ops unimplemented;
  here ops 1/3 are depthwise-separable unless ``sep_as_conv=True`` (the official behaviour), and
  the pool ops are ReLU-conv1x1-BN then pooling.

Encoding: ``layer{i}_op`` is a ``Categorical`` over :data:`OPS` (names); ``layer{i}_skip``
(``i >= 1``) is a ``CategoricalMultiple`` over ``[-1, 0, .., i-2]`` with ``n_chosen=None`` (any
subset: NNI's ``InputChoice(n_chosen=None)`` decision). Every sample is a valid network.
Size: ``6**L * 2**(L(L-1)/2)``: 1.6e29 (10**29.2) for L=12, the paper's figure.

:data:`ENAS_MACRO_CIFAR10_ARC` is the official ``fixed_arc`` of ``scripts/cifar10_macro_final.sh``
(24 layers, trained with ``--child_out_filters=96 --child_num_branches=4``);
:func:`arc_to_sample` / :func:`sample_to_arc` convert between that string and a sample.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence, Union

import torch
from torch import nn

from nni.mutable import Categorical, CategoricalMultiple
from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, MutableModule

__all__ = ['OPS', 'STEM', 'EnasMacroSpace', 'EnasMacroNetwork', 'pool_layers', 'skip_candidates',
           'sample_to_layers', 'arc_to_sample', 'sample_to_arc', 'log10_size', 'ENAS_MACRO_CIFAR10_ARC',
           'ENAS_MACRO_CIFAR10', 'SOURCE']

#: Operation names in the official index order (``general_child.py``, branches 0..5).
OPS: List[str] = ['conv_3x3', 'sep_conv_3x3', 'conv_5x5', 'sep_conv_5x5', 'avg_pool_3x3', 'max_pool_3x3']
#: The stem's index among the skip candidates.
STEM = -1

SOURCE = 'github.com/melodyguan/enas scripts/cifar10_macro_final.sh (fixed_arc), src/cifar10/general_child.py'

#: The official final macro architecture (``scripts/cifar10_macro_final.sh``): per layer ``i``,
#: the op index then ``i`` skip bits (stem, layers 0 .. i-2).
ENAS_MACRO_CIFAR10_ARC = ' '.join([
    '0',
    '3 0',
    '0 1 0',
    '2 0 0 1',
    '2 0 0 0 0',
    '3 1 1 0 1 0',
    '2 0 0 0 0 0 1',
    '2 0 1 1 0 1 1 1',
    '1 0 1 1 1 0 1 0 1',
    '0 0 0 0 0 0 0 0 0 0',
    '2 0 0 0 0 0 1 0 0 0 0',
    '0 1 0 0 1 1 0 0 0 0 1 1',
    '2 0 1 0 0 0 0 0 1 0 1 1 0',
    '1 0 0 1 0 0 0 1 1 1 0 1 0 1',
    '0 1 1 0 1 0 1 0 0 0 0 0 1 0 0',
    '2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1',
    '2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0',
    '2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1',
    '3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0',
    '3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1',
    '0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0',
    '3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0',
    '0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0',
    '0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0',
])


def pool_layers(num_layers: int) -> List[int]:
    """Layers followed by a factorized reduction (``GeneralChild.pool_layers``)."""
    d = num_layers // 3
    return [d - 1, 2 * d - 1]


def skip_candidates(i: int) -> List[int]:
    """Skip candidates of layer ``i``: the stem (-1) and layers ``0 .. i-2``."""
    return [STEM] + list(range(i - 1)) if i >= 1 else []


def _labels(i: int) -> Dict[str, str]:
    return {'op': f'layer{i}_op', 'skip': f'layer{i}_skip'}


def sample_to_layers(sample: Mapping[str, Any], num_layers: int, num_ops: int = 6) -> List[Dict[str, Any]]:
    """Decode a sample into ``[{'op': name, 'skips': [...]}, ...]`` (skips sorted, -1 = stem).
    Raises ``ValueError`` on a missing label or a value outside the space."""
    ops = OPS[:num_ops]
    layers = []
    for i in range(num_layers):
        lab = _labels(i)
        if lab['op'] not in sample:
            raise ValueError(f'ENAS macro sample misses label {lab["op"]!r}')
        if sample[lab['op']] not in ops:
            raise ValueError(f'ENAS macro sample value {lab["op"]}={sample[lab["op"]]!r} is not one of {ops}')
        skips: List[int] = []
        if i >= 1:
            if lab['skip'] not in sample:
                raise ValueError(f'ENAS macro sample misses label {lab["skip"]!r}')
            skips = list(sample[lab['skip']])
            cands = skip_candidates(i)
            if any(s not in cands for s in skips) or len(set(skips)) != len(skips):
                raise ValueError(f'{lab["skip"]}={skips!r} must be distinct nodes among {cands}')
        layers.append({'op': sample[lab['op']], 'skips': sorted(skips)})
    return layers


def arc_to_sample(arc: Union[str, Sequence[int]]) -> Dict[str, Any]:
    """Official ``fixed_arc`` (string or ints: per layer the op index then ``i`` skip bits) -> sample."""
    vals = [int(x) for x in arc.split()] if isinstance(arc, str) else [int(x) for x in arc]
    sample: Dict[str, Any] = {}
    pos, i = 0, 0
    while pos < len(vals):
        if pos + 1 + i > len(vals):
            raise ValueError(f'arc ends inside layer {i}')
        op, bits = vals[pos], vals[pos + 1:pos + 1 + i]
        if not 0 <= op < len(OPS) or any(b not in (0, 1) for b in bits):
            raise ValueError(f'bad arc entry at layer {i}: {vals[pos:pos + 1 + i]}')
        sample[f'layer{i}_op'] = OPS[op]
        if i >= 1:
            sample[f'layer{i}_skip'] = [c for c, b in zip(skip_candidates(i), bits) if b]
        pos += 1 + i
        i += 1
    return sample


def sample_to_arc(sample: Mapping[str, Any], num_layers: int) -> str:
    out: List[int] = []
    for i, l in enumerate(sample_to_layers(sample, num_layers)):
        out.append(OPS.index(l['op']))
        out.extend(int(c in l['skips']) for c in skip_candidates(i))
    return ' '.join(map(str, out))


def log10_size(num_layers: int = 12, num_ops: int = 6) -> float:
    return num_layers * math.log10(num_ops) + num_layers * (num_layers - 1) / 2 * math.log10(2)


class FactorizedReduce(nn.Module):
    """``GeneralChild._factorized_reduction`` at stride 2: two 1x1 convs on x[::2, ::2] and on x shifted
    by one pixel, concatenated, then BN (no ReLU)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError('factorized reduction needs an even number of channels')
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = x[:, :, ::2, ::2]
        p2 = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2]
        return self.bn(torch.cat([self.conv1(p1), self.conv2(p2)], 1))


def _conv(c_in: int, c_out: int, k: int, sep: bool) -> nn.Module:
    if sep:  # tf.nn.separable_conv2d, channel multiplier 1: depthwise kxk then pointwise 1x1
        return nn.Sequential(nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False),
                             nn.Conv2d(c_in, c_out, 1, bias=False))
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)


def _op(name: str, c: int, style: str, sep_as_conv: bool) -> nn.Module:
    pre = [] if style == 'search' else [nn.ReLU()]          # final: ReLU-conv-BN; search: conv-BN-ReLU
    post = [nn.ReLU()] if style == 'search' else []
    layers: List[nn.Module] = pre + [nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)] + post
    if name.endswith('pool_3x3'):
        pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False) if name.startswith('avg') else nn.MaxPool2d(3, 1, 1)
        return nn.Sequential(*layers, pool)
    k = 3 if '3x3' in name else 5
    sep = name.startswith('sep') and not sep_as_conv
    return nn.Sequential(*layers, *pre, _conv(c, c, k, sep), nn.BatchNorm2d(c), *post)


class EnasMacroNetwork(nn.Module):
    """The fixed network of decoded layers (see :func:`sample_to_layers` and the module docstring)."""

    def __init__(self, layers: List[Dict[str, Any]], width: int = 36, num_classes: int = 10, in_channels: int = 3,
                 style: str = 'search', sep_as_conv: bool = False, dropout: float = 0.):
        super().__init__()
        if style not in ('search', 'final'):
            raise ValueError(f"style must be 'search' or 'final', not {style!r}")
        self.layer_specs = [dict(l) for l in layers]
        self.skips = [list(l['skips']) for l in layers]
        self.style = style
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.pool_at = pool_layers(len(layers))
        ops, skip_mods, reductions = [], [], nn.ModuleDict()
        c = width
        for i, l in enumerate(layers):
            ops.append(_op(l['op'], c, style, sep_as_conv))
            if style == 'final' and i >= 1:
                skip_mods.append(nn.Sequential(nn.ReLU(), nn.Conv2d((len(l['skips']) + 1) * c, c, 1, bias=False),
                                               nn.BatchNorm2d(c)))
            elif style == 'search' and i >= 1:
                skip_mods.append(nn.BatchNorm2d(c))
            else:
                skip_mods.append(nn.Identity())
            if i in self.pool_at:
                c_new = 2 * c if style == 'final' else c
                reductions[str(i)] = nn.ModuleList(FactorizedReduce(c, c_new) for _ in range(i + 2))
                c = c_new
        self.ops = nn.ModuleList(ops)
        self.skip_ops = nn.ModuleList(skip_mods)
        self.reductions = reductions
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [self.stem(x)]                 # nodes[j + 1] is layer j, nodes[0] the stem
        for i, (op, skip_op, skips) in enumerate(zip(self.ops, self.skip_ops, self.skips)):
            out = op(nodes[-1])
            if i >= 1:
                extra = [nodes[s + 1] for s in skips]
                out = skip_op(sum(extra, out) if self.style == 'search' else torch.cat(extra + [out], 1))
            nodes.append(out)
            if str(i) in self.reductions:
                nodes = [fr(n) for fr, n in zip(self.reductions[str(i)], nodes)]
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(nodes[-1], 1), 1)
        return self.classifier(self.dropout(out))


class _SkipChoice(InputChoice):
    """The skip connections of layer ``i``: any subset of ``skip_candidates(i)`` (values -1 = the
    stem, 0 .. i-2), summed."""

    def __init__(self, i: int, label: str):
        self._values = skip_candidates(i)
        super().__init__(i, None, 'sum', label=label)

    def _inner_choice(self, n_candidates, n_chosen, weights, label):
        return CategoricalMultiple(self._values, n_chosen=n_chosen, weights=weights, label=label)


class _EnasMacroSearchable(MutableModule):
    """The space's network. ``style='search'``: the weight-shared child built of NNI's
    primitives (a ``LayerChoice`` of the ops per layer, an any-subset ``InputChoice`` of the
    skips, summed, then BN), so one-shot methods can search it; its modules are laid out as
    :class:`EnasMacroNetwork`'s, whose weights a sample of it therefore loads. ``'final'``: the
    decisions only (the concatenating final network has no weight-shared form). In a fixed
    context (``space.freeze(sample)``) it is :class:`EnasMacroNetwork`."""

    def __init__(self, **kwargs):
        super().__init__()
        self._kwargs = kwargs
        n, num_ops, width = kwargs['num_layers'], kwargs['num_ops'], kwargs['width']
        if kwargs['style'] != 'search':
            for i in range(n):
                lab = _labels(i)
                self.add_mutable(Categorical(OPS[:num_ops], label=lab['op']))
                if i >= 1:
                    self.add_mutable(CategoricalMultiple(skip_candidates(i), n_chosen=None, label=lab['skip']))
            self.style = 'final'
            return
        self.style = 'search'
        self.stem = nn.Sequential(nn.Conv2d(kwargs['in_channels'], width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.pool_at = pool_layers(n)
        self.ops = nn.ModuleList(
            LayerChoice({op: _op(op, width, 'search', kwargs['sep_as_conv']) for op in OPS[:num_ops]},
                        label=_labels(i)['op']) for i in range(n))
        self.skip_choices = nn.ModuleList([nn.Identity()] + [_SkipChoice(i, _labels(i)['skip']) for i in range(1, n)])
        self.skip_ops = nn.ModuleList([nn.Identity()] + [nn.BatchNorm2d(width) for _ in range(1, n)])
        self.reductions = nn.ModuleDict({str(i): nn.ModuleList(FactorizedReduce(width, width) for _ in range(i + 2))
                                         for i in self.pool_at})
        self.dropout = nn.Dropout(kwargs['dropout'])
        self.classifier = nn.Linear(width, kwargs['num_classes'])

    def leaf_mutables(self, is_leaf):
        if self.style != 'search':
            yield from super().leaf_mutables(is_leaf)
            return
        for i, (op, choice) in enumerate(zip(self.ops, self.skip_choices)):  # layer by layer: op, then skips
            yield from op.leaf_mutables(is_leaf)
            if i >= 1:
                yield from choice.leaf_mutables(is_leaf)

    @classmethod
    def create_fixed_module(cls, sample: dict, num_layers: int, num_ops: int, **kwargs) -> nn.Module:
        return EnasMacroNetwork(sample_to_layers(sample, num_layers, num_ops), **kwargs)

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return self.create_fixed_module(sample, **self._kwargs)

    def forward(self, x):
        if self.style != 'search':
            raise NotImplementedError('Freeze the ENAS macro space with a sample before running it')
        nodes = [self.stem(x)]
        for i, (op, choice, skip_op) in enumerate(zip(self.ops, self.skip_choices, self.skip_ops)):
            out = op(nodes[-1])
            if i >= 1:
                extra = choice(nodes[:-1])
                out = skip_op(out if extra is None else out + extra)
            nodes.append(out)
            if str(i) in self.reductions:
                nodes = [fr(m) for fr, m in zip(self.reductions[str(i)], nodes)]
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(nodes[-1], 1), 1)
        return self.classifier(self.dropout(out))


class EnasMacroSpace(ModelSpace):
    """ENAS macro search space (Pham et al., ICML 2018); see the module docstring.

    ``EnasMacroSpace()`` is the CIFAR-10 search space (12 layers, 6 ops, width 36, ``style='search'``).
    ``num_ops=4`` keeps the four conv ops (the official final run's ``--child_num_branches=4``).
    ``space.freeze(sample)`` holds an :class:`EnasMacroNetwork` under ``.net``."""

    def __init__(self, num_layers: int = 12, width: int = 36, num_classes: int = 10, in_channels: int = 3,
                 style: str = 'search', num_ops: int = 6, sep_as_conv: bool = False, dropout: float = 0.):
        super().__init__()
        if num_layers < 3 or min(width, num_classes, in_channels) < 1 or width % 2:
            raise ValueError('need num_layers >= 3, an even width and positive num_classes / in_channels')
        if style not in ('search', 'final'):
            raise ValueError(f"style must be 'search' or 'final', not {style!r}")
        if not 1 <= num_ops <= len(OPS):
            raise ValueError(f'num_ops must be in 1..{len(OPS)}')
        self.net = _EnasMacroSearchable(num_layers=num_layers, num_ops=num_ops, width=width, num_classes=num_classes,
                                        in_channels=in_channels, style=style, sep_as_conv=bool(sep_as_conv),
                                        dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: The official final macro network: ``(kwargs, sample)`` for :class:`EnasMacroSpace`.
ENAS_MACRO_CIFAR10 = (dict(num_layers=24, width=96, style='final', num_ops=4, sep_as_conv=True),
                      arc_to_sample(ENAS_MACRO_CIFAR10_ARC))
