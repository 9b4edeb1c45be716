"""ProxylessNAS on any space: binarized paths and an expected-latency loss.

H. Cai, L. Zhu, S. Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and
Hardware", ICLR 2019 (arXiv:1812.00332). ``p = softmax(α)`` per decision, ``α`` starting at 0.

**Binarized paths** (Section 3.2). The *weight step* runs one candidate per decision drawn
from ``p`` (one active path, as the authors' code while training weights). The *architecture
step* draws two candidates ``{a, b}`` per decision from ``p`` without replacement and one
binary gate ``g`` from ``q = softmax(α_a, α_b)``; both paths are computed with weights
``g_a, g_b`` (a :class:`~.supernet.Mix` over the two), so autograd gives ``∂L/∂g_j`` for both,
and the BinaryConnect estimate (eq. 4, on the two paths) is
``∂L/∂α_i ≈ Σ_{j∈{a,b}} ∂L/∂g_j q_j (δ_ij − q_i)`` (:func:`binary_gate_alpha_grad`). After the
Adam step (``lr`` 1e-3, ``betas=(0, 0.999)``, the authors' defaults) the two updated ``α`` are
shifted so their ``logsumexp`` is unchanged: the other paths keep their probabilities (end of
Section 3.2).

**Latency** (Section 3.3.1, eq. 5-7). With a latency table (:mod:`.latency`: every candidate
timed on this machine, measured on the first architecture batch unless one is given), the
expected latency ``E[LAT]`` is differentiable in ``α`` and enters the architecture loss:

``'add'`` (default)
    ``L = L_CE + λ (E[LAT] − ref) / ref`` (eq. 7 with the latency made unit-free; ``ref`` is
    ``latency_target`` or, without one, ``E[LAT]`` under uniform ``p``);
``'mul'``
    ``L = L_CE · (E[LAT] / ref)^λ`` (MnasNet's multiplicative form);
``'hinge'``
    ``L = L_CE + λ · max(0, E[LAT] / T − 1)``: only latency above the target ``T`` costs
    (for searching to a latency budget).

``λ`` is ``latency_weight`` (0.1; 0 switches latency off).

**Where the table comes from.** ``latency_table`` (a saved table), or ``latency_predictor`` (a
:class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor`, its ``state_dict`` or the path of one saved
as JSON): the table is then the predictor's cost of every candidate
(:func:`.latency.measure_latency_table` with ``predictor=``), so the search optimises the latency
the predictor gives the frozen networks, fitted once on networks measured end to end; or, with
neither, every candidate is timed in the supernet on the first architecture batch.

**Derivation**: the largest ``α`` of every decision; validation runs that path. With the hinge
loss, ``E[LAT] <= T`` does not make the most probable architecture meet ``T`` (the expectation is
over a distribution, the argmax is one point of it). ``derive_within_target`` (default on for the
hinge loss; our addition, not the paper's) then trades decisions down greedily: while the table's
latency of the sample is above ``T``, switch the one decision whose cheaper candidate loses the
least log-probability per millisecond saved (:func:`fit_to_budget`).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from .base import OneShotModule
from .latency import expected_latency, measure_latency_table, table_latency
from .supernet import Decision, Mix

__all__ = ['ProxylessNAS', 'binary_gate_alpha_grad', 'fit_to_budget']


def binary_gate_alpha_grad(gate_grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``∂L/∂α_i = Σ_j ∂L/∂g_j p_j (δ_ij − p_i)`` over the last dimension."""
    eye = torch.eye(probs.shape[-1], device=probs.device, dtype=probs.dtype)
    return torch.einsum('...j,...j,...ji->...i', gate_grad, probs, eye - probs.unsqueeze(-2))


def fit_to_budget(supernet, table: Dict[str, Any], log_probs: Dict[str, torch.Tensor], sample: Dict[str, Any],
                  budget: float) -> Dict[str, Any]:
    """``sample`` with decisions switched to cheaper candidates until the table's latency
    (``F_0`` + :func:`.latency.table_latency`) is at most ``budget`` ms: each step takes the switch
    with the smallest loss of log-probability per millisecond saved (``log_probs``: decision key ->
    log-probabilities of its candidates). Stops early when no switch saves time (the budget is
    then out of the table's reach, and the cheapest reachable sample is returned)."""
    def lat(s):
        return float(table['fixed']) + table_latency(supernet, table, s)

    labelled = {}
    for key, d in supernet.decisions.items():
        if d.label is not None and d.kind != 'input' and d.label not in labelled and d.label in sample:
            labelled[d.label] = (key, d)
    sample = dict(sample)
    current = lat(sample)
    while current > budget:
        best = None
        for label, (key, d) in labelled.items():
            lp = log_probs[key]
            i = d.candidates.index(sample[label])
            for j, v in enumerate(d.candidates):
                if j == i:
                    continue
                trial = {**sample, label: v}
                saved = current - lat(trial)
                if saved <= 1e-9:
                    continue
                score = float(lp[i] - lp[j]) / saved
                if best is None or score < best[0]:
                    best = (score, label, v, current - saved)
        if best is None:
            break
        _, label, v, current = best
        sample[label] = v
    return sample


class ProxylessNAS(OneShotModule):
    method = 'proxyless'
    paper = 'Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019'
    ddp_unsupported = ('its architecture gradient comes from binary gates that are not parameters, which DDP '
                       'does not average, and each process would measure a latency table of its own')
    eval_batch_stats = True  # weights trained one sampled path at a time

    def __init__(self, inner, supernet, *, arch_lr: float = 1e-3, arch_weight_decay: float = 0.0,
                 arch_betas=(0.0, 0.999), latency_table: Optional[Dict[str, Any]] = None, latency_weight: float = 0.1,
                 latency_loss: str = 'add', latency_target: Optional[float] = None, rescale_alpha: bool = True,
                 latency_threads: int = 1, latency_predictor=None, derive_within_target: Optional[bool] = None,
                 **kwargs):
        super().__init__(inner, supernet, arch_lr=arch_lr, arch_weight_decay=arch_weight_decay, arch_betas=arch_betas,
                         **kwargs)
        if latency_loss not in ('add', 'mul', 'hinge'):
            raise ValueError(f"latency_loss must be 'add', 'mul' or 'hinge', got {latency_loss!r}")
        if latency_loss == 'hinge' and latency_target is None:
            raise ValueError("latency_loss='hinge' needs a latency_target (ms)")
        if latency_weight < 0 or (latency_target is not None and latency_target <= 0):
            raise ValueError('latency_weight must be >= 0 and latency_target > 0')
        self.latency_weight, self.latency_loss, self.latency_target = float(latency_weight), latency_loss, latency_target
        self.rescale_alpha, self.latency_threads = bool(rescale_alpha), int(latency_threads)
        self.latency_table = None
        self.latency_ref: Optional[float] = None
        self.latency_predictor = None
        if latency_predictor is not None:
            from nni_nasext.hardware.latency_predictor import LatencyPredictor
            self.latency_predictor = LatencyPredictor.from_state_dict(latency_predictor)
        self.derive_within_target = (latency_loss == 'hinge') if derive_within_target is None else bool(derive_within_target)
        if self.derive_within_target and latency_target is None:
            raise ValueError('derive_within_target needs a latency_target (ms)')
        if latency_table is not None:
            self.set_latency_table(latency_table)
        self.history.update(expected_latency=[], derived_latency=[])

    def init_alpha(self, decision: Decision, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(decision.size)

    # ---------------------------------------------------------------- latency
    def set_latency_table(self, table: Dict[str, Any]) -> None:
        missing = [k for k in self.keys if k not in table.get('latency', {})]
        if missing:
            raise ValueError(f'The latency table has no entry for the decisions {missing[:5]}')
        self.latency_table = table
        with torch.no_grad():
            uniform = {k: torch.full((d.size,), 1.0 / d.size) for k, d in self.supernet.decisions.items()}
            self.latency_ref = float(self.latency_target or expected_latency(self.supernet, table, uniform))

    def expected_latency(self) -> Optional[torch.Tensor]:
        if self.latency_table is None:
            return None
        return expected_latency(self.supernet, self.latency_table, {k: self.probs(k) for k in self.keys})

    def latency_term(self, ce: torch.Tensor) -> torch.Tensor:
        lam = self.latency_weight
        if lam == 0 or self.latency_table is None:
            return ce
        lat, ref = self.expected_latency(), self.latency_ref
        if self.latency_loss == 'add':
            return ce + lam * (lat - ref) / ref
        if self.latency_loss == 'mul':
            return ce * (lat / ref) ** lam
        return ce + lam * torch.relu(lat / ref - 1.0)

    # ---------------------------------------------------------------- mixing
    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        out = {}
        with torch.no_grad():
            for k in self.keys:
                if training:
                    idx = int(torch.multinomial(self.probs(k).detach().cpu(), 1, generator=self.generator))
                else:
                    idx = int(self.a(k).argmax())
                out[k] = Mix.path([idx])
        return out

    def arch_step(self, train_batch, arch_batch, batch_idx: int) -> None:
        if self.latency_table is None and self.latency_weight > 0:
            self.set_latency_table(measure_latency_table(self, arch_batch, threads=self.latency_threads,
                                                         predictor=self.latency_predictor))
        opt = self._arch_optimizer()
        opt.zero_grad()
        mixes, pairs, gates = {}, {}, {}
        with torch.no_grad():
            for k in self.keys:
                n = self.supernet.decisions[k].size
                if n == 1:
                    mixes[k] = Mix.path([0])
                    continue
                p = self.probs(k).detach().cpu()
                pair = torch.multinomial(p, 2, replacement=False, generator=self.generator).tolist()
                q = F.softmax(self.a(k).detach().cpu()[pair], dim=-1)
                on = int(torch.multinomial(q, 1, generator=self.generator))
                pairs[k] = pair
                gates[k] = torch.zeros(n, device=self.device)
                gates[k][pair[on]] = 1.0
        for k, g in gates.items():
            g.requires_grad_(True)
            mixes[k] = Mix.weighted(g, pairs[k])
        self.set_mixes(mixes)
        loss = self.latency_term(self.inner_loss(arch_batch, batch_idx))
        if not torch.isfinite(loss):
            raise FloatingPointError(f'proxyless: the architecture loss is {float(loss)} at epoch {self.current_epoch}')
        self._backward(loss)
        olds = {}
        with torch.no_grad():
            for k, pair in pairs.items():
                a = self.a(k)
                old = a[pair].clone()
                olds[k] = old
                g = gates[k].grad
                gg = torch.zeros(2, device=a.device) if g is None else g[pair]
                grad = binary_gate_alpha_grad(gg, F.softmax(old, dim=-1))
                if a.grad is None:
                    a.grad = torch.zeros_like(a)
                a.grad[pair] += grad
        opt.step()
        if self.rescale_alpha:
            with torch.no_grad():
                for k, pair in pairs.items():
                    a = self.a(k)
                    new = a[pair]
                    a[pair] = new - (torch.logsumexp(new, 0) - torch.logsumexp(olds[k], 0))
        self.clear_weight_grads()

    def derive(self) -> Dict[str, Any]:
        sample = super().derive()
        if self.derive_within_target and self.latency_table is not None:
            with torch.no_grad():
                logp = {k: F.log_softmax(self.a(k).detach().cpu().float(), dim=-1) for k in self.keys}
            sample = fit_to_budget(self.supernet, self.latency_table, logp, sample, float(self.latency_target))
        return sample

    def on_epoch_schedule(self) -> None:
        lat = self.expected_latency()
        self.history['expected_latency'].append(None if lat is None else float(lat.detach()))
        if self.latency_table is not None:  # the table's latency of the architecture derived now
            sample = self.derive()
            self.history['derived_latency'].append(
                float(self.latency_table['fixed']) + table_latency(self.supernet, self.latency_table, sample))

    def extra_state(self) -> Dict[str, Any]:
        return {'latency_table': self.latency_table}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        if state.get('latency_table') is not None:
            self.set_latency_table(state['latency_table'])

