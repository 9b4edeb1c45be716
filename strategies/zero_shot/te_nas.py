"""TE-NAS over any supernet: training-free pruning by trainability and expressivity.

W. Chen, X. Gong, Z. Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective", ICLR 2021 (Algorithm 1, "prune-by-importance").

Every candidate of every decision starts *alive*; the supernet mixes the alive candidates of a
decision with equal weights (TE-NAS keeps the architecture weights equal; a pruned candidate
leaves the softmax). Each round, every alive candidate of every decision that still has more
than one is removed in turn and the supernet without it is measured by

* the NTK condition number ``λ_max/λ_min`` (smaller: more trainable) of the supernet,
  Kaiming-normal (fan-in) initialised from the seed, train-mode batch norm, on the first
  ``ntk_batch`` inputs of a training batch
  (:func:`~nni_nasext.evaluators.proxies.score_te_nas_ntk`);
* the number of linear regions (larger: more expressive): distinct ReLU activation patterns
  (``nn.ReLU`` modules) over ``lr_samples`` Gaussian inputs, eval mode (:func:`linear_regions`),
  of a *thin* supernet when ``lr_space`` is given (the same space built narrow, e.g.
  ``NasBench201Space(num_cells=1, channels=1, in_channels=1)``, carrying the same pruning, on
  inputs of ``lr_input_size``: the authors' protocol), else of the supernet itself on inputs
  of the input's shape, counting the first ``lr_channels`` channels of every ReLU.

Both are ranked over all candidates of the round (average ranks); on each decision the
candidate whose removal gives the smallest rank sum is pruned. When every decision has one
candidate left, cells choose their edges the same way: per node, the incoming edge whose
removal gives the smallest rank sum is pruned until ``num_ops_per_node`` remain.

``exclude_none=True`` starts every decision without its zero candidate (the authors' code masks
``none`` before the first round); cell edges always start without it (removing an edge is the
topology selection's job).

Deviations from the authors' code (``VITA-Group/TENAS``): without ``lr_space`` the linear regions
are counted on a subset of the supernet's units (the first channels of every ReLU), since a
thin copy of an arbitrary space cannot be built; spaces whose nonlinearities are ``F.relu``
calls (no ``nn.ReLU`` module) count one region and are ranked by the NTK alone. ``repeats`` (1)
re-initialises, not re-samples the batch.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ..oneshot.base import OneShotModule, captured_logs, derive_from_strengths
from ..oneshot.supernet import Mix

__all__ = ['TENAS', 'linear_regions']


@torch.no_grad()
def linear_regions(model: nn.Module, example: torch.Tensor, *, samples: int = 500, channels: int = 1,
                   seed: int = 0, copy: bool = True) -> float:
    """Distinct activation patterns of the ``nn.ReLU`` modules of ``model`` (first ``channels``
    channels of each) over ``samples`` Gaussian inputs shaped like one ``example``; eval mode,
    Kaiming-normal weights from ``seed``; the model is not changed (a copy is measured, or with
    ``copy=False`` the model itself, given back as it was: :func:`~nni_nasext.evaluators.proxies.scoring_net`)."""
    from nni_nasext.evaluators.proxies import scoring_net, kaiming_init, seeded
    codes: List[torch.Tensor] = []

    def hook(mod, args):
        a = args[0]
        a = a[:, :channels] if a.dim() > 2 else a[..., :channels]
        codes.append(a.reshape(len(a), -1) > 0)

    with scoring_net(model, example.device, train=False, copy=copy) as net:
        handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
        gen = torch.Generator().manual_seed(seed)
        try:
            with seeded(seed, example.device):
                kaiming_init(net)
                x = torch.randn((samples,) + tuple(example.shape[1:]), generator=gen).to(example.device)
                net(x)
        finally:
            for h in handles:
                h.remove()
    if not codes:
        return 1.0
    return float(len(torch.unique(torch.cat(codes, dim=1), dim=0)))


class TENAS(OneShotModule):
    method = 'te_nas'
    paper = 'Chen, Gong & Wang, "Neural Architecture Search on ImageNet in Four GPU Hours", ICLR 2021'
    weighted = True
    differentiable = False
    training_free = True

    def __init__(self, inner, supernet, *, ntk_batch: int = 16, lr_samples: int = 500, lr_channels: int = 1,
                 lr_space=None, lr_input_size: Optional[Sequence[int]] = None, exclude_none: bool = False,
                 repeats: int = 1, verbose: bool = False, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if ntk_batch < 2 or lr_samples < 1 or lr_channels < 1 or repeats < 1:
            raise ValueError('ntk_batch >= 2, lr_samples, lr_channels and repeats >= 1 are needed')
        self.ntk_batch, self.lr_samples, self.lr_channels, self.repeats = ntk_batch, lr_samples, lr_channels, repeats
        self.verbose = bool(verbose)
        self.thin = None
        if lr_space is not None:
            import copy
            from ..oneshot.supernet import build_supernet
            self.thin = build_supernet(copy.deepcopy(lr_space), self.method, weighted=True)
            if set(self.thin.decisions) != set(supernet.decisions):
                raise ValueError('lr_space must have the same decisions as the space searched '
                                 f'({sorted(self.thin.decisions)[:4]}... vs {sorted(supernet.decisions)[:4]}...)')
        self.lr_input_size = None if lr_input_size is None else tuple(int(v) for v in lr_input_size)
        # cell edges start without their zero candidate (removing an edge is the topology
        # selection's job): the authors' DARTS-space setting; exclude_none does so everywhere
        self.alive = {k: [i for i in range(d.size)
                          if not ((d.kind == 'edge' or exclude_none) and i in d.none and len(d.none) < d.size)]
                      for k, d in supernet.decisions.items()}
        self.edges_kept: Dict[str, List[int]] = {}
        self.history.update(rounds=[], seconds=None)

    def _mixes(self, alive: Dict[str, List[int]]) -> Dict[str, Mix]:
        out = {}
        for k, idx in alive.items():
            w = torch.zeros(self.supernet.decisions[k].size, device=self.device)
            if idx:
                w[idx] = 1.0 / len(idx)
            out[k] = Mix.soft(w, idx)
        return out

    def _measure(self, alive, inputs: torch.Tensor):
        from nni_nasext.evaluators.proxies import score_te_nas_ntk
        self.set_mixes(self._mixes(alive))
        model = self.supernet.model
        conds, regions = [], []
        if self.thin is not None:
            self.thin.set_mixes({k: Mix.soft(m.weights.detach().cpu(), m.index) for k, m in self._mixes(alive).items()})
            example = torch.zeros((1,) + (self.lr_input_size or tuple(inputs.shape[1:])))
            lr_model, channels = self.thin.model, 10 ** 9
        else:
            example, lr_model, channels = inputs[:1], model, self.lr_channels
        # measured in place (given back as it was): a deep copy of the supernet per measurement
        # cost twice the measurement itself (NB201, one cell)
        for r in range(self.repeats):
            cond = score_te_nas_ntk(model, inputs, seed=self.seed + r, copy=False)
            conds.append(cond if math.isfinite(cond) else math.inf)
            regions.append(linear_regions(lr_model, example, samples=self.lr_samples, channels=channels,
                                          seed=self.seed + r, copy=False))
        cond = math.inf if any(math.isinf(c) for c in conds) else float(np.mean(conds))
        return cond, float(np.mean(regions))

    def _round(self, candidates, inputs):
        rows = []
        for key, removed, alive in candidates:
            cond, reg = self._measure(alive, inputs)
            rows.append({'key': key, 'removed': removed, 'ntk': cond, 'regions': reg})
        a = rankdata([r['ntk'] for r in rows]) - 1.0
        b = rankdata([-r['regions'] for r in rows]) - 1.0
        for row, x, y in zip(rows, a, b):
            row['rank_sum'] = float(x + y)
        return rows

    def model_inputs(self, batch) -> torch.Tensor:
        captured: List[Any] = []
        handle = self.supernet.model.register_forward_pre_hook(lambda m, args: captured.append(args) or None)
        saved = {n: b.detach().clone() for n, b in self.inner.named_buffers()}
        try:
            self.set_mixes(self._mixes(self.alive))
            with torch.no_grad(), captured_logs(self.inner):
                self.inner_loss(batch, 0)
        finally:
            handle.remove()
            for n, b in self.inner.named_buffers():
                b.copy_(saved[n])
        args = captured[0]
        if len(args) != 1 or not torch.is_tensor(args[0]):
            kinds = ', '.join(type(a).__name__ for a in args)
            raise TypeError(f'te_nas measures the NTK over the examples of one input tensor; this space\'s network takes '
                            f'({kinds}) (not supported)')
        return args[0][:self.ntk_batch].detach()

    def prune(self, batch) -> Dict[str, Any]:
        """Run the pruning (no training) on the inputs of ``batch``; returns the sample."""
        start = time.perf_counter()
        inputs = self.model_inputs(batch)
        if len(inputs) < 2:
            raise ValueError(f'te_nas needs a batch of at least 2 examples for the NTK, got {len(inputs)}')
        while any(len(v) > 1 for v in self.alive.values()):
            cands = [(k, i, {**self.alive, k: [j for j in idx if j != i]})
                     for k, idx in self.alive.items() if len(idx) > 1 for i in idx]
            rows = self._round(cands, inputs)
            pruned = {}
            for k in {r['key'] for r in rows}:
                best = min((r for r in rows if r['key'] == k), key=lambda r: (r['rank_sum'], r['removed']))
                self.alive[k].remove(best['removed'])
                pruned[k] = best['removed']
            self.history['rounds'].append(rows)
            if self.verbose:
                print(f'te_nas round {len(self.history["rounds"])}: {len(rows)} candidates', file=sys.stderr, flush=True)
        for group in self.supernet.state.cells.values():
            for i, edges in group.nodes.items():
                kept = [j for j, _ in edges]
                while len(kept) > group.slots:
                    cands = []
                    for j in kept:
                        alive = dict(self.alive)
                        for jj, key in edges:
                            if jj not in kept or jj == j:
                                alive[key] = []
                        cands.append((f'{group.key}/node_{i}', j, alive))
                    rows = self._round(cands, inputs)
                    drop = min(rows, key=lambda r: (r['rank_sum'], r['removed']))['removed']
                    kept.remove(drop)
                    self.history['rounds'].append(rows)
                self.edges_kept[f'{group.key}/node_{i}'] = kept
        self.history['seconds'] = time.perf_counter() - start
        return self.derive()

    def derive(self) -> Dict[str, Any]:
        if any(len(v) > 1 for v in self.alive.values()):
            raise RuntimeError('te_nas: the pruning has not run')
        strengths = {k: torch.nn.functional.one_hot(torch.tensor(v[0]), self.supernet.decisions[k].size).float()
                     for k, v in self.alive.items()}
        for group in self.supernet.state.cells.values():
            for i, edges in group.nodes.items():
                kept = self.edges_kept.get(f'{group.key}/node_{i}', [j for j, _ in edges])
                for j, key in edges:
                    if j not in kept:
                        strengths[key] = strengths[key] - 2.0
        return derive_from_strengths(self.supernet, strengths)
