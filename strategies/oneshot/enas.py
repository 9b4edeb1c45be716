"""ENAS on any space: an LSTM controller trained by REINFORCE on the shared weights.

H. Pham, M. Y. Guan, B. Zoph, Q. V. Le, J. Dean, "Efficient Neural Architecture Search via
Parameter Sharing", ICML 2018 (arXiv:1802.03268).

**Controller** (:class:`Controller`, Sections 2.1 and 2.4). The space's labels are taken in
order (NNI's ``simplify()``), each as one or more *steps* of an LSTM cell (``hidden_size`` 64):
a ``Categorical`` of ``n`` values is one step over ``n`` actions; an ``InputChoice`` that keeps
``k`` inputs is ``k`` steps over the inputs, those taken masked out (sampling without
replacement); an any-subset ``InputChoice`` (ENAS' skip connections) is one include/skip step
per candidate. The input of a step is a learned embedding of the previous action (a learned
start embedding first); its logits ``z`` (one linear head per step) are shaped as in the
paper, ``z ← z / temperature`` (5) then ``z ← tanh_constant · tanh(z)`` (2.5). Weights start
uniform in ``[-0.1, 0.1]``.

**Shared weights** ``ω`` (Section 2.2): each step trains one architecture ``m ~ π(m; θ)`` (path
mode) on the weight batch with the evaluator's loss and optimiser.

**Controller training** (Section 2.2): each step samples ``controller_samples`` architectures,
rewards each with the evaluator's metric on the architecture batch (the supernet's shared
weights, batch norm on batch statistics), and minimises
``-(R - b) Σ_t log π(a_t) - w_H Σ_t H(π_t)`` with Adam (``controller_lr`` 3.5e-3,
``betas=(0, 0.999)``, ``eps=1e-3`` as the authors' code), ``b ← decay·b + (1-decay)·R``
(``decay`` 0.99, ``b`` starting at the first reward), ``w_H`` = 1e-4.

**Derivation**: the greedy path of the controller (the most likely action at every step);
with ``derive_samples = N > 0`` the paper's rule: ``N`` architectures sampled from ``π`` and
scored by the supernet on the architecture batches, the best kept. Validation during the search
runs the greedy path.

Differences from the paper: the controller and the weights alternate every step (ENAS alternates
whole phases); minimised metrics (losses) are negated into rewards.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nni.mutable import Categorical, CategoricalMultiple

from .base import OneShotModule
from .supernet import OneShotUnsupported

__all__ = ['Controller', 'ENAS']


class Controller(nn.Module):
    """LSTM policy over the labels of a space (see the module docstring)."""

    def __init__(self, mutables: Dict[str, Any], hidden_size: int = 64, temperature: Optional[float] = 5.0,
                 tanh_constant: Optional[float] = 2.5, init_range: float = 0.1, seed: int = 0):
        super().__init__()
        self.labels: List[str] = []
        self.steps: List[Tuple[str, str, int]] = []   # (label, kind, width): kind 'cat' | 'pick' | 'bit'
        self.values: Dict[str, List[Any]] = {}
        self.n_chosen: Dict[str, Optional[int]] = {}
        for label, m in mutables.items():
            if isinstance(m, CategoricalMultiple):
                vals = list(m.values)
                self.n_chosen[label] = m.n_chosen
                if m.n_chosen is None:
                    self.steps += [(label, 'bit', 2)] * len(vals)
                else:
                    self.steps += [(label, 'pick', len(vals))] * m.n_chosen
            elif isinstance(m, Categorical):
                vals = list(m.values)
                self.steps.append((label, 'cat', len(vals)))
            else:
                raise OneShotUnsupported(f'ENAS\'s controller samples categorical choices; label {label!r} is a '
                                         f'{type(m).__name__} (not supported)')
            self.labels.append(label)
            self.values[label] = vals
        width = max(w for _, _, w in self.steps)
        self.hidden_size, self.temperature, self.tanh_constant = hidden_size, temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.embed = nn.Embedding(width, hidden_size)
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, w) for _, _, w in self.steps)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=g) * 2 * init_range - init_range)

    def _logits(self, t: int, h: torch.Tensor) -> torch.Tensor:
        z = self.heads[t](h)
        if self.temperature:
            z = z / self.temperature
        if self.tanh_constant:
            z = self.tanh_constant * torch.tanh(z)
        return z[0]

    def run(self, choose) -> Tuple[List[int], torch.Tensor, torch.Tensor]:
        """Walk the steps; ``choose(t, probs) -> action``. Returns the actions, the summed
        log-probability and the summed entropy of the policy along them."""
        h = c = torch.zeros(1, self.hidden_size, device=self.start.device)
        x = self.start
        actions, logp, ent = [], [], []
        taken: Dict[str, set] = {}
        for t, (label, kind, width) in enumerate(self.steps):
            h, c = self.lstm(x, (h, c))
            z = self._logits(t, h)
            if kind == 'pick':
                mask = torch.zeros(width, dtype=torch.bool, device=z.device)
                for i in taken.get(label, ()):
                    mask[i] = True
                z = z.masked_fill(mask, -1e9)
            p = F.softmax(z, dim=-1)
            a = int(choose(t, p.detach()))
            if kind == 'pick':
                taken.setdefault(label, set()).add(a)
            actions.append(a)
            logp.append(torch.log(p[a].clamp_min(1e-12)))
            ent.append(-(p * torch.log(p.clamp_min(1e-12))).sum())
            x = self.embed(torch.tensor([a], device=z.device))
        return actions, torch.stack(logp).sum(), torch.stack(ent).sum()

    def sample(self, generator: torch.Generator):
        return self.run(lambda t, p: int(torch.multinomial(p.cpu(), 1, generator=generator)))

    def greedy(self):
        return self.run(lambda t, p: int(p.argmax()))

    def to_sample(self, actions: List[int]) -> Dict[str, Any]:
        """Actions -> a sample of the space."""
        sample: Dict[str, Any] = {}
        t = 0
        for label in self.labels:
            vals = self.values[label]
            n = sum(1 for s in self.steps if s[0] == label)
            acts = actions[t:t + n]
            t += n
            kind = next(s[1] for s in self.steps if s[0] == label)
            if kind == 'cat':
                sample[label] = vals[acts[0]]
            elif kind == 'pick':
                sample[label] = [vals[i] for i in sorted(acts)]
            else:
                sample[label] = [v for v, a in zip(vals, acts) if a == 1]
        return sample


class ENAS(OneShotModule):
    method = 'enas'
    paper = 'Pham et al., "Efficient Neural Architecture Search via Parameter Sharing", ICML 2018'
    weighted = False
    differentiable = False
    eval_batch_stats = True

    def __init__(self, inner, supernet, *, hidden_size: int = 64, controller_lr: float = 3.5e-3,
                 controller_samples: int = 1, temperature: Optional[float] = 5.0, tanh_constant: Optional[float] = 2.5,
                 entropy_weight: float = 1e-4, baseline_decay: float = 0.99, derive_samples: int = 0, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if controller_samples < 1 or derive_samples < 0 or controller_lr <= 0:
            raise ValueError('controller_samples must be positive, derive_samples non-negative, controller_lr > 0')
        self.controller = Controller(supernet.space_mutables, hidden_size, temperature, tanh_constant, seed=self.seed)
        self.controller_lr, self.controller_samples = float(controller_lr), int(controller_samples)
        self.entropy_weight, self.baseline_decay = float(entropy_weight), float(baseline_decay)
        self.derive_samples = int(derive_samples)
        self.baseline: Optional[float] = None
        self.history.update(reward=[], baseline=[])
        self._rewards: List[float] = []

    def arch_parameters(self) -> List[nn.Parameter]:
        return list(self.controller.parameters())

    def configure_arch_optimizers(self):
        return [torch.optim.Adam(self.controller.parameters(), lr=self.controller_lr, betas=(0.0, 0.999), eps=1e-3)]

    def weight_step(self, batch, batch_idx: int) -> torch.Tensor:
        with torch.no_grad():
            actions, _, _ = self.controller.sample(self.generator)
        self.set_sample(self.controller.to_sample(actions))
        return self.optimize_weights(self.inner_loss(batch, batch_idx))

    def arch_step(self, train_batch, arch_batch, batch_idx: int) -> None:
        opt = self._arch_optimizer()
        opt.zero_grad()
        losses = []
        for _ in range(self.controller_samples):
            actions, logp, ent = self.controller.sample(self.generator)
            # under DDP the reward of the global batch: every process keeps the same baseline
            reward = self.global_mean(self.score(self.controller.to_sample(actions), [arch_batch]))
            self._rewards.append(reward)
            if self.baseline is None:
                self.baseline = reward
            advantage = reward - self.baseline
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
            losses.append(-advantage * logp - self.entropy_weight * ent)
        self._backward(torch.stack(losses).mean())
        opt.step()
        self.clear_weight_grads()

    def prepare_eval(self, batch_idx: int) -> None:
        with torch.no_grad():
            self.set_sample(self.controller.to_sample(self.controller.greedy()[0]))

    def on_epoch_schedule(self) -> None:
        self.history['reward'].append(float(np.mean(self._rewards)) if self._rewards else float('nan'))
        self.history['baseline'].append(self.baseline)
        self._rewards = []

    def derive(self) -> Dict[str, Any]:
        with torch.no_grad():
            if self.derive_samples <= 0:
                return self.controller.to_sample(self.controller.greedy()[0])
            gen = torch.Generator().manual_seed(self.seed + 23)
            best = None
            for _ in range(self.derive_samples):
                s = self.controller.to_sample(self.controller.sample(gen)[0])
                v = self.score(s)
                if best is None or v > best[0]:
                    best = (v, s)
            return best[1]

    def extra_state(self) -> Dict[str, Any]:
        return {'baseline': self.baseline, 'rewards': list(self._rewards)}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.baseline, self._rewards = state.get('baseline'), list(state.get('rewards', []))
