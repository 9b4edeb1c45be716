"""The NAS-Bench-201 search space, declared with NNI's model-space primitives.

Reference: X. Dong and Y. Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020. The cell is a DAG of 4 nodes; node ``j`` is the sum over
``i < j`` of ``op_{i->j}(node_i)``; each of the 6 edges picks one of 5 operations. The macro
skeleton is: 3x3 conv stem (C channels) -> N cells -> residual reduction block (2C) -> N
cells -> residual reduction block (4C) -> N cells -> BN-ReLU -> global average pool -> linear.
Every cell of the network shares the same 6 decisions (one cell, stacked 3N times), so the
space holds 5**6 = 15,625 architectures.

A *sample* is NNI's freeze format: ``{"0_1": op, "0_2": op, "1_2": op, "0_3": op, "1_3": op,
"2_3": op}`` where ``"i_j"`` is the edge from node ``i`` to node ``j`` (NNI's own
``NasBench201Benchmark`` uses the same labels). The NB201 cell string writes the same edges
grouped by target node: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. The NB201 *index* is the
position of a cell in the benchmark's release order, which is not a formula of the ops: it
comes with the benchmark tables (see :mod:`nni_nasext.benchmarks`).

NNI's hub also ships a ``NasBench201`` space (``nni.nas.hub.pytorch``); this one is written
anew so that the input channels, the stem and the width/depth are arguments (the quickstart
space runs it on 1-channel 8x8 digits), and the op names are NB201's own.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableModule

from nni_nasext.nb201_cells import (  # noqa: F401 - re-exported
    EDGE_LABELS, EDGES, OPS, all_samples, cellstr_to_sample, distinct_random_samples, ops_to_sample, sample_to_cellstr,
    sample_to_ops,
)

__all__ = [
    'OPS', 'EDGES', 'EDGE_LABELS', 'NasBench201Space', 'QuickstartSpace', 'sample_to_cellstr', 'cellstr_to_sample',
    'all_samples', 'distinct_random_samples', 'sample_to_ops', 'ops_to_sample',
]



class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BatchNorm, NB201's convolution unit."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation: an edge that carries nothing (zeros of the input's shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.)


def make_op(name: str, channels: int) -> nn.Module:
    if name == 'none':
        return Zero()
    if name == 'skip_connect':
        return nn.Identity()
    if name == 'nor_conv_1x1':
        return ReLUConvBN(channels, channels, 1)
    if name == 'nor_conv_3x3':
        return ReLUConvBN(channels, channels, 3)
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f'Unknown NB201 operation {name!r}; expected one of {OPS}')


class ResidualReduction(nn.Module):
    """NB201's reduction block: a stride-2 ResNet basic block that doubles the width."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def nb201_skeleton(num_cells: int, channels: int, num_classes: int, in_channels: int,
                   make_cell: Callable[[int], nn.Module]) -> Tuple[nn.Module, List[nn.Module], nn.Module]:
    """``(stem, layers, head)`` of the NB201 macro skeleton: a 3x3 conv stem, three stages of
    ``num_cells`` cells (``make_cell(width)``) joined by two residual reductions that double the
    width, and BN-ReLU, global average pooling and a linear classifier."""
    stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    layers: List[nn.Module] = []
    width = channels
    for stage in range(3):
        if stage > 0:
            layers.append(ResidualReduction(width, width * 2))
            width *= 2
        layers.extend(make_cell(width) for _ in range(num_cells))
    head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))
    return stem, layers, head


class NB201Cell(nn.Module):
    """The searchable cell. Its six ``LayerChoice`` carry the edge labels, so every cell
    built in one space shares the same six decisions (NNI dedups equal labels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict()
        for (i, j), label in zip(EDGES, EDGE_LABELS):
            self.edges[label] = LayerChoice({op: make_op(op, channels) for op in OPS}, label=label)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[f'{i}_{j}'](nodes[i]) for i in range(j)))
        return nodes[-1]


class NasBench201Space(ModelSpace):
    """NB201 network with ``num_cells`` (N) cells per stage and width ``channels`` (C).

    The paper's configuration is ``NasBench201Space(num_cells=5, channels=16)`` on 32x32
    RGB inputs with 10 (CIFAR-10), 100 (CIFAR-100) or 120 (ImageNet16-120) classes.
    """

    def __init__(self, num_cells: int = 5, channels: int = 16, num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        if num_cells < 1 or channels < 1:
            raise ValueError(f'num_cells and channels must be positive, got N={num_cells}, C={channels}')
        self.num_cells, self.channels = num_cells, channels
        self.stem, layers, self.head = nb201_skeleton(num_cells, channels, num_classes, in_channels, NB201Cell)
        self.cells = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        """NNI's ``freeze`` (the same network: module tree, names, weights and attributes), about
        25x faster: one ``deepcopy`` of the space whose memo maps every ``LayerChoice`` to a copy
        of its chosen candidate, instead of NNI's recursive freeze, which copies every candidate
        (0.37 s a network at N=5, C=16: it dominated cheap evaluations such as zero-cost
        proxies). A subclass with any other mutable module goes through NNI's freeze."""
        cached = '_mutables' in self.__dict__  # NNI's cache; check_contains creates it
        problem = self.check_contains(sample)
        if problem is not None:
            raise problem
        layer_choices = []
        for module in self.modules():
            if isinstance(module, LayerChoice):
                layer_choices.append(module)
            elif module is not self and isinstance(module, MutableModule):
                return super().freeze(sample)
        memo: Dict[int, Any] = {}
        for choice in layer_choices:
            memo[id(choice)] = copy.deepcopy(choice[sample[choice.label]], memo)
        frozen = copy.deepcopy(self, memo)
        if not cached:  # as NNI's freeze, which copies the space's attributes as they were
            frozen.__dict__.pop('_mutables', None)
        return frozen


class QuickstartSpace(NasBench201Space):
    """The NB201 cell at small width and depth (N=1, C=8) on 1-channel 8x8 images
    (scikit-learn's digits): the space of the quickstart experiment. Same 15,625 cells."""

    def __init__(self, num_classes: int = 10, num_cells: int = 1, channels: int = 8):
        super().__init__(num_cells=num_cells, channels=channels, num_classes=num_classes, in_channels=1)


# ----------------------------------------------------------------------------- bijections
