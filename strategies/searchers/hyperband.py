"""Multi-fidelity search: successive halving and Hyperband, where the fidelity is the budget.

* K. Jamieson, A. Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter
  Optimization", AISTATS 2016 (successive halving: train ``n`` configurations on a small
  budget, keep the best ``1/eta``, multiply their budget by ``eta``, repeat);
* L. Li, K. Jamieson, G. DeSalvo, A. Rostamizadeh, A. Talwalkar, "Hyperband: A Novel
  Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185), 2018, Algorithm 1.

**Budgets.** The budget of a trial travels in its sample under ``nasext_budget``
(:mod:`nni_nasext.fidelity`): with :class:`~nni_nasext.evaluators.ImageClassification` it is
the number of training epochs, with the NAS-Bench-201 lookup 12 or 200 epochs. The rungs are
either given (``budgets=[12, 200]``) or derived from ``min_budget``, ``max_budget`` and
``eta`` as in the paper: ``s_max = floor(log_eta(max_budget / min_budget))`` and rung ``i``
trains for ``max_budget * eta ** (i - s_max)`` (rounded to whole epochs when
``integer_budgets``).

**Brackets** (Algorithm 1). Bracket ``s`` (``s_max`` down to 0) starts
``n = ceil((s_max + 1) / (s + 1) * eta ** s)`` new configurations at rung ``s_max - s``; after
every rung the best ``floor(n_i / eta)`` go on to the next. Hyperband cycles through the
brackets ``s_max, s_max - 1, ..., 0`` and again; :class:`SuccessiveHalving` runs only the
most aggressive bracket ``s_max`` over and over.

**Asynchrony.** The searcher never waits: when the current bracket has no trial to hand out
(its rung is still being trained), it opens the next bracket, as the parallel scheme of BOHB
(Falkner et al. 2018, Sec. 4.2) does. Run one trial at a time and it is exactly Algorithm 1.

**Failures.** A failed trial (value ``None``) is never promoted; a rung is complete when
every trial of it has a result or has failed. If fewer configurations than the next rung
needs succeeded, only those go on.

**New configurations from any searcher** (the split of scheduler and searcher of Syne Tune,
Salinas et al. 2022). ``searcher=`` names a registered sample-based strategy (with
``searcher_args``) or is a :class:`~nni_nasext.searcher.Searcher`: the first rung of every
bracket asks it for its configurations, and it learns from their results:

* a searcher that models budgets (``budget_aware = True``, e.g. BOHB's
  :class:`~nni_nasext.strategies.searchers.bohb.BudgetTPE`) is told every result with its
  budget (``nasext_budget`` in the sample);
* any other searcher (regularized evolution, TPE, REINFORCE, an Optuna sampler, ...) is told
  each configuration once, when it leaves its bracket: the result at the highest budget it
  was trained on (its last rung), or ``None`` if it failed. A promoted configuration thus
  counts with its larger-budget (more accurate) result.

A proposal already in the bracket's first rung is asked again (10 times at most); when the
searcher has nothing new (:class:`~nni_nasext.searcher.SpaceExhausted`) the bracket takes a
random configuration. ``searcher=None`` (the default) is the paper's uniform sampling.

**Answer.** :meth:`best` is the best result at the highest budget that has one
(:func:`nni_nasext.fidelity.incumbent`), not the best number at any budget.

**Resume.** ``state_dict`` holds the brackets (configurations, results, trials in flight), so
a checkpointed ``NasExperiment`` continues the same brackets. ``nnictl resume`` replays only
finished trials (``import_data``): they are kept as history (BOHB's model learns from them)
and a fresh bracket starts.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Union

from nni_nasext.fidelity import BUDGET_KEY, incumbent, split_budget
from nni_nasext.searcher import MultiFidelitySearcher, Searcher, SpaceExhausted
from nni_nasext.space_spec import SpaceSpec

__all__ = ['Hyperband', 'SuccessiveHalving', 'hyperband_brackets', 'inner_searcher']


def inner_searcher(searcher: Union[None, str, Searcher], searcher_args: Optional[Dict[str, Any]],
                   seed: Optional[int]) -> Optional[Searcher]:
    """The searcher that proposes a scheduler's new configurations (see the module docstring)."""
    if searcher is None:
        if searcher_args:
            raise ValueError('searcher_args given without a searcher')
        return None
    if isinstance(searcher, str):
        from nni_nasext import registry
        entry = registry.lookup('strategy', searcher)
        if issubclass(entry.load(), MultiFidelitySearcher):
            raise ValueError(f'{searcher!r} is itself multi-fidelity; a scheduler takes a searcher of configurations '
                             '(e.g. regularized_evolution, tpe, optuna_gp)')
        return registry.build('strategy', searcher, **{'seed': seed, **(searcher_args or {})})
    if searcher_args:
        raise ValueError('searcher_args go with a searcher given by name, not with a Searcher object')
    if not isinstance(searcher, Searcher):
        raise TypeError(f'searcher must be a registered strategy name or a Searcher, got {type(searcher).__name__}')
    if isinstance(searcher, MultiFidelitySearcher):
        raise ValueError(f'{type(searcher).__name__} is itself multi-fidelity; a scheduler takes a searcher of '
                         'configurations')
    return searcher


def hyperband_brackets(num_budgets: int, eta: float) -> List[Dict[str, Any]]:
    """The brackets of Algorithm 1 for ``num_budgets`` rungs (``s_max = num_budgets - 1``).

    Each bracket is ``{'s': s, 'rungs': [(rung index, number of configurations), ...]}``, e.g.
    for 5 rungs and ``eta=3`` bracket ``s=4`` is 81, 27, 9, 3, 1 configurations on rungs 0..4.
    """
    s_max = num_budgets - 1
    out = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta ** s - 1e-9)
        rungs = [(s_max - s + j, max(1, int(math.floor(n * eta ** (-j) + 1e-9)))) for j in range(s + 1)]
        out.append({'s': s, 'rungs': rungs})
    return out


class Hyperband(MultiFidelitySearcher):
    """Hyperband (Li et al. 2018) over a ladder of training budgets.

    Parameters
    ----------
    min_budget, max_budget
        Smallest and largest budget (e.g. epochs); the rungs are ``max_budget * eta ** -k``
        down to at least ``min_budget``. Neither given (and no ``budgets``): 1 and 27.
    eta
        Keep ``1/eta`` of each rung and multiply the budget by ``eta`` (paper: 3).
    budgets
        Explicit ascending rung budgets, instead of ``min_budget``/``max_budget`` (e.g.
        ``[12, 200]`` on NAS-Bench-201, whose tables hold those two schedules only).
    brackets
        Which brackets ``s`` to cycle through (default all, ``s_max`` first).
    integer_budgets
        Round derived budgets to whole numbers (epochs).
    searcher
        Where new configurations come from: ``None`` (uniform at random, the paper), the name
        of a registered sample-based strategy (``'regularized_evolution'``, ``'tpe'``,
        ``'optuna_gp'``, ...) or a :class:`~nni_nasext.searcher.Searcher`; see the module docstring.
    searcher_args
        Keyword arguments of a searcher given by name (its ``seed`` defaults to ``seed``).
    seed
        Seed of the searcher's generator.
    """

    def __init__(self, *, min_budget: Optional[float] = None, max_budget: Optional[float] = None,
                 eta: float = 3, budgets: Optional[Sequence[float]] = None,
                 brackets: Optional[Sequence[int]] = None, integer_budgets: bool = True,
                 searcher: Union[None, str, Searcher] = None, searcher_args: Optional[Dict[str, Any]] = None,
                 seed: Optional[int] = None):
        super().__init__(seed=seed)
        self.searcher = inner_searcher(searcher, searcher_args, seed)
        if not eta > 1:
            raise ValueError(f'eta must be > 1, got {eta}')
        if budgets is not None:
            budgets = [float(b) for b in budgets]
            if not budgets or any(b <= 0 for b in budgets) or any(a >= b for a, b in zip(budgets, budgets[1:])):
                raise ValueError(f'budgets must be positive and strictly ascending, got {budgets}')
        else:
            if min_budget is None and max_budget is None:
                min_budget, max_budget = 1, 27  # default ladder: 1, 3, 9, 27 (epochs)
            if min_budget is None or max_budget is None:
                raise ValueError('Give either budgets=[...] or both min_budget and max_budget')
            if not 0 < min_budget <= max_budget:
                raise ValueError(f'Need 0 < min_budget <= max_budget, got {min_budget}, {max_budget}')
            s_max = int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))
            budgets = [max_budget * eta ** (k - s_max) for k in range(s_max + 1)]
            if integer_budgets:
                budgets = [float(max(1, round(b))) for b in budgets]
                if len(set(budgets)) != len(budgets):
                    raise ValueError(f'Rounded budgets collide ({budgets}): use a larger range or a smaller eta')
        self.budgets = [int(b) if float(b).is_integer() else b for b in budgets]
        self.eta = eta
        self.min_budget, self.max_budget = self.budgets[0], self.budgets[-1]
        self.integer_budgets = integer_budgets
        all_brackets = {b['s']: b for b in hyperband_brackets(len(self.budgets), eta)}
        if brackets is None:
            brackets = sorted(all_brackets, reverse=True)
        brackets = [int(s) for s in brackets]
        if not brackets or any(s not in all_brackets for s in brackets):
            raise ValueError(f'brackets must be a non-empty subset of {sorted(all_brackets)}, got {brackets}')
        self.bracket_cycle = brackets
        self._plans = {s: all_brackets[s]['rungs'] for s in brackets}
        self._reset()

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None, **kwargs) -> 'Hyperband':
        """NAS-Bench-201: rungs at 12 and 200 epochs (the two schedules the tables hold), eta 3.

        Bracket ``s=1`` trains 3 cells for 12 epochs and the best for 200; bracket ``s=0``
        trains 2 cells for 200 epochs.
        """
        return cls(budgets=[12, 200], eta=3, seed=seed, **kwargs)

    def configure(self, space) -> 'Hyperband':
        super().configure(space)
        if self.searcher is not None:
            self.searcher.configure(self.space)
        return self

    @property
    def _budget_aware(self) -> bool:
        return bool(getattr(self.searcher, 'budget_aware', False))

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.brackets: List[Dict[str, Any]] = []   # open and finished brackets, in order
        self.pending: Dict[str, List[List[int]]] = {}  # key(sample with budget) -> [[bracket, rung, slot]]
        self._cycle_pos = 0

    # ------------------------------------------------------------------ exhaustion
    # A configuration is asked once per budget: the space is exhausted when every
    # (configuration, budget) pair has been asked or told.
    @property
    def exhausted(self) -> bool:
        size = self.space.size if self.space is not None else math.inf
        return size < math.inf and len(self._distinct) >= size * len(self.budgets)

    # ------------------------------------------------------------------ asking
    def _new_config(self, bracket: Dict[str, Any]) -> Dict[str, Any]:
        """A configuration for the first rung of ``bracket``: the searcher's, or random."""
        if self.searcher is not None:
            in_bracket = {SpaceSpec.key(c) for c in bracket['rungs'][0]['configs']}
            for _ in range(10):
                try:
                    config = self.searcher.ask()
                except SpaceExhausted:
                    break
                if SpaceSpec.key(config) not in in_bracket:
                    return config
        return self._random_config(bracket)

    def _random_config(self, bracket: Dict[str, Any]) -> Dict[str, Any]:
        """Random, preferring architectures not tried before at any budget, then ones not yet
        asked at this rung's budget (so that a small space is covered at every budget and ends
        with :class:`SpaceExhausted`)."""
        tried = {SpaceSpec.key(split_budget(o['sample'])[0]) for o in self.history}
        in_bracket = {SpaceSpec.key(c) for c in bracket['rungs'][0]['configs']}
        tried |= in_bracket
        sample = self.space.random(self.rng)
        for _ in range(100):
            if SpaceSpec.key(sample) not in tried:
                return sample
            sample = self.space.random(self.rng)
        budget = float(bracket['rungs'][0]['budget'])
        for _ in range(100):
            key = SpaceSpec.key(sample)
            if (key, budget) not in self._distinct and key not in in_bracket:
                break
            sample = self.space.random(self.rng)
        return sample

    def _open_bracket(self) -> Dict[str, Any]:
        s = self.bracket_cycle[self._cycle_pos % len(self.bracket_cycle)]
        self._cycle_pos += 1
        bracket = {'id': len(self.brackets), 's': s, 'current': 0,
                   'rungs': [{'budget': self.budgets[k], 'n': n, 'configs': [], 'results': [], 'asked': []}
                             for k, n in self._plans[s]]}
        self.brackets.append(bracket)
        return bracket

    def _next_job(self, bracket: Dict[str, Any]) -> Optional[List[int]]:
        while bracket['current'] < len(bracket['rungs']):
            r = bracket['current']
            rung = bracket['rungs'][r]
            if r == 0 and not self._first_rung_full(bracket):
                rung['configs'].append(self._new_config(bracket))
                rung['results'].append(None)
                rung['asked'].append(False)
            for slot, asked in enumerate(rung['asked']):
                if not asked:
                    return [bracket['id'], r, slot]
            if any(res is None for res in rung['results']):
                return None  # trials of this rung are still running
            if r + 1 == len(bracket['rungs']):
                bracket['current'] += 1  # the bracket is finished
                return None
            self._promote(bracket, r)
            bracket['current'] += 1
            if not bracket['rungs'][r + 1]['configs']:  # nothing survived
                bracket['current'] = len(bracket['rungs'])
                return None
        return None

    def _first_rung_full(self, bracket: Dict[str, Any]) -> bool:
        """Whether the first rung has its ``n`` configurations, or already holds every
        configuration of a finite space smaller than ``n``: then it closes early and the later
        rungs keep ``1/eta`` of the one before (at least one)."""
        rungs = bracket['rungs']
        if len(rungs[0]['configs']) >= rungs[0]['n']:
            return True
        size = self.space.size
        if size == math.inf or len({SpaceSpec.key(c) for c in rungs[0]['configs']}) < size:
            return False
        n = rungs[0]['n'] = len(rungs[0]['configs'])
        for rung in rungs[1:]:
            n = max(1, int(n // self.eta))
            rung['n'] = min(rung['n'], n)
        return True

    def _start_exhausted(self, s: int) -> bool:
        """Whether every configuration of a finite space was asked at the first budget of a
        bracket of type ``s`` (opening one would repeat them all)."""
        size = self.space.size
        if size == math.inf:
            return False
        return self.asked_at(self.budgets[self._plans[s][0][0]]) >= size

    def _promote(self, bracket: Dict[str, Any], r: int) -> None:
        rung, nxt = bracket['rungs'][r], bracket['rungs'][r + 1]
        done = [(res['value'], -slot, slot) for slot, res in enumerate(rung['results']) if res['value'] is not None]
        done.sort(reverse=True)  # best first; ties to the earlier slot
        for _, _, slot in done[:nxt['n']]:
            nxt['configs'].append(rung['configs'][slot])
            nxt['results'].append(None)
            nxt['asked'].append(False)
        if self.searcher is not None and not self._budget_aware:
            for value, _, slot in done[nxt['n']:]:   # not promoted: their last result is this rung's
                self.searcher.tell(rung['configs'][slot], value)

    def _ask(self) -> Dict[str, Any]:
        for bracket in self.brackets:
            if bracket['current'] >= len(bracket['rungs']):
                continue
            job = self._next_job(bracket)
            if job is not None:
                return self._hand_out(job)
        # while a bracket waits for results, a new bracket may repeat configurations (the workers
        # stay busy); once none waits, a small space ends when no bracket type has new work
        waiting = any(b['current'] < len(b['rungs']) for b in self.brackets)
        for _ in range(len(self.bracket_cycle) + 1):
            s = self.bracket_cycle[self._cycle_pos % len(self.bracket_cycle)]
            if not waiting and self._start_exhausted(s):
                self._cycle_pos += 1
                continue
            job = self._next_job(self._open_bracket())
            if job is not None:
                return self._hand_out(job)
        if not waiting and all(self._start_exhausted(s) for s in set(self.bracket_cycle)):
            raise SpaceExhausted(f'{self!r}: every configuration has run at the first budget of every bracket')
        raise RuntimeError('Hyperband could not open a bracket with work in it')  # pragma: no cover

    def _hand_out(self, job: List[int]) -> Dict[str, Any]:
        b, r, slot = job
        rung = self.brackets[b]['rungs'][r]
        rung['asked'][slot] = True
        sample = {**rung['configs'][slot], BUDGET_KEY: rung['budget']}
        self.pending.setdefault(SpaceSpec.key(sample), []).append(job)
        return sample

    # ------------------------------------------------------------------ telling
    def _tell(self, obs) -> None:
        if self._budget_aware:
            self.searcher.tell(obs['sample'], obs['value'])   # every result, with its budget
        jobs = self.pending.get(SpaceSpec.key(obs['sample']))
        if not jobs:
            if self.searcher is not None and not self._budget_aware:
                # not asked by a bracket (e.g. imported on resume): the searcher learns it as it is
                self.searcher.tell(split_budget(obs['sample'])[0], obs['value'])
            return
        b, r, slot = jobs.pop(0)
        if not jobs:
            del self.pending[SpaceSpec.key(obs['sample'])]
        self.brackets[b]['rungs'][r]['results'][slot] = {'value': obs['value']}
        if self.searcher is not None and not self._budget_aware and (
                obs['value'] is None or r + 1 == len(self.brackets[b]['rungs'])):
            # failed (never promoted) or at the bracket's last rung: the configuration leaves it
            self.searcher.tell(self.brackets[b]['rungs'][r]['configs'][slot], obs['value'])

    def best(self):
        return incumbent(self.history)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> Dict[str, Any]:
        state = {**super().state_dict(), 'brackets': self.brackets, 'pending': self.pending,
                 'cycle_pos': self._cycle_pos}
        if self.searcher is not None:
            state['searcher'] = self.searcher.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.brackets = state.get('brackets', [])
        self.pending = {k: [list(j) for j in v] for k, v in state.get('pending', {}).items()}
        self._cycle_pos = state.get('cycle_pos', 0)
        if self.searcher is not None and 'searcher' in state:
            self.searcher.load_state_dict(state['searcher'])

    def _rebuild(self) -> None:
        self._reset()  # brackets come from state_dict when there is one (load_state_dict)

    def __repr__(self) -> str:
        inner = f', searcher={self.searcher!r}' if self.searcher is not None else ''
        return (f'{type(self).__name__}(budgets={self.budgets}, eta={self.eta}, '
                f'brackets={self.bracket_cycle}{inner}, seed={self.seed})')


class SuccessiveHalving(Hyperband):
    """Successive halving (Jamieson & Talwalkar 2016): only the most aggressive Hyperband
    bracket, repeated; ``n = eta ** s_max`` configurations start at the smallest budget."""

    def __init__(self, *, min_budget: Optional[float] = None, max_budget: Optional[float] = None,
                 eta: float = 3, budgets: Optional[Sequence[float]] = None, integer_budgets: bool = True,
                 searcher: Union[None, str, Searcher] = None, searcher_args: Optional[Dict[str, Any]] = None,
                 seed: Optional[int] = None):
        super().__init__(min_budget=min_budget, max_budget=max_budget, eta=eta, budgets=budgets,
                         integer_budgets=integer_budgets, searcher=searcher, searcher_args=searcher_args, seed=seed)
        s_max = len(self.budgets) - 1
        self.bracket_cycle = [s_max]
        self._plans = {s_max: hyperband_brackets(len(self.budgets), eta)[0]['rungs']}

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None, **kwargs) -> 'SuccessiveHalving':
        """NAS-Bench-201: 12 and 200 epochs, eta 8: 8 cells for 12 epochs, the best for 200."""
        return cls(budgets=[12, 200], eta=8, seed=seed, **kwargs)
