"""Hardware-aware and multi-objective searchers: accuracy against a cost (latency, FLOPs, ...).

Every searcher here is an ask/tell :class:`~nni_nasext.searcher.Searcher` (so it runs under
``NasExperiment`` and as an nnictl tuner) over any space, and reads the second objective from a
*cost model* (:func:`nni_nasext.hardware.latency.cost_model`): a function of the sample known before
training (a latency table, a latency predictor, FLOPs, parameters), given as a name such as
``'nb201_latency:raspi4'`` or ``'predicted_latency:proxylessnas'`` (with ``cost_args``, any
registered space), or as a callable. Values told are maximised (the accuracy).

:class:`ConstrainedEvolution`
    Regularized evolution (Real et al., AAAI 2019) under a hard budget ``cost <= limit``:
    proposals over budget are drawn again and never trained.
:class:`MnasNetEvolution`
    Regularized evolution on MnasNet's reward (Tan et al., "MnasNet: Platform-aware neural
    architecture search for mobile", CVPR 2019, eq. 2): ``ACC · (LAT / T)^w`` with ``w = α``
    when ``LAT <= T`` and ``w = β`` otherwise; the paper's soft constraint ``α = β = -0.07``
    (``mode='soft'``) and hard constraint ``α = 0, β = -1`` (``mode='hard'``).
:class:`ParetoEvolution`
    Pareto-front evolution in the NSGA-II style (Deb et al., "A fast and elitist multiobjective
    genetic algorithm: NSGA-II", IEEE TEC 2002): parents by binary tournament on (front rank,
    crowding distance), a child mutates one decision of its parent (as regularized evolution;
    NSGA-II's crossover is left out), and the population keeps the ``population_size`` best by
    non-dominated sorting and crowding distance. The sorting and the crowding distance are
    pymoo's (Blank & Deb, IEEE Access 2020); nothing of them is written here.

:func:`hypervolume` measures a set of (accuracy, cost) points with pymoo's hypervolume
indicator; :func:`pareto_front` picks the non-dominated ones.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from nni_nasext.searcher import NoRepeatSearcher, Observation
from nni_nasext.strategies.searchers.regularized_evolution import RegularizedEvolution

__all__ = ['ConstrainedEvolution', 'MnasNetEvolution', 'ParetoEvolution', 'hypervolume', 'mnasnet_reward',
           'pareto_front']

Cost = Union[str, Callable[[Dict[str, Any]], float]]


def _cost_fn(cost: Cost, cost_args: Optional[Dict[str, Any]] = None) -> Tuple[Callable[[Dict[str, Any]], float], str]:
    from nni_nasext.hardware.latency import cost_model
    if callable(cost):
        if cost_args:
            raise ValueError('cost_args go with a cost model given by name, not with a callable')
        return cost, getattr(cost, '__name__', 'cost')
    return cost_model(cost, **(cost_args or {})), str(cost)


def mnasnet_reward(accuracy: float, cost: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """MnasNet's reward ``ACC · (LAT / T)^w`` (eq. 2): ``w = alpha`` within the target, ``beta`` over it."""
    if target <= 0 or cost <= 0:
        raise ValueError(f'MnasNet reward needs a positive target and cost, got {target} and {cost}')
    return float(accuracy) * (float(cost) / float(target)) ** (alpha if cost <= target else beta)


class _CostAware:
    """Shared: the cost model, its cache per sample, and the cost of each observation."""

    def _init_cost(self, cost: Cost, cost_args: Optional[Dict[str, Any]] = None) -> None:
        self.cost_fn, self.cost_name = _cost_fn(cost, cost_args)
        self._costs: Dict[str, float] = {}

    def configure(self, space):
        """Attach the space, and check that the cost model costs its samples (an NB201 cost
        model on another space is a ``ValueError`` here, before any trial)."""
        out = super().configure(space)
        probe = self.space.canonical(self.space.random(random.Random(0)))
        try:
            self.cost_of(probe)
        except Exception as err:  # noqa: BLE001 - whatever the cost model raises on a foreign sample
            raise ValueError(f'The cost model {self.cost_name!r} cannot cost samples of this space '
                             f'({type(err).__name__}: {err}); the nb201_* cost models take NB201 cells') from None
        return out

    def cost_of(self, sample: Dict[str, Any]) -> float:
        from nni_nasext.space_spec import SpaceSpec
        key = SpaceSpec.key(sample)
        if key not in self._costs:
            value = float(self.cost_fn(sample))
            if not math.isfinite(value):
                raise ValueError(f'The cost model {self.cost_name} gave {value} for {sample}')
            self._costs[key] = value
        return self._costs[key]


class ConstrainedEvolution(_CostAware, RegularizedEvolution):
    """Regularized evolution over the samples whose ``cost`` is at most ``limit`` (see the module
    docstring). ``max_tries`` proposals in a row over the budget raise a ``ValueError`` (the
    budget is tighter than the space allows)."""

    def __init__(self, cost: Cost, limit: float, *, cost_args: Optional[Dict[str, Any]] = None,
                 population_size: int = 20, sample_size: int = 5, max_tries: int = 10000, seed: Optional[int] = None):
        super().__init__(population_size=population_size, sample_size=sample_size, seed=seed)
        self._init_cost(cost, cost_args)
        self.limit, self.max_tries = float(limit), int(max_tries)
        #: proposals over the budget, drawn again without training
        self.num_infeasible = 0

    def _ask(self):
        for _ in range(self.max_tries):
            sample = super()._ask()
            if self.cost_of(self.space.canonical(sample)) <= self.limit:
                return sample
            self.num_infeasible += 1
        raise ValueError(f'{self!r}: {self.max_tries} proposals in a row cost more than {self.limit} '
                         f'({self.cost_name}); raise the limit')

    def __repr__(self):
        return (f'ConstrainedEvolution({self.cost_name!r}, limit={self.limit}, population_size={self.population_size}, '
                f'sample_size={self.sample_size}, seed={self.seed})')


class MnasNetEvolution(_CostAware, RegularizedEvolution):
    """Regularized evolution whose tournaments compare MnasNet's reward (module docstring).
    ``mode``: ``'soft'`` (α = β = -0.07) or ``'hard'`` (α = 0, β = -1); ``alpha``/``beta``
    override it."""

    MODES = {'soft': (-0.07, -0.07), 'hard': (0.0, -1.0)}

    def __init__(self, cost: Cost, target: float, *, cost_args: Optional[Dict[str, Any]] = None, mode: str = 'soft',
                 alpha: Optional[float] = None, beta: Optional[float] = None, population_size: int = 20,
                 sample_size: int = 5, seed: Optional[int] = None):
        super().__init__(population_size=population_size, sample_size=sample_size, seed=seed)
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {sorted(self.MODES)}, got {mode!r}')
        if target <= 0:
            raise ValueError(f'target must be positive, got {target}')
        self._init_cost(cost, cost_args)
        a, b = self.MODES[mode]
        self.mode, self.target = mode, float(target)
        self.alpha = a if alpha is None else float(alpha)
        self.beta = b if beta is None else float(beta)

    def reward(self, obs: Observation) -> float:
        return mnasnet_reward(obs['value'], self.cost_of(obs['sample']), self.target, self.alpha, self.beta)

    def _score(self, obs: Observation) -> float:
        return self.reward(obs)

    def __repr__(self):
        return (f'MnasNetEvolution({self.cost_name!r}, target={self.target}, alpha={self.alpha}, beta={self.beta}, '
                f'population_size={self.population_size}, seed={self.seed})')


def _objectives(points: Sequence[Tuple[float, float]]) -> np.ndarray:
    """(accuracy, cost) pairs -> the minimisation form pymoo takes: (-accuracy, cost)."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.stack([-arr[:, 0], arr[:, 1]], axis=1)


def _ranks_and_crowding(points: Sequence[Tuple[float, float]]) -> Tuple[np.ndarray, np.ndarray]:
    """Front rank (0 = non-dominated) and crowding distance within its front, per point (pymoo)."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    f = _objectives(points)
    rank = np.zeros(len(f), dtype=int)
    crowd = np.zeros(len(f))
    for r, front in enumerate(NonDominatedSorting().do(f)):
        rank[front] = r
        crowd[front] = calc_crowding_distance(f[front])
    return rank, crowd


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the non-dominated (accuracy up, cost down) points (pymoo's sorting)."""
    if len(points) == 0:
        return []
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    return sorted(int(i) for i in NonDominatedSorting().do(_objectives(points), only_non_dominated_front=True))


def hypervolume(points: Sequence[Tuple[float, float]], reference: Tuple[float, float]) -> float:
    """Hypervolume of (accuracy, cost) points against ``reference`` = (worst accuracy, worst
    cost): the area they dominate, accuracy maximised and cost minimised (pymoo's ``HV``)."""
    from pymoo.indicators.hv import HV
    pts = [p for p in points if p[0] > reference[0] and p[1] < reference[1]]
    if not pts:
        return 0.0
    return float(HV(ref_point=np.array([-reference[0], reference[1]], dtype=np.float64))(_objectives(pts)))


class ParetoEvolution(_CostAware, NoRepeatSearcher):
    """NSGA-II-style evolution on (accuracy, cost) (module docstring). A proposal already
    evaluated is drawn again (up to ``max_redraws`` times): on a small space such as NB201 a
    repeat would waste a query."""

    def __init__(self, cost: Cost, *, cost_args: Optional[Dict[str, Any]] = None, population_size: int = 10,
                 max_redraws: int = 50, seed: Optional[int] = None):
        super().__init__(seed=seed)
        if population_size < 2:
            raise ValueError(f'population_size must be at least 2, got {population_size}')
        self._init_cost(cost, cost_args)
        self.population_size, self.max_redraws = int(population_size), int(max_redraws)
        self.population: List[Observation] = []
        self._ranking = (np.zeros(0, dtype=int), np.zeros(0))

    def _points(self, observations: Sequence[Observation]) -> List[Tuple[float, float]]:
        return [(o['value'], self.cost_of(o['sample'])) for o in observations]

    def _ask(self):
        from nni_nasext.space_spec import SpaceSpec
        child = None
        for _ in range(self.max_redraws + 1):   # a sample evaluated already is drawn again (a query saved)
            child = self.space.canonical(self._propose())
            if SpaceSpec.key(child) not in self._asked:
                break
        return self._mark_asked(child)

    def _propose(self):
        if max(self.num_asked, len(self.history)) < self.population_size or len(self.population) < 2:
            return self.space.random(self.rng)
        rank, crowd = self._ranking
        i, j = self.rng.sample(range(len(self.population)), 2)   # binary tournament
        better = i if (rank[i], -crowd[i]) < (rank[j], -crowd[j]) else j
        return self.space.mutate(self.population[better]['sample'], self.rng)

    def _tell(self, obs: Observation) -> None:
        super()._tell(obs)   # the sample counts as asked
        if obs['value'] is None:
            return
        self.population.append(obs)
        if len(self.population) > self.population_size:   # NSGA-II survival: drop the worst one
            rank, crowd = _ranks_and_crowding(self._points(self.population))
            worst = max(range(len(self.population)), key=lambda k: (rank[k], -crowd[k], -k))
            self.population.pop(worst)
        self._ranking = _ranks_and_crowding(self._points(self.population))

    def _rebuild(self) -> None:
        super()._rebuild()
        self.population = []
        for obs in self.history:
            self._tell(obs)

    def front(self) -> List[Observation]:
        """The non-dominated observations of the whole history."""
        done = [o for o in self.history if o['value'] is not None]
        return [done[i] for i in pareto_front(self._points(done))]

    def __repr__(self):
        return f'ParetoEvolution({self.cost_name!r}, population_size={self.population_size}, seed={self.seed})'
