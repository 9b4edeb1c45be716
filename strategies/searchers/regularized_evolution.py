"""Regularized (aging) evolution.

E. Real, A. Aggarwal, Y. Huang, Q. V. Le, "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019, Algorithm 1:

1. the first ``population_size`` samples are drawn at random;
2. then each new sample is a *mutation* of a tournament winner: ``sample_size`` members of
   the population are drawn uniformly without replacement, the best of them is the parent,
   and the child changes exactly one decision of the parent to a different value;
3. every evaluated child joins the population and the *oldest* member leaves (aging), so
   the population is always the ``population_size`` most recent successful evaluations.

Asynchronous use (several trials in flight, as under nnictl) follows the same rules: the
random phase lasts until ``population_size`` samples have been asked, and a tournament is
run over whatever population exists when a sample is asked. Failed trials (value ``None``)
never enter the population; the search goes on. The NAS-Bench-201 paper runs it with
population 10 and tournament 3 (``RegularizedEvolution.nb201_preset()``).
"""
from __future__ import annotations

import collections
from typing import Optional

from nni_nasext.searcher import Searcher


class RegularizedEvolution(Searcher):
    def __init__(self, *, population_size: int = 20, sample_size: int = 5, seed: Optional[int] = None):
        super().__init__(seed=seed)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise ValueError(f'Need population_size >= 1 and 1 <= sample_size <= population_size, '
                             f'got {population_size} and {sample_size}')
        self.population_size, self.sample_size = population_size, sample_size
        self.population = collections.deque()

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None) -> 'RegularizedEvolution':
        """Population 10, tournament 3: the REA settings of the NAS-Bench-201 paper."""
        return cls(population_size=10, sample_size=3, seed=seed)

    def _ask(self):
        # (after a resume, the imported history counts as asked)
        if max(self.num_asked, len(self.history)) < self.population_size or not self.population:
            return self.space.random(self.rng)
        contenders = self.rng.sample(list(self.population), min(self.sample_size, len(self.population)))
        parent = max(contenders, key=self._score)
        return self.space.mutate(parent['sample'], self.rng)

    def _score(self, obs) -> float:
        """What a tournament compares (the value; a subclass may score otherwise)."""
        return obs['value']

    def _tell(self, obs):
        if obs['value'] is None:
            return
        self.population.append(obs)
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _rebuild(self):
        self.population = collections.deque()
        for obs in self.history:
            self._tell(obs)

    def __repr__(self):
        return (f'RegularizedEvolution(population_size={self.population_size}, '
                f'sample_size={self.sample_size}, seed={self.seed})')
