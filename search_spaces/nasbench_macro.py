"""The NAS-Bench-Macro search space, declared with NNI's model-space primitives.

Reference: X. Su, T. Huang, Y. Li, S. You, F. Wang, C. Qian, C. Zhang and C. Xu, "Prioritized
Architecture Sampling with Monto-Carlo [sic] Tree Search", CVPR 2021 (benchmark released as
NAS-Bench-Macro, GitHub ``xiusu/NAS-Bench-Macro``). The network below follows the paper's
training code (``train/model.py`` and ``train/utils.py`` of that repository), so that a frozen
sample has exactly the parameter count and FLOPs that the benchmark table lists.

Skeleton (CIFAR-10, 32x32 RGB)::

    stem:   conv3x3(3 -> 32) - BN - ReLU                                   32x32
    stage1: layer0 (stride 2, 32 -> 64),   layer1                          16x16
    stage2: layer2 (stride 2, 64 -> 128),  layer3, layer4                   8x8
    stage3: layer5 (stride 2, 128 -> 256), layer6, layer7                   4x4
    head:   conv1x1(256 -> 1280) - BN - ReLU - global avg pool - linear(1280 -> classes)

(stage sizes ``(2, 3, 3)``; only the first layer of a stage has stride 2). Each of the 8
searchable layers is a ``LayerChoice`` labelled ``layer0`` .. ``layer7`` over, in the
benchmark's encoding order:

====  ============  ===================================================================
code  op name       block
====  ============  ===================================================================
0     ``identity``  identity; at the first layer of a stage (stride 2, channels doubled)
                    it is a projection: conv1x1 stride 2 - BN (no ReLU)
1     ``mb_k3_e3``  MobileNetV2 inverted residual, kernel 3, expansion 3
2     ``mb_k5_e6``  MobileNetV2 inverted residual, kernel 5, expansion 6
====  ============  ===================================================================

An inverted residual is conv1x1 (C_in -> t*C_in) - BN - ReLU - depthwise kxk (stride s) - BN -
ReLU - conv1x1 (-> C_out) - BN, plus the input when ``s == 1`` and ``C_in == C_out``.

A benchmark *key* is the 8 codes as a string, layer 0 first (``"02012100"``); a *sample* is
NNI's freeze format ``{"layer0": "identity", "layer1": "mb_k5_e6", ...}``. Every one of the
3**8 = 6,561 keys has a record in the table, but only 3,969 networks were trained: inside a
stage, an identity that is not the stage's first layer is a true identity, so moving it to the
end of the stage gives the same function; the benchmark trains the form with the identities
moved to the end (:func:`canonical_key`) and copies its record to the other keys.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace

from nni_nasext.nasbench_macro_arch import (  # noqa: F401 - re-exported
    LABELS, NUM_LAYERS, OPS, STAGES, all_keys, canonical_key, key_to_sample, sample_to_key)

__all__ = [
    'OPS', 'LABELS', 'STAGES', 'NUM_LAYERS', 'NasBenchMacroSpace', 'MacroIdentity', 'InvertedResidual',
    'key_to_sample', 'sample_to_key', 'canonical_key', 'all_keys', 'count_flops',
]

#: (expansion ratio, kernel size) of the two MobileNetV2 blocks.
_MB_CONFIG = {'mb_k3_e3': (3, 3), 'mb_k5_e6': (6, 5)}


class MacroIdentity(nn.Module):
    """``identity``: nothing at stride 1 and equal width; conv1x1 (stride) - BN otherwise."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        if stride != 1 or c_in != c_out:
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.proj = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., CVPR 2018) as NAS-Bench-Macro uses it (ReLU, no SE)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, kernel: int):
        super().__init__()
        hidden = c_in * expansion
        self.residual = stride == 1 and c_in == c_out
        self.block = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if name == 'identity':
        return MacroIdentity(c_in, c_out, stride)
    if name in _MB_CONFIG:
        expansion, kernel = _MB_CONFIG[name]
        return InvertedResidual(c_in, c_out, stride, expansion, kernel)
    raise ValueError(f'Unknown NAS-Bench-Macro operation {name!r}; expected one of {OPS}')


class NasBenchMacroSpace(ModelSpace):
    """NAS-Bench-Macro network (Su et al., CVPR 2021): 8 layers x 3 blocks = 6,561 architectures.

    The defaults are the benchmark's configuration (stem width 32, head width 1280, 32x32 RGB
    inputs, 10 classes); with them ``count_parameters(space.freeze(key_to_sample(k)))`` equals
    the table's ``params`` (a plain count, not millions) for every key ``k``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, init_channels: int = 32,
                 head_channels: int = 1280):
        super().__init__()
        if min(num_classes, in_channels, init_channels, head_channels) < 1:
            raise ValueError('num_classes, in_channels, init_channels and head_channels must be positive')
        self.stem = nn.Sequential(nn.Conv2d(in_channels, init_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(init_channels), nn.ReLU(inplace=True))
        layers: List[nn.Module] = []
        width = init_channels
        index = 0
        for depth in STAGES:
            for i in range(depth):
                c_in, stride = width, (2 if i == 0 else 1)
                if i == 0:
                    width *= 2
                label = LABELS[index]
                layers.append(LayerChoice({op: make_op(op, c_in, width, stride) for op in OPS}, label=label))
                index += 1
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(width, head_channels, 1, bias=False), nn.BatchNorm2d(head_channels), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(self.stem(x))))


def count_flops(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of the convolutions and linear layers for one image, the FLOPs
    convention of NAS-Bench-Macro's table (batch norm, activations, pooling and additions are
    not counted). Runs one forward pass of ``torch.zeros(input_size)`` with hooks."""
    total = [0]

    def conv_hook(m: nn.Conv2d, inputs, output):
        total[0] += (output.shape[1] * output.shape[2] * output.shape[3] * (m.in_channels // m.groups)
                     * m.kernel_size[0] * m.kernel_size[1])

    def linear_hook(m: nn.Linear, inputs, output):
        total[0] += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total[0])
