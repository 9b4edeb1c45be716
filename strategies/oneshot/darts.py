"""DARTS and the methods that change how its architecture weights mix the candidates.

Each class overrides one policy of :class:`~.base.OneShotModule` (which is first-order DARTS
itself, with the soft mix ``w = softmax(α)``):

:class:`DARTS` (``darts``)
    Liu, Simonyan, Yang, "DARTS: Differentiable architecture search", ICLR 2019: eq. 2 (the
    mixed op ``Σ_o softmax(α)_o o(x)``), first-order gradient ``∇_α L_val(w, α)`` (eq. 6 with ξ=0).
:class:`SecondOrderDARTS` (``darts2``)
    The same paper's second-order approximation (eq. 7-8), with the unrolled weights
    ``w' = w - ξ ∇_w L_train(w, α)`` (ξ = the weight optimiser's current learning rate, its
    weight decay included) and the finite-difference Hessian-vector product
    (:func:`darts_second_order_grad`), on any supernet through the evaluator's loss.
:class:`GDAS` (``gdas``)
    Dong & Yang, "Searching for a robust neural architecture in four GPU hours", CVPR 2019:
    per decision a Gumbel-softmax sample, hard one-hot in the forward pass (one candidate
    computed) with the straight-through gradient (eq. 5-7), the weights of the candidates not
    computed carried as zero-valued terms (as the authors' code); temperature annealed
    linearly from ``tau_max`` (10) to ``tau_min`` (0.1) over the epochs. Validation runs the
    argmax path.
:class:`SNAS` (``snas``)
    Xie et al., "SNAS: Stochastic neural architecture search", ICLR 2019: the relaxed (soft)
    Gumbel-softmax sample, all candidates computed; temperature ``tau_max`` times 0.9 per
    epoch down to ``tau_min`` (the paper's resource term is left out).
:class:`PCDARTS` (``pcdarts``)
    Xu et al., "PC-DARTS: Partial channel connections for memory-efficient architecture
    search", ICLR 2020: the supernet's candidates see ``1/K`` of the channels (``partial_k`` =
    K = 4, :class:`~.mixed.PartialChannels`) and, in cells, *edge normalisation*: per node a
    softmax of parameters ``β`` over its incoming edges scales every edge, and an edge's
    strength at derivation is ``softmax(α)·softmax(β)_edge``.
:class:`FairDARTS` (``fairdarts``)
    Chu et al., "Fair DARTS: Eliminating unfair advantages in differentiable architecture
    search", ECCV 2020: ``w = sigmoid(α)`` (no competition between candidates) and the
    zero-one loss ``-mean((σ(α) − ½)²)`` weighted by ``zero_one_weight`` (10) added to the
    architecture loss. Any-subset input choices keep the inputs with ``σ(α) > ½``.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from .base import OneShotModule, derive_from_strengths
from .supernet import Mix

__all__ = ['DARTS', 'FairDARTS', 'GDAS', 'PCDARTS', 'SNAS', 'SecondOrderDARTS', 'darts_second_order_grad',
           'gumbel_like']


def gumbel_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise of ``x``'s shape from ``generator`` (on the CPU, then moved)."""
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))


def darts_second_order_grad(weights: List[torch.Tensor], arch: List[torch.Tensor], train_loss, val_loss,
                            xi: float, weight_decay: float = 0.0) -> List[torch.Tensor]:
    """DARTS' second-order architecture gradient (eq. 7-8) for any model given as closures.

    ``train_loss()`` / ``val_loss()`` evaluate the losses at the *current* values of the tensors
    in ``weights`` and ``arch`` (changed in place here and restored). The virtual step is plain
    SGD with weight decay, ``w' = w - ξ (∇_w L_train + λ w)``. Returns
    ``∇_α L_val(w', α) - ξ (∇_α L_train(w⁺, α) - ∇_α L_train(w⁻, α)) / 2ε`` with
    ``w^± = w ± ε ∇_{w'} L_val(w', α)`` and ``ε = 0.01 / ||∇_{w'} L_val||``.
    """
    backup = [w.detach().clone() for w in weights]
    g_train = torch.autograd.grad(train_loss(), weights, allow_unused=True)
    with torch.no_grad():
        for w, g in zip(weights, g_train):
            if g is not None:
                w.sub_(xi * (g + weight_decay * w))
            elif weight_decay:
                w.sub_(xi * weight_decay * w)
    loss = val_loss()
    grads = torch.autograd.grad(loss, list(arch) + list(weights), allow_unused=True)
    d_arch = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads[:len(arch)], arch)]
    d_w = [g if g is not None else torch.zeros_like(w) for g, w in zip(grads[len(arch):], weights)]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in d_w))
    eps = 0.01 / float(norm) if float(norm) > 0 else 0.0
    hessian = [torch.zeros_like(a) for a in arch]
    if eps > 0:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, b, d in zip(weights, backup, d_w):
                    w.copy_(b + sign * eps * d)
            g = torch.autograd.grad(train_loss(), arch, allow_unused=True)
            for h, gi in zip(hessian, g):
                if gi is not None:
                    h.add_(sign * gi)
    with torch.no_grad():
        for w, b in zip(weights, backup):
            w.copy_(b)
    if eps == 0:
        return d_arch
    return [da - xi * h / (2 * eps) for da, h in zip(d_arch, hessian)]


class DARTS(OneShotModule):
    """First-order DARTS (the base module's policies, unchanged)."""
    method = 'darts'
    paper = 'Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019'


class SecondOrderDARTS(DARTS):
    """Second-order DARTS: the architecture step uses :func:`darts_second_order_grad`."""
    method = 'darts2'
    ddp_unsupported = 'its unrolled gradient is taken with torch.autograd.grad, which DDP does not average'

    def arch_step(self, train_batch, arch_batch, batch_idx: int) -> None:
        opt = self._arch_optimizer()
        opt.zero_grad()
        weights = self.weight_parameters()
        group = self._weight_optimizer().optimizer.param_groups[0] if self._trainer is not None else {}
        xi, decay = float(group.get('lr', 0.025)), float(group.get('weight_decay', 0.0))
        arch = self.arch_parameters()

        def loss_on(batch):
            def fn():
                self.set_mixes(self.mixes(training=True))
                return self.inner_loss(batch, batch_idx)
            return fn

        grads = darts_second_order_grad(weights, arch, loss_on(train_batch), loss_on(arch_batch), xi, decay)
        extra = self.arch_extra_loss()
        extra_grads = torch.autograd.grad(extra, arch, allow_unused=True) if extra.requires_grad else [None] * len(arch)
        for p, g, e in zip(arch, grads, extra_grads):
            p.grad = g if e is None else g + e
        opt.step()
        self.clear_weight_grads()


class _Gumbel(DARTS):
    """Shared by GDAS and SNAS: a temperature ``tau`` and Gumbel-softmax samples."""

    def __init__(self, inner, supernet, *, tau_max: float = 10.0, tau_min: float = 0.1, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if not 0 < tau_min <= tau_max:
            raise ValueError(f'need 0 < tau_min <= tau_max, got {tau_min}, {tau_max}')
        self.tau_max, self.tau_min, self.tau = float(tau_max), float(tau_min), float(tau_max)
        self.history['tau'] = []

    def gumbel_probs(self, key: str) -> torch.Tensor:
        a = self.a(key)
        return F.softmax((F.log_softmax(a, dim=-1) + gumbel_like(a, self.generator)) / self.tau, dim=-1)

    def extra_state(self) -> Dict[str, Any]:
        return {'tau': self.tau}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.tau = float(state.get('tau', self.tau))


class GDAS(_Gumbel):
    method = 'gdas'
    paper = 'Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019'
    eval_batch_stats = True  # one candidate per decision in training

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        out = {}
        for k in self.keys:
            if training:
                p = self.gumbel_probs(k)
                idx = int(p.argmax())
                hard = F.one_hot(torch.tensor(idx), len(p)).to(p) - p.detach() + p
                out[k] = Mix.weighted(hard, [idx], carry=True)
            else:
                out[k] = Mix.path([int(self.a(k).argmax())])
        return out

    def on_epoch_schedule(self) -> None:
        self.history['tau'].append(self.tau)
        total = max(1, (self.trainer.max_epochs if self._trainer is not None else 1) - 1)
        frac = min(1.0, (self.current_epoch + 1) / total)
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * frac


class SNAS(_Gumbel):
    method = 'snas'
    paper = 'Xie, Zheng, Liu & Lin, "SNAS: Stochastic Neural Architecture Search", ICLR 2019'

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        if not training:
            return super(_Gumbel, self).mixes(training)
        return {k: Mix.soft(self.gumbel_probs(k)) for k in self.keys}

    def on_epoch_schedule(self) -> None:
        self.history['tau'].append(self.tau)
        self.tau = max(self.tau_min, self.tau * 0.9)


class PCDARTS(DARTS):
    method = 'pcdarts'
    paper = 'Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search", ICLR 2020'
    partial_k = 4

    def __init__(self, inner, supernet, *, partial_k: int = 4, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if int(partial_k) < 1:
            raise ValueError(f'partial_k must be a positive integer, got {partial_k}')
        self.requested_partial_k = int(partial_k)
        init = torch.Generator().manual_seed(self.seed + 3)
        self.node_keys: List[str] = []
        betas = []
        for group in supernet.state.cells.values():
            for i, edges in group.nodes.items():
                key = f'{group.key}/node_{i}'
                if key not in self.node_keys:
                    self.node_keys.append(key)
                    betas.append(nn.Parameter(1e-3 * torch.randn(len(edges), generator=init)))
        self.beta = nn.ParameterList(betas)

    def arch_parameters(self) -> List[nn.Parameter]:
        return super().arch_parameters() + list(self.beta)

    def edge_scales(self) -> Dict[str, torch.Tensor]:
        return {k: F.softmax(b, dim=-1) for k, b in zip(self.node_keys, self.beta)}

    def set_mixes(self, mixes: Dict[str, Mix]) -> None:
        super().set_mixes(mixes)
        self.supernet.state.scales = self.edge_scales()

    def strengths(self) -> Dict[str, torch.Tensor]:
        s = super().strengths()
        with torch.no_grad():
            scales = {k: v.detach().cpu() for k, v in self.edge_scales().items()}
        for group in self.supernet.state.cells.values():
            for i, edges in group.nodes.items():
                scale = scales[f'{group.key}/node_{i}']
                for pos, (_, key) in enumerate(edges):
                    s[key] = s[key] * scale[pos]
        return s


class FairDARTS(DARTS):
    method = 'fairdarts'
    paper = 'Chu, Zhou, Zhang & Li, "Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search", ECCV 2020'

    def __init__(self, inner, supernet, *, zero_one_weight: float = 10.0, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        self.zero_one_weight = float(zero_one_weight)

    def probs(self, key: str) -> torch.Tensor:
        return torch.sigmoid(self.a(key))

    def arch_extra_loss(self) -> torch.Tensor:
        terms = [((torch.sigmoid(a) - 0.5) ** 2).mean() for a in self.alpha]
        return -self.zero_one_weight * torch.stack(terms).mean()

    def derive(self) -> Dict[str, Any]:
        return derive_from_strengths(self.supernet, self.strengths(), keep_threshold=0.5)
