"""The NAS-RL global CNN space of Zoph & Le, declared with plain NNI mutables.

Reference: B. Zoph and Q. V. Le, "Neural Architecture Search with Reinforcement Learning",
ICLR 2017 (Sections 3.1, 3.3 and 4.1). The controller emits, for each of ``num_layers`` (15 in
the CIFAR-10 experiments) convolutional layers: a filter height and a filter width in
{1, 3, 5, 7}, a number of filters in {24, 36, 48, 64}, and, in the experiments that predict
strides, a stride height and a stride width in {1, 2, 3} (Figure 2; stride 1 otherwise). With
skip connections (Section 3.3, Figure 5) layer ``N`` has an *anchor point* with ``N - 1``
sigmoids choosing which earlier layers feed it, and the compilation rules are:

* the chosen input layers are concatenated in depth;
* a layer with no chosen input takes the image;
* inputs of different spatial sizes are zero-padded to the largest (here centred: the extra row /
  column goes to the bottom / right);
* the outputs of all layers that feed no later layer are concatenated (padded likewise) and
  go to the classifier.

Each layer is conv (``same`` padding, so the output is ``ceil(H / stride)``) - BN - ReLU; the
classifier is global average pooling then a linear layer (the paper does not spell out its head).

Encoding: ``layer{i}_fh``, ``layer{i}_fw``, ``layer{i}_filters`` (and ``layer{i}_stride_h``,
``layer{i}_stride_w`` when ``strides=True``) are ``Categorical``; ``layer{i}_inputs`` (``i >= 1``,
when ``skips=True``) is a ``CategoricalMultiple`` over the earlier layers ``0 .. i-1`` with any
number chosen (NNI's ``InputChoice(n_chosen=None)`` decision). ``skips=False`` is a plain chain.
``link_previous=True`` (not in the paper) always connects layer ``i - 1`` and lets the anchor
choose only among ``0 .. i-2``. Every sample is a valid network, so nothing is refused at freeze.
Size: ``64**L * 2**(L(L-1)/2)`` (times ``9**L`` with strides): 10**58.7 for L=15, 10**73.0 with strides.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nni.mutable import Categorical, CategoricalMultiple
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = ['FILTER_SIZES', 'NUM_FILTERS', 'STRIDES', 'NasRLSpace', 'NasRLNetwork', 'sample_to_layers',
           'log10_size', 'pad_to']

FILTER_SIZES: List[int] = [1, 3, 5, 7]
NUM_FILTERS: List[int] = [24, 36, 48, 64]
STRIDES: List[int] = [1, 2, 3]


def _labels(i: int) -> Dict[str, str]:
    return {k: f'layer{i}_{k}' for k in ('fh', 'fw', 'filters', 'stride_h', 'stride_w', 'inputs')}


def _candidates(i: int, link_previous: bool) -> List[int]:
    return list(range(i - 1)) if link_previous else list(range(i))


def sample_to_layers(sample: Mapping[str, Any], num_layers: int, strides: bool = False, skips: bool = True,
                     link_previous: bool = False) -> List[Dict[str, Any]]:
    """Decode a sample into ``[{'fh', 'fw', 'filters', 'stride': (sh, sw), 'inputs': [...]}, ...]``;
    ``inputs`` lists earlier layer indices, ``[]`` meaning the image. Raises ``ValueError`` on a
    missing label or a value outside the space."""
    def get(label, allowed):
        if label not in sample:
            raise ValueError(f'NAS-RL sample misses label {label!r}')
        if sample[label] not in allowed:
            raise ValueError(f'NAS-RL sample value {label}={sample[label]!r} is not one of {allowed}')
        return sample[label]

    layers = []
    for i in range(num_layers):
        lab = _labels(i)
        layer = {'fh': get(lab['fh'], FILTER_SIZES), 'fw': get(lab['fw'], FILTER_SIZES),
                 'filters': get(lab['filters'], NUM_FILTERS)}
        layer['stride'] = (get(lab['stride_h'], STRIDES), get(lab['stride_w'], STRIDES)) if strides else (1, 1)
        if i == 0:
            inputs: List[int] = []
        elif not skips:
            inputs = [i - 1]
        else:
            cands = _candidates(i, link_previous)
            chosen = list(sample.get(lab['inputs'], [])) if cands else []
            if cands and lab['inputs'] not in sample:
                raise ValueError(f'NAS-RL sample misses label {lab["inputs"]!r}')
            if any(c not in cands for c in chosen) or len(set(chosen)) != len(chosen):
                raise ValueError(f'{lab["inputs"]}={chosen!r} must be distinct layers among {cands}')
            inputs = sorted(set(chosen) | ({i - 1} if link_previous else set()))
        layer['inputs'] = inputs
        layers.append(layer)
    return layers


def log10_size(num_layers: int = 15, strides: bool = False, skips: bool = True, link_previous: bool = False) -> float:
    per_layer = math.log10(64) + (math.log10(9) if strides else 0.)
    edges = sum(len(_candidates(i, link_previous)) for i in range(1, num_layers)) if skips else 0
    return num_layers * per_layer + edges * math.log10(2)


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad a feature map to ``height x width`` (centred; odd extra to bottom/right)."""
    dh, dw = height - x.shape[2], width - x.shape[3]
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def _concat(tensors: List[torch.Tensor]) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0]
    h = max(t.shape[2] for t in tensors)
    w = max(t.shape[3] for t in tensors)
    return torch.cat([pad_to(t, h, w) for t in tensors], dim=1)


class NasRLNetwork(nn.Module):
    """The fixed network of decoded layers (see :func:`sample_to_layers`)."""

    def __init__(self, layers: List[Dict[str, Any]], num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.layer_specs = [dict(l) for l in layers]
        self.inputs: List[List[int]] = [list(l['inputs']) for l in layers]
        channels: List[int] = []
        convs = []
        for l in layers:
            c_in = sum(channels[j] for j in l['inputs']) if l['inputs'] else in_channels
            fh, fw = l['fh'], l['fw']
            convs.append(nn.Sequential(
                nn.Conv2d(c_in, l['filters'], (fh, fw), stride=tuple(l['stride']), padding=(fh // 2, fw // 2),
                          bias=False),
                nn.BatchNorm2d(l['filters']), nn.ReLU()))
            channels.append(l['filters'])
        self.layers = nn.ModuleList(convs)
        used = {j for ins in self.inputs for j in ins}
        self.outputs = [i for i in range(len(layers)) if i not in used]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(sum(channels[i] for i in self.outputs), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: List[torch.Tensor] = []
        for layer, ins in zip(self.layers, self.inputs):
            outs.append(layer(_concat([outs[j] for j in ins]) if ins else x))
        final = _concat([outs[i] for i in self.outputs])
        return self.classifier(torch.flatten(self.pool(final), 1))


class _NasRLSearchable(MutableModule):
    def __init__(self, num_layers: int, strides: bool, skips: bool, link_previous: bool,
                 num_classes: int, in_channels: int):
        super().__init__()
        self._kwargs = dict(num_layers=num_layers, strides=strides, skips=skips, link_previous=link_previous,
                            num_classes=num_classes, in_channels=in_channels)
        for i in range(num_layers):
            lab = _labels(i)
            self.add_mutable(Categorical(list(FILTER_SIZES), label=lab['fh']))
            self.add_mutable(Categorical(list(FILTER_SIZES), label=lab['fw']))
            self.add_mutable(Categorical(list(NUM_FILTERS), label=lab['filters']))
            if strides:
                self.add_mutable(Categorical(list(STRIDES), label=lab['stride_h']))
                self.add_mutable(Categorical(list(STRIDES), label=lab['stride_w']))
            if skips and _candidates(i, link_previous):
                self.add_mutable(CategoricalMultiple(_candidates(i, link_previous), n_chosen=None,
                                                     label=lab['inputs']))

    @classmethod
    def create_fixed_module(cls, sample: dict, num_layers: int, strides: bool, skips: bool, link_previous: bool,
                            num_classes: int, in_channels: int) -> nn.Module:
        layers = sample_to_layers(sample, num_layers, strides, skips, link_previous)
        return NasRLNetwork(layers, num_classes=num_classes, in_channels=in_channels)

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return self.create_fixed_module(sample, **self._kwargs)

    def forward(self, x):
        raise NotImplementedError('Freeze the NAS-RL space with a sample before running it')


class NasRLSpace(ModelSpace):
    """NAS-RL global CNN space (Zoph & Le, ICLR 2017); see the module docstring.

    ``NasRLSpace()`` is the paper's 15-layer CIFAR-10 space with skip connections and stride 1;
    ``strides=True`` adds the stride predictions. ``space.freeze(sample)`` holds a
    :class:`NasRLNetwork` under ``.net``."""

    def __init__(self, num_layers: int = 15, strides: bool = False, skips: bool = True, num_classes: int = 10,
                 in_channels: int = 3, link_previous: bool = False):
        super().__init__()
        if min(num_layers, num_classes, in_channels) < 1:
            raise ValueError('num_layers, num_classes and in_channels must be positive')
        self.net = _NasRLSearchable(num_layers, bool(strides), bool(skips), bool(link_previous),
                                    num_classes, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
