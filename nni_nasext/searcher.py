"""The one interface of sample-based strategies: an ask/tell searcher.

A searcher proposes samples (``ask``) and learns from their results (``tell``); it never
knows whether it runs inside ``NasExperiment`` (:class:`nni_nasext.adapters.SearcherStrategy`)
or behind ``nnictl`` (:class:`nni_nasext.adapters.SearcherTuner`). Values are maximised;
``value=None`` means the trial failed. The interface follows the spirit of Syne Tune's
searchers (Salinas et al., 2022).
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional, Sequence

from nni_nasext.fidelity import BUDGET_KEY, split_budget
from nni_nasext.space_spec import SampleError, SpaceSpec

__all__ = ['Searcher', 'NoRepeatSearcher', 'MultiFidelitySearcher', 'Observation', 'SpaceExhausted']

Sample = Dict[str, Any]


class Observation(dict):
    """One told result: ``{'sample', 'value', 'intermediates', 'cost'}``."""


class SpaceExhausted(Exception):
    """Every configuration of a finite search space has been asked or told: the search is
    over. ``SearcherTuner`` turns it into NNI's ``NoMoreTrialError``; ``SearcherStrategy``
    stops submitting models (as NNI's strategies do on an exhausted space)."""


class Searcher:
    """Base class. Subclasses implement :meth:`_ask` and may extend :meth:`_tell`.

    Parameters
    ----------
    seed
        Seed of the searcher's own random generator: the same seed and the same told
        values give the same sequence of samples.
    """

    def __init__(self, *, seed: Optional[int] = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.space: Optional[SpaceSpec] = None
        self.history: List[Observation] = []
        self.num_asked = 0
        self.num_failed = 0
        #: keys of the distinct in-space samples asked or told (for :class:`SpaceExhausted`)
        self._distinct: set = set()
        #: proposals in a row that break the space's constraints before ``ask`` gives up
        self.max_constraint_tries = 200

    # ------------------------------------------------------------------ public API
    def configure(self, space: SpaceSpec) -> 'Searcher':
        """Attach the search space (the adapters call this)."""
        if not isinstance(space, SpaceSpec):
            space = SpaceSpec.from_space(space)
        if len(space) == 0:
            raise ValueError('The search space has no decisions to search')
        self.space = space
        return self

    def ask(self) -> Sample:
        if self.space is None:
            raise RuntimeError(f'{type(self).__name__} has no search space: call configure(space) first')
        if self.exhausted:
            raise SpaceExhausted(f'{self!r}: all {int(self.space.size)} configurations of the search space have '
                                 'been asked; the search is over')
        for _ in range(self.max_constraint_tries):
            sample = self.space.canonical(self._ask())
            self.num_asked += 1
            self._count_distinct(sample)
            problem = self.space.violated(sample) if self.space.constraints else None
            if problem is None:
                return sample
            # never trained: told as failed, so the searcher learns to avoid it
            self.tell(sample, None)
            self.history[-1]['infeasible'] = problem
            if self.exhausted:
                raise SpaceExhausted(f'{self!r}: every configuration has been asked; the last broke {problem}')
        raise ValueError(f'{self!r} proposed {self.max_constraint_tries} samples in a row that break the '
                         f'constraints of the space (last: {problem}); loosen them or use another searcher')

    @property
    def exhausted(self) -> bool:
        """Whether every configuration of a finite space has been asked or told."""
        size = self.space.size if self.space is not None else math.inf
        return size < math.inf and len(self._distinct) >= size

    def _count_distinct(self, sample) -> None:
        if self.space is None or not isinstance(sample, dict) or self.space.size == math.inf:
            return
        try:
            self.space.validate(sample)
        except (SampleError, TypeError):
            return
        self._distinct.add(SpaceSpec.key(sample))

    def tell(self, sample: Sample, value: Optional[float], *, intermediates: Sequence[float] = (),
             cost: Optional[float] = None, replay: bool = False) -> None:
        """Learn the result of a sample. ``replay=True`` gives again the result of a sample told
        before, because the searcher asked it again (the tuner answers such asks from its records
        instead of training a repeat): the searcher updates its state (e.g. the child joins the
        evolution's population) but :attr:`history` keeps one entry per evaluation, so a
        converged search that asks known samples thousands of times does not grow."""
        if value is not None:
            value = float(value)
            if value != value:  # NaN counts as a failure, never as a score
                value = None
        obs = Observation(sample=sample, value=value, intermediates=list(intermediates), cost=cost)
        if replay:
            self._tell(obs)
            return
        self.history.append(obs)
        self._count_distinct(sample)
        if value is None:
            self.num_failed += 1
        self._tell(obs)

    def valid_successes(self) -> List[tuple]:
        """``(sample, value)`` of every successful observation whose sample is in the space
        (samples of another space, e.g. from an imported history, are left out)."""
        out = []
        for obs in self.history:
            if obs['value'] is None:
                continue
            try:
                self.space.validate(obs['sample'])
            except (SampleError, TypeError):
                continue
            out.append((obs['sample'], obs['value']))
        return out

    def best(self) -> Optional[Observation]:
        done = [o for o in self.history if o['value'] is not None]
        return max(done, key=lambda o: o['value']) if done else None

    def state_dict(self) -> Dict[str, Any]:
        return {'rng': self.rng.getstate(), 'history': [dict(o) for o in self.history],
                'num_asked': self.num_asked, 'num_failed': self.num_failed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rng.setstate(_as_rng_state(state['rng']))
        self.history = [Observation(o) for o in state['history']]
        self.num_asked, self.num_failed = state['num_asked'], state['num_failed']
        self._distinct = set()
        for o in self.history:
            self._count_distinct(o['sample'])
        self._rebuild()

    # ------------------------------------------------------------------ for subclasses
    def _configure_from_state(self, state: Dict[str, Any]) -> None:
        """For searchers whose ``state_dict`` stores ``space``: configure from it when no space
        is set yet, and refuse a state saved on another space."""
        if 'space' not in state:
            return
        saved = SpaceSpec.from_json(state['space'])
        if self.space is not None and self.space != saved:
            raise ValueError(f'The saved {type(self).__name__} search ran on another search space')
        if self.space is None:
            self.configure(saved)

    def _ask(self) -> Sample:
        raise NotImplementedError

    def _tell(self, obs: Observation) -> None:
        """Update internal state with one observation (failures included)."""

    def _rebuild(self) -> None:
        """Recompute derived state from ``self.history`` after :meth:`load_state_dict`."""

    def __repr__(self) -> str:
        return f'{type(self).__name__}(seed={self.seed})'


class NoRepeatSearcher(Searcher):
    """A searcher that never asks a sample twice: ``self._asked`` holds the key
    (:meth:`SpaceSpec.key`) of every sample asked (:meth:`_mark_asked`) or told, and survives
    :meth:`state_dict` / :meth:`load_state_dict` and a rebuild from the history."""

    def __init__(self, *, seed: Optional[int] = None):
        super().__init__(seed=seed)
        self._asked: set = set()

    def _mark_asked(self, sample: Sample) -> Sample:
        self._asked.add(SpaceSpec.key(sample))
        return sample

    def _tell(self, obs: Observation) -> None:
        if isinstance(obs['sample'], dict):
            self._asked.add(SpaceSpec.key(obs['sample']))

    def _rebuild(self) -> None:
        self._asked = {SpaceSpec.key(o['sample']) for o in self.history if isinstance(o['sample'], dict)}

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), 'asked': sorted(self._asked)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._asked |= set(state.get('asked', ()))


class MultiFidelitySearcher(Searcher):
    """A searcher whose samples carry a training budget (``nasext_budget``,
    :mod:`nni_nasext.fidelity`): successive halving, Hyperband, BOHB, Progressive Dynamic Hurdles.
    The space may not have a decision of that name, and :attr:`_distinct` holds
    ``(configuration key, budget)`` pairs, so a configuration counts once per budget it was
    asked or told at; subclasses say when that makes the space exhausted."""

    def configure(self, space) -> 'MultiFidelitySearcher':
        super().configure(space)
        if BUDGET_KEY in self.space.dims:
            raise ValueError(f'The space has a decision named {BUDGET_KEY!r}, reserved for the budget')
        return self

    def _count_distinct(self, sample) -> None:
        if self.space is None or not isinstance(sample, dict) or self.space.size == math.inf:
            return
        arch, budget = split_budget(sample)
        try:
            self.space.validate(arch)
        except (ValueError, TypeError):
            return
        if budget is not None:
            self._distinct.add((SpaceSpec.key(arch), float(budget)))

    def asked_at(self, budget: float) -> int:
        """How many distinct configurations were asked or told at ``budget``."""
        return sum(1 for _, b in self._distinct if b == float(budget))


def _as_rng_state(state):
    # JSON turns the tuple state of random.Random into lists; accept both.
    if isinstance(state, list):
        return (state[0], tuple(state[1]), state[2])
    return state
