"""Randomly wired networks: a space whose sample is a random-graph generator and its seed.

S. Xie, A. Kirillov, R. Girshick, K. He, "Exploring Randomly Wired Neural Networks for Image
Recognition", ICCV 2019 (Naik's NAS tutorial in ``shared/references``: random graphs come within
about 1 % of NAS cells on ImageNet).

**What a sample is.** Not a network but the *network generator*: a classical random-graph model
and its parameters, and the seed that draws the graphs,

* ``'er'``: Erdős–Rényi, every pair of nodes joined with probability ``er_p``;
* ``'ba'``: Barabási–Albert, each new node attached to ``ba_m`` existing nodes by preferential
  attachment;
* ``'ws'``: Watts–Strogatz, a ring lattice where each node joins its ``ws_k`` nearest neighbours,
  each edge rewired with probability ``ws_p``.

The graphs come from networkx (``erdos_renyi_graph``, ``barabasi_albert_graph``,
``watts_strogatz_graph``). Only the chosen generator's parameters matter: the others are
ignored, so samples that differ only in them are the same network. Each stage draws its own
graph with seed ``graph_seed * 1000 + stage``.

**From graph to network** (Sec. 3 of the paper). The undirected graph becomes a DAG by pointing
every edge from the lower to the higher node index (the generators' own order: BA's nodes in the
order they were added, WS's around the ring). A node *aggregates* its inputs by a weighted sum
with positive learnable weights (``sigmoid(w)``), *transforms* the sum with a ReLU, a 3x3
separable convolution and batch norm, and *distributes* the result to its outputs. Nodes without
inputs take the stage's input (and stride 2, changing the width), and the stage's output is the
plain average of the nodes without outputs.

**The network** follows the paper's small regime (Table 1): ``conv1`` 3x3 conv to ``C/2``,
``conv2`` ReLU-3x3 conv-BN to ``C``, three randomly wired stages of ``nodes`` nodes and widths
``C, 2C, 4C``, then ReLU, 1x1 conv to 1280 with BN, ReLU, global pooling and the classifier. The
two stem convolutions have stride 2 at ImageNet size; ``stem_strides=(1, 1)`` keeps small images
(28x28) from shrinking to nothing.

:data:`PUBLISHED` holds the paper's best generator of each family (Fig. 3: WS(4, 0.75), ER(0.2),
BA(5)), and RandWire-WS in the small regime (C=78, N=32: 5.6 M parameters in Table 2).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

from nni.mutable import Categorical
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = ['RandWireSpace', 'RandWireNetwork', 'random_dag', 'PUBLISHED', 'GENERATORS']

GENERATORS = ('ws', 'er', 'ba')
WS_K = (2, 4, 6, 8)
WS_P = (0.0, 0.25, 0.5, 0.75, 1.0)
ER_P = (0.1, 0.2, 0.3, 0.4)
BA_M = (1, 2, 3, 4, 5, 6)

#: name -> (sample without graph_seed, citation)
PUBLISHED: Dict[str, Tuple[Dict[str, Any], str]] = {
    'randwire_ws': ({'generator': 'ws', 'ws_k': 4, 'ws_p': 0.75, 'er_p': 0.2, 'ba_m': 5},
                    'Xie et al., ICCV 2019, Table 2: RandWire-WS(4, 0.75), small regime C=78, N=32 (5.6 M params)'),
    'randwire_er': ({'generator': 'er', 'ws_k': 4, 'ws_p': 0.75, 'er_p': 0.2, 'ba_m': 5},
                    'Xie et al., ICCV 2019, Fig. 3: ER(0.2), the best ER generator'),
    'randwire_ba': ({'generator': 'ba', 'ws_k': 4, 'ws_p': 0.75, 'er_p': 0.2, 'ba_m': 5},
                    'Xie et al., ICCV 2019, Fig. 3: BA(5), the best BA generator'),
}


def random_dag(generator: str, nodes: int, seed: int, *, ws_k: int = 4, ws_p: float = 0.75,
               er_p: float = 0.2, ba_m: int = 5) -> List[List[int]]:
    """The inputs of every node (a list of lists of lower node indices) of a graph drawn by
    ``generator`` with ``seed``, oriented from lower to higher index."""
    import networkx as nx
    if generator == 'ws':
        if not 2 <= ws_k < nodes or ws_k % 2:
            raise ValueError(f'WS needs an even k with 2 <= k < nodes, got k={ws_k}, nodes={nodes}')
        graph = nx.watts_strogatz_graph(nodes, ws_k, ws_p, seed=seed)
    elif generator == 'er':
        graph = nx.erdos_renyi_graph(nodes, er_p, seed=seed)
    elif generator == 'ba':
        if not 1 <= ba_m < nodes:
            raise ValueError(f'BA needs 1 <= m < nodes, got m={ba_m}, nodes={nodes}')
        graph = nx.barabasi_albert_graph(nodes, ba_m, seed=seed)
    else:
        raise ValueError(f'Unknown generator {generator!r}; expected one of {GENERATORS}')
    inputs: List[List[int]] = [[] for _ in range(nodes)]
    for a, b in graph.edges():
        lo, hi = min(a, b), max(a, b)
        inputs[hi].append(lo)
    return [sorted(i) for i in inputs]


class _SepConvBN(nn.Sequential):
    """ReLU, 3x3 depthwise + 1x1 pointwise convolution, batch norm: the node's transformation."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out))


class _Node(nn.Module):
    def __init__(self, num_inputs: int, c_in: int, c_out: int, stride: int):
        super().__init__()
        # positive weights of the aggregation: sigmoid(0) = 0.5 each at the start
        self.weights = nn.Parameter(torch.zeros(num_inputs)) if num_inputs > 1 else None
        self.op = _SepConvBN(c_in, c_out, stride)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        if self.weights is None:
            x = xs[0]
        else:
            w = torch.sigmoid(self.weights)
            x = sum(w[i] * t for i, t in enumerate(xs))
        return self.op(x)


class _RandomStage(nn.Module):
    """One randomly wired stage: nodes without inputs read the stage input (stride 2), the
    output is the mean of the nodes without outputs."""

    def __init__(self, inputs: Sequence[Sequence[int]], c_in: int, c_out: int):
        super().__init__()
        self.inputs = [list(i) for i in inputs]
        n = len(self.inputs)
        has_output = {j for i in self.inputs for j in i}
        self.sinks = [k for k in range(n) if k not in has_output]
        self.nodes = nn.ModuleList(
            _Node(len(i), c_out, c_out, 1) if i else _Node(1, c_in, c_out, 2) for i in self.inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: List[torch.Tensor] = []
        for node, ins in zip(self.nodes, self.inputs):
            out.append(node([out[j] for j in ins] if ins else [x]))
        return torch.stack([out[k] for k in self.sinks]).mean(dim=0)


class RandWireNetwork(nn.Module):
    """A randomly wired network (small regime of Xie et al.) from the graphs of its three stages."""

    def __init__(self, graphs: Sequence[Sequence[Sequence[int]]], channels: int = 78, num_classes: int = 1000,
                 in_channels: int = 3, stem_strides: Tuple[int, int] = (2, 2), head_channels: int = 1280):
        super().__init__()
        c = channels
        s1, s2 = stem_strides
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, c // 2, 3, s1, 1, bias=False), nn.BatchNorm2d(c // 2))
        self.conv2 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c // 2, c, 3, s2, 1, bias=False),
                                   nn.BatchNorm2d(c))
        widths = [c, c, 2 * c, 4 * c]
        self.stages = nn.ModuleList(_RandomStage(g, widths[i], widths[i + 1]) for i, g in enumerate(graphs))
        self.head = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(widths[len(graphs)], head_channels, 1, bias=False),
                                  nn.BatchNorm2d(head_channels), nn.ReLU(inplace=False),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.head(x))


class _RandWireSearchable(MutableModule):
    """The whole network as one mutable module: the generator, its parameters and the seed,
    frozen by drawing the graphs and building :class:`RandWireNetwork`."""

    def __init__(self, nodes: int, num_seeds: int, **kwargs):
        super().__init__()
        self.add_mutable(Categorical(list(GENERATORS), label='generator'))
        self.add_mutable(Categorical([k for k in WS_K if k < nodes], label='ws_k'))
        self.add_mutable(Categorical(list(WS_P), label='ws_p'))
        self.add_mutable(Categorical(list(ER_P), label='er_p'))
        self.add_mutable(Categorical([m for m in BA_M if m < nodes], label='ba_m'))
        self.add_mutable(Categorical(list(range(num_seeds)), label='graph_seed'))
        self.nodes, self._kwargs = nodes, kwargs

    @staticmethod
    def graphs(sample: Dict[str, Any], nodes: int, stages: int = 3) -> List[List[List[int]]]:
        gen = sample['generator']
        return [random_dag(gen, nodes, int(sample['graph_seed']) * 1000 + s, ws_k=int(sample['ws_k']),
                           ws_p=float(sample['ws_p']), er_p=float(sample['er_p']), ba_m=int(sample['ba_m']))
                for s in range(stages)]

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return RandWireNetwork(self.graphs(sample, self.nodes), **self._kwargs)

    def forward(self, x):
        raise NotImplementedError('Freeze the RandWire space with a sample before running it')


class RandWireSpace(ModelSpace):
    """Randomly wired networks (Xie et al., ICCV 2019). Defaults: the paper's small regime on
    ImageNet (C=78, N=32 nodes per stage, 224x224 RGB, 1000 classes).

    Parameters
    ----------
    channels
        ``C``: the stages are ``C, 2C, 4C`` wide.
    nodes
        ``N``: nodes per randomly wired stage (the paper: 32).
    num_seeds
        The seeds a sample can take (``graph_seed`` in ``0 .. num_seeds - 1``).
    num_classes, in_channels
        The task's.
    stem_strides
        Strides of the two stem convolutions (``(1, 1)`` for 28x28 or 32x32 images).
    head_channels
        Width of the 1x1 convolution before the classifier (the paper: 1280).
    """

    def __init__(self, channels: int = 78, nodes: int = 32, num_seeds: int = 100, num_classes: int = 1000,
                 in_channels: int = 3, stem_strides: Tuple[int, int] = (2, 2), head_channels: int = 1280):
        super().__init__()
        if min(channels, nodes, num_seeds, num_classes, in_channels, head_channels) < 1 or channels < 2:
            raise ValueError('channels (>= 2), nodes, num_seeds, num_classes, in_channels and head_channels '
                             'must be positive')
        if nodes < 3:
            raise ValueError(f'nodes must be at least 3 (WS needs k=2 < nodes), got {nodes}')
        self.net = _RandWireSearchable(nodes, num_seeds, channels=channels, num_classes=num_classes,
                                       in_channels=in_channels, stem_strides=tuple(stem_strides),
                                       head_channels=head_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def published(name: str, graph_seed: int = 0) -> Dict[str, Any]:
    """The sample of a generator of :data:`PUBLISHED` with ``graph_seed``."""
    if name not in PUBLISHED:
        raise KeyError(f'Unknown published generator {name!r}; known: {sorted(PUBLISHED)}')
    return {**PUBLISHED[name][0], 'graph_seed': graph_seed}
