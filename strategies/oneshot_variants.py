"""Remedies for the DARTS collapse, as subclasses of :class:`~nni_nasext.strategies.oneshot.OneShotModule`.

On NAS-Bench-201, first-order DARTS drifts towards cells of parameter-free ops (skip
connections, ``none``): the "collapse". Five published remedies, each one Lightning module
that :func:`~nni_nasext.strategies.oneshot.search` trains (``module_cls=``), or through
:func:`search_variant`:

``rdarts`` (:class:`RobustDartsModule`)
    Zela et al., "Understanding and robustifying differentiable architecture search",
    ICLR 2020 (DARTS-ES). After every epoch, the dominant eigenvalue ``λ_max`` of the
    Hessian ``∇²_α L_valid(w, α)`` of the validation loss with respect to ``α``, by power
    iteration on Hessian-vector products (double backpropagation,
    :func:`dominant_hessian_eigenvalue`) on a fixed set of batches of the architecture half.
    With ``λ̄(i)`` the mean of ``λ_max`` over a window of epochs ending at epoch ``i``, the
    search stops at epoch ``i`` when ``λ̄(i-k) / λ̄(i) < 0.75`` and returns the architecture
    of epoch ``i-k`` (:func:`eigenvalue_early_stop`; the paper: ``k = 5`` and a window of 5).
``darts_plus`` (:class:`DartsPlusModule`)
    Liang et al., "DARTS+: Improved differentiable architecture search with early
    stopping", arXiv 1909.06035, 2019. Criterion 1: stop when the derived cell holds
    ``max_skips`` or more skip connections (the paper: 2 in the normal cell; here the one
    NB201 cell). Criterion 2: stop when the ranking of ``α`` over the learnable ops of every
    edge stayed the same for ``patience`` epochs (the paper: 10). The cell of the stopping
    epoch is derived.
``pdarts`` (:class:`PDartsModule`)
    Chen et al., "Progressive differentiable architecture search: bridging the depth gap
    between search and evaluation", ICCV 2019, search-space regularization: dropout on the
    output of every skip connection during the search, rate ``p_e = p_0 exp(-d e)`` at epoch
    ``e`` (an exponential decay as in P-DARTS' released schedule; ``d = 0.2`` by default),
    and at derivation at most ``max_skips`` skip connections (the ones with the largest
    weights; the other edges take their next-best op, :func:`limit_skip_connections`). The
    progressive depth and op-pruning stages are not part of this module (NB201 has one cell
    and five ops).
``asap`` (:class:`AsapModule`)
    Noy et al., "ASAP: Architecture search, anneal and prune", AISTATS 2020 (Algorithm 1).
    Edges mix their ops by the annealed softmax ``Φ_o(α; T) = exp(α_o / T) / Σ_o' exp(α_o' / T)``
    over the ops not yet pruned; ``T`` decays exponentially per step, ``T_t = T_0 (T_end /
    T_0)^(t / t_end)``, and after every architecture step an op with ``Φ_o < θ_t`` is pruned
    from its edge for the rest of the search, with a threshold that grows exponentially as
    ``T`` falls, ``θ_t = θ_0 (θ_end / θ_0)^(t / t_end)`` (:func:`asap_prune`; the strongest op of
    an edge is never pruned). The derived op is the strongest remaining one.
``darts_pt`` (:class:`DartsPTModule`)
    Wang et al., "Rethinking architecture selection in differentiable NAS", ICLR 2021
    (Algorithm 1, perturbation-based selection). After the DARTS search, the edges are
    decided one at a time in a random (seeded) order: on the edge, every op is masked out in
    turn (its mixing weight set to zero) and the supernet's accuracy on the kept batches of
    the architecture half is measured; the op whose removal costs the most accuracy is kept
    and the edge becomes that op alone; the supernet is fine-tuned for ``tune_steps`` steps
    between edges (:func:`perturbation_select`). ``fix_alpha=True`` is the paper's
    "DARTS+PT (fix α)": ``α`` is never trained.

The new method names are DARTS (first order) plus the remedy. The remedies of
:class:`RobustDartsModule`, :class:`DartsPlusModule`, :class:`PDartsModule` and
:class:`DartsPTModule` also apply to the base class's other differentiable methods
(``RobustDartsModule('darts2')`` is the paper's second-order DARTS-ES); ASAP owns its mixing
and takes ``'asap'`` only.

Deviations from the papers, for a CPU-sized NB201 search: epochs are few, so the windows
(``es_k``, ``es_window``, ``patience``, ``min_epochs``) are parameters; the Hessian is that
of the kept batches (``kept_batches``, the first architecture batches of the search), not of
the whole validation half; DARTS-PT measures accuracy on those kept batches and fine-tunes
for a few steps rather than epochs; pruned ASAP ops are still computed (with weight 0), so
pruning does not speed the search up.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.strategies.oneshot import OneShotModule, search
from nni_nasext.strategies.oneshot_supernet import Mix, MixedEdge

__all__ = ['VARIANT_METHODS', 'AsapModule', 'DartsPTModule', 'DartsPlusModule', 'PDartsModule', 'RobustDartsModule',
           'SkipDropout', 'asap_prune', 'darts_plus_stop', 'dominant_hessian_eigenvalue', 'eigenvalue_early_stop',
           'limit_skip_connections', 'perturbation_select', 'search_variant']

SKIP = OPS.index('skip_connect')
LEARNABLE_OPS = ('nor_conv_1x1', 'nor_conv_3x3')


# -------------------------------------------------------------------- pure functions

def dominant_hessian_eigenvalue(loss_fn, params: Sequence[torch.Tensor], iters: int = 20, seed: int = 0,
                                tol: float = 1e-3) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``loss_fn()`` w.r.t. ``params``.

    Power iteration ``v ← Hv / ||Hv||`` with the Hessian-vector product by double
    backpropagation, ``Hv = ∇_p (∇_p L · v)`` (Pearlmutter 1994); the loss and its gradient
    graph are built once and reused, so a random forward pass (sampled paths) is one fixed
    function. Returns the Rayleigh quotient ``vᵀHv`` (``v`` of unit norm) after ``iters``
    iterations or when it changes by less than ``tol`` (relative). Starts from a seeded
    Gaussian vector. 0.0 when the loss is linear in ``params``.
    """
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
    """DARTS-ES (Zela et al. 2020): the epoch to roll back to if the search stops now, else None.

    ``eigenvalues[e]`` is ``λ_max`` after epoch ``e``; ``i`` is the last epoch. With ``λ̄(j)``
    the mean over the ``window`` (default ``k``) epochs ending at ``j``, the rule fires when
    ``λ̄(i-k) / λ̄(i) < ratio`` (both windows complete) and returns ``i - k``.
    """
    w = int(window or k)
    i = len(eigenvalues) - 1
    if k < 1 or w < 1 or i - k - w + 1 < 0:
        return None
    now = sum(eigenvalues[i - w + 1:i + 1]) / w
    before = sum(eigenvalues[i - k - w + 1:i - k + 1]) / w
    if now <= 0:
        return None
    return i - k if before / now < ratio else None


def darts_plus_stop(skip_counts: Sequence[int], rankings: Sequence[Any], *, max_skips: int = 2, patience: int = 10,
                    min_epochs: int = 1) -> Optional[str]:
    """DARTS+ (Liang et al. 2019) after the last epoch ``i`` of the lists: ``'skip_connections'``
    if the derived cell of epoch ``i`` has ``>= max_skips`` skips, ``'stable_ranking'`` if the
    rankings of epochs ``i - patience .. i`` are all equal, else None. Neither fires before
    ``min_epochs`` epochs have run (a freshly initialised ``α`` is noise)."""
    i = len(skip_counts) - 1
    if i + 1 <= min_epochs:
        return None
    if max_skips is not None and skip_counts[i] >= max_skips:
        return 'skip_connections'
    if patience >= 1 and i >= patience and all(r == rankings[i] for r in rankings[i - patience:i]):
        return 'stable_ranking'
    return None


def limit_skip_connections(strengths, max_skips: Optional[int] = 2) -> Dict[str, str]:
    """P-DARTS' architecture refinement: the per-edge argmax cell with at most ``max_skips``
    skip connections. ``strengths`` is 6 x 5 (edges x :data:`OPS`). When more edges pick
    ``skip_connect``, those with the largest skip weights keep it and every other one takes
    its strongest non-skip op."""
    s = torch.as_tensor(strengths, dtype=torch.float64)
    best = s.argmax(dim=1).tolist()
    skips = [e for e, k in enumerate(best) if k == SKIP]
    if max_skips is not None and len(skips) > max_skips:
        keep = set(sorted(skips, key=lambda e: -float(s[e, SKIP]))[:max_skips])
        for e in skips:
            if e not in keep:
                row = s[e].clone()
                row[SKIP] = -math.inf
                best[e] = int(row.argmax())
    return {label: OPS[k] for label, k in zip(EDGE_LABELS, best)}


def asap_prune(weights: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """ASAP's pruning step: the new mask (edges x ops, True = alive) without the alive ops
    whose weight is below ``threshold``; the strongest alive op of an edge always stays."""
    w = weights.detach().masked_fill(~mask, -math.inf)
    below = mask & (w < threshold)
    below[torch.arange(w.shape[0], device=w.device), w.argmax(dim=1)] = False
    return mask & ~below


@contextmanager
def _buffers_kept(net: nn.Module):
    """Restore the module's buffers (BN running statistics) on exit."""
    saved = {name: b.detach().clone() for name, b in net.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in net.named_buffers():
                b.copy_(saved[name])


def perturbation_select(module, batches, *, tune_batches=None, tune_steps: int = 0, tune_lr: float = 0.025,
                        momentum: float = 0.9, grad_clip: float = 5.0, seed: int = 0) -> Dict[str, Any]:
    """DARTS-PT (Wang et al. 2021, Algorithm 1): perturbation-based selection of one op per edge.

    ``module`` has a ``supernet`` (``supernet(x, mixes, edge_scale)`` with a soft
    :class:`Mix` per edge label), ``op_strengths()`` (6 x 5, the starting mixing weights)
    and optionally ``edge_scale()``. The edges are taken in a random order (``seed``); on
    each, every op with a nonzero weight is masked out in turn and the accuracy on
    ``batches`` measured (train-mode BN: batch statistics; the running statistics are
    restored); the op whose removal leaves the lowest accuracy is kept (ties: the highest
    loss) and the edge is discretized to it. Between edges the supernet's weights are
    fine-tuned for ``tune_steps`` SGD steps on ``tune_batches`` under the current, partly
    discretized weights (this changes ``module.supernet``). Returns ``{'sample', 'order',
    'scores' (edge -> op -> accuracy without it), 'base_acc' (edge -> accuracy before)}``.
    """
    net = module.supernet
    scale_fn = getattr(module, 'edge_scale', None)
    weights = module.op_strengths().detach().clone().float()
    device = next(net.parameters()).device
    weights = weights.to(device)
    order = torch.randperm(len(EDGE_LABELS), generator=torch.Generator().manual_seed(seed)).tolist()

    def mixes(w):
        return {label: Mix('soft', weights=w[e]) for e, label in enumerate(EDGE_LABELS)}

    @torch.no_grad()
    def evaluate(w):
        was = net.training
        net.train()
        correct = total = 0
        loss = 0.0
        with _buffers_kept(net):
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                logits = net(x, mixes(w), scale_fn() if scale_fn else None)
                correct += int((logits.argmax(-1) == y).sum())
                loss += float(F.cross_entropy(logits, y, reduction='sum'))
                total += len(y)
        net.train(was)
        return correct / max(1, total), loss / max(1, total)

    def tune(w):
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=tune_lr, momentum=momentum)
        was = net.training
        net.train()
        with torch.enable_grad():
            for step in range(tune_steps):
                x, y = tune_batches[step % len(tune_batches)]
                opt.zero_grad()
                loss = F.cross_entropy(net(x.to(device), mixes(w), scale_fn() if scale_fn else None), y.to(device))
                loss.backward()
                nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
        for p in params:
            p.grad = None
        net.train(was)

    sample, scores, base = {}, {}, {}
    for e in order:
        label = EDGE_LABELS[e]
        base[label] = evaluate(weights)[0]
        results = {}
        for k, op in enumerate(OPS):
            if float(weights[e, k]) == 0.0:
                continue
            w = weights.clone()
            w[e, k] = 0.0
            results[op] = evaluate(w)
        chosen = min(results, key=lambda op: (results[op][0], -results[op][1]))
        sample[label] = chosen
        scores[label] = {op: acc for op, (acc, _) in results.items()}
        weights[e] = F.one_hot(torch.tensor(OPS.index(chosen)), len(OPS)).to(weights)
        if tune_steps > 0 and tune_batches and len(sample) < len(EDGE_LABELS):
            tune(weights)
    return {'sample': {label: sample[label] for label in EDGE_LABELS}, 'order': [EDGE_LABELS[e] for e in order],
            'scores': scores, 'base_acc': base}


# -------------------------------------------------------------------- modules

class _RemedyModule(OneShotModule):
    """Shared parts: the method name, batches kept from the first steps, stopping records."""

    variant = ''
    methods = OneShotModule.differentiable_methods
    differentiable_methods = OneShotModule.differentiable_methods

    def __init__(self, method: Optional[str] = None, *, kept_batches: int = 4, **kwargs):
        super().__init__(method or self.variant, **kwargs)
        self.kept_batches = int(kept_batches)
        self.kept_val: List[tuple] = []    # (x, y) of the architecture half, the first steps' batches
        self.kept_train: List[tuple] = []  # (x, y) of the weight half, the same steps
        self.history.update(stopped_at=None, stop_reason=None)

    def training_step(self, batch, batch_idx):
        if len(self.kept_val) < self.kept_batches:
            (xt, yt), (xv, yv) = batch
            self.kept_val.append((xv.detach().clone(), yv.detach().clone()))
            self.kept_train.append((xt.detach().clone(), yt.detach().clone()))
        return super().training_step(batch, batch_idx)

    def _epoch(self) -> int:
        return len(self.history['alpha']) - 1

    def _stop(self, reason: str) -> None:
        self.history['stopped_at'], self.history['stop_reason'] = self._epoch(), reason
        if self._trainer is not None:
            self.trainer.should_stop = True


class RobustDartsModule(_RemedyModule):
    """DARTS-ES (method ``'rdarts'``; see the module docstring).

    ``es_k`` (5): the lag ``k``; ``es_window`` (None = ``k``): epochs averaged into ``λ̄``;
    ``es_ratio`` (0.75); ``early_stop`` (True; False only tracks ``λ_max``);
    ``hessian_iters`` (20): power iterations; ``kept_batches`` (4): the fixed batches of the
    architecture half the Hessian is computed on. ``history``: ``'eigenvalue'`` per epoch,
    ``'stopped_at'``, ``'stop_reason'``, ``'rollback_epoch'``; on stopping, ``alpha`` is set
    back to its value after epoch ``i - k`` (the weights are not).
    """

    variant = 'rdarts'
    methods = ('rdarts',) + _RemedyModule.methods
    differentiable_methods = ('rdarts',) + _RemedyModule.differentiable_methods

    def __init__(self, method: str = 'rdarts', *, es_k: int = 5, es_window: Optional[int] = None,
                 es_ratio: float = 0.75, early_stop: bool = True, hessian_iters: int = 20, **kwargs):
        super().__init__(method, **kwargs)
        self.es = dict(k=int(es_k), window=es_window, ratio=float(es_ratio))
        self.early_stop, self.hessian_iters = bool(early_stop), int(hessian_iters)
        self.alpha_snapshots: List[torch.Tensor] = []
        self.history.update(eigenvalue=[], rollback_epoch=None)

    def hessian_eigenvalue(self, batches=None) -> float:
        """``λ_max`` of ``∇²_α`` of the mean cross-entropy on ``batches`` (default: the kept ones)."""
        batches = batches if batches is not None else self.kept_val
        if not batches:
            raise RuntimeError('no validation batches to compute the Hessian on (train a step first)')
        dev = self.alpha.device

        def loss_fn():
            return sum(F.cross_entropy(self.supernet(x.to(dev), self.mixes(True), self.edge_scale()), y.to(dev))
                       for x, y in batches) / len(batches)

        with _buffers_kept(self.supernet), torch.enable_grad():
            return dominant_hessian_eigenvalue(loss_fn, [self.alpha], iters=self.hessian_iters, seed=self.seed)

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        self.alpha_snapshots.append(self.alpha.detach().cpu().clone())
        self.history['eigenvalue'].append(float(self.hessian_eigenvalue()))
        back = eigenvalue_early_stop(self.history['eigenvalue'], **self.es)
        if back is not None and self.early_stop:
            with torch.no_grad():
                self.alpha.copy_(self.alpha_snapshots[back].to(self.alpha.device))
            self.history['rollback_epoch'] = back
            self._stop('eigenvalue')


class DartsPlusModule(_RemedyModule):
    """DARTS+ early stopping (method ``'darts_plus'``; see the module docstring).

    ``max_skips`` (2), ``patience`` (10), ``rank_ops`` (the learnable ops, as the paper;
    None = all five), ``min_epochs`` (1). ``history``: ``'skips'`` and ``'ranking'`` per
    epoch, ``'stopped_at'``, ``'stop_reason'``.
    """

    variant = 'darts_plus'
    methods = ('darts_plus',) + _RemedyModule.methods
    differentiable_methods = ('darts_plus',) + _RemedyModule.differentiable_methods

    def __init__(self, method: str = 'darts_plus', *, max_skips: int = 2, patience: int = 10,
                 rank_ops: Optional[Sequence[str]] = LEARNABLE_OPS, min_epochs: int = 1, **kwargs):
        super().__init__(method, **kwargs)
        self.max_skips, self.patience, self.min_epochs = max_skips, int(patience), int(min_epochs)
        self.rank_idx = [OPS.index(op) for op in (rank_ops or OPS)]
        self.history.update(skips=[], ranking=[])

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        s = self.op_strengths()[:, self.rank_idx]
        order = s.argsort(dim=1, descending=True).tolist()
        self.history['ranking'].append([[self.rank_idx[j] for j in row] for row in order])
        self.history['skips'].append(sum(op == 'skip_connect' for op in self.derive().values()))
        reason = darts_plus_stop(self.history['skips'], self.history['ranking'], max_skips=self.max_skips,
                                 patience=self.patience, min_epochs=self.min_epochs)
        if reason:
            self._stop(reason)


class SkipDropout(nn.Module):
    """P-DARTS' dropout after a skip connection: ``dropout_p(op(x))`` in training mode."""

    def __init__(self, op: nn.Module, p: float = 0.0):
        super().__init__()
        self.op, self.p = op, float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.op(x)
        return F.dropout(out, self.p, self.training) if self.p > 0 else out


class PDartsModule(_RemedyModule):
    """P-DARTS' regularization (method ``'pdarts'``; see the module docstring).

    ``skip_dropout`` (0.4): ``p_0``; ``skip_dropout_decay`` (0.2): ``d`` per epoch;
    ``max_skips`` (2, None = no limit). The rate is 0 after the search (the trained supernet
    is deterministic). ``history['skip_dropout']``: the rate of every epoch.
    """

    variant = 'pdarts'
    methods = ('pdarts',) + _RemedyModule.methods
    differentiable_methods = ('pdarts',) + _RemedyModule.differentiable_methods

    def __init__(self, method: str = 'pdarts', *, skip_dropout: float = 0.4, skip_dropout_decay: float = 0.2,
                 max_skips: Optional[int] = 2, **kwargs):
        super().__init__(method, **kwargs)
        if not 0.0 <= skip_dropout <= 1.0:
            raise ValueError(f'skip_dropout must lie in [0, 1], got {skip_dropout}')
        self.skip_dropout, self.skip_dropout_decay = float(skip_dropout), float(skip_dropout_decay)
        self.max_skips = max_skips
        for edge in self.supernet.modules():
            if isinstance(edge, MixedEdge):
                k = edge.op_names.index('skip_connect')
                edge.ops[k] = SkipDropout(edge.ops[k])
        self.history.update(skip_dropout=[])

    def set_skip_dropout(self, p: float) -> None:
        for m in self.supernet.modules():
            if isinstance(m, SkipDropout):
                m.p = float(p)

    def on_train_epoch_start(self):
        p = self.skip_dropout * math.exp(-self.skip_dropout_decay * self.current_epoch)
        self.set_skip_dropout(p)
        self.history['skip_dropout'].append(p)

    def on_train_end(self):
        self.set_skip_dropout(0.0)

    def derive(self) -> Dict[str, str]:
        return limit_skip_connections(self.op_strengths(), self.max_skips)


class AsapModule(_RemedyModule):
    """ASAP (method ``'asap'``; see the module docstring).

    ``anneal_tau0`` (1.0) -> ``anneal_tau_end`` (0.05): the temperature at the start and at
    the end of the planned epochs; ``prune_threshold0`` (0.05) -> ``prune_threshold_end``
    (0.3): the threshold likewise; ``grace_epochs`` (0): epochs without pruning. The alive
    ops are the buffer ``op_mask`` (6 x 5 bools). ``history``: ``'mask'`` and
    ``'threshold'`` per epoch, ``'tau'`` (the base class's), ``'pruned'`` (epoch, edge, op).
    """

    variant = 'asap'
    methods = ('asap',)
    differentiable_methods = ('asap',)

    def __init__(self, method: str = 'asap', *, anneal_tau0: float = 1.0, anneal_tau_end: float = 0.05,
                 prune_threshold0: float = 0.05, prune_threshold_end: float = 0.3, grace_epochs: int = 0, **kwargs):
        super().__init__(method, **kwargs)
        if not 0 < anneal_tau_end <= anneal_tau0 or not 0 < prune_threshold0 <= prune_threshold_end:
            raise ValueError('ASAP needs 0 < anneal_tau_end <= anneal_tau0 and '
                             '0 < prune_threshold0 <= prune_threshold_end')
        self.anneal = dict(tau0=anneal_tau0, tau_end=anneal_tau_end, th0=prune_threshold0, th_end=prune_threshold_end)
        self.grace_epochs = int(grace_epochs)
        self.tau, self.threshold = anneal_tau0, prune_threshold0
        self.register_buffer('op_mask', torch.ones(len(EDGE_LABELS), len(OPS), dtype=torch.bool))
        self.history.update(mask=[], threshold=[], pruned=[])

    def schedule(self, progress: float) -> None:
        """Set ``tau`` and ``threshold`` at ``progress`` = fraction of the planned steps done."""
        a, s = self.anneal, min(max(progress, 0.0), 1.0)
        self.tau = a['tau0'] * (a['tau_end'] / a['tau0']) ** s
        self.threshold = a['th0'] * (a['th_end'] / a['th0']) ** s

    def _weights(self) -> torch.Tensor:
        return F.softmax((self.alpha / self.tau).masked_fill(~self.op_mask, -math.inf), dim=-1)

    def op_strengths(self) -> torch.Tensor:
        with torch.no_grad():
            return self._weights()

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        w = self._weights()
        return {label: Mix('soft', weights=w[e]) for e, label in enumerate(EDGE_LABELS)}

    def prune(self) -> List[tuple]:
        """Prune the alive ops below the current threshold; returns the (edge, op) pruned."""
        new = asap_prune(self.op_strengths(), self.op_mask, self.threshold)
        gone = [(EDGE_LABELS[e], OPS[k]) for e, k in (self.op_mask & ~new).nonzero().tolist()]
        self.op_mask.copy_(new)
        return gone

    def training_step(self, batch, batch_idx):
        n = self.trainer.num_training_batches
        n = n if isinstance(n, int) and n > 0 else 1
        self.schedule((self.current_epoch + batch_idx / n) / self.epochs)
        loss = super().training_step(batch, batch_idx)
        if self.current_epoch >= max(self.grace_epochs, self.hp['warmup_epochs']):
            self.history['pruned'].extend((self.current_epoch, edge, op) for edge, op in self.prune())
        return loss

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        self.history['mask'].append(self.op_mask.tolist())
        self.history['threshold'].append(self.threshold)


class DartsPTModule(_RemedyModule):
    """DARTS-PT (method ``'darts_pt'``; see the module docstring).

    ``tune_steps`` (5), ``tune_lr`` (None = the weight learning rate ``weight_lr``),
    ``kept_batches`` (8): the batches of the architecture half the accuracy is measured on
    (and of the weight half fine-tuned on), ``fix_alpha`` (False). The selection runs when
    the training ends; ``history['pt']`` holds its order, scores and result.
    """

    variant = 'darts_pt'
    methods = ('darts_pt',) + _RemedyModule.methods
    differentiable_methods = ('darts_pt',) + _RemedyModule.differentiable_methods

    def __init__(self, method: str = 'darts_pt', *, tune_steps: int = 5, tune_lr: Optional[float] = None,
                 kept_batches: int = 8, fix_alpha: bool = False, **kwargs):
        super().__init__(method, kept_batches=kept_batches, **kwargs)
        self.tune_steps, self.tune_lr, self.fix_alpha = int(tune_steps), tune_lr, bool(fix_alpha)
        if fix_alpha:  # uniform α, never trained (the base class skips the arch step during warm-up)
            with torch.no_grad():
                self.alpha.zero_()
            self.hp['warmup_epochs'] = self.epochs
        self.history.update(pt=None)

    def select(self) -> Dict[str, Any]:
        if not self.kept_val:
            raise RuntimeError('DARTS-PT selects after training: no batches of the architecture half were kept')
        result = perturbation_select(self, self.kept_val, tune_batches=self.kept_train, tune_steps=self.tune_steps,
                                     tune_lr=self.tune_lr if self.tune_lr is not None else self.hp['weight_lr'],
                                     momentum=self.hp['momentum'], grad_clip=self.hp['grad_clip'], seed=self.seed)
        self.history['pt'] = result
        return result

    def on_train_end(self):
        self.select()

    def derive(self) -> Dict[str, str]:
        return dict((self.history['pt'] or self.select())['sample'])


VARIANT_MODULES = {'rdarts': RobustDartsModule, 'darts_plus': DartsPlusModule, 'pdarts': PDartsModule,
                   'asap': AsapModule, 'darts_pt': DartsPTModule}
VARIANT_METHODS = tuple(VARIANT_MODULES)


def search_variant(method: str, **kwargs) -> Dict[str, Any]:
    """:func:`~nni_nasext.strategies.oneshot.search` with the module of ``method`` (one of
    :data:`VARIANT_METHODS`); the result also carries the module's extra history entries."""
    if method not in VARIANT_MODULES:
        raise ValueError(f'unknown DARTS variant {method!r}; choose one of {VARIANT_METHODS}')
    result = search(method, module_cls=VARIANT_MODULES[method], **kwargs)
    for key, value in result['module'].history.items():
        result.setdefault(key, value)
    return result
