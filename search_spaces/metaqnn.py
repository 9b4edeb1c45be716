"""The MetaQNN layer-sequence space of Baker et al., declared with plain NNI mutables.

Reference: B. Baker, O. Gupta, N. Naik and R. Raskar, "Designing Neural Network Architectures
using Reinforcement Learning", ICLR 2017 (Section 4 and Table 1; official code GitHub
``bowenbaker/metaqnn``, ``libs/grammar/state_enumerator.py`` and
``models/cifar10/state_space_parameters.py``, used for the details the paper leaves open).

A network is a sequence of at most ``max_layers`` layers followed by a termination:

* convolution: receptive field ``k`` in {1, 3, 5}, filters in {64, 128, 256, 512}, stride 1,
  ``same`` padding (the representation size R is kept); ReLU;
* max pooling: (receptive field, stride) in {(5, 3), (3, 2), (2, 2)}, no padding
  (R -> floor((R - k) / s) + 1);
* fully connected: units in {512, 256, 128}; ReLU;
* termination: ``softmax`` (flatten -> linear classifier) or ``gap`` (global average pooling ->
  linear classifier), the paper's two termination types.

Transition rules (the official enumerator's, restated):

1. conv after start / conv / pool, only if ``k < R``;
2. pool only after a conv (no pooling first, no pool after pool), only if ``k < R``;
3. FC after start / conv / pool only if ``R <= fc_max_size`` (7 = the representation-size buckets
   (8, 4] and (4, 1] of the official CIFAR-10 config); FC after FC only while fewer than
   ``max_fc`` (2) FC layers were placed and with no more units than the previous FC;
   nothing but FC or termination after an FC;
4. ``gap`` after start / conv / pool; termination (``softmax``) is allowed anywhere, and forced
   after ``max_layers`` layers.

Encoding: one ``Categorical`` per position, ``layer0`` .. ``layer{max_layers-1}``, over the tokens
``conv_k{k}_f{f}``, ``pool_k{k}_s{s}``, ``fc_{u}``, ``gap``, ``softmax`` (20 with the paper's sets).
Most of the 20**max_layers encodings break a rule somewhere, so by default a sample is
*canonicalised* (:func:`decode`): positions are read in order, a token that breaks a rule in the
current state is skipped (it places no layer), the first termination token ends the network
(later positions are ignored; a ``gap`` right after an FC terminates as ``softmax``), and the
network terminates with ``softmax`` after the last position. Every sample is thus a valid
network and every valid network is reachable (write its layers in order); :func:`canonical_sample`
gives the one encoding per network that deduplicates. Rejection would make uniform sampling and
mutation-based searchers useless here (a random 18-position sample is almost never valid);
``strict=True`` rejects instead: freezing a sample with a rule-breaking token raises
:class:`InvalidSequenceError`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from nni.mutable import Categorical
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = ['CONV_SIZES', 'CONV_FILTERS', 'POOLS', 'FC_UNITS', 'MAX_FC', 'Layer', 'InvalidSequenceError',
           'MetaQNNRules', 'MetaQNNSpace', 'MetaQNNNetwork', 'decode', 'canonical_sample', 'tokens']

CONV_SIZES: Tuple[int, ...] = (1, 3, 5)
CONV_FILTERS: Tuple[int, ...] = (64, 128, 256, 512)
POOLS: Tuple[Tuple[int, int], ...] = ((5, 3), (3, 2), (2, 2))
FC_UNITS: Tuple[int, ...] = (512, 256, 128)
MAX_FC = 2
TERMINATIONS = ('gap', 'softmax')


class InvalidSequenceError(ValueError):
    """A MetaQNN token that breaks a transition rule (only raised with ``strict=True``)."""


@dataclasses.dataclass(frozen=True)
class Layer:
    kind: str                 # 'conv' | 'pool' | 'fc' | 'gap' | 'softmax'
    size: int = 0             # receptive field (conv, pool) or units (fc)
    filters: int = 0          # conv
    stride: int = 1           # pool (conv stride is 1)
    rep_in: int = 0           # representation size entering the layer (0 after an FC)

    @property
    def token(self) -> str:
        if self.kind == 'conv':
            return f'conv_k{self.size}_f{self.filters}'
        if self.kind == 'pool':
            return f'pool_k{self.size}_s{self.stride}'
        if self.kind == 'fc':
            return f'fc_{self.size}'
        return self.kind


@dataclasses.dataclass(frozen=True)
class MetaQNNRules:
    """Parameter sets and limits of the space (defaults: the paper's / official CIFAR-10 config)."""
    max_layers: int = 18
    image_size: int = 32
    conv_sizes: Tuple[int, ...] = CONV_SIZES
    conv_filters: Tuple[int, ...] = CONV_FILTERS
    pools: Tuple[Tuple[int, int], ...] = POOLS
    fc_units: Tuple[int, ...] = FC_UNITS
    max_fc: int = MAX_FC
    fc_max_size: int = 7

    def tokens(self) -> List[str]:
        out = [f'conv_k{k}_f{f}' for k in self.conv_sizes for f in self.conv_filters]
        out += [f'pool_k{k}_s{s}' for k, s in self.pools]
        out += [f'fc_{u}' for u in self.fc_units]
        return out + list(TERMINATIONS)

    def parse(self, token: str) -> Layer:
        if token in TERMINATIONS:
            return Layer(token)
        try:
            if token.startswith('conv_k'):
                k, f = token[len('conv_k'):].split('_f')
                if int(k) in self.conv_sizes and int(f) in self.conv_filters:
                    return Layer('conv', size=int(k), filters=int(f))
            elif token.startswith('pool_k'):
                k, s = token[len('pool_k'):].split('_s')
                if (int(k), int(s)) in self.pools:
                    return Layer('pool', size=int(k), stride=int(s))
            elif token.startswith('fc_'):
                if int(token[3:]) in self.fc_units:
                    return Layer('fc', size=int(token[3:]))
        except (ValueError, AttributeError):
            pass
        raise ValueError(f'Unknown MetaQNN token {token!r}; expected one of {self.tokens()}')

    def why_not(self, prev: Optional[Layer], rep: int, num_fc: int, layer: Layer) -> Optional[str]:
        """Reason ``layer`` may not follow ``prev`` (None = start) at representation size
        ``rep`` after ``num_fc`` FC layers, or None when it may."""
        prev_kind = prev.kind if prev is not None else 'start'
        if layer.kind == 'softmax':
            return None
        if layer.kind == 'conv':
            if prev_kind == 'fc':
                return 'no convolution after a fully-connected layer'
            if layer.size >= rep:
                return f'conv receptive field {layer.size} must be smaller than the representation size {rep}'
            return None
        if layer.kind == 'pool':
            if prev_kind != 'conv':
                return 'pooling only follows a convolution (none first, none after pooling or FC)'
            if layer.size >= rep:
                return f'pool receptive field {layer.size} must be smaller than the representation size {rep}'
            return None
        if layer.kind == 'fc':
            if prev_kind == 'fc':
                if num_fc >= self.max_fc:
                    return f'at most {self.max_fc} consecutive fully-connected layers'
                if layer.size > prev.size:
                    return f'FC units must not increase ({prev.size} -> {layer.size})'
                return None
            if rep > self.fc_max_size:
                return f'FC only once the representation size is <= {self.fc_max_size} (it is {rep})'
            return None
        if layer.kind == 'gap':
            return 'global average pooling does not follow a fully-connected layer' if prev_kind == 'fc' else None
        raise ValueError(f'Unknown layer kind {layer.kind!r}')


def tokens(rules: Optional[MetaQNNRules] = None) -> List[str]:
    return (rules or MetaQNNRules()).tokens()


def decode(sample: Mapping[str, Any], rules: Optional[MetaQNNRules] = None, strict: bool = False) -> List[Layer]:
    """The network of a sample: its layers in order, the last one the termination
    (``softmax`` or ``gap``). Canonicalises (see module docstring) unless ``strict``."""
    rules = rules or MetaQNNRules()
    layers: List[Layer] = []
    prev: Optional[Layer] = None
    rep, num_fc = rules.image_size, 0
    for pos in range(rules.max_layers):
        label = f'layer{pos}'
        if label not in sample:
            raise ValueError(f'MetaQNN sample misses label {label!r}')
        layer = rules.parse(sample[label])
        if layer.kind == 'gap' and prev is not None and prev.kind == 'fc' and not strict:
            layer = Layer('softmax')
        problem = rules.why_not(prev, rep, num_fc, layer)
        if problem:
            if strict:
                raise InvalidSequenceError(f'{label}={sample[label]!r} after '
                                           f'{prev.token if prev else "the input"}: {problem}')
            continue
        if layer.kind in TERMINATIONS:
            layers.append(dataclasses.replace(layer, rep_in=rep if prev is None or prev.kind != 'fc' else 0))
            return layers
        layer = dataclasses.replace(layer, rep_in=rep if prev is None or prev.kind != 'fc' else 0)
        layers.append(layer)
        if layer.kind == 'pool':
            rep = (rep - layer.size) // layer.stride + 1
        elif layer.kind == 'fc':
            num_fc += 1
        prev = layer
    layers.append(Layer('softmax', rep_in=0 if prev is not None and prev.kind == 'fc' else rep))
    return layers


def canonical_sample(sample: Mapping[str, Any], rules: Optional[MetaQNNRules] = None) -> Dict[str, str]:
    """One encoding per network: the decoded layers at positions 0.., then the termination,
    then ``softmax`` (when the network fills all positions the termination is implicit)."""
    rules = rules or MetaQNNRules()
    toks = [l.token for l in decode(sample, rules)]
    if len(toks) > rules.max_layers:  # all positions hold layers; softmax is implicit
        toks = toks[:rules.max_layers]
    toks += ['softmax'] * (rules.max_layers - len(toks))
    return {f'layer{i}': t for i, t in enumerate(toks)}


class MetaQNNNetwork(nn.Module):
    """The fixed network of decoded layers (conv and FC followed by ReLU; optional BN)."""

    def __init__(self, layers: Sequence[Layer], num_classes: int = 10, in_channels: int = 3,
                 image_size: int = 32, batch_norm: bool = False):
        super().__init__()
        self.layer_list = list(layers)
        mods: List[nn.Module] = []
        c, rep, feats = in_channels, image_size, None  # feats: width after an FC
        for l in self.layer_list:
            if l.kind == 'conv':
                mods += [nn.Conv2d(c, l.filters, l.size, padding=l.size // 2, bias=not batch_norm)]
                mods += [nn.BatchNorm2d(l.filters)] if batch_norm else []
                mods += [nn.ReLU()]
                c = l.filters
            elif l.kind == 'pool':
                mods.append(nn.MaxPool2d(l.size, stride=l.stride))
                rep = (rep - l.size) // l.stride + 1
            elif l.kind == 'fc':
                n_in = feats if feats is not None else c * rep * rep
                if feats is None:
                    mods.append(nn.Flatten())
                mods += [nn.Linear(n_in, l.size), nn.ReLU()]
                feats = l.size
            elif l.kind == 'gap':
                mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
            else:  # softmax: the classifier (the softmax itself is in the loss)
                n_in = feats if feats is not None else c * rep * rep
                if feats is None:
                    mods.append(nn.Flatten())
                mods.append(nn.Linear(n_in, num_classes))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _MetaQNNSearchable(MutableModule):
    def __init__(self, rules: MetaQNNRules, strict: bool, num_classes: int, in_channels: int, batch_norm: bool):
        super().__init__()
        self._kwargs = dict(rules=rules, strict=strict, num_classes=num_classes, in_channels=in_channels,
                            batch_norm=batch_norm)
        for pos in range(rules.max_layers):
            self.add_mutable(Categorical(rules.tokens(), label=f'layer{pos}'))

    @classmethod
    def create_fixed_module(cls, sample: dict, rules: MetaQNNRules, strict: bool, num_classes: int,
                            in_channels: int, batch_norm: bool) -> nn.Module:
        return MetaQNNNetwork(decode(sample, rules, strict), num_classes=num_classes, in_channels=in_channels,
                              image_size=rules.image_size, batch_norm=batch_norm)

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return self.create_fixed_module(sample, **self._kwargs)

    def forward(self, x):
        raise NotImplementedError('Freeze the MetaQNN space with a sample before running it')


class MetaQNNSpace(ModelSpace):
    """MetaQNN layer space (Baker et al., ICLR 2017); see the module docstring.

    Defaults: the paper's parameter sets, 32x32 RGB images, 10 classes, and ``max_layers=18``
    (``layer_limit`` of the official CIFAR-10 config). Inputs must be ``image_size`` square
    (the FC and ``softmax`` layers are sized from it). ``batch_norm`` is off as in the official
    CIFAR-10 config."""

    def __init__(self, max_layers: int = 18, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                 strict: bool = False, batch_norm: bool = False, conv_sizes: Sequence[int] = CONV_SIZES,
                 conv_filters: Sequence[int] = CONV_FILTERS, pools: Sequence[Tuple[int, int]] = POOLS,
                 fc_units: Sequence[int] = FC_UNITS, max_fc: int = MAX_FC, fc_max_size: int = 7):
        super().__init__()
        if min(max_layers, num_classes, in_channels, image_size) < 1:
            raise ValueError('max_layers, num_classes, in_channels and image_size must be positive')
        self.rules = MetaQNNRules(max_layers=max_layers, image_size=image_size, conv_sizes=tuple(conv_sizes),
                                  conv_filters=tuple(conv_filters), pools=tuple(tuple(p) for p in pools),
                                  fc_units=tuple(fc_units), max_fc=max_fc, fc_max_size=fc_max_size)
        self.net = _MetaQNNSearchable(self.rules, bool(strict), num_classes, in_channels, bool(batch_norm))

    def decode(self, sample: Mapping[str, Any]) -> List[Layer]:
        return decode(sample, self.rules, self.net._kwargs['strict'])

    def canonical_sample(self, sample: Mapping[str, Any]) -> Dict[str, str]:
        return canonical_sample(sample, self.rules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
