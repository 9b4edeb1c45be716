"""T-NAS: meta-learned architecture and weights for few-shot tasks, against MAML.

References
----------
* D. Lian, Y. Zheng, Y. Xu, Y. Lu, L. Lin, P. Zhao, J. Huang, S. Gao, "Towards Fast
  Adaptation of Neural Architectures with Meta Learning", ICLR 2020 (T-NAS).
* C. Finn, P. Abbeel, S. Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
  Networks", ICML 2017 (MAML).
* H. Liu, K. Simonyan, Y. Yang, "DARTS: Differentiable Architecture Search", ICLR 2019.

What is implemented
-------------------
Episodes (:class:`EpisodeSampler`): an N-way K-shot task draws N classes from a pool of
classes (a class is a ``(dataset, label)`` pair, relabelled ``0..N-1`` per episode in a
random order), then ``K + Q`` distinct images of each class: the first ``K`` are the support
set, the other ``Q`` the query set, so support and query never share an image.

MAML (Finn et al., eq. 1 and Algorithm 2): for each task ``T_i`` of a meta-batch the inner
loop takes ``S`` SGD steps on the support loss, ``θ'_i = θ - λ ∇_θ L^{sup}_{T_i}(θ)``; the
outer loop updates the meta-parameters with the query loss of the adapted parameters,
``θ <- θ - β ∇_θ Σ_i L^{qry}_{T_i}(θ'_i)`` (Adam in place of plain SGD for ``β``). The
network is the standard 4-conv one (conv3x3-BN-ReLU-maxpool, four times, then a linear
layer; :class:`FourConvNet`). Forward passes with given parameters go through
``torch.func.functional_call``.

T-NAS (Lian et al., Sec. 3 and Algorithm 1): the same meta-learning, but the parameters are
both the weights ``w`` and the architecture ``α`` of a DARTS supernet (here the NB201 cell,
:class:`~nni_nasext.strategies.transfer.nb201_supernet.NB201Supernet`, every edge a softmax(α)
mixture of the five NB201 ops, eq. 2 of DARTS). The inner loop adapts ``w`` and ``α``
together on the support loss (``w' = w - λ_w ∇_w L^{sup}``, ``α' = α - λ_α ∇_α L^{sup}``);
the outer loop updates the meta-weights and the meta-architecture from the query loss of
``(w', α')``. On a new task the meta-weights and meta-architecture are adapted in a few
steps, the cell is derived by the ``argmax`` of ``α'`` per edge (over all five ops including
``none``, as in the repo's NB201 one-shot protocol), and the query set is classified
(:meth:`TNAS.evaluate` reports both the soft supernet and the derived single-path cell,
with the adapted weights).

Simplifications (stated plainly)
--------------------------------
* **First-order** by default for both methods (FOMAML: the outer gradient is the query
  gradient at the adapted parameters, ``∇_{θ'} L^{qry}(θ')``, applied to ``θ``); the
  DARTS step inside T-NAS is the first-order one too (``w`` and ``α`` both updated on the
  support set in the same inner step, no train/val split inside a task).
  ``first_order=False`` gives second-order MAML (backprop through the inner steps) for
  either method, at a much larger cost.
* The T-NAS paper searches a DARTS (normal + reduction) cell with 8 ops on 84x84
  Mini-ImageNet; here the cell is the 6-edge, 5-op NB201 cell in a small NB201 skeleton
  (one cell per stage, width 8-16, 1-channel images of 16x16 or 28x28: the NB201
  reductions need a side divisible by 4). :meth:`TNAS.evaluate` scores the derived cell
  with the adapted supernet weights of its path (no retraining); the separate training of
  the derived architecture is :class:`DerivedCellMAML` (below).
* Batch normalization always uses the statistics of the current batch (no running
  statistics), as in MAML's reference implementation; the query set is normalised with
  its own batch statistics (transductive), identically for both methods.

Derived architecture, meta-trained as a fixed network
-----------------------------------------------------
In T-NAS (Lian et al., ICLR 2020) the search yields an architecture, which is then a
discrete network whose weights are (meta-)trained after the search with MAML, rather than
being used with the supernet's shared weights. Here :class:`DerivedCellMAML` takes one NB201
sample (normally :meth:`TNAS.meta_cell`, the argmax of the meta-architecture, one cell for
every task instead of a per-task adapted cell), builds a discrete network with the same
skeleton and width as :class:`TNASNetwork` holding only the chosen op on each edge
(:class:`DerivedNB201Network`), and meta-trains its weights from a fresh initialisation
with plain first-order MAML (the inner and outer loop of :class:`MAML`). Edges whose
target node reaches the output only through ``none`` edges contribute exactly zero and are
built as ``none`` (no parameters), so the parameter count is that of the network that
actually computes the output. A cell with no non-``none`` path from the input node to the
output node is *degenerate* (its output is constant); :func:`cell_is_connected` tells.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, EDGES, OPS, make_op, nb201_skeleton
from nni_nasext.strategies.transfer.nb201_supernet import Mix, NB201Supernet

__all__ = ['Episode', 'EpisodeSampler', 'load_class_pools', 'FourConvNet', 'TNASNetwork', 'inner_adapt',
           'MetaLearner', 'MAML', 'TNAS', 'mean_ci95', 'DerivedCell', 'DerivedNB201Network', 'DerivedCellMAML',
           'cell_is_connected', 'live_edges', 'FewShotSplit', 'few_shot_split']

ClassKey = Tuple[str, int]


# ----------------------------------------------------------------------------- episodes

@dataclass
class Episode:
    """One N-way K-shot task; labels are ``0..N-1`` in the order of ``classes``."""
    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: List[ClassKey]
    support_index: List[List[int]]  # per class, indices into that class's pool
    query_index: List[List[int]]


class EpisodeSampler:
    """Draws episodes from ``pools``: ``{(dataset, label): images (M, C, H, W)}``.

    ``classes`` restricts the draw to a split (default: every class of ``pools``). The same
    ``seed`` gives the same sequence of episodes.
    """

    def __init__(self, pools: Dict[ClassKey, torch.Tensor], n_way: int = 5, k_shot: int = 1, q_query: int = 15,
                 *, classes: Optional[Sequence[ClassKey]] = None, seed: int = 0):
        self.pools = pools
        self.classes = sorted(classes if classes is not None else pools)
        missing = [c for c in self.classes if c not in pools]
        if missing:
            raise ValueError(f'classes without images: {missing}')
        if n_way < 2 or k_shot < 1 or q_query < 1:
            raise ValueError(f'need n_way >= 2, k_shot >= 1, q_query >= 1; got {n_way}, {k_shot}, {q_query}')
        if n_way > len(self.classes):
            raise ValueError(f'{n_way}-way episodes need {n_way} classes, the split has {len(self.classes)}')
        small = [c for c in self.classes if len(pools[c]) < k_shot + q_query]
        if small:
            raise ValueError(f'classes with fewer than K+Q={k_shot + q_query} images: {small}')
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.rng = np.random.RandomState(seed)

    def sample(self, k_shot: Optional[int] = None) -> Episode:
        k = self.k_shot if k_shot is None else k_shot
        picked = self.rng.choice(len(self.classes), size=self.n_way, replace=False)
        classes = [self.classes[i] for i in picked]
        sx, sy, qx, qy, s_idx, q_idx = [], [], [], [], [], []
        for label, key in enumerate(classes):
            pool = self.pools[key]
            if len(pool) < k + self.q_query:
                raise ValueError(f'class {key} has {len(pool)} images, fewer than K+Q={k + self.q_query}')
            idx = self.rng.choice(len(pool), size=k + self.q_query, replace=False)
            s_idx.append(idx[:k].tolist())
            q_idx.append(idx[k:].tolist())
            sx.append(pool[idx[:k]])
            qx.append(pool[idx[k:]])
            sy += [label] * k
            qy += [label] * self.q_query
        return Episode(torch.cat(sx).float(), torch.tensor(sy), torch.cat(qx).float(), torch.tensor(qy), classes,
                       s_idx, q_idx)

    def __iter__(self):
        while True:
            yield self.sample()


def load_class_pools(spec: Dict[str, Iterable[int]], *, image_size: int = 16, per_class: int = 400,
                     root=None, seed: int = 0) -> Dict[ClassKey, torch.Tensor]:
    """Images per class of real datasets: ``spec`` maps a dataset name of
    :func:`nni_nasext.datasets.load_dataset` to the labels wanted. Images (1 channel) are
    resized to ``image_size`` (area averaging when shrinking, bilinear when growing),
    and at most ``per_class`` images (a seeded subset of the training part) are kept."""
    from nni_nasext.datasets import load_dataset
    rng = np.random.RandomState(seed)
    pools: Dict[ClassKey, torch.Tensor] = {}
    for name, labels in spec.items():
        train, _, info = load_dataset(name, root=root)
        if info.in_channels != 1:
            raise ValueError(f'{name} has {info.in_channels} channels; episodes here use 1-channel images')
        all_labels = train.labels.numpy()
        for label in labels:
            idx = np.flatnonzero(all_labels == int(label))
            if len(idx) == 0:
                raise ValueError(f'{name} has no class {label}')
            idx = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
            x = train.images[torch.from_numpy(idx)].float() * train.scale
            if x.shape[-1] != image_size:
                mode = 'area' if x.shape[-1] > image_size else 'bilinear'
                kwargs = {} if mode == 'area' else {'align_corners': False}
                x = F.interpolate(x, size=(image_size, image_size), mode=mode, **kwargs)
            pools[(name, int(label))] = x.contiguous()
    return pools


@dataclass
class FewShotSplit:
    """Meta-training batches and meta-test episodes on disjoint classes (:func:`few_shot_split`)."""
    pools: Dict[ClassKey, torch.Tensor]
    train_classes: List[ClassKey]
    test_classes: List[ClassKey]
    batches: List[List[Episode]]
    test_episodes: Dict[int, List[Episode]]


def few_shot_split(train: Dict[str, Iterable[int]], test: Dict[str, Iterable[int]], *, n_way: int = 5,
                   k_shot: int = 5, query: int = 10, test_query: int = 15, iterations: int = 100,
                   meta_batch: int = 4, episodes: int = 100, image_size: int = 16, per_class: int = 400,
                   seed: int = 0, root=None) -> FewShotSplit:
    """The episodes both T-NAS and MAML are trained and tested on: images of the ``train`` and
    ``test`` classes (:func:`load_class_pools`; ``{dataset: labels}``, disjoint), ``iterations``
    meta-batches of ``meta_batch`` N-way episodes alternating 1-shot and ``k_shot`` (``query``
    query images per class), and ``episodes`` meta-test episodes for 1 shot and for ``k_shot``
    (``test_query`` per class; sampler seeds ``seed + 1000 + shots``)."""
    train_classes = [(d, int(c)) for d, cs in train.items() for c in cs]
    test_classes = [(d, int(c)) for d, cs in test.items() for c in cs]
    overlap = set(train_classes) & set(test_classes)
    if overlap:
        raise ValueError(f'meta-test classes must be held out of meta-training; both have {sorted(overlap)}')
    spec: Dict[str, List[int]] = {}
    for d, c in train_classes + test_classes:
        spec[d] = sorted(set(spec.get(d, [])) | {c})
    pools = load_class_pools(spec, image_size=image_size, per_class=per_class, seed=seed, root=root)
    sampler = EpisodeSampler(pools, n_way, 1, query, classes=train_classes, seed=seed)
    shots = [1 if i % 2 == 0 else k_shot for i in range(meta_batch)]
    batches = [[sampler.sample(k_shot=k) for k in shots] for _ in range(iterations)]
    test_episodes = {}
    for k in (1, k_shot):
        ts = EpisodeSampler(pools, n_way, k, test_query, classes=test_classes, seed=seed + 1000 + k)
        test_episodes[k] = [ts.sample() for _ in range(episodes)]
    return FewShotSplit(pools, train_classes, test_classes, batches, test_episodes)


# ----------------------------------------------------------------------------- networks

def _batch_stats_only(module: nn.Module) -> nn.Module:
    """Make every BatchNorm use the current batch's statistics (no running buffers)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return module


class FourConvNet(nn.Module):
    """MAML's standard network: four conv3x3-BN-ReLU-maxpool(2) blocks and a linear layer.
    Max-pooling rounds up (``ceil_mode``): 16x16 inputs end at 1x1, 28x28 ones at 2x2."""

    def __init__(self, n_way: int = 5, channels: int = 16, in_channels: int = 1, image_size: int = 16):
        super().__init__()
        layers, c = [], in_channels
        for _ in range(4):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c = channels
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in range(4):
            side = math.ceil(side / 2)
        self.classifier = nn.Linear(channels * side * side, n_way)
        _batch_stats_only(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class TNASNetwork(nn.Module):
    """The NB201 supernet with its architecture ``alpha`` (6 edges x 5 ops) as a parameter,
    so that one ``functional_call`` adapts weights and architecture alike."""

    def __init__(self, n_way: int = 5, channels: int = 8, num_cells: int = 1, in_channels: int = 1, seed: int = 0):
        super().__init__()
        self.supernet = _batch_stats_only(NB201Supernet(num_cells, channels, n_way, in_channels))
        gen = torch.Generator().manual_seed(seed)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGE_LABELS), len(OPS), generator=gen))

    def mixes(self, alpha: torch.Tensor) -> Dict[str, Mix]:
        w = F.softmax(alpha, dim=-1)
        return {label: Mix('soft', weights=w[e]) for e, label in enumerate(EDGE_LABELS)}

    def forward(self, x: torch.Tensor, sample: Optional[Dict[str, str]] = None) -> torch.Tensor:
        if sample is not None:
            return self.supernet(x, self.supernet.single_path(sample))
        return self.supernet(x, self.mixes(self.alpha))

    @staticmethod
    def derive(alpha: torch.Tensor) -> Dict[str, str]:
        """Argmax op per edge (all five ops, ``none`` included): an NB201 sample."""
        return {label: OPS[int(alpha[e].argmax())] for e, label in enumerate(EDGE_LABELS)}


def _reaches_output(sample: Dict[str, str]) -> set:
    """Nodes (0..3) from which the output node 3 is reachable through non-``none`` edges."""
    reach = {3}
    for j in (2, 1, 0):
        if any(sample[f'{j}_{k}'] != 'none' and k in reach for k in range(j + 1, 4)):
            reach.add(j)
    return reach


def live_edges(sample: Dict[str, str]) -> Dict[str, str]:
    """``sample`` with every edge whose target node cannot reach the output node through
    non-``none`` edges set to ``none`` (such an edge's output is multiplied by zero on every
    way to the output, so it changes neither the output nor any gradient)."""
    missing = [label for label in EDGE_LABELS if label not in sample]
    bad = {k: v for k, v in sample.items() if v not in OPS}
    if missing or bad:
        raise ValueError(f'not an NB201 sample: missing edges {missing}, unknown ops {bad}')
    reach = _reaches_output(sample)
    return {label: (sample[label] if j in reach else 'none') for (i, j), label in zip(EDGES, EDGE_LABELS)}


def cell_is_connected(sample: Dict[str, str]) -> bool:
    """Whether the input node 0 reaches the output node 3 through non-``none`` edges."""
    return 0 in _reaches_output(sample)


class DerivedCell(nn.Module):
    """One discrete NB201 cell: edge ``i -> j`` holds only ``sample[label]``'s op (built by
    the same :func:`~nni_nasext.search_spaces.nasbench201.make_op` as the supernet's);
    node ``j`` sums its incoming edges."""

    def __init__(self, channels: int, sample: Dict[str, str]):
        super().__init__()
        self.sample = dict(sample)
        self.edges = nn.ModuleDict({label: make_op(sample[label], channels) for label in EDGE_LABELS})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[f'{i}_{j}'](nodes[i]) for i in range(j)))
        return nodes[-1]


class DerivedNB201Network(nn.Module):
    """The NB201 skeleton of :class:`TNASNetwork` (same stem, reductions, head and width)
    with the fixed cell ``sample`` (dead edges pruned by :func:`live_edges`) in every cell
    position; batch-statistics-only BatchNorm."""

    def __init__(self, sample: Dict[str, str], n_way: int = 5, channels: int = 8, num_cells: int = 1,
                 in_channels: int = 1):
        super().__init__()
        self.sample = dict(sample)
        self.built = live_edges(sample)
        self.stem, layers, self.head = nb201_skeleton(num_cells, channels, n_way, in_channels,
                                                      lambda width: DerivedCell(width, self.built))
        self.cells = nn.Sequential(*layers)
        _batch_stats_only(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))


# ----------------------------------------------------------------------------- inner loop

def inner_adapt(model: nn.Module, params: Dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                lrs: Dict[str, float], steps: int, *, first_order: bool = True) -> Dict[str, torch.Tensor]:
    """``steps`` SGD steps ``θ_k <- θ_k - lr_k ∇_{θ_k} CE(f(x; θ), y)`` from ``params``.

    ``lrs`` maps each parameter name to its inner learning rate. With ``first_order`` the
    adapted parameters are detached leaves (FOMAML); otherwise the graph through the steps is
    kept (``create_graph``) so that the outer gradient is the second-order MAML one."""
    names = list(params)
    if first_order:
        params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    for _ in range(steps):
        loss = F.cross_entropy(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order,
                                    allow_unused=True)
        new = {}
        for n, g in zip(names, grads):
            p = params[n]
            new[n] = p if g is None else p - lrs[n] * g
            if first_order:
                new[n] = new[n].detach().requires_grad_(True)
        params = new
    return params


def mean_ci95(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and the half-width of its normal 95 % confidence interval (1.96 · s / √n)."""
    a = np.asarray(values, dtype=float)
    half = 1.96 * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float('nan')
    return float(a.mean()), float(half)


class MetaLearner:
    """Meta-training and adaptation shared by :class:`MAML` and :class:`TNAS`.

    ``inner_lr`` / ``meta_lr`` apply to weights; subclasses may give other parameter groups
    their own rates (``_inner_lrs``, ``_param_groups``)."""

    def __init__(self, model: nn.Module, *, inner_lr: float = 0.1, inner_steps: int = 5, test_steps: int = 10,
                 meta_lr: float = 1e-3, first_order: bool = True, seed: int = 0):
        self.model, self.inner_lr, self.inner_steps, self.test_steps = model, inner_lr, inner_steps, test_steps
        self.meta_lr, self.first_order, self.seed = meta_lr, first_order, seed
        self.optimizer = torch.optim.Adam(self._param_groups())
        self.history: List[float] = []
        self.train_seconds = 0.0

    def _param_groups(self):
        return [{'params': list(self.model.parameters()), 'lr': self.meta_lr}]

    def _inner_lrs(self) -> Dict[str, float]:
        return {n: self.inner_lr for n, _ in self.model.named_parameters()}

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: Optional[int] = None,
              first_order: Optional[bool] = None) -> Dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return inner_adapt(self.model, params, x, y, self._inner_lrs(), self.inner_steps if steps is None else steps,
                           first_order=self.first_order if first_order is None else first_order)

    def meta_step(self, episodes: Sequence[Episode]) -> float:
        """One outer update from a meta-batch of episodes; returns the mean query loss."""
        named = dict(self.model.named_parameters())
        total = {n: torch.zeros_like(p) for n, p in named.items()}
        losses = []
        for ep in episodes:
            adapted = self.adapt(ep.support_x, ep.support_y)
            loss = F.cross_entropy(functional_call(self.model, adapted, (ep.query_x,)), ep.query_y)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f'non-finite query loss {float(loss)} in meta-training')
            wrt = [adapted[n] for n in named] if self.first_order else [named[n] for n in named]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
            for n, g in zip(named, grads):
                if g is not None:
                    total[n] += g.detach() / len(episodes)
            losses.append(loss.item())
        self.optimizer.zero_grad()
        for n, p in named.items():
            p.grad = total[n]
        self.optimizer.step()
        self.history.append(float(np.mean(losses)))
        return self.history[-1]

    def meta_train(self, batches: Iterable[Sequence[Episode]], log_every: int = 0) -> 'MetaLearner':
        torch.manual_seed(self.seed)
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            loss = self.meta_step(batch)
            if log_every and (i + 1) % log_every == 0:
                print(f'  [{type(self).__name__}] meta-iteration {i + 1}: query loss {loss:.3f} '
                      f'({time.perf_counter() - start:.0f} s)', flush=True)
        self.train_seconds += time.perf_counter() - start
        return self

    def evaluate(self, episode: Episode) -> Dict[str, object]:
        adapted = self.adapt(episode.support_x, episode.support_y, self.test_steps, first_order=True)
        with torch.no_grad():
            logits = functional_call(self.model, adapted, (episode.query_x,))
        return {'acc': float((logits.argmax(-1) == episode.query_y).float().mean())}


class MAML(MetaLearner):
    """MAML with the 4-conv network (:class:`FourConvNet`)."""

    def __init__(self, n_way: int = 5, channels: int = 16, image_size: int = 16, **kw):
        torch.manual_seed(kw.get('seed', 0))
        super().__init__(FourConvNet(n_way, channels, 1, image_size), **kw)


class TNAS(MetaLearner):
    """T-NAS: MAML over the weights and the architecture ``alpha`` of an NB201 supernet.

    ``arch_inner_lr`` / ``arch_meta_lr``: the inner and meta learning rates of ``alpha``."""

    def __init__(self, n_way: int = 5, channels: int = 8, num_cells: int = 1, *, arch_inner_lr: float = 0.1,
                 arch_meta_lr: float = 3e-3, **kw):
        torch.manual_seed(kw.get('seed', 0))
        self.arch_inner_lr, self.arch_meta_lr = arch_inner_lr, arch_meta_lr
        super().__init__(TNASNetwork(n_way, channels, num_cells, 1, seed=kw.get('seed', 0)), **kw)

    def _param_groups(self):
        weights = [p for n, p in self.model.named_parameters() if n != 'alpha']
        return [{'params': weights, 'lr': self.meta_lr}, {'params': [self.model.alpha], 'lr': self.arch_meta_lr}]

    def _inner_lrs(self) -> Dict[str, float]:
        return {n: (self.arch_inner_lr if n == 'alpha' else self.inner_lr) for n, _ in self.model.named_parameters()}

    def meta_cell(self) -> Dict[str, str]:
        """The cell derived from the meta-architecture (before any adaptation)."""
        return TNASNetwork.derive(self.model.alpha.detach())

    def evaluate(self, episode: Episode) -> Dict[str, object]:
        """Adapt weights and alpha on the support set, derive the cell, classify the query set
        with the soft supernet (``acc``) and with the derived cell's path (``acc_derived``)."""
        adapted = self.adapt(episode.support_x, episode.support_y, self.test_steps, first_order=True)
        alpha = adapted['alpha'].detach()
        sample = TNASNetwork.derive(alpha)
        with torch.no_grad():
            soft = functional_call(self.model, adapted, (episode.query_x,))
            hard = functional_call(self.model, adapted, (episode.query_x,), {'sample': sample})
        return {'acc': float((soft.argmax(-1) == episode.query_y).float().mean()),
                'acc_derived': float((hard.argmax(-1) == episode.query_y).float().mean()),
                'cell': sample, 'alpha_change': float((alpha - self.model.alpha.detach()).abs().max())}


class DerivedCellMAML(MetaLearner):
    """First-order MAML (as :class:`MAML`) of a fixed network, :class:`DerivedNB201Network`,
    built for the NB201 ``sample`` derived by T-NAS (``TNAS.meta_cell()``): the stage of
    T-NAS (Lian et al., ICLR 2020) in which the derived architecture's weights are trained
    after the search. Weights start from a fresh initialisation (seeded), not from the
    supernet; only the parameters of the chosen ops (and of the skeleton) are meta-learned.

    Raises ``ValueError`` for a degenerate cell (no non-``none`` path from the cell's input
    to its output, see :func:`cell_is_connected`) unless ``allow_degenerate``."""

    def __init__(self, sample: Dict[str, str], n_way: int = 5, channels: int = 8, num_cells: int = 1, *,
                 allow_degenerate: bool = False, **kw):
        if not cell_is_connected(live_edges(sample)) and not allow_degenerate:
            raise ValueError(f'degenerate cell {sample}: no path of non-none edges from the input to the output')
        torch.manual_seed(kw.get('seed', 0))
        self.sample = dict(sample)
        super().__init__(DerivedNB201Network(sample, n_way, channels, num_cells, 1), **kw)
