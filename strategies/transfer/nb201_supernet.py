"""Weight-sharing supernet of the NAS-Bench-201 cell for the one-shot strategies.

The skeleton is the one of
:class:`~nni_nasext.search_spaces.nasbench201.NasBench201Space` (3x3 conv stem, three stages
of ``num_cells`` cells, two residual reductions, BN-ReLU, global average pool, linear), built
from the same op constructor, so that a derived sample is a cell of that space. Every edge of
every cell holds all five NB201 ops (:class:`MixedEdge`); all cells share the six edge
decisions, as NB201 stacks one cell.

How an edge mixes its ops is decided per forward pass by a :class:`Mix` per edge label,
computed by the strategy (:mod:`nni_nasext.strategies.oneshot`):

``soft``
    ``Σ_k w_k · op_k(x)`` (DARTS, SNAS, PC-DARTS, FairDARTS: Liu et al. 2019, eq. 2).
``hard``
    one op ``k`` runs; the output is ``h_k · op_k(x) + Σ_{i≠k} h_i`` with ``h`` a one-hot
    vector that carries the gradient of a softmax (straight-through), so every
    architecture weight gets a gradient while one path is computed (GDAS, Dong & Yang
    2019, eq. 5-7).
``single``
    ``op_k(x)`` without any weight (RSPS, Li & Talwalkar 2019; SPOS, Guo et al. 2020).
``pair``
    two sampled ops ``a, b`` with gate weights ``g``: ``g_a · op_a(x) + g_b · op_b(x)``
    (ProxylessNAS's two paths in memory, Cai et al. 2019).

**Partial channels** (PC-DARTS, Xu et al. 2020): with ``partial_k = K > 1`` the ops are
built with ``C / K`` channels; an edge mixes the first ``C / K`` channels of its input,
passes the other channels through unchanged, concatenates and shuffles the channels in
``K`` groups (so a different part goes through the ops in the next cell). **Edge
normalization** (same paper): the strategy may pass one scalar per edge that multiplies
the edge's output before the node sums its inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, EDGES, OPS, make_op, nb201_skeleton

__all__ = ['Mix', 'MixedEdge', 'NB201Supernet', 'channel_shuffle']


@dataclass
class Mix:
    """How one edge mixes its ops in one forward pass (see the module docstring)."""
    kind: str
    weights: Optional[torch.Tensor] = None  # soft / hard: one per op; pair: two gates
    index: Optional[Sequence[int]] = None   # hard / single: [k]; pair: [a, b]

    def __post_init__(self):
        if self.kind not in ('soft', 'hard', 'single', 'pair'):
            raise ValueError(f'unknown mix kind {self.kind!r}')


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedEdge(nn.Module):
    """All ``ops`` of one NB201 edge, with ``channels / partial_k`` channels each."""

    def __init__(self, channels: int, ops: Sequence[str] = OPS, partial_k: int = 1):
        super().__init__()
        if partial_k < 1 or channels % partial_k:
            raise ValueError(f'partial_k must divide the channels, got C={channels}, K={partial_k}')
        self.channels, self.partial_k, self.op_names = channels, partial_k, list(ops)
        self.ops = nn.ModuleList(make_op(op, channels // partial_k) for op in ops)

    def forward(self, x: torch.Tensor, mix: Mix) -> torch.Tensor:
        k = self.partial_k
        xa = x[:, :self.channels // k] if k > 1 else x
        if mix.kind == 'soft':
            out = sum(w * op(xa) for w, op in zip(mix.weights, self.ops))
        elif mix.kind == 'hard':
            j = int(mix.index[0])
            out = mix.weights[j] * self.ops[j](xa)
            out = out + sum(mix.weights[i] for i in range(len(self.ops)) if i != j)  # zero-valued, carries grads
        elif mix.kind == 'single':
            out = self.ops[int(mix.index[0])](xa)
        else:  # pair
            a, b = (int(i) for i in mix.index)
            out = mix.weights[0] * self.ops[a](xa) + mix.weights[1] * self.ops[b](xa)
        if k > 1:
            out = channel_shuffle(torch.cat([out, x[:, self.channels // k:]], dim=1), k)
        return out


class SearchCell(nn.Module):
    """One NB201 cell of mixed edges: node ``j`` sums the edges ``i -> j`` (``i < j``)."""

    def __init__(self, channels: int, ops: Sequence[str] = OPS, partial_k: int = 1):
        super().__init__()
        self.edges = nn.ModuleDict({label: MixedEdge(channels, ops, partial_k) for label in EDGE_LABELS})

    def forward(self, x: torch.Tensor, mixes: Dict[str, Mix],
                edge_scale: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            total = 0
            for i in range(j):
                label = f'{i}_{j}'
                out = self.edges[label](nodes[i], mixes[label])
                total = total + (out * edge_scale[label] if edge_scale is not None else out)
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(nn.Module):
    """The NB201 network with a :class:`SearchCell` in place of every cell.

    ``forward(x, mixes, edge_scale=None)``: ``mixes`` maps each of the six edge labels to a
    :class:`Mix`; ``edge_scale`` optionally maps them to a scalar (edge normalization).
    """

    def __init__(self, num_cells: int = 5, channels: int = 16, num_classes: int = 10, in_channels: int = 3,
                 ops: Sequence[str] = OPS, partial_k: int = 1):
        super().__init__()
        if num_cells < 1 or channels < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError('num_cells, channels, num_classes and in_channels must be positive')
        self.num_cells, self.channels, self.num_classes, self.in_channels = num_cells, channels, num_classes, in_channels
        self.op_names, self.partial_k = list(ops), partial_k
        self.stem, layers, self.head = nb201_skeleton(num_cells, channels, num_classes, in_channels,
                                                      lambda width: SearchCell(width, ops, partial_k))
        self.cells = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mixes: Dict[str, Mix],
                edge_scale: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        missing = [label for label in EDGE_LABELS if label not in mixes]
        if missing:
            raise ValueError(f'no Mix for edges {missing}')
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, mixes, edge_scale) if isinstance(layer, SearchCell) else layer(x)
        return self.head(x)

    def single_path(self, sample: Dict[str, str]) -> Dict[str, Mix]:
        """The mixes that run exactly ``sample``'s ops (one NB201 cell)."""
        return {label: Mix('single', index=[self.op_names.index(sample[label])]) for label in EDGE_LABELS}

    def load_into(self, model: nn.Module, sample: Dict[str, str]) -> nn.Module:
        """Copy the shared weights of ``sample``'s path into ``model``, a network of
        ``NasBench201Space(num_cells, channels, ...).freeze(sample)`` (requires
        ``partial_k == 1``). Returns ``model``."""
        if self.partial_k != 1:
            raise ValueError('only a supernet without partial channels holds full-width ops')
        state = {}
        for name, tensor in self.state_dict().items():
            parts = name.split('.')
            if parts[0] == 'cells' and len(parts) > 4 and parts[2] == 'edges':
                label, op_idx = parts[3], int(parts[5])
                if self.op_names[op_idx] != sample[label]:
                    continue
                state['.'.join(['cells', parts[1], 'edges', label] + parts[6:])] = tensor
            else:
                state[name] = tensor
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.endswith('num_batches_tracked') for k in missing):
            raise RuntimeError(f'weights do not fit the network: missing {missing}, unexpected {unexpected}')
        return model

    def extra_repr(self) -> str:
        return f'num_cells={self.num_cells}, channels={self.channels}, partial_k={self.partial_k}'


assert len(EDGES) == len(EDGE_LABELS) == 6
