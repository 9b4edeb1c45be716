"""Progressive Dynamic Hurdles: evolution that trains longer only the children above a hurdle.

D. R. So, C. Liang, Q. V. Le, "The Evolved Transformer", ICML 2019, Section 4 and Algorithm 1
(the search behind the Evolved Transformer; Trofimov's NAS lecture in ``shared/references``).

The search is tournament-selection evolution with aging (Real et al. 2019, as
:class:`~nni_nasext.strategies.searchers.regularized_evolution.RegularizedEvolution`). What PDH adds is how
much training each child gets, in *stages* of growing budget ``budgets[0] < budgets[1] < ...``:

1. every child is first trained with ``budgets[0]`` and scored;
2. after the first ``hurdle_every[0]`` children have finished, the first hurdle ``h_0`` is set
   to the mean fitness of the population; from then on, a child whose stage-0 fitness is at least
   ``h_0`` is trained again with ``budgets[1]`` and takes that fitness;
3. after ``hurdle_every[1]`` more children, ``h_1`` is the mean stage-1 fitness of the
   population's members that reached stage 1; a child past ``h_0`` whose stage-1 fitness reaches
   ``h_1`` goes on to ``budgets[2]``; and so on.

A hurdle, once set, stays. A child's fitness is its result at the last stage it reached, and the
tournament compares those, so children that earned more training tend to become parents, which is
the paper's intent ("more resources to the most promising candidates").

Choices where the paper leaves room, stated here:

* ``h_k`` averages the *stage-k* results of the current population (its members that reached
  stage ``k``): for ``k = 0`` this is the paper's "mean fitness of the population"; for later
  stages it compares like with like (the paper: the mean of the models that trained the most).
* Hurdles apply to children trained after the hurdle exists; members already in the population
  are not trained further.
* Each stage is one trial with ``nasext_budget = budgets[k]`` (:mod:`nni_nasext.fidelity`): our
  evaluators train every budget from scratch (the NAS-Bench-201 schedules are separate
  trainings), so a promoted child pays its new budget in full; the paper continues training
  the same model for the additional steps.
* A child joins the population when it is finished (failed a hurdle, reached the last stage, or
  a promotion failed: it keeps its last successful fitness); a child whose first stage failed
  never joins.
* Asynchrony: while trials are in flight, promotions waiting to run go first, then new children.

**Answer.** :meth:`best` is the best result at the highest budget that has one
(:func:`nni_nasext.fidelity.incumbent`), as Hyperband's.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Dict, List, Optional, Sequence, Union

from nni_nasext.fidelity import BUDGET_KEY, incumbent, split_budget
from nni_nasext.searcher import MultiFidelitySearcher, SpaceExhausted
from nni_nasext.space_spec import SpaceSpec

__all__ = ['ProgressiveDynamicHurdles']


class ProgressiveDynamicHurdles(MultiFidelitySearcher):
    """Progressive Dynamic Hurdles (So et al. 2019) over a ladder of training budgets.

    Parameters
    ----------
    budgets
        Ascending training budgets of the stages (e.g. epochs; on NAS-Bench-201 ``[12, 200]``).
    population_size, sample_size
        The evolution's population (aging) and tournament size.
    hurdle_every
        How many children finish before each next hurdle is set: one number for every hurdle or
        a list of ``len(budgets) - 1`` (the paper's ``m``); default ``population_size``.
    seed
        Seed of the searcher's generator.
    """

    def __init__(self, *, budgets: Sequence[float] = (1, 3, 9), population_size: int = 20,
                 sample_size: int = 5, hurdle_every: Union[int, Sequence[int], None] = None,
                 seed: Optional[int] = None):
        super().__init__(seed=seed)
        budgets = [float(b) for b in budgets]
        if len(budgets) < 2 or any(b <= 0 for b in budgets) or any(a >= b for a, b in zip(budgets, budgets[1:])):
            raise ValueError(f'budgets must be at least two positive, strictly ascending numbers, got {budgets}')
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise ValueError(f'Need population_size >= 1 and 1 <= sample_size <= population_size, '
                             f'got {population_size} and {sample_size}')
        if hurdle_every is None:
            hurdle_every = population_size
        if isinstance(hurdle_every, (int, float)) and not isinstance(hurdle_every, bool):
            hurdle_every = [hurdle_every] * (len(budgets) - 1)
        hurdle_every = [int(m) for m in hurdle_every]
        if len(hurdle_every) != len(budgets) - 1 or any(m < 1 for m in hurdle_every):
            raise ValueError(f'hurdle_every needs {len(budgets) - 1} positive numbers (one per hurdle), '
                             f'got {hurdle_every}')
        self.budgets = [int(b) if b.is_integer() else b for b in budgets]
        self.population_size, self.sample_size = population_size, sample_size
        self.hurdle_every = hurdle_every
        self._reset()

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None, hurdle_every: int = 10) -> 'ProgressiveDynamicHurdles':
        """NAS-Bench-201: stages of 12 and 200 epochs (the two schedules the tables hold), REA's
        population 10 and tournament 3 (the NB201 paper's), the hurdle after the first
        ``hurdle_every`` children (default 10: once the population is full)."""
        return cls(budgets=[12, 200], population_size=10, sample_size=3, hurdle_every=hurdle_every, seed=seed)

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        #: every child: {'sample', 'values': [result per stage, None where not (yet) trained],
        #: 'stage': the last stage with a result (-1: none yet), 'done'}
        self.models: List[Dict[str, Any]] = []
        self.population = collections.deque()   # ids of finished children, oldest first
        self.hurdles: List[float] = []
        self.finished = 0                        # children finished (joined or discarded)
        self.queue: List[List[int]] = []         # [[model id, stage]] promotions waiting to run
        self.pending: Dict[str, List[int]] = {}  # key(sample with budget) -> model ids in flight

    def fitness(self, model: Dict[str, Any]) -> float:
        """A child's fitness: its result at the last stage it reached."""
        return model['values'][model['stage']]

    # ------------------------------------------------------------------ exhaustion
    @property
    def exhausted(self) -> bool:
        """A finite space is over when every configuration has had its first stage and no
        promotion waits."""
        size = self.space.size if self.space is not None else math.inf
        if size == math.inf or self.queue:
            return False
        return self.asked_at(self.budgets[0]) >= size

    # ------------------------------------------------------------------ asking
    def _ask(self) -> Dict[str, Any]:
        if self.queue:
            mid, stage = self.queue.pop(0)
            return self._hand_out(mid, stage)
        self.models.append(self._model(self._new_child()))
        return self._hand_out(len(self.models) - 1, 0)

    def _new_child(self) -> Dict[str, Any]:
        """Random for the first ``population_size`` children, then a mutation of a tournament
        winner; a configuration not yet trained at the first stage is preferred (a small space
        is covered, then :class:`SpaceExhausted`)."""
        first = float(self.budgets[0])
        tried = {k for k, b in self._distinct if b == first}
        tried |= {SpaceSpec.key(m['sample']) for m in self.models}
        sample = None
        for _ in range(100):
            if len(self.models) < self.population_size or not self.population:
                sample = self.space.random(self.rng)
            else:
                contenders = self.rng.sample(list(self.population), min(self.sample_size, len(self.population)))
                parent = max(contenders, key=lambda mid: (self.fitness(self.models[mid]), -mid))
                sample = self.space.mutate(self.models[parent]['sample'], self.rng)
            if SpaceSpec.key(sample) not in tried:
                break
        if self.space.size < math.inf and SpaceSpec.key(sample) in tried:
            untried = [s for s in (self.space.random(self.rng) for _ in range(1000)) if SpaceSpec.key(s) not in tried]
            if not untried:
                raise SpaceExhausted(f'{self!r}: no configuration left to start')
            sample = untried[0]
        return sample

    def _model(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        return {'sample': sample, 'values': [None] * len(self.budgets), 'stage': -1, 'done': False}

    def _hand_out(self, mid: int, stage: int) -> Dict[str, Any]:
        sample = {**self.models[mid]['sample'], BUDGET_KEY: self.budgets[stage]}
        self.pending.setdefault(SpaceSpec.key(sample), []).append(mid)
        return sample

    # ------------------------------------------------------------------ telling
    def _tell(self, obs) -> None:
        key = SpaceSpec.key(obs['sample'])
        mids = self.pending.get(key)
        if not mids:
            return   # not asked by this search (e.g. imported on resume): history only
        mid = mids.pop(0)
        if not mids:
            del self.pending[key]
        model = self.models[mid]
        _, budget = split_budget(obs['sample'])
        stage = [float(b) for b in self.budgets].index(float(budget))
        if obs['value'] is None:
            self._finish(mid, joins=stage > 0)   # a failed promotion keeps its last fitness
            return
        model['values'][stage] = obs['value']
        model['stage'] = stage
        nxt = stage + 1
        if nxt < len(self.budgets) and stage < len(self.hurdles) and obs['value'] >= self.hurdles[stage]:
            self.queue.append([mid, nxt])
            return
        self._finish(mid, joins=True)

    def _finish(self, mid: int, joins: bool) -> None:
        model = self.models[mid]
        model['done'] = True
        self.finished += 1
        if joins and model['stage'] >= 0:
            self.population.append(mid)
            while len(self.population) > self.population_size:
                self.population.popleft()
        k = len(self.hurdles)
        if k < len(self.budgets) - 1 and self.finished >= sum(self.hurdle_every[:k + 1]):
            reached = [self.models[i]['values'][k] for i in self.population if self.models[i]['values'][k] is not None]
            if reached:   # (else wait until a member of the population has reached stage k)
                self.hurdles.append(sum(reached) / len(reached))

    def best(self):
        return incumbent(self.history)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), 'models': self.models, 'population': list(self.population),
                'hurdles': self.hurdles, 'finished': self.finished, 'queue': self.queue, 'pending': self.pending}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        if 'models' in state:
            self.models = [dict(m) for m in state['models']]
            self.population = collections.deque(state['population'])
            self.hurdles = list(state['hurdles'])
            self.finished = state['finished']
            self.queue = [list(q) for q in state['queue']]
            self.pending = {k: list(v) for k, v in state['pending'].items()}

    def _rebuild(self) -> None:
        """From a history alone (``nnictl resume`` replays finished trials): every successful
        result becomes a finished child at its stage, the last ``population_size`` of them the
        population; hurdles are set again as new children finish."""
        self._reset()
        budgets = [float(b) for b in self.budgets]
        by_key: Dict[str, int] = {}
        for obs in self.history:
            if obs['value'] is None or not isinstance(obs['sample'], dict):
                continue
            arch, budget = split_budget(obs['sample'])
            if budget is None or float(budget) not in budgets:
                continue
            stage = budgets.index(float(budget))
            key = SpaceSpec.key(arch)
            if key not in by_key:
                by_key[key] = len(self.models)
                self.models.append({**self._model(arch), 'done': True})
            mid = by_key[key]
            model = self.models[mid]
            model['values'][stage] = obs['value']
            model['stage'] = max(model['stage'], stage)
            if mid in self.population:
                self.population.remove(mid)
            self.population.append(mid)
            while len(self.population) > self.population_size:
                self.population.popleft()
        self.finished = len(self.models)

    def __repr__(self) -> str:
        return (f'ProgressiveDynamicHurdles(budgets={self.budgets}, population_size={self.population_size}, '
                f'sample_size={self.sample_size}, hurdle_every={self.hurdle_every}, seed={self.seed})')
