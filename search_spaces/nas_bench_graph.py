"""The NAS-Bench-Graph GNN search space, declared with NNI's model-space primitives.

Reference: Y. Qin, Z. Zhang, X. Wang, Z. Zhang and W. Zhu, "NAS-Bench-Graph: Benchmarking Graph
Neural Architecture Search", NeurIPS 2022 Datasets and Benchmarks Track (arXiv:2206.09166;
package ``nas-bench-graph`` on PyPI, GitHub ``THUMNLab/NAS-Bench-Graph``).

The space (Section 3.1 of the paper): a DAG of one input node (node 0, the pre-processed node
features) and 4 computing nodes. Computing node ``i`` (1..4) reads exactly one earlier node
``input_i`` in ``0..i-1`` (node 1 can only read node 0, so it has no decision) and applies one
operation ``op_i``; every *leaf* (a computing node no later node reads) feeds the output. The
9 operations, in the benchmark's order:

=========  ===============================================================================
name       operation (our pure-PyTorch implementation, ``edge_index`` message passing)
=========  ===============================================================================
``gat``    GAT, 2 heads concatenated (Velickovic et al., ICLR 2018)
``gcn``    GCN, symmetric normalisation with self loops (Kipf & Welling, ICLR 2017)
``gin``    GIN, eps = 0, 2-layer MLP (Xu et al., ICLR 2019)
``cheb``   Chebyshev convolution, K = 2, lambda_max = 2 (Defferrard et al., NeurIPS 2016)
``sage``   GraphSAGE, mean aggregator (Hamilton et al., NeurIPS 2017)
``arma``   ARMA, one stack, one layer (Bianchi et al., TPAMI 2021)
``graph``  k-GNN's GraphConv, sum aggregator (Morris et al., AAAI 2019)
``fc``     a linear layer (no message passing)
``skip``   identity
=========  ===============================================================================

On ``proteins`` (ogbn-proteins) the benchmark trained only 5 of them: ``gcn, sage, arma, fc,
skip``; ``NasBenchGraphSpace(dataset='proteins')`` offers those.

Decisions (labels), all ``nni.mutable.Categorical``: ``op_1`` .. ``op_4`` over the operation
names and ``input_2``, ``input_3``, ``input_4`` over ``[0, .., i-1]`` (ints). A sample is NNI's
freeze format, e.g. ``{"input_2": 1, "input_3": 1, "input_4": 2, "op_1": "gcn", ...}``; its
architecture in the package's terms is ``link = [0, input_2, input_3, input_4]`` and ``ops =
[op_1, .., op_4]`` (:func:`sample_to_arch`). The space has ``2 * 3 * 4 * 9**4 = 157,464`` samples
(``15,000`` on proteins); isomorphic samples are one architecture of the benchmark, which lists
26,206 (2,021 on proteins). The all-``skip`` cell is not in the benchmark (its network has no
graph layer): the lookup evaluator refuses it, the network itself still builds.

The network of a frozen sample: dropout - linear pre-processing (features -> ``hidden``) - ReLU -
the cell (every non-skip operation followed by ReLU and dropout) - the sum of the leaves - a
linear classifier. ``forward(x, edge_index)`` takes node features ``(N, in_features)`` and a
``(2, E)`` long tensor of directed edges (source, target) and returns ``(N, num_classes)``
logits. This follows the paper's macro space, but the hyper-parameters the benchmark tuned per
dataset (hidden size, number of pre/post-processing layers, dropout, learning rate; its
Table 2) are not reproduced, nor how the leaves are combined: a frozen network's parameter
count is *not* the benchmark's ``para``. No graph dataset ships with the project, so only the
lookup (:mod:`nni_nasext.evaluators.nas_bench_graph_lookup`) evaluates samples; the network is
tested on small synthetic graphs.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from nni.mutable import Categorical
from nni.nas.nn.pytorch import ModelSpace, MutableModule

from nni_nasext.nas_bench_graph_arch import (  # noqa: F401 - re-exported
    DATASET_SHAPES, DATASETS, LABELS, NUM_NODES, OPS, OPS_PROTEINS, all_samples, arch_to_sample, ops_for,
    sample_to_arch)

__all__ = [
    'OPS', 'OPS_PROTEINS', 'DATASETS', 'DATASET_SHAPES', 'NUM_NODES', 'LABELS', 'ops_for', 'sample_to_arch',
    'arch_to_sample', 'all_samples', 'GNNCell', 'GNNNetwork', 'NasBenchGraphSpace', 'make_op',
]

# ----------------------------------------------------------------------------- graph operations

def _aggregate(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, weight: Optional[torch.Tensor] = None,
               mean: bool = False) -> torch.Tensor:
    """Sum (or mean) of ``x[src] * weight`` over the edges into each node."""
    msg = x[src] if weight is None else x[src] * weight.unsqueeze(-1)
    out = torch.zeros_like(x).index_add_(0, dst, msg)
    if mean:
        deg = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).index_add_(
            0, dst, torch.ones_like(dst, dtype=x.dtype))
        out = out / deg.clamp(min=1).unsqueeze(-1)
    return out


def _sym_norm(num_nodes: int, src: torch.Tensor, dst: torch.Tensor, dtype) -> torch.Tensor:
    """``1 / sqrt(deg(src) deg(dst))`` per edge (in-degrees; zero-degree nodes get no weight)."""
    deg = torch.zeros(num_nodes, dtype=dtype, device=src.device).index_add_(0, dst, torch.ones_like(dst, dtype=dtype))
    inv = deg.pow(-0.5)
    inv[torch.isinf(inv)] = 0
    return inv[src] * inv[dst]


def _with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    loops = torch.arange(num_nodes, device=edge_index.device)
    keep = edge_index[0] != edge_index[1]
    return torch.cat([edge_index[0][keep], loops]), torch.cat([edge_index[1][keep], loops])


class GCN(nn.Module):
    """``D^-1/2 (A + I) D^-1/2 x W + b``."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x, edge_index):
        src, dst = _with_self_loops(edge_index, x.shape[0])
        return _aggregate(self.lin(x), src, dst, _sym_norm(x.shape[0], src, dst, x.dtype)) + self.bias


class GAT(nn.Module):
    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        if dim % heads:
            raise ValueError(f'GAT with {heads} heads needs a width divisible by {heads}, got {dim}')
        self.heads, self.head_dim = heads, dim // heads
        self.lin = nn.Linear(dim, dim, bias=False)
        self.att_src = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)
        self.att_dst = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x, edge_index):
        n = x.shape[0]
        src, dst = _with_self_loops(edge_index, n)
        h = self.lin(x).view(n, self.heads, self.head_dim)
        score = nn.functional.leaky_relu((h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst], 0.2)
        top = torch.full((n, self.heads), float('-inf'), dtype=x.dtype, device=x.device)
        top = top.scatter_reduce(0, dst.unsqueeze(-1).expand_as(score), score, reduce='amax', include_self=True)
        w = torch.exp(score - top[dst])
        norm = torch.zeros(n, self.heads, dtype=x.dtype, device=x.device).index_add_(0, dst, w)
        alpha = w / norm[dst]
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * alpha.unsqueeze(-1))
        return out.reshape(n, -1) + self.bias


class GIN(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x, edge_index):
        return self.mlp(x + _aggregate(x, edge_index[0], edge_index[1]))


class Cheb(nn.Module):
    """K = 2: ``W0 x + W1 L~ x`` with ``L~ = 2 L / lambda_max - I = -D^-1/2 A D^-1/2`` at lambda_max = 2."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin0 = nn.Linear(dim, dim)
        self.lin1 = nn.Linear(dim, dim, bias=False)

    def forward(self, x, edge_index):
        keep = edge_index[0] != edge_index[1]
        src, dst = edge_index[0][keep], edge_index[1][keep]
        lx = -_aggregate(x, src, dst, _sym_norm(x.shape[0], src, dst, x.dtype))
        return self.lin0(x) + self.lin1(lx)


class SAGE(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lin_neigh = nn.Linear(dim, dim)
        self.lin_root = nn.Linear(dim, dim, bias=False)

    def forward(self, x, edge_index):
        return self.lin_neigh(_aggregate(x, edge_index[0], edge_index[1], mean=True)) + self.lin_root(x)


class ARMA(nn.Module):
    """One stack, one iteration: ``ReLU(A^ x W + x V)`` with ``A^ = D^-1/2 A D^-1/2`` (no self loops)."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, dim, bias=False)
        self.root = nn.Linear(dim, dim)

    def forward(self, x, edge_index):
        keep = edge_index[0] != edge_index[1]
        src, dst = edge_index[0][keep], edge_index[1][keep]
        return torch.relu(_aggregate(self.lin(x), src, dst, _sym_norm(x.shape[0], src, dst, x.dtype)) + self.root(x))


class GraphConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lin_rel = nn.Linear(dim, dim)
        self.lin_root = nn.Linear(dim, dim, bias=False)

    def forward(self, x, edge_index):
        return self.lin_rel(_aggregate(x, edge_index[0], edge_index[1])) + self.lin_root(x)


class FC(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, dim)

    def forward(self, x, edge_index):
        return self.lin(x)


class Skip(nn.Module):
    def forward(self, x, edge_index):
        return x


_OP_CLASSES = {'gat': GAT, 'gcn': GCN, 'gin': GIN, 'cheb': Cheb, 'sage': SAGE, 'arma': ARMA, 'graph': GraphConv,
               'fc': FC}


def make_op(name: str, dim: int) -> nn.Module:
    """The operation ``name`` at width ``dim`` (``forward(x, edge_index)``)."""
    if name == 'skip':
        return Skip()
    if name not in _OP_CLASSES:
        raise ValueError(f'Unknown NAS-Bench-Graph operation {name!r}; expected one of {list(OPS)}')
    return _OP_CLASSES[name](dim)


# ----------------------------------------------------------------------------- networks

class GNNCell(nn.Module):
    """The 4-node DAG of one architecture; returns the sum of its leaves."""

    def __init__(self, link: Sequence[int], ops: Sequence[str], dim: int, dropout: float = 0.0):
        super().__init__()
        if len(link) != NUM_NODES or len(ops) != NUM_NODES or any(not 0 <= s <= i for i, s in enumerate(link)):
            raise ValueError(f'A cell is 4 links (node i+1 reads node 0..i) and 4 ops, got {list(link)}, {list(ops)}')
        self.link, self.op_names = [int(s) for s in link], [str(o) for o in ops]
        self.ops = nn.ModuleList([make_op(o, dim) for o in self.op_names])
        self.dropout = nn.Dropout(dropout)
        read = set(self.link)
        self.leaves = [i for i in range(1, NUM_NODES + 1) if i not in read]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        states = [x]
        for src, name, op in zip(self.link, self.op_names, self.ops):
            h = op(states[src], edge_index)
            states.append(h if name == 'skip' else self.dropout(torch.relu(h)))
        return torch.stack([states[i] for i in self.leaves]).sum(0)

    def extra_repr(self) -> str:
        return f'link={self.link}, ops={self.op_names}, leaves={self.leaves}'


class GNNNetwork(nn.Module):
    """dropout - linear pre-processing - ReLU - :class:`GNNCell` - linear classifier."""

    def __init__(self, link: Sequence[int], ops: Sequence[str], in_features: int, num_classes: int,
                 hidden: int = 64, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.pre = nn.Linear(in_features, hidden)
        self.cell = GNNCell(link, ops, hidden, dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f'edge_index must be (2, E), got {tuple(edge_index.shape)}')
        h = torch.relu(self.pre(self.dropout(x)))
        return self.classifier(self.cell(h, edge_index.long()))


class _GNNSearchable(MutableModule):
    def __init__(self, ops: Tuple[str, ...], kwargs: Dict[str, Any]):
        super().__init__()
        self._ops, self._kwargs = ops, kwargs
        for i in range(2, NUM_NODES + 1):
            self.add_mutable(Categorical(list(range(i)), label=f'input_{i}'))
        for i in range(1, NUM_NODES + 1):
            self.add_mutable(Categorical(list(ops), label=f'op_{i}'))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        link, ops = sample_to_arch(sample, self._ops)
        return GNNNetwork(link, ops, **self._kwargs)

    def forward(self, x, edge_index):
        raise NotImplementedError('Freeze the NAS-Bench-Graph space with a sample before running it')


class NasBenchGraphSpace(ModelSpace):
    """NAS-Bench-Graph's GNN space (Qin et al., NeurIPS 2022 D&B; see the module docstring).

    ``dataset`` picks the operations (5 on ``proteins``, else 9) and the default input and
    output sizes (:data:`DATASET_SHAPES`); ``in_features`` / ``num_classes`` override them.
    ``space.freeze(sample)`` holds a :class:`GNNNetwork` under ``.net`` and runs
    ``forward(x, edge_index) -> logits``.
    """

    def __init__(self, dataset: str = 'cora', in_features: Optional[int] = None, num_classes: Optional[int] = None,
                 hidden: int = 64, dropout: float = 0.5):
        super().__init__()
        ops = ops_for(dataset)
        shape = DATASET_SHAPES[dataset]
        in_features = shape[0] if in_features is None else in_features
        num_classes = shape[1] if num_classes is None else num_classes
        if min(in_features, num_classes, hidden) < 1 or hidden % 2:
            raise ValueError('in_features, num_classes and hidden must be positive, hidden even (GAT has 2 heads)')
        if not 0 <= dropout < 1:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        self.dataset, self.ops = dataset, ops
        self.net = _GNNSearchable(ops, dict(in_features=in_features, num_classes=num_classes, hidden=hidden,
                                            dropout=dropout))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.net(x, edge_index)
