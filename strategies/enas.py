"""ENAS on the NAS-Bench-201 supernet: an LSTM controller trained by REINFORCE on shared weights.

H. Pham, M. Y. Guan, B. Zoph, Q. V. Le, J. Dean, "Efficient Neural Architecture Search via
Parameter Sharing", ICML 2018 (arXiv:1802.03268). :class:`EnasModule` (method ``'enas'``) is a
subclass of :class:`~nni_nasext.strategies.oneshot.OneShotModule` and keeps its data protocol:
the training split halved, one batch of each half per step.

**Controller** (:class:`EnasController`, Section 2.1 and 2.4): an LSTM cell (``hidden_size`` 64)
takes one decision per NB201 edge, in :data:`EDGE_LABELS` order. The input of step ``t`` is a
learned embedding of the op chosen at ``t − 1`` (a learned start embedding at ``t = 0``); the
hidden state goes through a linear head to logits ``z`` over the five ops, shaped as in the
paper's training details (Section 3.1): ``z ← z / temperature`` (5.0), then
``z ← tanh_constant · tanh(z)`` (2.5); the op is drawn from ``softmax(z)``. All controller
weights start uniform in ``[−0.1, 0.1]``.

**Shared weights** ``ω`` (Section 2.2, eq. 1 with ``M = 1``): each step samples one cell
``m ~ π(m; θ)`` and takes an SGD step on ``∇_ω L_CE(m; ω)`` for a batch of the first half,
running only ``m``'s path (a ``'single'`` mix).

**Controller training** (Section 2.2): each step samples ``controller_samples`` cells (1) and
rewards each with its accuracy ``R(m, ω)`` on the step's batch of the second half (shared
weights, no gradient, batch-statistics BN as the search networks of NB201). REINFORCE
(R. J. Williams, Machine Learning 8, 1992) with a moving-average baseline ``b`` minimises::

    L(θ) = − mean_m [ (R_m − b) · Σ_t log π(a_t | a_<t; θ) ] − w_H · mean_m Σ_t H(π(· | a_<t; θ))

with Adam (``controller_lr``), then ``b ← decay · b + (1 − decay) · R`` per reward (``decay``
0.99; ``b`` starts at the first reward, so the first advantage is 0). ``w_H`` = 1e-4 is the
paper's entropy weight.

**History**: ``history['alpha']`` holds per epoch the controller's marginal op probabilities per
edge, ``P(a_e = o)`` (6 x 5, rows sum to 1), computed exactly by enumerating the 5^6 = 15,625
cells through the prefix tree of the LSTM (3,906 LSTM steps, :meth:`EnasController.enumerate`);
``history['reward']`` and ``history['baseline']`` the epoch's mean reward and last baseline.

**Derivation** (:meth:`EnasModule.derive`): by default the *most probable cell* of the controller,
``argmax_m π(m; θ)``, exact over all 15,625 cells (not the greedy per-step argmax). With
``derive_samples = N > 0`` it is the paper's rule instead (Section 2.2, "Deriving
architectures"): ``N`` cells sampled from ``π`` and scored by the supernet's accuracy on the last
few architecture batches; the best is kept. The per-epoch supernet validation uses the most
probable cell's path.

**What differs from the paper / the authors' code.** NB201 cells (one op per edge) instead of
ENAS' micro cells (two inputs and two ops per node): the controller takes 6 decisions. ENAS
alternates whole phases (an epoch of ``ω``, then ``controller_train_steps x num_aggregate``
controller samples); here the two updates alternate every step, as the DARTS-style base module
does. The entropy bonus is a separate loss term, not added to the reward. The baseline starts
at the first reward, not at 0, and is applied before it absorbs the new reward.
``controller_lr`` defaults to 3.5e-3, the authors' micro-search script (the paper's text says
3.5e-4); the controller's Adam uses ``betas=(0, 0.999)``, ``eps=1e-3`` as their code does.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.strategies import oneshot as _oneshot
from nni_nasext.strategies.oneshot import OneShotModule, supernet_accuracy
from nni_nasext.strategies.oneshot_supernet import Mix

__all__ = ['EnasController', 'EnasModule', 'Reinforce', 'search']


class EnasController(nn.Module):
    """LSTM policy ``π(a_1..a_E; θ)`` over ``num_decisions`` categorical decisions of
    ``num_choices`` values each (NB201: 6 edges x 5 ops); see the module docstring."""

    def __init__(self, num_decisions: int = len(EDGE_LABELS), num_choices: int = len(OPS), hidden_size: int = 64,
                 temperature: Optional[float] = 5.0, tanh_constant: Optional[float] = 2.5, init_range: float = 0.1,
                 seed: int = 0):
        super().__init__()
        if min(num_decisions, num_choices, hidden_size) < 1:
            raise ValueError('num_decisions, num_choices and hidden_size must be positive')
        if temperature is not None and temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        if tanh_constant is not None and tanh_constant <= 0:
            raise ValueError(f'tanh_constant must be positive, got {tanh_constant}')
        self.num_decisions, self.num_choices = num_decisions, num_choices
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.embedding = nn.Embedding(num_choices, hidden_size)
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
        self.head = nn.Linear(hidden_size, num_choices)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * init_range)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The shaped logits ``c · tanh(W h / T)`` of one step."""
        z = self.head(h)
        if self.temperature is not None:
            z = z / self.temperature
        if self.tanh_constant is not None:
            z = self.tanh_constant * torch.tanh(z)
        return z

    def _steps(self, actions_fn):
        """Run the LSTM for one sequence; ``actions_fn(t, logits) -> action`` picks each decision.
        Returns ``(actions, log_prob, entropy)`` (sums over the steps)."""
        inp, state = self.start, None
        actions: List[int] = []
        log_prob = entropy = torch.zeros((), device=self.start.device)
        for t in range(self.num_decisions):
            h, c = self.lstm(inp, state)
            state = (h, c)
            logp = F.log_softmax(self.logits(h)[0], dim=-1)
            a = int(actions_fn(t, logp))
            actions.append(a)
            log_prob = log_prob + logp[a]
            entropy = entropy - (logp.exp() * logp).sum()
            inp = self.embedding.weight[a].unsqueeze(0)
        return actions, log_prob, entropy

    def sample(self, generator: Optional[torch.Generator] = None) -> Tuple[List[int], torch.Tensor, torch.Tensor]:
        """Draw one sequence. Returns ``(actions, Σ_t log π(a_t|a_<t), Σ_t H(π(·|a_<t)))``, the
        last two differentiable in ``θ``."""
        return self._steps(lambda t, logp: torch.multinomial(logp.detach().exp().cpu(), 1, generator=generator)[0])

    def evaluate(self, actions: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log π(actions), entropy)`` of a given sequence (teacher forcing)."""
        if len(actions) != self.num_decisions:
            raise ValueError(f'expected {self.num_decisions} actions, got {len(actions)}')
        _, log_prob, entropy = self._steps(lambda t, logp: actions[t])
        return log_prob, entropy

    def enumerate(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """All ``num_choices ** num_decisions`` sequences and their log-probabilities, by expanding
        the prefix tree level by level (one batched LSTM step per level). Returns
        ``(actions (N x E) long, log_probs (N,))``, sequences in lexicographic order."""
        n, e = self.num_choices, self.num_decisions
        if n ** e > 2_000_000:
            raise ValueError(f'{n}**{e} sequences are too many to enumerate')
        dev = self.start.device
        choices = torch.arange(n, device=dev)
        inp, state = self.start, None
        actions = torch.zeros(1, 0, dtype=torch.long, device=dev)
        log_probs = torch.zeros(1, device=dev)
        for t in range(e):
            h, c = self.lstm(inp, state)
            logp = F.log_softmax(self.logits(h), dim=-1)              # (prefixes, n)
            batch = h.shape[0]
            log_probs = (log_probs[:, None] + logp).reshape(-1)       # prefix-major, choice-minor
            actions = torch.cat([actions.repeat_interleave(n, 0), choices.repeat(batch)[:, None]], dim=1)
            if t + 1 < e:
                state = (h.repeat_interleave(n, 0), c.repeat_interleave(n, 0))
                inp = self.embedding(choices.repeat(batch))
        return actions, log_probs

    @torch.no_grad()
    def marginals(self) -> torch.Tensor:
        """Exact ``P(a_t = k)`` (``num_decisions x num_choices``, rows sum to 1)."""
        actions, log_probs = self.enumerate()
        onehot = F.one_hot(actions, self.num_choices).to(log_probs.dtype)
        return torch.einsum('m,mtk->tk', log_probs.exp(), onehot)

    @torch.no_grad()
    def mode(self) -> List[int]:
        """The most probable sequence (exact, over all sequences)."""
        actions, log_probs = self.enumerate()
        return actions[int(log_probs.argmax())].tolist()


class Reinforce(nn.Module):
    """The REINFORCE objective with an exponential-moving-average baseline.

    :meth:`loss` takes the summed log-probability and entropy of one sampled sequence and its
    reward ``R``; it returns ``−(R − b) · log π − entropy_weight · H`` with the baseline ``b``
    *before* this reward, then updates ``b ← decay · b + (1 − decay) · R`` (``b`` starts at the
    first reward). The baseline is a buffer (``nan`` until the first reward), so it is saved
    with the module's state."""

    def __init__(self, baseline_decay: float = 0.99, entropy_weight: float = 1e-4):
        super().__init__()
        if not 0 <= baseline_decay < 1:
            raise ValueError(f'baseline_decay must be in [0, 1), got {baseline_decay}')
        if entropy_weight < 0:
            raise ValueError(f'entropy_weight must be >= 0, got {entropy_weight}')
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.register_buffer('baseline', torch.tensor(float('nan')))

    def update_baseline(self, reward: float) -> float:
        """Move the baseline towards ``reward``; returns the advantage ``R − b`` with the old ``b``."""
        if not math.isfinite(reward):
            raise FloatingPointError(f'reward is {reward}')
        old = reward if math.isnan(float(self.baseline)) else float(self.baseline)
        self.baseline.fill_(self.baseline_decay * old + (1 - self.baseline_decay) * reward)
        return reward - old

    def loss(self, log_prob: torch.Tensor, entropy: torch.Tensor, reward: float) -> torch.Tensor:
        advantage = self.update_baseline(float(reward))
        return -advantage * log_prob - self.entropy_weight * entropy


class EnasModule(OneShotModule):
    """ENAS (method ``'enas'``) on the NB201 supernet; see the module docstring.

    Parameters beyond :class:`OneShotModule`'s (whose ``arch_lr`` / ``arch_weight_decay`` /
    ``tau_*`` do not apply): ``hidden_size`` (64), ``controller_lr`` (3.5e-3), ``temperature``
    (5.0), ``tanh_constant`` (2.5), ``entropy_weight`` (1e-4), ``baseline_decay`` (0.99),
    ``controller_samples`` (cells per controller update, 1), ``controller_grad_clip`` (``None``:
    no clipping), ``derive_samples`` (0: derive the most probable cell; ``N``: the best of ``N``
    sampled cells by supernet accuracy on the last ``derive_batches`` (4) architecture batches).
    ``self.alpha`` of the base module is unused (kept frozen).
    """

    methods = ('enas',)
    differentiable_methods = ('enas',)

    def __init__(self, method: str = 'enas', *, hidden_size: int = 64, controller_lr: float = 3.5e-3,
                 temperature: Optional[float] = 5.0, tanh_constant: Optional[float] = 2.5,
                 entropy_weight: float = 1e-4, baseline_decay: float = 0.99, controller_samples: int = 1,
                 controller_grad_clip: Optional[float] = None, derive_samples: int = 0, derive_batches: int = 4,
                 **kwargs):
        super().__init__(method, **kwargs)
        if controller_samples < 1 or derive_samples < 0 or derive_batches < 1:
            raise ValueError('controller_samples and derive_batches must be positive, derive_samples >= 0')
        self.alpha.requires_grad_(False)
        self.controller = EnasController(len(EDGE_LABELS), len(OPS), hidden_size, temperature, tanh_constant,
                                         seed=self.seed + 1)
        self.reinforce = Reinforce(baseline_decay, entropy_weight)
        self.hp.update(controller_lr=controller_lr, controller_samples=int(controller_samples),
                       controller_grad_clip=controller_grad_clip, derive_samples=int(derive_samples))
        self.history.update(reward=[], baseline=[])
        self._rewards: List[float] = []
        self._reward_batches: collections.deque = collections.deque(maxlen=derive_batches)

    # ---------------------------------------------------------------- policy
    def arch_parameters(self) -> List[nn.Parameter]:
        return list(self.controller.parameters())

    def op_strengths(self) -> torch.Tensor:
        """The controller's exact marginal op probabilities per edge (6 x 5)."""
        return self.controller.marginals()

    @staticmethod
    def sample_of(actions: Sequence[int]) -> Dict[str, str]:
        return {label: OPS[int(a)] for label, a in zip(EDGE_LABELS, actions)}

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        """Training: one cell sampled from the controller; evaluation: its most probable cell.
        A single path either way."""
        with torch.no_grad():
            actions = self.controller.sample(self.generator)[0] if training else self.controller.mode()
        return {label: Mix('single', index=[a]) for label, a in zip(EDGE_LABELS, actions)}

    def derive(self) -> Dict[str, str]:
        """The most probable cell of the controller, or (``derive_samples > 0``, after training)
        the best of ``derive_samples`` sampled cells by supernet accuracy."""
        n = self.hp['derive_samples']
        if n == 0 or not self._reward_batches:
            return self.sample_of(self.controller.mode())
        dev = next(self.supernet.parameters()).device
        batches = [(x.to(dev), y.to(dev)) for x, y in self._reward_batches]
        best, best_acc = None, -1.0
        with torch.no_grad():
            for _ in range(n):
                sample = self.sample_of(self.controller.sample(self.generator)[0])
                acc = supernet_accuracy(self, sample, batches)
                if acc > best_acc:
                    best, best_acc = sample, acc
        return best

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        opts, scheds = super().configure_optimizers()
        opts[1] = torch.optim.Adam(self.arch_parameters(), lr=self.hp['controller_lr'], betas=(0.0, 0.999), eps=1e-3)
        return opts, scheds

    def _arch_step(self, opt_a, xt, yt, xv, yv) -> None:
        opt_a.zero_grad()
        losses = []
        for _ in range(self.hp['controller_samples']):
            actions, log_prob, entropy = self.controller.sample(self.generator)
            with torch.no_grad():
                logits = self.supernet(xv, {lb: Mix('single', index=[a]) for lb, a in zip(EDGE_LABELS, actions)})
                reward = float((logits.argmax(-1) == yv).float().mean())
            self._rewards.append(reward)
            losses.append(self.reinforce.loss(log_prob, entropy, reward))
        loss = torch.stack(losses).mean()
        self._backward(loss)
        if self.hp['controller_grad_clip']:
            torch.nn.utils.clip_grad_norm_(self.arch_parameters(), self.hp['controller_grad_clip'])
        opt_a.step()
        if self.hp['derive_samples']:
            self._reward_batches.append((xv.detach().cpu(), yv.detach().cpu()))
        for p in self.weight_parameters():  # the controller step leaves no gradients on the weights
            p.grad = None

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        self.history['reward'].append(sum(self._rewards) / len(self._rewards) if self._rewards else None)
        self._rewards = []
        b = float(self.reinforce.baseline)
        self.history['baseline'].append(None if math.isnan(b) else b)


def search(**kwargs) -> Dict[str, Any]:
    """:func:`nni_nasext.strategies.oneshot.search` with ``method='enas'`` and :class:`EnasModule`;
    EnasModule's parameters pass through ``kwargs``."""
    return _oneshot.search('enas', module_cls=EnasModule, **kwargs)
