"""TE-NAS: training-free, pruning-based search over the NAS-Bench-201 cell.

W. Chen, X. Gong, Z. Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective", ICLR 2021 (Algorithm 1, "prune-by-importance").

**Supernet.** :class:`NB201Supernet` is the NB201 macro skeleton of
:class:`~nni_nasext.search_spaces.nasbench201.NasBench201Space` (3x3 conv stem, three stages
of ``num_cells`` cells with two residual reductions, BN-ReLU, global average pool, linear),
built from the same op constructor (``make_op``) and reduction block, where every edge of
every cell holds all five NB201 ops. One *alive mask* (edge label -> ops still alive) is
shared by all cells, as NB201 stacks one cell. An edge outputs the *mean* of its alive ops
(TE-NAS keeps equal architecture weights and drops pruned ops from the softmax, which is a
mean over the alive ops). With exactly one op per edge the supernet computes the same
function as ``NasBench201Space(...).freeze(sample)`` with the same weights.

**Search** (:class:`TENAS`). All 5 ops alive on the 6 edges. Each round, every alive op of
every edge that still has more than one op is removed in turn; each candidate mask is
measured by

* the NTK condition number ``λ_max / λ_min``
  (:func:`~nni_nasext.evaluators.proxies.score_te_nas_ntk`; smaller = more trainable) of a
  supernet of the given width/depth carrying the mask, Kaiming-normal (fan-in) initialised
  from the seed, train-mode BN, on the first ``ntk_batch`` examples of ``inputs`` (default:
  a Gaussian batch of ``input_size`` drawn from ``seed``);
* the number of linear regions
  (:func:`~nni_nasext.evaluators.proxies.score_te_nas_linear_regions`; larger = more
  expressive) of a *thin* supernet (``num_cells=1``, ``channels=1``, ``in_channels =
  lr_input_size[0]``) carrying the same mask, over ``lr_samples`` Gaussian inputs of
  ``lr_input_size`` (eval-mode BN).

Each measure is the mean over ``repeats`` seeds (``seed, seed+1, ...``); a non-finite NTK
condition number counts as ``+inf`` (worst). All candidates of a round are ranked jointly:
NTK ascending and regions descending (0-based average ranks, ``scipy.stats.rankdata``); the
importance of an op is the sum of the two ranks of the network *without* it, and on each
edge the op whose removal gives the smallest sum is pruned (ties: the earlier op in
``OPS``). After 4 rounds every edge has one op and the sample is derived. Every candidate of
a round shares the inputs and the initialisation seed (weights of common ops are identical,
since all supernets hold all ops), so ranking the absolute values is the same as ranking the
authors' relative changes against the unpruned network.

**What differs from the authors' code** (``VITA-Group/TENAS``, ``prune_tenas.py`` and
``prune_launch.py`` for NAS-Bench-201, as we read them):

* it runs on whatever device ``inputs`` is on (CPU by default), not on a GPU;
* the NTK batch is Gaussian noise by default (pass ``inputs`` for real images) of
  ``ntk_batch=16`` examples; the authors use a batch of 72 CIFAR training images;
* ``repeats=1`` by default (authors: 3), and repeats here change the initialisation seed,
  not the batch;
* the NTK supernet is this package's NB201 skeleton at ``num_cells=1, channels=16`` by
  default; the authors' NTK supernet for NB201 uses ``C=3, N=1``;
* the thin linear-region network keeps the stem, the reductions and the head of the skeleton
  (at width 1); the authors' thin network has no stem. Its inputs are ``lr_samples=1000``
  Gaussian ``1x3x3`` inputs in eval mode; the authors use 3 batches of 1000 random 3x3
  single-channel crops of training images in train mode;
* raw values are ranked with average ranks for ties; the authors round the relative changes
  to 3 significant figures and give equal values equal (dense) ranks;
* all 5 ops start alive (4 rounds); the authors' code masks ``none`` on every edge before the
  first round, so ``none`` is never a candidate there (3 rounds);
* weights are Kaiming-normal (fan-in) from ``seed + r`` for every measurement; in the
  authors' launch configuration the ``init`` name does not match the names their
  ``init_model`` checks, so their networks keep PyTorch's default initialisation.

**Interface.** ``TENAS(...).search()`` returns an NB201 sample ``{"0_1": op, ..., "2_3": op}``
usable with ``NasBench201Space().freeze(sample)`` and ``NasBench201Table().query(sample, ...)``.
``history`` holds every candidate of every round; ``search_seconds`` the wall time.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from nni_nasext.evaluators.proxies import score_te_nas_linear_regions, score_te_nas_ntk
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, make_op, nb201_skeleton

__all__ = ['NB201Supernet', 'TENAS']

Mask = Dict[str, List[str]]


def _normalise_mask(mask: Mapping[str, Union[str, Iterable[str]]]) -> Mask:
    """Validate a mask (every NB201 edge label -> known ops, at least one) and return a copy
    with each edge's ops in :data:`OPS` order. A single op name stands for a one-op list."""
    if not isinstance(mask, Mapping):
        raise ValueError(f'An alive mask is a dict edge label -> op names, got {type(mask).__name__}')
    unknown = sorted(set(mask) - set(EDGE_LABELS))
    if unknown:
        raise ValueError(f'Unknown NB201 edge labels {unknown}; expected {EDGE_LABELS}')
    missing = [label for label in EDGE_LABELS if label not in mask]
    if missing:
        raise ValueError(f'The alive mask misses edges {missing}; every edge of {EDGE_LABELS} needs ops')
    out: Mask = {}
    for label in EDGE_LABELS:
        ops = mask[label]
        ops = [ops] if isinstance(ops, str) else list(ops)
        bad = [op for op in ops if op not in OPS]
        if bad:
            raise ValueError(f'Edge {label!r} has unknown operations {bad}; expected some of {OPS}')
        if not ops:
            raise ValueError(f'Edge {label!r} needs at least one alive operation')
        out[label] = [op for op in OPS if op in ops]
    return out


class _SupernetCell(nn.Module):
    """An NB201 cell whose edges hold every op; ``forward`` takes the alive mask."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict({label: nn.ModuleDict({op: make_op(op, channels) for op in OPS})
                                    for label in EDGE_LABELS})

    def edge(self, label: str, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        outs = [self.edges[label][op](x) for op in ops]
        return outs[0] if len(outs) == 1 else sum(outs) / len(outs)

    def forward(self, x: torch.Tensor, alive: Mask) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edge(f'{i}_{j}', nodes[i], alive[f'{i}_{j}']) for i in range(j)))
        return nodes[-1]


class NB201Supernet(nn.Module):
    """The NB201 network (same skeleton and arguments as ``NasBench201Space``) with all five
    ops on every edge and one alive mask shared by all cells; an edge outputs the mean of its
    alive ops. ``alive`` (default: every op) is validated as in :meth:`set_alive`.

    Module names follow ``NasBench201Space``: ``stem``, ``cells.<k>`` (cells and reductions in
    order), ``head``; an op of a cell is ``cells.<k>.edges.<label>.<op>`` (the frozen NB201
    network names it ``cells.<k>.edges.<label>``)."""

    def __init__(self, num_cells: int = 5, channels: int = 16, num_classes: int = 10, in_channels: int = 3,
                 alive: Optional[Mapping[str, Union[str, Iterable[str]]]] = None):
        super().__init__()
        if num_cells < 1 or channels < 1:
            raise ValueError(f'num_cells and channels must be positive, got N={num_cells}, C={channels}')
        self.num_cells, self.channels = num_cells, channels
        self.stem, layers, self.head = nb201_skeleton(num_cells, channels, num_classes, in_channels, _SupernetCell)
        self.cells = nn.Sequential(*layers)
        self._alive: Mask = _normalise_mask(alive if alive is not None else {label: OPS for label in EDGE_LABELS})

    def set_alive(self, mask: Mapping[str, Union[str, Iterable[str]]]) -> None:
        """Set the ops alive on each edge: a dict with every label of ``EDGE_LABELS``, each
        mapped to a non-empty list of names from ``OPS`` (or one name). ``ValueError``
        otherwise."""
        self._alive = _normalise_mask(mask)

    @property
    def alive(self) -> Mask:
        """A copy of the alive mask (edge label -> alive ops in ``OPS`` order)."""
        return {label: list(ops) for label, ops in self._alive.items()}

    def derive(self) -> Dict[str, str]:
        """The NB201 sample ``{label: op}``; ``ValueError`` while an edge has more than one op."""
        multi = {label: ops for label, ops in self._alive.items() if len(ops) != 1}
        if multi:
            raise ValueError(f'Cannot derive an NB201 cell: edges with more than one alive op: {multi}')
        return {label: self._alive[label][0] for label in EDGE_LABELS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, self._alive) if isinstance(layer, _SupernetCell) else layer(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f'num_cells={self.num_cells}, channels={self.channels}'


ScoreFn = Callable[[Mask], Tuple[float, float]]


class TENAS:
    """TE-NAS prune-by-importance search over the NB201 cell (see the module docstring).

    Parameters
    ----------
    num_cells, channels, num_classes, in_channels
        The NTK supernet (``NB201Supernet`` arguments).
    input_size
        ``(C, H, W)`` of the default Gaussian NTK batch (ignored when ``inputs`` is given).
    ntk_batch
        Examples in the NTK batch (the first ``ntk_batch`` of ``inputs``); at least 2.
    inputs
        An optional ``(B, C, H, W)`` tensor for the NTK; its device is where both measures run.
    lr_samples, lr_input_size
        Gaussian inputs of the linear-region count and their ``(C, H, W)``; the thin supernet
        has ``in_channels = lr_input_size[0]``.
    repeats, seed
        Each measure is averaged over the seeds ``seed .. seed + repeats - 1``.
    start_ops
        The ops alive on every edge at the start (default all five; the authors' code starts
        without ``'none'``: ``start_ops=[op for op in OPS if op != 'none']``, 3 rounds).
    score_fn
        ``score_fn(mask) -> (ntk_cond, regions)`` replacing the measurement (for tests or
        other proxies); ``mask`` is a fresh dict edge label -> list of alive ops.
    verbose
        One progress line per round on stderr.
    """

    def __init__(self, *, num_cells: int = 1, channels: int = 16, num_classes: int = 10, in_channels: int = 3,
                 input_size: Sequence[int] = (3, 32, 32), ntk_batch: int = 16, inputs: Optional[torch.Tensor] = None,
                 lr_samples: int = 1000, lr_input_size: Sequence[int] = (1, 3, 3), repeats: int = 1, seed: int = 0,
                 score_fn: Optional[ScoreFn] = None, start_ops: Sequence[str] = OPS, verbose: bool = True):
        bad = [op for op in start_ops if op not in OPS]
        if bad or len(set(start_ops)) < 1:
            raise ValueError(f'start_ops must be a non-empty subset of {OPS}, got {list(start_ops)}')
        self.start_ops = [op for op in OPS if op in start_ops]
        if num_cells < 1 or channels < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError('num_cells, channels, num_classes and in_channels must be positive')
        if ntk_batch < 2:
            raise ValueError(f'ntk_batch must be at least 2 (a condition number of one example is 1), got {ntk_batch}')
        if repeats < 1 or lr_samples < 1:
            raise ValueError(f'repeats and lr_samples must be positive, got {repeats}, {lr_samples}')
        self.input_size = tuple(int(s) for s in input_size)
        self.lr_input_size = tuple(int(s) for s in lr_input_size)
        if len(self.input_size) != 3 or len(self.lr_input_size) != 3:
            raise ValueError('input_size and lr_input_size are (C, H, W)')
        self.num_cells, self.channels, self.num_classes = int(num_cells), int(channels), int(num_classes)
        self.in_channels, self.ntk_batch, self.lr_samples = int(in_channels), int(ntk_batch), int(lr_samples)
        self.repeats, self.seed, self.verbose = int(repeats), int(seed), bool(verbose)
        self.score_fn = score_fn
        if inputs is not None:
            if inputs.dim() != 4 or inputs.shape[1] != self.in_channels or len(inputs) < 2:
                raise ValueError(f'inputs must be (B >= 2, {self.in_channels}, H, W), got {tuple(inputs.shape)}')
            self.inputs = inputs[:self.ntk_batch].detach()
        else:
            if self.input_size[0] != self.in_channels:
                raise ValueError(f'input_size {self.input_size} does not match in_channels={self.in_channels}')
            gen = torch.Generator(device='cpu').manual_seed(self.seed)
            self.inputs = torch.randn((self.ntk_batch,) + self.input_size, generator=gen)
        self.history: List[List[dict]] = []
        self.search_seconds: Optional[float] = None

    # ------------------------------------------------------------------ measurement

    def _build(self, mask: Mask, thin: bool) -> NB201Supernet:
        # Built under a forked RNG: construction-time init must not move the caller's global
        # RNG (the proxies re-initialise every parameter from their own seed anyway).
        with torch.random.fork_rng(devices=[]):
            if thin:
                return NB201Supernet(1, 1, self.num_classes, self.lr_input_size[0], alive=mask)
            return NB201Supernet(self.num_cells, self.channels, self.num_classes, self.in_channels, alive=mask)

    def measure(self, mask: Mapping[str, Union[str, Iterable[str]]]) -> Tuple[float, float]:
        """``(ntk_cond, regions)`` of freshly built supernets carrying ``mask``, each the mean
        over ``repeats`` seeds; a non-finite condition number is ``inf``."""
        mask = _normalise_mask(mask)
        net, thin = self._build(mask, thin=False), self._build(mask, thin=True)
        dummy = torch.zeros((self.lr_samples,) + self.lr_input_size, device=self.inputs.device)
        conds, regions = [], []
        for r in range(self.repeats):
            cond = score_te_nas_ntk(net, self.inputs, seed=self.seed + r)
            conds.append(cond if math.isfinite(cond) else math.inf)
            regions.append(score_te_nas_linear_regions(thin, dummy, seed=self.seed + r))
        cond = math.inf if any(math.isinf(c) for c in conds) else float(np.mean(conds))
        return cond, float(np.mean(regions))

    def _score(self, mask: Mask) -> Tuple[float, float]:
        fn = self.score_fn or self.measure
        cond, regions = fn({label: list(ops) for label, ops in mask.items()})
        cond = float(cond)
        return (cond if math.isfinite(cond) else math.inf), float(regions)

    # ------------------------------------------------------------------ search

    def search(self) -> Dict[str, str]:
        """Prune until one op per edge; return the NB201 sample. Fills ``history`` (one list
        per round of ``{edge, op, ntk, regions, ntk_rank, regions_rank, rank_sum, pruned}``,
        where ``ntk``/``regions`` are those of the network *without* ``op`` on ``edge``) and
        ``search_seconds``."""
        start = time.perf_counter()
        alive: Mask = {label: list(self.start_ops) for label in EDGE_LABELS}
        self.history = []
        while any(len(ops) > 1 for ops in alive.values()):
            t0 = time.perf_counter()
            rows = []
            for label in EDGE_LABELS:
                if len(alive[label]) == 1:
                    continue
                for op in alive[label]:
                    candidate = {k: [o for o in v if not (k == label and o == op)] for k, v in alive.items()}
                    cond, regions = self._score(candidate)
                    rows.append({'edge': label, 'op': op, 'ntk': cond, 'regions': regions})
            ntk_rank = rankdata([r['ntk'] for r in rows]) - 1.0                 # smallest cond -> 0
            reg_rank = rankdata([-r['regions'] for r in rows]) - 1.0            # most regions -> 0
            for row, a, b in zip(rows, ntk_rank, reg_rank):
                row.update(ntk_rank=float(a), regions_rank=float(b), rank_sum=float(a + b), pruned=False)
            pruned = {}
            for label in EDGE_LABELS:
                best = None
                for row in rows:  # rows of an edge are in OPS order: strict '<' keeps the earlier op on ties
                    if row['edge'] == label and (best is None or row['rank_sum'] < best['rank_sum']):
                        best = row
                if best is not None:
                    best['pruned'] = True
                    alive[label].remove(best['op'])
                    pruned[label] = best['op']
            self.history.append(rows)
            if self.verbose:
                print(f'TE-NAS round {len(self.history)}: {len(rows)} candidates, pruned '
                      + ', '.join(f'{k}:{v}' for k, v in pruned.items())
                      + f' ({time.perf_counter() - t0:.1f} s)', file=sys.stderr, flush=True)
        self.search_seconds = time.perf_counter() - start
        self.alive = alive
        return {label: alive[label][0] for label in EDGE_LABELS}
