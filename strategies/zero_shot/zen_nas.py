"""Zen-NAS evolution and proxy warm-start: two searchers built around training-free scores.

:class:`ZenNAS` -- the evolutionary search of Lin et al., "Zen-NAS: A Zero-Shot NAS for
High-Performance Image Recognition", ICCV 2021 (Algorithm 1): keep a population of at most
``population_size`` networks; each step picks a parent uniformly at random, mutates one
decision, *discards a child that breaks the budget before scoring it*, scores the child and,
when the population is full, removes the network with the **lowest** score (not the oldest,
unlike regularized evolution). The score is whatever the evaluator reports: with
``ZeroCostProxy('zen')`` this is Zen-NAS, with another proxy the same evolution maximises that
proxy. Differences from the paper: the paper starts from one small seed network and mutates
block widths/depths/kernels of its own ResNet-like space; here the first
``population_size`` samples are drawn at random from any registered space, and a mutation
changes one decision of the space (duplicates are not scored twice).

The budget is either a ``constraint(sample) -> bool`` callable, or, from ``nnictl`` (where only
JSON arguments can be given), ``space`` (a registry name) with ``max_params`` (millions) and/or
``max_flops`` (millions of multiply-accumulates for one ``input_size`` example), and/or a cost
model with its ``limit`` (``cost='nb201_latency:raspi4', limit=20.0``: the hardware-aware
Zen-NAS of the tutorial, a latency budget on a device; any name of
:func:`nni_nasext.hardware.latency.cost_model`, with ``cost_args``). Several budgets must all hold.

:class:`ProxyWarmStart` -- "score many, train the few" (e.g. Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS", ICLR 2021, Section 6, warm-starting search with synflow): before
any trial, ``num_scored`` random distinct samples are built and scored by a zero-cost proxy;
the ``top_k`` best are proposed first, and then the inner searcher (any registered strategy)
takes over, having been told the results of those first trials.

Registry lines (``nni_nasext/registry.py``, ``STRATEGIES``)::

    Entry('zen_nas', 'nni_nasext.strategies.zero_shot.zen_nas:ZenNAS', ..., {'tuner': 'NasextZenNAS'}),
    Entry('proxy_warm_start', 'nni_nasext.strategies.zero_shot.zen_nas:ProxyWarmStart', ...,
          {'tuner': 'NasextProxyWarmStart'}),
"""
from __future__ import annotations

import math
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional

from nni_nasext.searcher import Observation, Searcher, SpaceExhausted
from nni_nasext.space_spec import SpaceSpec

__all__ = ['ZenNAS', 'ProxyWarmStart', 'CostBudget']


class CostBudget:
    """``sample -> bool``: the network of ``sample`` in registry space ``space`` has at most
    ``max_params`` million trainable parameters and at most ``max_flops`` million MACs (one
    example of ``input_size``). Costs are cached per sample."""

    def __init__(self, space: str, *, max_params: Optional[float] = None, max_flops: Optional[float] = None,
                 input_size: Optional[List[int]] = None, space_args: Optional[dict] = None):
        if max_params is None and max_flops is None:
            raise ValueError('CostBudget needs max_params and/or max_flops')
        if max_flops is not None and input_size is None:
            raise ValueError('max_flops needs input_size, e.g. [3, 32, 32]')
        from nni_nasext import registry
        self.model_space = registry.build('space', space, **(space_args or {}))
        self.max_params, self.max_flops = max_params, max_flops
        self.input_size = tuple(input_size) if input_size is not None else None
        self._cache: Dict[str, tuple] = {}

    def cost(self, sample: Dict[str, Any]) -> tuple:
        """``(params_m, flops_m)`` of the sample's network (``flops_m`` is None without input_size)."""
        key = SpaceSpec.key(sample)
        if key not in self._cache:
            import torch
            from nni_nasext.evaluators.proxies import score_flops, score_params
            model = self.model_space.freeze(sample)
            flops = score_flops(model, torch.zeros((1,) + self.input_size)) if self.input_size else None
            self._cache[key] = (score_params(model), flops)
        return self._cache[key]

    def __call__(self, sample: Dict[str, Any]) -> bool:
        try:
            params, flops = self.cost(sample)
        except ValueError:  # the space cannot build this sample's network (e.g. an invalid NB101 cell)
            return False
        return ((self.max_params is None or params <= self.max_params)
                and (self.max_flops is None or flops <= self.max_flops))


class _CostLimit:
    """``sample -> bool``: ``cost(sample) <= limit``."""

    def __init__(self, cost, limit: float):
        self.cost, self.limit = cost, limit

    def __call__(self, sample) -> bool:
        return self.cost(sample) <= self.limit


class _AllOf:
    def __init__(self, *constraints):
        self.constraints = constraints

    def __call__(self, sample) -> bool:
        return all(c(sample) for c in self.constraints)


class ZenNAS(Searcher):
    """Zen-NAS evolution (see the module docstring): maximise the reported score under a budget.

    Parameters
    ----------
    population_size
        Networks kept (the paper: 512 on ImageNet; small populations suit small budgets).
    constraint
        ``sample -> bool``; infeasible children are discarded before being proposed.
    space, space_args, max_params, max_flops, input_size
        Build a :class:`CostBudget` as the constraint (for ``nnictl``); ignored when
        ``constraint`` is given.
    cost, limit, cost_args
        A cost model (:func:`nni_nasext.hardware.latency.cost_model`: ``'nb201_latency:<device>'``,
        ``'predicted_latency:<space>'``, ...) and the most a proposal may cost, e.g. a device's
        latency budget in ms; combined with the other budgets.
    max_tries
        Mutations tried per ask before giving up with a clear error (no feasible, unseen
        child near the population).
    """

    def __init__(self, *, population_size: int = 64, constraint: Optional[Callable[[dict], bool]] = None,
                 space: Optional[str] = None, space_args: Optional[dict] = None, max_params: Optional[float] = None,
                 max_flops: Optional[float] = None, input_size: Optional[List[int]] = None, max_tries: int = 1000,
                 seed: Optional[int] = None, cost: Optional[str] = None, limit: Optional[float] = None,
                 cost_args: Optional[dict] = None):
        super().__init__(seed=seed)
        if population_size < 1:
            raise ValueError(f'population_size must be >= 1, got {population_size}')
        if constraint is None and (max_params is not None or max_flops is not None):
            if space is None:
                raise ValueError('max_params / max_flops need the registry name of the space (space=...)')
            constraint = CostBudget(space, max_params=max_params, max_flops=max_flops, input_size=input_size,
                                    space_args=space_args)
        if (cost is None) != (limit is None):
            raise ValueError('cost and limit go together: a cost model (e.g. "nb201_latency:raspi4") and its budget')
        self.cost_name, self.limit = cost, (None if limit is None else float(limit))
        if cost is not None:
            from nni_nasext.hardware.latency import cost_model
            cost_fn = cost if callable(cost) else cost_model(cost, **(cost_args or {}))
            self.cost_name = getattr(cost_fn, '__name__', str(cost))
            within = _CostLimit(cost_fn, self.limit)
            constraint = within if constraint is None else _AllOf(constraint, within)
        self.population_size, self.constraint, self.max_tries = int(population_size), constraint, int(max_tries)
        self.population: List[Observation] = []
        self.seen = set()
        self.discarded = 0  # children rejected by the budget

    def _feasible(self, sample) -> bool:
        if self.constraint is None or self.constraint(sample):
            return True
        self.discarded += 1
        return False

    def _ask(self) -> Dict[str, Any]:
        fill = max(self.num_asked, len(self.history)) < self.population_size or not self.population
        for _ in range(self.max_tries):
            if fill:
                sample = self.space.random(self.rng)
            else:
                parent = self.rng.choice(self.population)
                sample = self.space.mutate(parent['sample'], self.rng)
            key = SpaceSpec.key(sample)
            if key in self.seen or not self._feasible(sample):
                continue
            self.seen.add(key)
            return sample
        if self.space.size < math.inf and len(self.seen) >= self.space.size:
            raise SpaceExhausted(f'ZenNAS: every one of the {int(self.space.size)} configurations has been seen')
        raise RuntimeError(f'ZenNAS: no unseen sample within the budget after {self.max_tries} tries '
                           f'({self.discarded} over budget so far); loosen the budget or enlarge the space')

    def _tell(self, obs: Observation) -> None:
        self.seen.add(SpaceSpec.key(obs['sample']))
        if obs['value'] is None:
            return
        self.population.append(obs)
        if len(self.population) > self.population_size:
            worst = min(range(len(self.population)), key=lambda i: self.population[i]['value'])
            self.population.pop(worst)

    def _rebuild(self) -> None:
        self.population, self.seen = [], set()
        for obs in self.history:
            self._tell(obs)

    def __repr__(self) -> str:
        return f'ZenNAS(population_size={self.population_size}, seed={self.seed})'


class ProxyWarmStart(Searcher):
    """Score ``num_scored`` random samples with a zero-cost proxy; propose the ``top_k`` best
    first, then hand over to ``then`` (a registered strategy name with ``then_args``).

    Parameters
    ----------
    space, space_args
        Registry name (and arguments) of the model space, to build the networks to score.
    proxy, proxy_args
        A :class:`~nni_nasext.evaluators.proxies.ZeroCostProxy` name and its arguments (e.g.
        ``{"dataset": "digits", "input_size": [1, 8, 8]}``); or ``scorer``, a
        ``sample -> float`` callable (larger = better) that replaces both.
    candidates
        The samples to score instead of ``num_scored`` random ones.
    """

    def __init__(self, *, space: Optional[str] = None, space_args: Optional[dict] = None, proxy: str = 'synflow',
                 proxy_args: Optional[dict] = None, scorer: Optional[Callable[[dict], float]] = None,
                 num_scored: int = 100, top_k: int = 5, then: str = 'regularized_evolution',
                 then_args: Optional[dict] = None, candidates: Optional[List[dict]] = None, verbose: bool = True,
                 seed: Optional[int] = None):
        super().__init__(seed=seed)
        if candidates is not None:
            num_scored = len(candidates)
        if not 1 <= top_k <= num_scored:
            raise ValueError(f'Need 1 <= top_k <= num_scored, got top_k={top_k}, num_scored={num_scored}')
        from nni_nasext import registry
        self.inner: Searcher = registry.build('strategy', then, seed=seed, **(then_args or {}))
        self.space_name, self.space_args = space, dict(space_args or {})
        self.proxy, self.proxy_args = proxy, dict(proxy_args or {})
        self.scorer, self.num_scored, self.top_k, self.verbose = scorer, int(num_scored), int(top_k), verbose
        self.candidates = [dict(c) for c in candidates] if candidates is not None else None
        self.queue: Optional[List[dict]] = None
        self.scores: List[tuple] = []  # (score, sample), best first

    def configure(self, space) -> 'ProxyWarmStart':
        if self.scorer is None and self.space_name is None:
            raise ValueError('ProxyWarmStart needs the registry name of the model space (space=...) or a scorer, '
                             'to build and score the networks of its samples')
        super().configure(space)
        self.inner.configure(self.space)
        return self

    def _score_all(self) -> None:
        import math
        scorer = self.scorer
        if scorer is None:
            from nni_nasext import registry
            from nni_nasext.evaluators.proxies import ZeroCostProxy
            model_space = registry.build('space', self.space_name, **self.space_args)
            evaluator = ZeroCostProxy(self.proxy, **self.proxy_args)
            scorer = lambda s: evaluator.score(model_space.freeze(s))  # noqa: E731
        candidates, seen = [], set()
        for sample in self.candidates or []:
            self.space.validate(sample)
        for _ in range(0 if self.candidates is not None else self.num_scored * 20):
            if len(candidates) == self.num_scored:
                break
            sample = self.space.random(self.rng)
            key = SpaceSpec.key(sample)
            if key not in seen:
                seen.add(key)
                candidates.append(sample)
        scored, unbuildable = [], 0
        candidates = self.candidates if self.candidates is not None else candidates
        for i, sample in enumerate(candidates, 1):
            try:
                value = float(scorer(sample))
            except ValueError as err:  # a sample whose network the space cannot build (e.g. an invalid NB101 cell)
                unbuildable += 1
                if unbuildable <= 3:
                    warnings.warn(f'ProxyWarmStart: skipping a sample whose network cannot be built: {err}',
                                  RuntimeWarning, stacklevel=2)
                continue
            scored.append((value if math.isfinite(value) else -math.inf, i, sample))
            if self.verbose and (i % 25 == 0 or i == len(candidates)):
                print(f'ProxyWarmStart: scored {i}/{len(candidates)} samples with {self.proxy}', file=sys.stderr,
                      flush=True)
        scored.sort(key=lambda t: (-t[0], t[1]))
        self.scores = [(v, s) for v, _, s in scored]
        self.queue = [s for _, s in self.scores[:self.top_k]]

    def _ask(self) -> Dict[str, Any]:
        if self.queue is None:
            self._score_all()
        done = {SpaceSpec.key(o['sample']) for o in self.history}
        while self.queue:
            sample = self.queue.pop(0)
            if SpaceSpec.key(sample) not in done:  # (after a resume, some may have run already)
                return sample
        return self.inner.ask()

    def _tell(self, obs: Observation) -> None:
        self.inner.tell(obs['sample'], obs['value'], intermediates=obs['intermediates'], cost=obs['cost'])

    def _rebuild(self) -> None:
        """Replay the history into the inner searcher (e.g. after NNI undoes a failure)."""
        self.inner.history, self.inner.num_failed = [], 0
        self.inner._rebuild()
        for obs in self.history:
            self.inner.tell(obs['sample'], obs['value'], intermediates=obs['intermediates'], cost=obs['cost'])

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state.update(queue=None if self.queue is None else [dict(x) for x in self.queue], scores=[[v, s] for v, s in self.scores], inner=self.inner.state_dict())
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.queue = None if state.get('queue') is None else [dict(x) for x in state['queue']]
        self.scores = [(v, s) for v, s in state.get('scores', [])]
        if 'inner' in state:
            self.inner.load_state_dict(state['inner'])

    def __repr__(self) -> str:
        return f'ProxyWarmStart(proxy={self.proxy!r}, num_scored={self.num_scored}, top_k={self.top_k})'
