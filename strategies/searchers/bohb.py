"""BOHB: Hyperband whose new configurations come from a TPE-style density model over budgets.

S. Falkner, A. Klein, F. Hutter, "BOHB: Robust and Efficient Hyperparameter Optimization at
Scale", ICML 2018, Algorithm 2.

BOHB is :class:`~nni_nasext.strategies.searchers.hyperband.Hyperband` (brackets, rungs,
promotions, asynchrony, failures and resume) with :class:`BudgetTPE` as its searcher of new
configurations; ``Hyperband(searcher=BudgetTPE(...))`` is the same search. :class:`BudgetTPE`
is told every result with its budget and proposes:

* with probability ``random_fraction`` (paper: 1/3) a uniformly random configuration
  (preferring one not tried before), so that the search keeps exploring whatever the model
  believes;
* otherwise from the model: among the budgets that have at least ``min_points_in_model + 2``
  successful results (paper: ``min_points_in_model = d + 1`` for ``d`` decisions) the
  *largest* is chosen, the results at that budget are split into the best
  ``top_n_percent`` (at least ``min_points_in_model``) and the rest, one density is fitted to
  each, and of ``num_samples`` candidates drawn from the good density the one maximising
  ``l(x) / g(x)`` is taken (paper: 64 samples).

The densities are :class:`~nni_nasext.strategies.searchers.parzen.TPEModel`'s: a smoothed histogram per
categorical decision, a Parzen mixture per numerical one, a product over decisions. BOHB
uses statsmodels' multivariate KDE (Aitchison-Aitken kernel for categoricals, a bandwidth
widened by ``bandwidth_factor`` for sampling); both are products of per-decision kernels
fitted to the top and bottom of the results at one budget, which is the part of BOHB this
module reproduces.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from nni_nasext.fidelity import split_budget
from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.hyperband import Hyperband
from nni_nasext.strategies.searchers.parzen import TPEModel

__all__ = ['BOHB', 'BudgetTPE']


def _check_model_args(random_fraction, min_points_in_model, top_n_percent, num_samples) -> None:
    if not 0 <= random_fraction <= 1:
        raise ValueError(f'random_fraction must be in [0, 1], got {random_fraction}')
    if min_points_in_model is not None and min_points_in_model < 1:
        raise ValueError(f'min_points_in_model must be >= 1, got {min_points_in_model}')
    if not 0 < top_n_percent < 100:
        raise ValueError(f'top_n_percent must be in (0, 100), got {top_n_percent}')
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')


class BudgetTPE(Searcher):
    """BOHB's searcher of configurations: a TPE density model on the largest budget with enough
    results (see the module docstring). It is *budget-aware*: a scheduler tells it every result
    with its budget (``nasext_budget`` in the sample), and it asks configurations without one.

    Parameters
    ----------
    random_fraction, min_points_in_model, top_n_percent, num_samples
        See :class:`BOHB`.
    seed
        Seed of the searcher's generator.
    """

    budget_aware = True

    def __init__(self, *, random_fraction: float = 1 / 3, min_points_in_model: Optional[int] = None,
                 top_n_percent: float = 15, num_samples: int = 64, seed: Optional[int] = None):
        super().__init__(seed=seed)
        _check_model_args(random_fraction, min_points_in_model, top_n_percent, num_samples)
        self.random_fraction, self.min_points_in_model = random_fraction, min_points_in_model
        self.top_n_percent, self.num_samples = top_n_percent, num_samples
        self.num_model_proposals = 0

    def min_points(self) -> int:
        return self.min_points_in_model if self.min_points_in_model is not None else len(self.space) + 1

    def model_budget(self) -> Optional[float]:
        """The largest budget with enough successful results for a model, or None."""
        counts: Dict[Any, int] = {}
        for obs in self.history:
            if obs['value'] is not None:
                budget = split_budget(obs['sample'])[1]
                counts[budget] = counts.get(budget, 0) + 1
        ok = [b for b, c in counts.items() if b is not None and c >= self.min_points() + 2]
        return max(ok) if ok else None

    def _ask(self) -> Dict[str, Any]:
        budget = None if self.rng.random() < self.random_fraction else self.model_budget()
        if budget is None:
            tried = {SpaceSpec.key(split_budget(o['sample'])[0]) for o in self.history}
            for _ in range(100):
                sample = self.space.random(self.rng)
                if SpaceSpec.key(sample) not in tried:
                    break
            return sample
        samples, values = [], []
        for obs in self.history:
            arch, b = split_budget(obs['sample'])
            if b == budget and obs['value'] is not None:
                samples.append(arch)
                values.append(obs['value'])
        n_good = max(self.min_points(), int(round(self.top_n_percent / 100 * len(samples))))
        gamma = min(1.0, n_good / len(samples))
        model = TPEModel(self.space, gamma=gamma, max_good=None).fit(samples, values)
        self.num_model_proposals += 1
        return model.propose(self.rng, n_candidates=self.num_samples)

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), 'num_model_proposals': self.num_model_proposals}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.num_model_proposals = state.get('num_model_proposals', 0)

    def __repr__(self) -> str:
        return f'BudgetTPE(random_fraction={self.random_fraction:.3g}, seed={self.seed})'


class BOHB(Hyperband):
    """BOHB (Falkner et al. 2018): :class:`Hyperband` with :class:`BudgetTPE` as its searcher.

    Parameters
    ----------
    min_budget, max_budget, eta, budgets, brackets, integer_budgets
        The Hyperband ladder and brackets (see :class:`Hyperband`).
    random_fraction
        Share of new configurations drawn uniformly at random (paper: 1/3).
    min_points_in_model
        Results needed on the good side of a model; a budget is modelled once it has this
        many plus two successful results. Default: number of decisions + 1 (paper).
    top_n_percent
        Percentage of a budget's results that count as good (paper: 15).
    num_samples
        Candidates drawn from the good density per new configuration (paper: 64).
    seed
        Seed of the searcher's generator (and of its :class:`BudgetTPE`).
    """

    def __init__(self, *, min_budget: Optional[float] = None, max_budget: Optional[float] = None,
                 eta: float = 3, budgets: Optional[Sequence[float]] = None, brackets: Optional[Sequence[int]] = None,
                 integer_budgets: bool = True, random_fraction: float = 1 / 3,
                 min_points_in_model: Optional[int] = None, top_n_percent: float = 15, num_samples: int = 64,
                 seed: Optional[int] = None):
        model = BudgetTPE(random_fraction=random_fraction, min_points_in_model=min_points_in_model,
                          top_n_percent=top_n_percent, num_samples=num_samples, seed=seed)
        super().__init__(min_budget=min_budget, max_budget=max_budget, eta=eta, budgets=budgets,
                         brackets=brackets, integer_budgets=integer_budgets, searcher=model, seed=seed)

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None) -> 'BOHB':
        """NAS-Bench-201: the successive-halving bracket of 12 -> 200 epochs with eta 8 (8 cells
        for 12 epochs, the best for 200), new cells from the model on the 12-epoch results."""
        return cls(budgets=[12, 200], eta=8, brackets=[1], seed=seed)

    # the model's figures, for reading a search
    def model_budget(self) -> Optional[float]:
        return self.searcher.model_budget()

    @property
    def num_model_proposals(self) -> int:
        return self.searcher.num_model_proposals

    @property
    def random_fraction(self) -> float:
        return self.searcher.random_fraction

    def __repr__(self) -> str:
        return (f'BOHB(budgets={self.budgets}, eta={self.eta}, brackets={self.bracket_cycle}, '
                f'random_fraction={self.random_fraction:.3g}, seed={self.seed})')
