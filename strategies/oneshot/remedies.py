"""Remedies for the DARTS collapse (a drift towards parameter-free candidates: skips, ``none``).

Each class is DARTS (:class:`~.darts.DARTS`) with one policy changed:

:class:`RobustDARTS` (``rdarts``)
    Zela et al., "Understanding and robustifying differentiable architecture search", ICLR
    2020 (DARTS-ES). After every epoch the dominant eigenvalue ``λ_max`` of the Hessian
    ``∇²_α L_val`` of the architecture loss (all ``α`` together) on the first
    ``kept_batches`` architecture batches, by power iteration on Hessian-vector products
    (:func:`dominant_hessian_eigenvalue`). With ``λ̄(i)`` the mean over ``es_window`` epochs
    ending at ``i``, the search stops at epoch ``i`` when ``λ̄(i−k)/λ̄(i) < es_ratio`` (0.75)
    and rolls ``α`` back to epoch ``i − k`` (:func:`eigenvalue_early_stop`; ``k = es_k``, the
    paper: 5 and a window of 5).
:class:`DARTSPlus` (``darts_plus``)
    Liang et al., "DARTS+: Improved differentiable architecture search with early stopping",
    arXiv 1909.06035: stop when the derived architecture holds ``max_skips`` (2) or more skip
    connections, or when the ranking of ``α`` over the candidates with parameters of every
    decision stayed the same for ``patience`` (10) epochs (:func:`darts_plus_stop`).
:class:`PDARTS` (``pdarts``)
    Chen et al., "Progressive differentiable architecture search", ICCV 2019, search-space
    regularisation: dropout after every skip candidate at rate ``p_0 exp(−d·epoch)``, and at
    derivation at most ``max_skips`` skips (the weakest extra skips give way to their
    decision's next candidate). The progressive depth stages are not part of it.
:class:`ASAP` (``asap``)
    Noy et al., "ASAP: Architecture search, anneal and prune", AISTATS 2020 (Algorithm 1):
    ``Φ(α; T) = softmax(α / T)`` over the candidates not yet pruned, ``T`` decaying
    exponentially from ``anneal_tau0`` to ``anneal_tau_end`` over the planned steps; after
    every architecture step a candidate with ``Φ < θ_t`` is pruned for good, ``θ_t`` growing
    exponentially from ``prune_threshold0`` to ``prune_threshold_end`` (the strongest candidate
    of a decision is never pruned; pruned candidates are not computed).
:class:`DARTSPT` (``darts_pt``) and :class:`DARTSPTFixed` (``darts_pt_fixed``)
    Wang et al., "Rethinking architecture selection in differentiable NAS", ICLR 2021
    (Algorithm 1, perturbation-based selection), after the DARTS search (or, ``_fixed``, a
    supernet trained with uniform ``α`` that is never updated: the paper's "DARTS+PT (fix α)").
    The decisions are taken one at a time in a seeded random order: each candidate still
    weighted is masked out in turn and the supernet's metric measured on the kept
    architecture batches; the candidate whose removal costs the most is kept and the decision
    becomes that candidate alone; the supernet is fine-tuned ``tune_steps`` weight steps
    between decisions. Cells then choose their edges the same way (topology selection): per
    node, each remaining incoming edge is removed in turn and the ``num_ops_per_node`` edges
    whose removal costs the most are kept.

Deviations, for CPU-sized searches: the windows (``es_k``, ``es_window``, ``patience``,
``min_epochs``) are parameters; the Hessian and DARTS-PT's measurements use the kept batches,
not the whole validation set; DARTS-PT fine-tunes for a few steps rather than epochs.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import captured_logs, derive_from_strengths
from .darts import DARTS
from .mixed import PartialChannels
from .supernet import Mix

__all__ = ['ASAP', 'DARTSPT', 'DARTSPTFixed', 'DARTSPlus', 'PDARTS', 'RobustDARTS', 'SkipDropout',
           'darts_plus_stop', 'dominant_hessian_eigenvalue', 'eigenvalue_early_stop']


# ----------------------------------------------------------------------------- pure functions

def dominant_hessian_eigenvalue(loss_fn, params: Sequence[torch.Tensor], iters: int = 20, seed: int = 0,
                                tol: float = 1e-3) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``loss_fn()`` w.r.t. ``params``:
    power iteration with Hessian-vector products by double backpropagation (Pearlmutter 1994),
    from a seeded Gaussian vector; the Rayleigh quotient after ``iters`` iterations or when it
    changes by less than ``tol`` (relative). 0.0 when the loss is linear in ``params``."""
    params = list(params)
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True, allow_unused=True)
    pairs = [(g, p) for g, p in zip(grads, params) if g is not None and g.requires_grad]
    if not pairs:
        return 0.0
    grads, params = [g for g, _ in pairs], [p for _, p in pairs]
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype) for p in params]
    norm = torch.sqrt(sum((x ** 2).sum() for x in v))
    v = [x / norm for x in v]
    value = None
    for _ in range(max(1, int(iters))):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, allow_unused=True)
        hv = [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, params)]
        new = float(sum((h * x).sum() for h, x in zip(hv, v)))
        norm = torch.sqrt(sum((h ** 2).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0
        v = [h / norm for h in hv]
        if value is not None and abs(new - value) <= tol * max(abs(new), 1e-12):
            return new
        value = new
    return value


def eigenvalue_early_stop(eigenvalues: Sequence[float], k: int = 5, window: Optional[int] = None,
                          ratio: float = 0.75) -> Optional[int]:
    """DARTS-ES: the epoch to roll back to if the search stops after the last epoch ``i`` of
    ``eigenvalues``, else None: fires when ``λ̄(i−k) / λ̄(i) < ratio`` (windows of ``window``
    epochs, default ``k``, both complete)."""
    w = int(window or k)
    i = len(eigenvalues) - 1
    if k < 1 or w < 1 or i - k - w + 1 < 0:
        return None
    now = sum(eigenvalues[i - w + 1:i + 1]) / w
    before = sum(eigenvalues[i - k - w + 1:i - k + 1]) / w
    if now <= 0:
        return None
    return i - k if before / now < ratio else None


def darts_plus_stop(skip_counts: Sequence[int], rankings: Sequence[Any], *, max_skips: Optional[int] = 2,
                    patience: int = 10, min_epochs: int = 1) -> Optional[str]:
    """DARTS+ after the last epoch ``i``: ``'skip_connections'`` if epoch ``i``'s architecture has
    ``>= max_skips`` skips, ``'stable_ranking'`` if the rankings of epochs ``i − patience .. i``
    are equal, else None; neither before ``min_epochs`` epochs."""
    i = len(skip_counts) - 1
    if i + 1 <= min_epochs:
        return None
    if max_skips is not None and skip_counts[i] >= max_skips:
        return 'skip_connections'
    if patience >= 1 and i >= patience and all(r == rankings[i] for r in rankings[i - patience:i]):
        return 'stable_ranking'
    return None


def count_skips(supernet, sample: Dict[str, Any]) -> int:
    """Skip candidates in ``sample``: layer choices and cell slots whose op is a skip."""
    n = 0
    for d in supernet.decisions.values():
        if d.kind == 'layer' and d.skip and d.candidates.index(sample[d.label]) in d.skip:
            n += 1
    for group in supernet.state.cells.values():
        skip_names = {group.op_names[i] for i in supernet.decisions[group.nodes[min(group.nodes)][0][1]].skip}
        n += sum(1 for lb in group.op_labels.values() if sample[lb] in skip_names)
    return n


# ----------------------------------------------------------------------------- base of the remedies

class _Remedy(DARTS):
    """Keeps the first architecture and weight batches; records why and when the search stopped."""

    def __init__(self, inner, supernet, *, kept_batches: int = 4, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if int(kept_batches) < 1:
            raise ValueError(f'kept_batches must be positive, got {kept_batches}')
        self.kept_batches = int(kept_batches)
        self.kept_arch: List[Any] = []
        self.kept_train: List[Any] = []
        self.history.update(stopped_at=None, stop_reason=None)

    def training_step(self, batch, batch_idx):
        if len(self.kept_arch) < self.kept_batches:
            self.kept_arch.append(_detached(batch['arch']))
            self.kept_train.append(_detached(batch['train']))
        return super().training_step(batch, batch_idx)

    def stop(self, reason: str) -> None:
        self.history['stopped_at'], self.history['stop_reason'] = self.current_epoch, reason
        if self._trainer is not None:
            self.trainer.should_stop = True

    def extra_state(self) -> Dict[str, Any]:
        return {'kept_arch': self.kept_arch, 'kept_train': self.kept_train}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.kept_arch, self.kept_train = list(state.get('kept_arch', [])), list(state.get('kept_train', []))


def _detached(batch):
    if torch.is_tensor(batch):
        return batch.detach().clone()
    if isinstance(batch, (list, tuple)):
        return type(batch)(_detached(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _detached(v) for k, v in batch.items()}
    return batch


class RobustDARTS(_Remedy):
    method = 'rdarts'
    ddp_unsupported = ('its early stop and roll-back follow a Hessian eigenvalue computed on the batches that '
                       'each process kept, so processes would decide differently')
    paper = 'Zela et al., "Understanding and Robustifying Differentiable Architecture Search", ICLR 2020'

    def __init__(self, inner, supernet, *, es_k: int = 5, es_window: Optional[int] = None, es_ratio: float = 0.75,
                 early_stop: bool = True, hessian_iters: int = 20, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        self.es = dict(k=int(es_k), window=es_window, ratio=float(es_ratio))
        self.early_stop, self.hessian_iters = bool(early_stop), int(hessian_iters)
        self.snapshots: List[List[torch.Tensor]] = []
        self.history.update(eigenvalue=[], rollback_epoch=None)

    def hessian_eigenvalue(self) -> float:
        if not self.kept_arch:
            raise RuntimeError('rdarts: no architecture batches kept to compute the Hessian on')

        def loss_fn():
            self.set_mixes(self.mixes(training=True))
            with captured_logs(self.inner):
                return sum(self.inner_loss(self._to_device(b), 0) for b in self.kept_arch) / len(self.kept_arch)

        saved = {n: b.detach().clone() for n, b in self.inner.named_buffers()}
        try:
            with torch.enable_grad():
                return dominant_hessian_eigenvalue(loss_fn, self.arch_parameters(), iters=self.hessian_iters,
                                                   seed=self.seed)
        finally:
            with torch.no_grad():
                for n, b in self.inner.named_buffers():
                    b.copy_(saved[n])

    def on_epoch_schedule(self) -> None:
        self.snapshots.append([a.detach().cpu().clone() for a in self.alpha])
        self.history['eigenvalue'].append(float(self.hessian_eigenvalue()))
        back = eigenvalue_early_stop(self.history['eigenvalue'], **self.es)
        if back is not None and self.early_stop:
            with torch.no_grad():
                for a, s in zip(self.alpha, self.snapshots[back]):
                    a.copy_(s.to(a.device))
            self.history['rollback_epoch'] = back
            self.stop('eigenvalue')

    def extra_state(self) -> Dict[str, Any]:
        return {**super().extra_state(), 'snapshots': self.snapshots}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.snapshots = list(state.get('snapshots', []))


class DARTSPlus(_Remedy):
    method = 'darts_plus'
    paper = 'Liang et al., "DARTS+: Improved Differentiable Architecture Search with Early Stopping", arXiv 2019'

    def __init__(self, inner, supernet, *, max_skips: Optional[int] = 2, patience: int = 10, min_epochs: int = 1,
                 **kwargs):
        super().__init__(inner, supernet, **kwargs)
        self.max_skips, self.patience, self.min_epochs = max_skips, int(patience), int(min_epochs)
        self.history.update(skips=[], ranking=[])

    def ranking(self) -> List[List[int]]:
        out = []
        for k, s in self.strengths().items():
            d = self.supernet.decisions[k]
            idx = list(d.learnable) if d.learnable else list(range(d.size))
            out.append([idx[j] for j in torch.argsort(s[idx], descending=True, stable=True).tolist()])
        return out

    def on_epoch_schedule(self) -> None:
        self.history['ranking'].append(self.ranking())
        self.history['skips'].append(count_skips(self.supernet, self.derive()))
        reason = darts_plus_stop(self.history['skips'], self.history['ranking'], max_skips=self.max_skips,
                                 patience=self.patience, min_epochs=self.min_epochs)
        if reason:
            self.stop(reason)


class SkipDropout(nn.Module):
    """Dropout after a skip candidate, at the rate ``p`` (P-DARTS)."""

    def __init__(self, op: nn.Module, p: float = 0.0):
        super().__init__()
        self.op, self.p = op, float(p)

    def forward(self, *args, **kwargs):
        out = self.op(*args, **kwargs)
        return F.dropout(out, self.p, self.training) if self.p > 0 else out


def limit_skips(supernet, strengths: Dict[str, torch.Tensor], max_skips: Optional[int]) -> Dict[str, Any]:
    """The derived architecture with at most ``max_skips`` skips: while there are more, the skip
    with the weakest strength is forbidden in its decision and the architecture derived again."""
    strengths = {k: v.clone().float() for k, v in strengths.items()}
    sample = derive_from_strengths(supernet, strengths)
    while max_skips is not None and count_skips(supernet, sample) > max_skips:
        weakest = None
        for k, d in supernet.decisions.items():
            for i in d.skip:
                if math.isfinite(float(strengths[k][i])) and (weakest is None or strengths[k][i] < weakest[0]):
                    if _uses_skip(supernet, sample, k, i):
                        weakest = (float(strengths[k][i]), k, i)
        if weakest is None:
            break
        strengths[weakest[1]][weakest[2]] = -math.inf
        sample = derive_from_strengths(supernet, strengths)
    return sample


def _uses_skip(supernet, sample, key, i) -> bool:
    d = supernet.decisions[key]
    if d.label is not None:
        return sample[d.label] == d.candidates[i]
    for group in supernet.state.cells.values():
        for node, edges in group.nodes.items():
            for j, k in edges:
                if k == key:
                    for (n, slot), lb in group.op_labels.items():
                        inp = sample[group.input_labels[(n, slot)]]
                        if n == node and (inp[0] if isinstance(inp, list) else inp) == group.input_values[(n, slot)][j] \
                                and sample[lb] == group.op_names[i]:
                            return True
    return False


class PDARTS(_Remedy):
    method = 'pdarts'
    paper = 'Chen, Xie, Wu & Tian, "Progressive Differentiable Architecture Search", ICCV 2019'

    def __init__(self, inner, supernet, *, skip_dropout: float = 0.4, skip_dropout_decay: float = 0.2,
                 max_skips: Optional[int] = 2, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if not 0.0 <= skip_dropout <= 1.0:
            raise ValueError(f'skip_dropout must lie in [0, 1], got {skip_dropout}')
        self.skip_dropout, self.skip_dropout_decay, self.max_skips = float(skip_dropout), float(skip_dropout_decay), max_skips
        for pc in supernet.model.modules():
            if isinstance(pc, PartialChannels) and pc.key in supernet.decisions:
                for i in supernet.decisions[pc.key].skip:
                    if not isinstance(pc.candidates[i], SkipDropout):
                        pc.candidates[i] = SkipDropout(pc.candidates[i])
        self.history.update(skip_dropout=[])

    def set_skip_dropout(self, p: float) -> None:
        for m in self.supernet.model.modules():
            if isinstance(m, SkipDropout):
                m.p = float(p)

    def on_train_epoch_start(self):
        p = self.skip_dropout * math.exp(-self.skip_dropout_decay * self.current_epoch)
        self.set_skip_dropout(p)
        self.history['skip_dropout'].append(p)
        return super().on_train_epoch_start()

    def on_train_end(self):
        self.set_skip_dropout(0.0)
        return super().on_train_end()

    def derive(self) -> Dict[str, Any]:
        return limit_skips(self.supernet, self.strengths(), self.max_skips)


class ASAP(_Remedy):
    method = 'asap'
    paper = 'Noy et al., "ASAP: Architecture Search, Anneal and Prune", AISTATS 2020'

    def __init__(self, inner, supernet, *, anneal_tau0: float = 1.0, anneal_tau_end: float = 0.05,
                 prune_threshold0: float = 0.05, prune_threshold_end: float = 0.3, grace_epochs: int = 0, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if not 0 < anneal_tau_end <= anneal_tau0 or not 0 < prune_threshold0 <= prune_threshold_end:
            raise ValueError('ASAP needs 0 < anneal_tau_end <= anneal_tau0 and 0 < prune_threshold0 <= prune_threshold_end')
        self.anneal = dict(tau0=anneal_tau0, tau_end=anneal_tau_end, th0=prune_threshold0, th_end=prune_threshold_end)
        self.grace_epochs = int(grace_epochs)
        self.tau, self.threshold = float(anneal_tau0), float(prune_threshold0)
        self.masks = {k: torch.ones(d.size, dtype=torch.bool) for k, d in supernet.decisions.items()}
        self.history.update(threshold=[], pruned=[], alive=[])

    def schedule(self, progress: float) -> None:
        a, s = self.anneal, min(max(progress, 0.0), 1.0)
        self.tau = a['tau0'] * (a['tau_end'] / a['tau0']) ** s
        self.threshold = a['th0'] * (a['th_end'] / a['th0']) ** s

    def probs(self, key: str) -> torch.Tensor:
        mask = self.masks[key].to(self.a(key).device)
        return F.softmax((self.a(key) / self.tau).masked_fill(~mask, -math.inf), dim=-1)

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        return {k: Mix.soft(self.probs(k), [i for i, m in enumerate(self.masks[k].tolist()) if m]) for k in self.keys}

    def prune(self) -> List[tuple]:
        gone = []
        with torch.no_grad():
            for k in self.keys:
                w = self.probs(k).detach().cpu()
                mask = self.masks[k]
                best = int(w.masked_fill(~mask, -1.0).argmax())
                for i in range(len(w)):
                    if mask[i] and i != best and float(w[i]) < self.threshold:
                        mask[i] = False
                        gone.append((self.current_epoch, k, str(self.supernet.decisions[k].candidates[i])))
        return gone

    def training_step(self, batch, batch_idx):
        n = self.trainer.num_training_batches if self._trainer is not None else 1
        n = n if isinstance(n, int) and n > 0 else 1
        total = self.trainer.max_epochs if self._trainer is not None else 1
        self.schedule((self.current_epoch + batch_idx / n) / max(1, total))
        loss = super().training_step(batch, batch_idx)
        if self.current_epoch >= max(self.grace_epochs, self.hp['warmup_epochs']):
            self.history['pruned'].extend(self.prune())
        return loss

    def on_epoch_schedule(self) -> None:
        self.history['threshold'].append(self.threshold)
        self.history['alive'].append({k: int(m.sum()) for k, m in self.masks.items()})

    def extra_state(self) -> Dict[str, Any]:
        return {**super().extra_state(), 'masks': {k: m.tolist() for k, m in self.masks.items()}, 'tau': self.tau,
                'threshold': self.threshold}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.masks = {k: torch.tensor(v, dtype=torch.bool) for k, v in state.get('masks', {}).items()} or self.masks
        self.tau, self.threshold = state.get('tau', self.tau), state.get('threshold', self.threshold)


class DARTSPT(_Remedy):
    method = 'darts_pt'
    ddp_unsupported = ('its selection after training tunes and scores on the batches that each process kept, '
                       'so processes would derive different architectures')
    paper = 'Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021'
    fix_alpha = False

    def __init__(self, inner, supernet, *, tune_steps: int = 5, tune_lr: Optional[float] = None, kept_batches: int = 8,
                 **kwargs):
        super().__init__(inner, supernet, kept_batches=kept_batches, **kwargs)
        self.tune_steps, self.tune_lr = int(tune_steps), tune_lr
        if self.fix_alpha:
            with torch.no_grad():
                for a in self.alpha:
                    a.zero_()
                    a.requires_grad_(False)
        self.history.update(pt=None)

    def arch_parameters(self) -> List[nn.Parameter]:
        return [] if self.fix_alpha else super().arch_parameters()

    def _measure(self, weights: Dict[str, torch.Tensor]) -> float:
        mixes = {k: Mix.soft(w, [i for i in range(len(w)) if float(w[i]) != 0.0]) for k, w in weights.items()}
        return self.score(mixes=mixes, batches=self.kept_arch)

    def _tune(self, weights: Dict[str, torch.Tensor]) -> None:
        if self.tune_steps <= 0 or not self.kept_train:
            return
        lr = self.tune_lr
        if lr is None:
            lr = float(self._weight_optimizer().optimizer.param_groups[0]['lr']) if self._trainer is not None else 0.01
        params = self.weight_parameters()
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        was = self.inner.training
        self.inner.train()
        mixes = {k: Mix.soft(w, [i for i in range(len(w)) if float(w[i]) != 0.0]) for k, w in weights.items()}
        with torch.enable_grad(), captured_logs(self.inner):
            for step in range(self.tune_steps):
                self.set_mixes(mixes)
                opt.zero_grad()
                loss = self.inner_loss(self._to_device(self.kept_train[step % len(self.kept_train)]), step)
                loss.backward()
                if self.hp['grad_clip']:
                    nn.utils.clip_grad_norm_(params, self.hp['grad_clip'])
                opt.step()
        for p in params:
            p.grad = None
        self.inner.train(was)

    def select(self) -> Dict[str, Any]:
        if not self.kept_arch:
            raise RuntimeError('DARTS-PT selects after training: no architecture batches were kept')
        sn = self.supernet
        with torch.no_grad():
            weights = {k: self.probs(k).detach().clone().to(self.device) for k in self.keys}
        rng = np.random.RandomState(self.seed)
        order = [self.keys[i] for i in rng.permutation(len(self.keys))]
        scores, chosen = {}, {}
        for key in order:
            alive = [i for i in range(len(weights[key])) if float(weights[key][i]) != 0.0]
            if len(alive) > 1:
                result = {}
                for i in alive:
                    w = dict(weights)
                    w[key] = weights[key].clone()
                    w[key][i] = 0.0
                    result[i] = self._measure(w)
                best = min(result, key=lambda i: (result[i], i))
                scores[key] = {str(sn.decisions[key].candidates[i]): v for i, v in result.items()}
            else:
                best = alive[0]
            chosen[key] = best
            weights[key] = F.one_hot(torch.tensor(best), len(weights[key])).to(weights[key])
            self._tune(weights)
        # topology selection in cells: per node keep the edges whose removal costs the most
        kept_edges: Dict[str, List[int]] = {}
        for group in sn.state.cells.values():
            for i, edges in group.nodes.items():
                if len(edges) <= group.slots:
                    kept_edges[f'{group.key}/node_{i}'] = [j for j, _ in edges]
                    continue
                result = {}
                for j, key in edges:
                    w = dict(weights)
                    w[key] = torch.zeros_like(weights[key])
                    result[j] = self._measure(w)
                ranked = sorted(result, key=lambda j: (result[j], j))[:group.slots]
                kept_edges[f'{group.key}/node_{i}'] = ranked
                for j, key in edges:
                    if j not in ranked:
                        weights[key] = torch.zeros_like(weights[key])
                scores[f'{group.key}/node_{i}'] = {str(j): v for j, v in result.items()}
                self._tune(weights)
        strengths = {k: F.one_hot(torch.tensor(chosen[k]), len(w)).float() for k, w in weights.items()}
        for group in sn.state.cells.values():
            for i, edges in group.nodes.items():
                keep = kept_edges[f'{group.key}/node_{i}']
                for j, key in edges:
                    if j not in keep:
                        strengths[key] = strengths[key] * 0.0 - 1.0
        sample = derive_from_strengths(sn, strengths)
        self.history['pt'] = {'order': order, 'scores': scores, 'chosen': {k: str(sn.decisions[k].candidates[i])
                                                                          for k, i in chosen.items()}}
        return sample

    def derive(self) -> Dict[str, Any]:
        return self.select()


class DARTSPTFixed(DARTSPT):
    method = 'darts_pt_fixed'
    fix_alpha = True

