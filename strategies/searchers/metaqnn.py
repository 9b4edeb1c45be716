"""MetaQNN: Q-learning with an epsilon-greedy schedule and experience replay.

B. Baker, O. Gupta, N. Naik, R. Raskar, "Designing Neural Network Architectures using
Reinforcement Learning", ICLR 2017 (Sections 3-4), generalised from the paper's layer-by-layer
CNN grammar to any :class:`~nni_nasext.space_spec.SpaceSpec`.

**Decisions as an MDP.** The decisions of the space are taken in the order of the spec, one
per step ``t = 0 .. T-1``. The state at step ``t`` is ``s_t = (t, a_(t-1))``, the step and the
action taken just before it (``a_(-1) = -1``); the paper's state is the current layer, here the
previous decision stands in for it. The actions at step ``t`` are the values of its dimension:

* ``choice``: one step over its values;
* ``numerical``: one step over ``num_bins`` bins spread by the distribution (evenly on
  ``[low, high]``, evenly in log space for ``loguniform``, evenly on ``mu +- 2 sigma`` for
  ``normal``), each rounded to ``quantize`` where given (and clipped), duplicates dropped; a
  told value that is not a bin counts as the nearest bin (in log space for ``loguniform``);
* ``choice_multiple`` with ``n_chosen=k``: ``k`` picks without replacement, one step each,
  taken in increasing position of the values: pick ``j`` is an index above pick ``j-1`` that
  leaves room for the picks still to come. Each subset is then exactly one trajectory, and
  ``(t, previous pick)`` tells which values are still open (the state stays Markov);
* ``choice_multiple`` with ``n_chosen=None``: one exclude (0) / include (1) step per value.

**Learning** (paper Eq. 3, the one-step Bellman update with learning rate ``alpha`` and
discount ``gamma``)::

    Q(s_t, a_t) <- (1 - alpha) Q(s_t, a_t) + alpha [r_t + gamma max_a' Q(s_(t+1), a')]

with ``r_t = 0`` before the last step, ``r_(T-1) = reward_scale * value`` and
``max_a' Q(s_T, a') = 0`` at the terminal state. The paper uses ``alpha = 0.01``, ``gamma = 1``
and initialises every Q-value to 0.5 (``q_init``) for accuracies in [0, 1]: use
``reward_scale=0.01`` when the told values are accuracies in percent. The Q-table is a dict
``"t,a_(t-1),a_t" -> Q``; entries never updated read ``q_init``.

**Experience replay** (Section 4). Every successfully told trajectory (with its scaled reward)
goes into the replay memory. After each successful tell, ``replay_size`` trajectories (100, as
in the paper) are drawn uniformly with replacement from the memory and Eq. 3 is applied to
every transition of each, in temporally reversed order (terminal step first), so that the
reward reaches the first step within one replay.

**Sampling: epsilon-greedy** per step: a uniformly random open action with probability
``epsilon``, else ``argmax_a Q(s_t, a)`` (ties broken at random). ``epsilon`` follows a schedule
of ``(epsilon, number_of_models)`` pairs, indexed by the number of models asked so far
(imported history included); after the schedule the last epsilon stays. The paper's CIFAR-10
schedule (Table 2) is ``epsilon = 1.0`` for 1,500 models, then 0.9, 0.8, ..., 0.1 for 100 models
each; the default here is that schedule with its counts times ``schedule_scale=0.1`` (150
random models, then 10 models per epsilon: 240 models to reach 0.1), sized for searches of a
few hundred trials. A given ``epsilon_schedule`` is used as it is (``schedule_scale`` 1 unless
given).

**Duplicates.** With ``dedup=True`` (default) a drawn sample that was already asked or told is
drawn again: 50 times with the scheduled epsilon, then 50 times at random (epsilon 1, since a
greedy path repeats itself), then the last draw is kept. Late in the schedule the greedy path would
otherwise spend the budget re-training the same few networks (20 NB201 runs with a short
schedule asked 64 distinct cells out of 109). This is our choice, not the paper's.

Failed trials (``None``, NaN) are counted by the base class, not stored, and do not update.
A told sample never asked (imported history after ``nnictl resume``) is turned back into its
trajectory and learned from. Everything random comes from ``self.rng``; ``state_dict`` holds
the Q-table and the replay memory, so a MetaQNN of any seed continues identically.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import Dimension, SampleError, SpaceSpec
from nni_nasext.checks import require

__all__ = ['MetaQNN']

_logger = logging.getLogger(__name__)

_MAX_REDRAWS = 100

#: Baker et al. 2017, Table 2 (CIFAR-10): (epsilon, number of models trained with it).
PAPER_SCHEDULE = [(1.0, 1500)] + [(e / 10, 100) for e in range(9, 0, -1)]


class _Step:
    """One decision step: its dimension, sub-step ``j`` and the values it chooses among."""

    def __init__(self, dim: Dimension, values: list, j: int):
        self.dim, self.values, self.j = dim, values, j
        self.kind = 'pick' if dim.kind == 'choice_multiple' else 'one'
        if dim.kind == 'choice_multiple' and dim.n_chosen is None:
            self.kind = 'flag'

    def actions(self, prev: int) -> range:
        n = len(self.values)
        if self.kind == 'flag':
            return range(2)
        if self.kind == 'pick':  # increasing positions, leaving room for the picks to come
            return range(prev + 1 if self.j > 0 else 0, n - (self.dim.n_chosen - 1 - self.j))
        return range(n)


class MetaQNN(Searcher):
    """Q-learning architecture search of Baker et al. (see the module docstring)."""

    def __init__(self, *, alpha: float = 0.01, gamma: float = 1.0, q_init: float = 0.5, reward_scale: float = 1.0,
                 replay_size: int = 100, epsilon_schedule: Optional[Sequence[Tuple[float, int]]] = None,
                 schedule_scale: Optional[float] = None, num_bins: int = 10, dedup: bool = True,
                 seed: Optional[int] = None):
        super().__init__(seed=seed)
        if schedule_scale is None:  # the paper's schedule shrunk; a given schedule as it is
            schedule_scale = 0.1 if epsilon_schedule is None else 1.0
        checks = [(0 < alpha <= 1, '0 < alpha <= 1'), (0 <= gamma <= 1, '0 <= gamma <= 1'),
                  (math.isfinite(q_init), 'a finite q_init'),
                  (math.isfinite(reward_scale) and reward_scale > 0, 'reward_scale > 0'),
                  (replay_size >= 1, 'replay_size >= 1'), (schedule_scale > 0, 'schedule_scale > 0'),
                  (num_bins >= 2, 'num_bins >= 2')]
        require('MetaQNN', checks)
        schedule = PAPER_SCHEDULE if epsilon_schedule is None else list(epsilon_schedule)
        try:
            ok = bool(schedule) and all(len(p) == 2 and 0 <= p[0] <= 1 and p[1] >= 0 and int(p[1]) == p[1]
                                        for p in schedule)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError('MetaQNN needs epsilon_schedule: a non-empty list of (epsilon in [0, 1], '
                             f'number of models >= 0), got {epsilon_schedule!r}')
        self.alpha, self.gamma, self.q_init = float(alpha), float(gamma), float(q_init)
        self.reward_scale, self.replay_size, self.num_bins = float(reward_scale), int(replay_size), int(num_bins)
        self.schedule_scale, self.dedup = float(schedule_scale), bool(dedup)
        self.epsilon_schedule = [(float(e), int(round(n * self.schedule_scale))) for e, n in schedule]
        self._steps: Optional[List[_Step]] = None
        self._reset_learning_state()

    def _reset_learning_state(self):
        self.q: Dict[str, float] = {}
        self.memory: List[Tuple[List[int], float]] = []
        self.num_updates = 0  # Bellman updates of single transitions
        self.num_ignored = 0  # told with a value but not in the space
        self._seen: set = set()  # canonical keys of the samples asked or told (for dedup)

    # ------------------------------------------------------------------ space
    def configure(self, space) -> 'MetaQNN':
        old = self.space
        super().configure(space)
        if self._steps is None or old != self.space:  # a new space: a new Q-table
            self._build()
        return self

    def _build(self):
        steps = []
        for dim in self.space.dims.values():
            values = dim.grid(self.num_bins) if dim.kind == 'numerical' else list(dim.values)
            if not values:
                raise ValueError(f'{dim.label!r} has no values to choose from')
            if dim.kind == 'choice_multiple' and dim.n_chosen is not None:
                if not 0 <= dim.n_chosen <= len(values):
                    raise ValueError(f'{dim.label!r} chooses {dim.n_chosen} of {len(values)} values')
                steps += [_Step(dim, values, j) for j in range(dim.n_chosen)]
            elif dim.kind == 'choice_multiple':
                steps += [_Step(dim, values, j) for j in range(len(values))]
            else:
                steps.append(_Step(dim, values, 0))
        if not steps:
            raise ValueError('The search space leaves MetaQNN nothing to decide')
        self._steps = steps
        self._reset_learning_state()

    # ------------------------------------------------------------------ Q-table
    def q_value(self, t: int, prev: int, action: int) -> float:
        return self.q.get(f'{t},{prev},{action}', self.q_init)

    def _max_q(self, t: int, prev: int) -> float:
        if t == len(self._steps):
            return 0.  # terminal state
        return max(self.q_value(t, prev, a) for a in self._steps[t].actions(prev))

    def _replay(self, actions: List[int], reward: float):
        """Eq. 3 over one trajectory, terminal transition first."""
        for t in range(len(actions) - 1, -1, -1):
            prev = actions[t - 1] if t else -1
            r = reward if t == len(actions) - 1 else 0.
            target = r + self.gamma * self._max_q(t + 1, actions[t])
            key = f'{t},{prev},{actions[t]}'
            self.q[key] = (1 - self.alpha) * self.q.get(key, self.q_init) + self.alpha * target
            self.num_updates += 1

    def epsilon(self, num_models: Optional[int] = None) -> float:
        """Epsilon for the next model, after ``num_models`` (default: those asked or told so far)."""
        m = max(self.num_asked, len(self.history)) if num_models is None else num_models
        for eps, count in self.epsilon_schedule:
            if m < count:
                return eps
            m -= count
        return self.epsilon_schedule[-1][0]

    # ------------------------------------------------------------------ samples <-> trajectories
    def _sample_of(self, actions: List[int]) -> Dict[str, Any]:
        sample: Dict[str, Any] = {}
        for step, a in zip(self._steps, actions):
            label = step.dim.label
            if step.kind == 'one':
                sample[label] = step.values[a]
            else:
                sample.setdefault(label, [])
                if step.kind == 'pick':
                    sample[label].append(step.values[a])
                elif a:
                    sample[label].append(step.values[step.j])
        for dim in self.space.dims.values():  # k = 0 of n: no step, an empty list
            sample.setdefault(dim.label, [])
        return {label: sample[label] for label in self.space.dims}

    def _actions_of(self, sample) -> List[int]:
        """The trajectory of a sample (``SampleError`` if it is not in the space)."""
        self.space.validate(sample)
        actions, picks = [], {}
        for step in self._steps:
            value = sample[step.dim.label]
            if step.dim.kind == 'numerical':
                to = math.log if step.dim.dist == 'loguniform' and value > 0 else (lambda x: x)
                actions.append(min(range(len(step.values)), key=lambda i: abs(to(step.values[i]) - to(value))))
            elif step.kind == 'one':
                actions.append(_find(step.values, value))
            elif step.kind == 'flag':
                actions.append(int(step.j in {_find(step.values, v) for v in value}))
            else:
                if step.dim.label not in picks:
                    picks[step.dim.label] = sorted(_find(step.values, v) for v in value)
                actions.append(picks[step.dim.label][step.j])
        return actions

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        eps = self.epsilon()
        for i in range(_MAX_REDRAWS if self.dedup else 1):
            sample = self._sample_of(self._draw(eps if i < _MAX_REDRAWS // 2 else 1.))
            if SpaceSpec.key(sample) not in self._seen:
                break
        self._seen.add(SpaceSpec.key(sample))
        return sample

    def _draw(self, eps: float) -> List[int]:
        actions, prev = [], -1
        for t, step in enumerate(self._steps):
            legal = step.actions(prev)
            if self.rng.random() < eps:
                a = legal[self.rng.randrange(len(legal))]
            else:
                qs = [self.q_value(t, prev, a) for a in legal]
                best = [a for a, q in zip(legal, qs) if q == max(qs)]
                a = best[self.rng.randrange(len(best))] if len(best) > 1 else best[0]
            actions.append(a)
            prev = a
        return actions

    def _tell(self, obs):
        if self._steps is None:
            raise RuntimeError('MetaQNN has no search space: call configure(space) first')
        try:
            actions = self._actions_of(obs['sample'])
        except (SampleError, TypeError, ValueError) as err:
            if obs['value'] is not None:
                self.num_ignored += 1
                _logger.warning('Told sample is not in the space (%s); MetaQNN ignores it.', err)
            return
        self._seen.add(SpaceSpec.key(obs['sample']))
        if obs['value'] is None:
            return  # a failed trial: counted by the base class, not remembered
        self.memory.append((actions, self.reward_scale * obs['value']))
        for _ in range(self.replay_size):
            self._replay(*self.memory[self.rng.randrange(len(self.memory))])

    def greedy_sample(self) -> Dict[str, Any]:
        """The argmax-Q path (lowest index on ties): the agent's current architecture."""
        if self._steps is None:
            raise RuntimeError('MetaQNN has no search space: call configure(space) first')
        actions, prev = [], -1
        for t, step in enumerate(self._steps):
            prev = max(step.actions(prev), key=lambda a: (self.q_value(t, prev, a), -a))
            actions.append(prev)
        return self._sample_of(actions)

    # ------------------------------------------------------------------ resume
    def state_dict(self):
        state = super().state_dict()
        if self._steps is not None:
            state.update(space=self.space.to_json(), q=dict(self.q), memory=[[a, r] for a, r in self.memory],
                         num_updates=self.num_updates, num_ignored=self.num_ignored, seen=sorted(self._seen))
        return state

    def load_state_dict(self, state):
        if 'q' in state:
            saved = SpaceSpec.from_json(state['space'])
            if self.space is not None and self.space != saved:
                raise ValueError('The saved MetaQNN searched another search space')
            super().configure(saved)
            self._build()
        super().load_state_dict(state)
        if 'q' in state:
            self.q = {str(k): float(v) for k, v in state['q'].items()}
            self.memory = [(list(a), float(r)) for a, r in state['memory']]
            self.num_updates, self.num_ignored = state['num_updates'], state['num_ignored']
            self._seen = set(state['seen'])

    def __repr__(self):
        return (f'MetaQNN(alpha={self.alpha}, gamma={self.gamma}, q_init={self.q_init}, '
                f'reward_scale={self.reward_scale}, replay_size={self.replay_size}, '
                f'schedule_scale={self.schedule_scale}, seed={self.seed})')


def _find(values: list, value: Any) -> int:
    key = json.dumps(value, sort_keys=True)
    for i, v in enumerate(values):
        if json.dumps(v, sort_keys=True) == key:
            return i
    return values.index(value)  # 1.0 for 1: equal, as Dimension.contains says
