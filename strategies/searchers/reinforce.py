"""REINFORCE with an LSTM controller: the NAS-RL search of Zoph & Le.

B. Zoph and Q. V. Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
(Section 3.1-3.2), trained with the REINFORCE rule of R. J. Williams, "Simple Statistical
Gradient-Following Algorithms for Connectionist Reinforcement Learning", Machine Learning 8,
1992.

**Controller.** An LSTM (2 layers of 35 units, as in the paper) emits the decisions of the
space one after another, in the order of the :class:`~nni_nasext.space_spec.SpaceSpec`. The
input at step ``t`` is a learned embedding of the decision taken at ``t-1`` (a learned start
token at ``t=0``); the output goes through the dimension's linear head to logits ``z``, which
may be shaped as in ENAS (Pham et al., ICML 2018): ``z <- z / temperature``, then
``z <- tanh_constant * tanh(z)``; the decision is drawn from ``softmax(z)``. Each kind of
dimension becomes:

* ``choice``: one categorical decision over its values;
* ``choice_multiple`` with ``n_chosen=k``: ``k`` categorical decisions from the same head,
  values already picked masked out (sampling without replacement); the sample lists the
  picked values in the order of the space;
* ``choice_multiple`` with ``n_chosen=None`` (any subset): one Bernoulli decision per value
  (include it or not), 2 logits each from the dimension's head;
* ``numerical``: discretised into ``num_bins`` values spread by the distribution: evenly
  spaced on ``[low, high]`` (``uniform``), evenly spaced in log space (``loguniform``), evenly
  spaced on ``[mu - 2 sigma, mu + 2 sigma]`` (``normal``); with ``quantize`` each bin is
  rounded to a multiple of it (and clipped to ``[low, high]``), duplicates dropped. The
  controller then picks one bin: a categorical decision. A told value that is not a bin
  counts as the nearest bin (in log space for ``loguniform``).

All weights start uniform in [-0.08, 0.08] (Zoph & Le, Section 4.1).

**Learning.** The controller maximises ``J(theta) = E_{P(a_1:T; theta)}[R]`` whose gradient is
estimated over a batch of ``m`` children with a baseline ``b`` (Zoph & Le, Eq. 3)::

    grad J ~ 1/m sum_k sum_t grad log P(a_t | a_(t-1):1; theta) (R_k - b)

so the loss minimised by Adam is the batch mean of
``-(R_k - b) * sum_t log pi(a_t) - entropy_weight * sum_t H(pi_t)`` (the entropy bonus is
ENAS's), with the gradient norm clipped to ``grad_clip``. ``b`` is an exponential moving
average of the *previous* rewards, ``b <- decay * b + (1 - decay) * R``, started at the first
reward. The reward ``R`` is the told value (values are maximised).

**Asynchronous use.** ``ask`` samples without gradient and stores the action indices under
the sample's canonical key; the policy updates once ``batch_size`` successful rewards are in,
recomputing the log-probabilities of the stored actions with the current weights. A told
sample never asked (imported history, another searcher's trial) is turned back into
actions and used as well. Failed trials (``None``, NaN) are counted by the base class and do
not update the policy.

**Defaults.** ``learning_rate=6e-4`` is the paper's ("the ADAM optimizer with a learning rate of
0.0006"); ``batch_size=5`` stands for the paper's ``m=8`` children per controller replica,
smaller because a NAS experiment here runs tens to hundreds of trials, not 12,800.
``ReinforceController.nb201_preset()`` uses the NAS-Bench-201 REINFORCE settings of the
authors' released script (Adam lr 0.001, EMA momentum 0.9, one child per update, no entropy
bonus), keeping our LSTM where their code uses a table of independent logits per edge.

**Resume.** ``state_dict`` adds the network, the optimizer, the sampling generator's state,
the baseline, the pending batch and the asked actions, as one base64 blob of ``torch.save``
(safe through pickle and JSON); loaded into a controller with any seed it continues with
the same samples.
"""
from __future__ import annotations

import base64
import collections
import io
import json
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import Dimension, SampleError, SpaceSpec
from nni_nasext.checks import require

__all__ = ['ReinforceController']

_logger = logging.getLogger(__name__)


class _Decision:
    """How one dimension becomes controller steps: its head size, tokens and values."""

    def __init__(self, dim: Dimension, num_bins: int):
        self.dim = dim
        self.bernoulli = dim.kind == 'choice_multiple' and dim.n_chosen is None
        if dim.kind == 'numerical':
            self.values = dim.grid(num_bins)
        else:
            self.values = list(dim.values)
        n = len(self.values)
        if dim.kind == 'choice_multiple' and dim.n_chosen is not None:
            if not 0 <= dim.n_chosen <= n:
                raise ValueError(f'{dim.label!r} chooses {dim.n_chosen} of {n} values')
            self.num_steps = dim.n_chosen
        else:
            self.num_steps = n if self.bernoulli else 1
        if n == 0:
            raise ValueError(f'{dim.label!r} has no values to choose from')
        self.head_size = 2 * n if self.bernoulli else n  # also the number of tokens it emits
        self._index = {json.dumps(v, sort_keys=True): i for i, v in enumerate(self.values)}

    def logit_slice(self, step: int) -> slice:
        return slice(2 * step, 2 * step + 2) if self.bernoulli else slice(0, self.head_size)

    def token(self, step: int, action: int) -> int:
        return 2 * step + action if self.bernoulli else action

    def value(self, actions: Sequence[int]) -> Any:
        if self.dim.kind == 'choice' or self.dim.kind == 'numerical':
            return self.values[actions[0]]
        if self.bernoulli:
            return [v for v, a in zip(self.values, actions) if a]
        return [self.values[i] for i in sorted(actions)]

    def actions(self, value: Any) -> List[int]:
        """The inverse of :meth:`value` (``SampleError`` if it cannot be one)."""
        problem = self.dim.contains(value)
        if problem:
            raise SampleError(f'Sample value for {self.dim.label!r}: {problem}')
        if self.dim.kind == 'numerical':
            to = math.log if self.dim.dist == 'loguniform' and value > 0 else (lambda x: x)
            return [min(range(len(self.values)), key=lambda i: abs(to(self.values[i]) - to(value)))]
        if self.dim.kind == 'choice':
            return [self._find(value)]
        picked = [self._find(v) for v in value]
        return [int(i in picked) for i in range(len(self.values))] if self.bernoulli else picked

    def _find(self, value: Any) -> int:
        index = self._index.get(json.dumps(value, sort_keys=True))
        return self.values.index(value) if index is None else index  # 1.0 for 1: equal, as contains() says


class _Controller(nn.Module):
    """LSTM over the decision sequence; one linear head per dimension."""

    def __init__(self, decisions: List[_Decision], hidden_size: int, num_layers: int):
        super().__init__()
        self.decisions = decisions
        self.offsets, total = [], 1  # token 0 is the start token
        for d in decisions:
            self.offsets.append(total)
            total += d.head_size
        self.embedding = nn.Embedding(total, hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, d.head_size) for d in decisions)

    def steps(self):
        for i, d in enumerate(self.decisions):
            for s in range(d.num_steps):
                yield i, d, s

    def rollout(self, shape, generator: Optional[torch.Generator], greedy: bool = False):
        """Sample (or take the argmax of) every decision; returns actions and probabilities."""
        token, state = 0, None
        actions: List[List[int]] = [[] for _ in self.decisions]
        probs: List[List[List[float]]] = [[] for _ in self.decisions]
        for i, d, s in self.steps():
            out, state = self.lstm(self.embedding(torch.tensor([[token]])), state)
            logits = shape(self.heads[i](out[0, -1])[d.logit_slice(s)])
            if not d.bernoulli and actions[i]:  # k of n: no value twice
                logits = logits.index_fill(0, torch.tensor(actions[i]), -math.inf)
            p = torch.softmax(logits, -1)
            a = int(p.argmax()) if greedy else int(torch.multinomial(p, 1, generator=generator))
            actions[i].append(a)
            probs[i].append(p.tolist())
            token = self.offsets[i] + d.token(s, a)
        return actions, probs

    def evaluate(self, batch: List[List[List[int]]], shape) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sum over steps of log pi(a_t) and of the entropy, for a batch of action sequences."""
        tokens = [[0] + [self.offsets[i] + d.token(s, acts[i][s]) for i, d, s in self.steps()][:-1]
                  for acts in batch]
        out, _ = self.lstm(self.embedding(torch.tensor(tokens)))
        logp = torch.zeros(len(batch))
        entropy = torch.zeros(len(batch))
        for t, (i, d, s) in enumerate(self.steps()):
            logits = shape(self.heads[i](out[:, t])[:, d.logit_slice(s)])
            mask = torch.zeros_like(logits, dtype=torch.bool)
            if not d.bernoulli and s > 0:
                for b, acts in enumerate(batch):
                    mask[b, acts[i][:s]] = True
                logits = logits.masked_fill(mask, -math.inf)
            log_p = torch.log_softmax(logits, -1)
            chosen = torch.tensor([acts[i][s] for acts in batch])
            logp = logp + log_p.gather(1, chosen[:, None])[:, 0]
            # -sum p log p, masked values (p = 0) left out so that no 0 * inf reaches the gradient
            entropy = entropy - (log_p.exp() * log_p.masked_fill(mask, 0.)).sum(-1)
        return logp, entropy


class ReinforceController(Searcher):
    """NAS-RL controller trained with REINFORCE (see the module docstring)."""

    def __init__(self, *, hidden_size: int = 35, num_layers: int = 2, learning_rate: float = 6e-4,
                 batch_size: int = 5, baseline_decay: float = 0.95, entropy_weight: float = 1e-4,
                 grad_clip: Optional[float] = 5.0, temperature: Optional[float] = None,
                 tanh_constant: Optional[float] = None, num_bins: int = 10, seed: Optional[int] = None):
        super().__init__(seed=seed)
        checks = [(hidden_size >= 1, 'hidden_size >= 1'), (num_layers >= 1, 'num_layers >= 1'),
                  (learning_rate > 0, 'learning_rate > 0'), (batch_size >= 1, 'batch_size >= 1'),
                  (0 <= baseline_decay < 1, '0 <= baseline_decay < 1'), (entropy_weight >= 0, 'entropy_weight >= 0'),
                  (grad_clip is None or grad_clip > 0, 'grad_clip > 0 or None'),
                  (temperature is None or temperature > 0, 'temperature > 0 or None'),
                  (tanh_constant is None or tanh_constant > 0, 'tanh_constant > 0 or None'),
                  (num_bins >= 2, 'num_bins >= 2')]
        require('ReinforceController', checks)
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.learning_rate, self.batch_size = float(learning_rate), int(batch_size)
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.grad_clip, self.temperature, self.tanh_constant = grad_clip, temperature, tanh_constant
        self.num_bins = int(num_bins)
        # the torch seed: the given one, else one drawn from the (unseeded) base generator
        self._torch_seed = seed if seed is not None else self.rng.getrandbits(63)
        self._net: Optional[_Controller] = None
        self._reset_learning_state()

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None) -> 'ReinforceController':
        """The NAS-Bench-201 REINFORCE settings: Adam lr 0.001, EMA momentum 0.9, one child per update."""
        return cls(learning_rate=1e-3, baseline_decay=0.9, batch_size=1, entropy_weight=0., grad_clip=None, seed=seed)

    def _reset_learning_state(self):
        self.baseline: Optional[float] = None
        self.num_updates = 0
        self.num_ignored = 0  # told with a value but not in the space: no update
        self._batch: List[Tuple[List[List[int]], float]] = []
        self._asked: Dict[str, collections.deque] = {}

    # ------------------------------------------------------------------ network
    def configure(self, space) -> 'ReinforceController':
        old = self.space
        super().configure(space)
        if self._net is None or old != self.space:  # a new space: a new controller
            self._build()
        return self

    def _build(self):
        decisions = [_Decision(d, self.num_bins) for d in self.space.dims.values()]
        if not sum(d.num_steps for d in decisions):
            raise ValueError('The search space leaves the controller nothing to decide')
        self._gen = torch.Generator().manual_seed(self._torch_seed)
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG
            net = _Controller(decisions, self.hidden_size, self.num_layers)
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-0.08, 0.08, generator=self._gen)
        self._net = net
        self._optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        self._reset_learning_state()

    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def _sample_of(self, actions: List[List[int]]) -> Dict[str, Any]:
        return {d.dim.label: d.value(a) for d, a in zip(self._net.decisions, actions)}

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        with torch.no_grad():
            actions, _ = self._net.rollout(self._shape, self._gen)
        sample = self._sample_of(actions)
        self._asked.setdefault(SpaceSpec.key(sample), collections.deque()).append(actions)
        return sample

    def _tell(self, obs):
        if self._net is None:
            raise RuntimeError('ReinforceController has no search space: call configure(space) first')
        try:
            queue = self._asked.get(SpaceSpec.key(obs['sample']))
        except TypeError:  # not JSON: never asked here
            queue = None
        actions = queue.popleft() if queue else None
        if queue is not None and not queue:
            del self._asked[SpaceSpec.key(obs['sample'])]
        if obs['value'] is None:
            return  # a failed trial: counted by the base class, no update
        if actions is None:  # never asked here: rebuild the actions from the sample
            try:
                actions = self._actions_of(obs['sample'])
            except SampleError as err:
                self.num_ignored += 1
                _logger.warning('Told sample is not in the space (%s); the policy ignores it.', err)
                return
        self._batch.append((actions, obs['value']))
        if len(self._batch) >= self.batch_size:
            self._update()

    def _actions_of(self, sample) -> List[List[int]]:
        self.space.validate(sample)
        return [d.actions(sample[d.dim.label]) for d in self._net.decisions]

    def _update(self):
        batch, self._batch = self._batch, []
        rewards = torch.tensor([r for _, r in batch], dtype=torch.float32)
        if self.baseline is None:
            self.baseline = float(rewards[0])
        advantage = rewards - self.baseline  # b: EMA of the previous rewards
        for r in rewards.tolist():
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        logp, entropy = self._net.evaluate([a for a, _ in batch], self._shape)
        loss = (-advantage * logp - self.entropy_weight * entropy).mean()
        self._optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self._net.parameters(), self.grad_clip)
        self._optimizer.step()
        self.num_updates += 1

    # ------------------------------------------------------------------ inspection
    def probabilities(self) -> Dict[str, List[List[float]]]:
        """Per dimension, the probability vector of each of its steps along the greedy path.

        ``choice`` and ``numerical``: one vector over the values (bins); ``choice_multiple``
        with ``n_chosen=k``: ``k`` vectors (chosen values masked to 0); with ``n_chosen=None``:
        one ``[P(exclude), P(include)]`` per value.
        """
        self._require_space()
        with torch.no_grad():
            _, probs = self._net.rollout(self._shape, None, greedy=True)
        return {d.dim.label: p for d, p in zip(self._net.decisions, probs)}

    def greedy_sample(self) -> Dict[str, Any]:
        """The most likely decision at every step: the controller's current architecture."""
        self._require_space()
        with torch.no_grad():
            actions, _ = self._net.rollout(self._shape, None, greedy=True)
        return self._sample_of(actions)

    def _require_space(self):
        if self._net is None:
            raise RuntimeError('ReinforceController has no search space: call configure(space) first')

    # ------------------------------------------------------------------ resume
    def state_dict(self):
        state = {**super().state_dict(), 'torch_seed': self._torch_seed}
        if self._net is not None:
            blob = {'net': self._net.state_dict(), 'optimizer': self._optimizer.state_dict(),
                    'generator': self._gen.get_state()}
            buf = io.BytesIO()
            torch.save(blob, buf)
            state.update(space=self.space.to_json(), torch_state=base64.b64encode(buf.getvalue()).decode('ascii'),
                         baseline=self.baseline, num_updates=self.num_updates, num_ignored=self.num_ignored,
                         batch=[[a, r] for a, r in self._batch],
                         asked={k: list(q) for k, q in self._asked.items()})
        return state

    def load_state_dict(self, state):
        self._torch_seed = state.get('torch_seed', self._torch_seed)
        if 'torch_state' in state:
            saved = SpaceSpec.from_json(state['space'])
            if self.space is not None and self.space != saved:
                raise ValueError('The saved controller was trained on another search space')
            super().configure(saved)
            self._build()  # fresh modules, then the saved weights
        super().load_state_dict(state)
        if 'torch_state' not in state:
            return
        blob = torch.load(io.BytesIO(base64.b64decode(state['torch_state'])), weights_only=True)
        self._net.load_state_dict(blob['net'])
        self._optimizer.load_state_dict(blob['optimizer'])
        self._gen.set_state(blob['generator'])
        self.baseline, self.num_updates = state['baseline'], state['num_updates']
        self.num_ignored = state.get('num_ignored', 0)
        self._batch = [(a, float(r)) for a, r in state['batch']]
        self._asked = {k: collections.deque(q) for k, q in state['asked'].items()}

    def __repr__(self):
        return (f'ReinforceController(hidden_size={self.hidden_size}, num_layers={self.num_layers}, '
                f'learning_rate={self.learning_rate}, batch_size={self.batch_size}, '
                f'baseline_decay={self.baseline_decay}, seed={self.seed})')
