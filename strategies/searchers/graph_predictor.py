"""A cell as a graph, and the graph-convolution accuracy predictor of Wen et al.

W. Wen, H. Liu, Y. Chen, H. Li, G. Bender, P.-J. Kindermans, "Neural Predictor for Neural
Architecture Search", ECCV 2020 (Section 3.1): the cell is a DAG whose nodes carry one-hot
operations; graph convolutions propagate node features along the edges *and* against them
(the paper uses both the adjacency and its transpose, because information flows both ways in
a cell), the node features are averaged over the graph and a fully connected head regresses
the validation accuracy; the loss is the mean squared error.

:class:`CellGraphEncoder` turns a sample of a cell space into ``(adjacency, node ops, mask)``:

* **NAS-Bench-101** (:mod:`nni_nasext.search_spaces.nasbench101`, labels ``op1..op5`` and
  ``edge_i_j``): natively a DAG with ops on its 7 vertices. As in the benchmark, a cell is first
  pruned (vertices on no input->output path dropped); the ``m <= 7`` remaining vertices fill the
  first ``m`` slots (input first, output last) and the rest is zero padding (mask 0), the layout
  of the reference implementations. A sample whose input does not reach its output (not a cell
  of the benchmark; a searcher can still propose one) is encoded unpruned. Node features: one-hot
  over ``input, conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3, output`` (5).
* **NAS-Bench-201** (:mod:`nni_nasext.search_spaces.nasbench201`, labels ``"i_j"``): the ops
  live on the 6 edges, so every edge becomes a node between its endpoints, the
  NB201-as-NB101 conversion of the predictor literature (followed here as NASLib writes it,
  C. White, A. Zela, B. Ru, Y. Liu, F. Hutter, "How Powerful are Performance Predictors in
  Neural Architecture Search?", NeurIPS 2021, ``encode_gcn_nasbench201``): 8 nodes = the cell
  input, the 6 edges in NB201 order (``0_1, 0_2, 1_2, 0_3, 1_3, 2_3``), the cell output. The
  input feeds every edge ``0_j``; edge ``i_j`` feeds every edge ``j_k`` (node ``j`` sums its
  incoming edges and passes the sum on); the edges ``i_3`` feed the output. Node features:
  one-hot over ``input``, NB201's 5 ops (``none`` included: a ``none`` edge stays a node), ``output`` (7).

Any other space is refused with a ``ValueError`` that names its decisions (at ``configure``
time, before any training). The encoding is one flat float vector per sample
(``adjacency | ops | mask``), so the searchers cache and score it like any other encoding.

:class:`GCNEnsemble` is the regressor: ``num_layers`` directed graph convolutions of width
``hidden``, each ``H' = (relu(N(A+I) H W_f) + relu(N((A+I)^T) H W_b)) / 2`` with ``N`` row
normalisation, dropout; the mean over the real nodes; a linear head (``hidden -> linear_hidden
-> 1``, no activation between, no biases: one linear map factorised, as the reference code has
it). Sizes and training follow the paper as its PyTorch reference implementations read it
(3 layers of 144, head 128, dropout 0.1, Adam at ``1e-4`` with weight decay ``1e-3``,
batches of 10, 300 epochs, cosine learning-rate decay; MSE on standardised targets). Dense
adjacency, plain torch. ``num_models`` members are trained together (batched matrix
products), each from its own generator, as :class:`~nni_nasext.strategies.searchers.predictors
.MLPEnsemble` does; nothing touches the global random state, and the same data and seed give
the same predictions.
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nni_nasext.space_spec import SpaceSpec
from nni_nasext.checks import require
from nni_nasext.strategies.searchers.predictors import Ensemble

__all__ = ['CellGraphEncoder', 'GCNEnsemble', 'graph_kind']

NB201_FEATURES = ['input', 'none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3', 'output']
NB101_FEATURES = ['input', 'conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3', 'output']


def _nb201_labels() -> List[str]:
    from nni_nasext.nb201_cells import EDGE_LABELS
    return list(EDGE_LABELS)


def graph_kind(space: SpaceSpec) -> Optional[str]:
    """``'nb201'``, ``'nb101'`` or ``None`` (a space whose samples are not a known cell graph)."""
    dims = space.dims
    if set(dims) == set(_nb201_labels()):
        if all(d.kind == 'choice' and set(d.values) <= set(NB201_FEATURES[1:-1]) for d in dims.values()):
            return 'nb201'
        return None
    from nni_nasext.search_spaces.nasbench101 import EDGE_LABELS, LABELS, OP_LABELS
    if set(dims) == set(LABELS):
        ops_ok = all(dims[k].kind == 'choice' and set(dims[k].values) <= set(NB101_FEATURES[1:-1]) for k in OP_LABELS)
        edges_ok = all(dims[k].kind == 'choice' and set(dims[k].values) <= {0, 1} for k in EDGE_LABELS)
        if ops_ok and edges_ok:
            return 'nb101'
    return None


class CellGraphEncoder:
    """Sample -> flat ``adjacency (n*n) | one-hot ops (n*k) | mask (n)`` (see the module docstring)."""

    def __init__(self, space: SpaceSpec):
        if not isinstance(space, SpaceSpec):
            space = SpaceSpec.from_space(space)
        kind = graph_kind(space)
        if kind is None:
            labels = list(space.dims)
            shown = ', '.join(labels[:8]) + (f', ... ({len(labels)} decisions)' if len(labels) > 8 else '')
            raise ValueError(
                'The GCN encoder needs a cell space whose samples are a DAG with one op per node: NAS-Bench-201 '
                '(decisions 0_1 .. 2_3 over its 5 ops) or NAS-Bench-101 (op1..op5 and edge_i_j); got the space '
                f'with decisions [{shown}]. Use encoder="mlp" (the neural_predictor strategy) for other spaces')
        self.space, self.kind = space, kind
        if kind == 'nb201':
            self.features = NB201_FEATURES
            self.num_nodes = 8
            labels = _nb201_labels()
            node = {label: 1 + i for i, label in enumerate(labels)}
            adj = np.zeros((8, 8), dtype=np.float32)
            for label in labels:
                i, j = (int(x) for x in label.split('_'))
                if i == 0:
                    adj[0, node[label]] = 1.
                if j == 3:
                    adj[node[label], 7] = 1.
                for nxt in labels:
                    if int(nxt.split('_')[0]) == j:
                        adj[node[label], node[nxt]] = 1.
            self._nb201_adj, self._nb201_labels = adj, labels
        else:
            self.features = NB101_FEATURES
            self.num_nodes = 7
        self.num_features = len(self.features)
        n, k = self.num_nodes, self.num_features
        self.dim = n * n + n * k + n

    def graph(self, sample: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(adjacency (n, n), one-hot ops (n, k), mask (n,))`` of one sample."""
        n, k = self.num_nodes, self.num_features
        ops = np.zeros((n, k), dtype=np.float32)
        mask = np.zeros(n, dtype=np.float32)
        if self.kind == 'nb201':
            adj = self._nb201_adj.copy()
            names = ['input'] + [sample[label] for label in self._nb201_labels] + ['output']
        else:
            from nni_nasext.search_spaces.nasbench101 import InvalidCellError, prune, sample_to_spec
            matrix, names = sample_to_spec(sample)
            try:
                matrix, names = prune(matrix, names)
            except InvalidCellError:  # input does not reach output: not a benchmark cell, keep it whole
                pass
            adj = np.zeros((n, n), dtype=np.float32)
            m = len(names)
            adj[:m, :m] = matrix
        for v, name in enumerate(names):
            ops[v, self.features.index(name)] = 1.
            mask[v] = 1.
        return adj, ops, mask

    def encode(self, sample: Dict[str, Any]) -> np.ndarray:
        return np.concatenate([part.reshape(-1) for part in self.graph(sample)])

    def encode_many(self, samples: Sequence[Dict[str, Any]]) -> np.ndarray:
        if not samples:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.encode(s) for s in samples])

    def split(self, X) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat encodings ``(B, dim)`` -> adjacency ``(B, n, n)``, ops ``(B, n, k)``, mask ``(B, n)``."""
        return split_graphs(X, self.num_nodes, self.num_features)

    def __repr__(self):
        return f'CellGraphEncoder(kind={self.kind!r}, nodes={self.num_nodes}, features={self.num_features})'


def split_graphs(X, num_nodes: int, num_features: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    n, k = num_nodes, num_features
    if X.ndim != 2 or X.shape[1] != n * n + n * k + n:
        raise ValueError(f'Graph encodings of {n} nodes x {k} features have shape (B, {n * n + n * k + n}), '
                         f'got {tuple(X.shape)}')
    adj = X[:, :n * n].reshape(-1, n, n)
    ops = X[:, n * n:n * n + n * k].reshape(-1, n, k)
    return adj, ops, X[:, n * n + n * k:]


def _row_normalise(a: torch.Tensor) -> torch.Tensor:
    return a / a.sum(-1, keepdim=True).clamp_min(1e-12)


class GCNEnsemble(Ensemble):
    """An ensemble of graph-convolution regressors: ``fit(X, y)``, ``predict(X) -> (mean, std)``.

    ``X`` holds flat :class:`CellGraphEncoder` encodings of graphs with ``num_nodes`` nodes and
    ``num_features`` one-hot node features. See the module docstring for the network.

    Parameters
    ----------
    num_nodes, num_features
        Graph size (padded) and node-feature width.
    num_models
        Members, each with its own initialisation, batch order and dropout masks.
    num_layers, hidden, linear_hidden
        Graph convolutions, their width, the width of the linear head.
    dropout
        After every graph convolution and in the head (training only).
    epochs, lr, weight_decay, batch_size
        Adam with cosine decay of ``lr`` to 0 over ``epochs`` passes; ``batch_size=None``: full batch.
    seed
        The same data and seed give the same predictions.
    """

    def __init__(self, num_nodes: int, num_features: int, num_models: int = 1, num_layers: int = 3,
                 hidden: int = 144, linear_hidden: int = 128, dropout: float = 0.1, epochs: int = 300,
                 lr: float = 1e-4, weight_decay: float = 1e-3, batch_size: Optional[int] = 10, seed: int = 0):
        checks = [(num_nodes >= 1 and num_features >= 1, 'num_nodes, num_features >= 1'),
                  (num_models >= 1, 'num_models >= 1'), (num_layers >= 1, 'num_layers >= 1'),
                  (hidden >= 1 and linear_hidden >= 1, 'hidden, linear_hidden >= 1'),
                  (0 <= dropout < 1, '0 <= dropout < 1'), (epochs >= 1, 'epochs >= 1'), (lr > 0, 'lr > 0'),
                  (weight_decay >= 0, 'weight_decay >= 0'),
                  (batch_size is None or batch_size >= 1, 'batch_size >= 1 or None')]
        require('GCNEnsemble', checks)
        super().__init__(num_models=num_models, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, seed=seed)
        self.num_nodes, self.num_features = int(num_nodes), int(num_features)
        self.num_layers, self.hidden = int(num_layers), int(hidden)
        self.linear_hidden, self.dropout = int(linear_hidden), float(dropout)

    # ------------------------------------------------------------------ network
    def _drop(self, h: torch.Tensor, gen: Optional[torch.Generator]) -> torch.Tensor:
        if gen is None or self.dropout == 0:
            return h
        keep = (torch.rand(h.shape, generator=gen) >= self.dropout).to(h.dtype)
        return h * keep / (1 - self.dropout)

    def _forward(self, adj, ops, mask, params, gen: Optional[torch.Generator] = None) -> torch.Tensor:
        """adj (M, B, n, n), ops (M, B, n, k), mask (M, B, n) -> predictions (M, B)."""
        eye = torch.eye(adj.shape[-1])
        a = adj + eye
        fwd, bwd = _row_normalise(a), _row_normalise(a.transpose(-1, -2))
        h = ops
        for layer in range(self.num_layers):
            w_f, w_b = params[2 * layer], params[2 * layer + 1]  # (M, 1, in, out)
            h = (torch.relu(fwd @ (h @ w_f)) + torch.relu(bwd @ (h @ w_b))) / 2
            h = self._drop(h, gen)
        pooled = (h * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp_min(1.)  # (M, B, hidden)
        w1, w2 = params[-2], params[-1]  # (M, hidden, lin), (M, lin, 1)
        out = self._drop(torch.bmm(pooled, w1), gen)
        return torch.bmm(out, w2)[..., 0]

    def _init(self, gens: List[torch.Generator]) -> List[torch.Tensor]:
        sizes = [self.num_features] + [self.hidden] * self.num_layers
        shapes = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            shapes += [(fan_in, fan_out), (fan_in, fan_out)]  # forward and backward weights
        params = []
        for fan_in, fan_out in shapes:  # Xavier-uniform, as the reference code
            bound = math.sqrt(6. / (fan_in + fan_out))
            w = torch.empty(self.num_models, 1, fan_in, fan_out)
            for m, g in enumerate(gens):
                w[m].uniform_(-bound, bound, generator=g)
            params.append(w)
        for fan_in, fan_out in [(self.hidden, self.linear_hidden), (self.linear_hidden, 1)]:
            bound = 1. / math.sqrt(fan_in)  # torch.nn.Linear's default range
            w = torch.empty(self.num_models, fan_in, fan_out)
            for m, g in enumerate(gens):
                w[m].uniform_(-bound, bound, generator=g)
            params.append(w)
        return [p.requires_grad_() for p in params]

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y) -> 'GCNEnsemble':
        adj, ops, mask = split_graphs(X, self.num_nodes, self.num_features)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(adj) != len(y) or len(y) == 0:
            raise ValueError(f'fit needs as many graphs as targets (>= 1), got {len(adj)} and {len(y)}')
        target = self._standardise(y)
        n, M = len(y), self.num_models
        seeder = random.Random(self.seed)
        gens = [torch.Generator().manual_seed(seeder.getrandbits(63)) for _ in range(M)]
        noise = torch.Generator().manual_seed(seeder.getrandbits(63))  # batch orders and dropout masks
        params = self._init(gens)
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        bs = n if self.batch_size is None else min(self.batch_size, n)
        for _ in range(self.epochs):
            perm = torch.stack([torch.randperm(n, generator=noise) for _ in range(M)])  # (M, n)
            for start in range(0, n - bs + 1, bs):  # whole batches only, as the reference's drop_last
                idx = perm[:, start:start + bs]
                opt.zero_grad()
                pred = self._forward(adj[idx], ops[idx], mask[idx], params, noise)
                # the sum over members of each member's MSE: independent gradients
                loss = ((pred - target[idx]) ** 2).mean(dim=1).sum()
                loss.backward()
                opt.step()
            sched.step()
        self._params = [p.detach() for p in params]
        self.num_fits += 1
        return self

    def predict_members(self, X, batch: int = 4096) -> np.ndarray:
        """Every member's prediction, shape ``(num_models, n)``, in the units of ``y``."""
        if self._params is None:
            raise RuntimeError('GCNEnsemble.predict before fit')
        adj, ops, mask = split_graphs(X, self.num_nodes, self.num_features)
        out = []
        with torch.no_grad():
            for s in range(0, len(adj), batch):
                a, o, m = (t[s:s + batch].unsqueeze(0) for t in (adj, ops, mask))
                out.append(self._forward(a, o, m, self._params))
        members = torch.cat(out, dim=1) if out else torch.zeros(self.num_models, 0)
        return members.double().numpy() * self._y_std + self._y_mean

    def __repr__(self):
        return (f'GCNEnsemble(num_models={self.num_models}, num_layers={self.num_layers}, hidden={self.hidden}, '
                f'linear_hidden={self.linear_hidden}, epochs={self.epochs}, lr={self.lr}, '
                f'weight_decay={self.weight_decay}, batch_size={self.batch_size}, seed={self.seed})')
