"""Transfer GP: Bayesian optimisation on the target whose prior mean is learned from the sources.

The transfer methods of this package (TAPAS, XferNAS, RapidNAS) learn a predictor on the
source datasets and then spend the ``k`` target evaluations on the cells it ranks best. Their
predictions at ``k = 0`` are within about one point of the optimum, but the last fraction of
a point (the issue's goal: 0.1) is a question of *which of the good cells is best on this
target*, and that the sources cannot say: the target evaluations have to be used adaptively.
This searcher does that, with the two-part model of XferNAS (a universal part learned on the
sources plus a task residual learned on the target, Wistuba 2020), made a Gaussian process so
that the next evaluation is chosen by expected improvement:

* **Source scores** ``z_s(x)``: for each source dataset ``s``, the cell's quantile ``q`` in
  the source's 200-epoch table, stretched at the top, ``-log(1 - q)`` (the transform of
  TAPAS-tq, :func:`~nni_nasext.strategies.transfer.tapas.top_quantile`). The whole source tables are
  the metadata, as in the leave-one-dataset-out protocol.
* **Candidate pool**: the ``pool`` cells with the highest mean source score; ``z`` is
  standardised over the pool.
* **Model of the target value** ``y(x) = b + w . z(x) + r(x)``: Bayesian linear regression
  for ``(b, w)`` with a Gaussian prior centred on equal source weights (``w0 = 1/S``,
  precision ``prior_precision``; the intercept is free), fitted to the standardised target
  values; a zero-mean GP residual ``r`` with the exponential Hamming kernel
  ``k(x, x') = exp(-d(x, x') / length_scale)`` (``d``: number of edges whose op differs) and
  observation noise ``noise`` (the GP plays the role of XferNAS's residual ``r_t``; stacking a
  GP on the residual of a source model is the transfer scheme of Golovin et al. 2017).
* **Acquisition**: expected improvement over the best value seen (Jones et al. 1998), over
  the pool cells not yet asked.
* With no target value yet (``k = 0`` or the first ask) the choice is the cell with the
  highest mean source score: the "source rank" baseline.
* **Settings chosen on the sources** (``tune_on_sources=True``, the default, needs two or
  more sources): :func:`select_settings` runs every setting of :data:`GRID` on pseudo-tasks
  made of the sources alone (each source in turn the pseudo-target, another its single
  source, ``budget`` evaluations) and keeps the setting with the smallest mean gap to the
  pseudo-target's optimum (ties: the first in grid order). The target is never read for it:
  a nested leave-one-dataset-out. With ``tune_on_sources=False`` the given settings are used.

References
----------
* M. Wistuba, "XferNAS: Transfer Neural Architecture Search", ECML-PKDD 2020.
* D. Golovin, B. Solnik, S. Moitra, G. Kochanski, J. Karro, D. Sculley, "Google Vizier: A
  Service for Black-Box Optimization", KDD 2017 (stacked GP regressors for transfer).
* D. R. Jones, M. Schonlau, W. J. Welch, "Efficient Global Optimization of Expensive
  Black-Box Functions", J. Global Optim. 1998 (expected improvement).

How much the result depends on the settings (and that the fixed defaults were chosen after
looking at the three NB201 targets, so only the nested choice is an honest LODO result):
``experiments/results/transfer_gp_sensitivity.md``
(``experiments/bench_transfer_gp_sensitivity.py``).
"""
from __future__ import annotations

import functools
import itertools
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import norm, rankdata

from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.transfer.base import TransferSearcher, with_context

_logger = logging.getLogger(__name__)

NUM_CELLS = 5 ** 6

#: The settings :func:`select_settings` chooses from.
GRID = dict(length_scale=(0.5, 1.0, 2.0, 4.0, 8.0), prior_precision=(0.1, 1.0, 3.0, 10.0),
            noise=(0.01, 0.05, 0.2), pool=(100, 300, 1000))


@functools.lru_cache(maxsize=8)
def _source_table(source: str) -> Tuple[Tuple[str, ...], np.ndarray]:
    """(op-index keys in a fixed order, 200-epoch validation accuracies) of every NB201 cell."""
    from nni_nasext.benchmarks import nb201_table
    from nni_nasext.data_paths import DataNotFoundError
    try:
        table, _ = nb201_table(source, 200)
    except DataNotFoundError as err:
        raise with_context(err, f'the metadata of source {source}') from None
    keys = tuple(sorted(table))
    if len(keys) != NUM_CELLS:
        raise ValueError(f'the 200-epoch table of {source} holds {len(keys)} cells, expected {NUM_CELLS}')
    return keys, np.array([table[k][0] for k in keys], dtype=float)


def source_scores(sources: Sequence[str]) -> Tuple[Tuple[str, ...], np.ndarray]:
    """``(keys, Z)``: ``Z[i, s] = -log(1 - q)``, ``q`` the quantile of cell ``keys[i]`` (an
    op-index string, e.g. ``'333133'``) in source ``s``'s 200-epoch table (mid-ranks)."""
    return _source_scores(tuple(sources))


@functools.lru_cache(maxsize=16)
def _source_scores(sources: Tuple[str, ...]) -> Tuple[Tuple[str, ...], np.ndarray]:
    cols, keys = [], None
    for source in sources:
        k, acc = _source_table(source)
        if keys is not None and k != keys:
            raise ValueError('the NB201 source tables do not list the same cells')
        keys = k
        q = (rankdata(acc) - 0.5) / len(acc)
        cols.append(-np.log1p(-q))
    return keys, np.stack(cols, 1)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None, :] != b[None, :, :]).sum(-1)


class SourcePriorGP:
    """The model of the module docstring on a fixed candidate set.

    ``Z``: ``(n, S)`` source scores; ``codes``: ``(n, 6)`` op indices of the same cells."""

    def __init__(self, Z: np.ndarray, codes: np.ndarray, *, length_scale: float = 2.0, noise: float = 0.05,
                 prior_precision: float = 3.0):
        if not (length_scale > 0 and noise > 0 and prior_precision > 0):
            raise ValueError('length_scale, noise and prior_precision must be > 0')
        self.Z = (Z - Z.mean(0)) / (Z.std(0) + 1e-12)
        self.codes = np.asarray(codes)
        self.length_scale, self.noise, self.prior_precision = length_scale, noise, prior_precision

    def prior_mean_weights(self, idx: Sequence[int], ys: np.ndarray) -> np.ndarray:
        """Posterior mean of ``(b, w)`` given standardised values ``ys`` at candidates ``idx``."""
        S = self.Z.shape[1]
        w0 = np.r_[0.0, np.full(S, 1.0 / S)]
        if len(idx) < 2:
            return w0
        F = np.c_[np.ones(len(idx)), self.Z[list(idx)]]
        lam = np.diag(np.r_[1e-6, np.full(S, self.prior_precision)])
        return np.linalg.solve(F.T @ F + lam, F.T @ ys + lam @ w0)

    def posterior(self, idx: Sequence[int], values: Sequence[float], at: Optional[np.ndarray] = None):
        """Mean and std of the standardised target value at candidates ``at`` (default: all),
        and the standardised values of the observations."""
        idx = list(idx)
        at = np.arange(len(self.Z)) if at is None else np.asarray(at)
        y = np.asarray(values, dtype=float)
        ys = (y - y.mean()) / y.std() if len(y) > 1 and y.std() > 0 else np.zeros(len(y))
        wb = self.prior_mean_weights(idx, ys)
        mean = lambda rows: np.c_[np.ones(len(rows)), self.Z[rows]] @ wb   # noqa: E731
        if not idx:
            return mean(at), np.ones(len(at)), ys
        K = np.exp(-_hamming(self.codes[idx], self.codes[idx]) / self.length_scale) + self.noise * np.eye(len(idx))
        Ks = np.exp(-_hamming(self.codes[at], self.codes[idx]) / self.length_scale)
        L = np.linalg.cholesky(K)
        alpha = np.linalg.solve(L.T, np.linalg.solve(L, ys - mean(idx)))
        v = np.linalg.solve(L, Ks.T)
        mu = mean(at) + Ks @ alpha
        var = np.clip(1.0 - (v * v).sum(0), 1e-12, None)
        return mu, np.sqrt(var), ys

    def expected_improvement(self, idx: Sequence[int], values: Sequence[float], at: np.ndarray) -> np.ndarray:
        mu, sd, ys = self.posterior(idx, values, at)
        best = ys.max() if len(ys) else 0.0
        g = (mu - best) / sd
        return sd * (g * norm.cdf(g) + norm.pdf(g))


def grid_settings(grid: Optional[Dict[str, Sequence]] = None) -> List[Dict[str, float]]:
    """Every combination of the grid's values, in grid order."""
    grid = GRID if grid is None else grid
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def sequential_gaps(target: str, sources: Sequence[str], setting: Dict[str, float], budget: int) -> List[float]:
    """Gap (points) between ``target``'s optimal cell and the best of the first 1..``budget``
    cells a :class:`TransferGP` with ``setting`` (and ``tune_on_sources=False``) evaluates."""
    from nni_nasext.benchmarks import NasBench201Table
    table = NasBench201Table()
    best = table.best(target).accuracy
    accs = [a for _, a in transfer_gp(target, sources, k=budget, tune_on_sources=False, **setting)['evaluated']]
    return [best - max(accs[:i + 1]) for i in range(len(accs))]


@functools.lru_cache(maxsize=16)
def _select(sources: Tuple[str, ...], budget: int, grid_items: Tuple) -> Tuple[Dict[str, float], float]:
    grid = grid_settings(dict(grid_items))
    pairs = list(itertools.permutations(sources, 2))
    scores = [float(np.mean([sequential_gaps(a, [b], s, budget)[-1] for a, b in pairs])) for s in grid]
    i = int(np.argmin(scores))
    return grid[i], scores[i]


def select_settings(sources: Sequence[str], budget: int = 10, grid: Optional[Dict[str, Sequence]] = None
                    ) -> Tuple[Dict[str, float], float]:
    """The setting of ``grid`` (default :data:`GRID`) with the smallest mean gap after
    ``budget`` evaluations on the pseudo-tasks of ``sources`` (each ordered pair: pseudo-target,
    single source), and that mean gap. Reads the sources' tables only."""
    if len(set(sources)) < 2:
        raise ValueError(f'choosing settings on the sources needs two or more sources, got {list(sources)}')
    if budget < 1:
        raise ValueError(f'budget must be >= 1, got {budget}')
    grid = GRID if grid is None else grid
    return _select(tuple(sources), int(budget), tuple((k, tuple(v)) for k, v in grid.items()))


class TransferGP(TransferSearcher):
    """Transfer Bayesian optimisation on the NB201 cell (see the module docstring).

    Parameters
    ----------
    target
        NB201 dataset searched (only to leave it out of the default sources; the searcher never
        reads its table).
    sources
        NB201 datasets whose 200-epoch tables are the metadata (default: all but the target).
    pool
        Candidates: the cells with the highest mean source score.
    length_scale, noise, prior_precision
        The :class:`SourcePriorGP`.
    tune_on_sources, budget
        Choose ``pool``, ``length_scale``, ``noise`` and ``prior_precision`` with
        :func:`select_settings` for ``budget`` evaluations (about half a minute), instead of
        the given values.
    """

    needs_target = False   # sources alone will do (the target is never read)

    def __init__(self, *, target: Optional[str] = None, sources: Optional[Sequence[str]] = None, pool: int = 300,
                 length_scale: float = 2.0, noise: float = 0.05, prior_precision: float = 3.0,
                 tune_on_sources: bool = True, budget: int = 10, seed: Optional[int] = None):
        if target is None and not sources:
            raise ValueError('TransferGP needs a target (its sources are then the other NB201 datasets) or sources')
        super().__init__(target=target, sources=sources, seed=seed)
        if not 2 <= int(pool) <= NUM_CELLS:
            raise ValueError(f'pool must be in 2..{NUM_CELLS}, got {pool}')
        if not (length_scale > 0 and noise > 0 and prior_precision > 0):
            raise ValueError('length_scale, noise and prior_precision must be > 0')
        self.pool = int(pool)
        self.gp_args = dict(length_scale=float(length_scale), noise=float(noise),
                            prior_precision=float(prior_precision))
        if tune_on_sources and len(self.sources) < 2:
            raise ValueError('tune_on_sources needs two or more sources; pass tune_on_sources=False')
        self.tune_on_sources, self.budget = bool(tune_on_sources), int(budget)
        self.selection_score: Optional[float] = None
        self.model: Optional[SourcePriorGP] = None

    def configure(self, space) -> 'TransferGP':
        super().configure(space)
        self.require_nb201('reads NAS-Bench-201 source tables')
        self._build()   # missing tables fail here, before the first trial
        return self

    def _build(self):
        from nni_nasext.search_spaces.nasbench201 import ops_to_sample
        if self.tune_on_sources and self.selection_score is None:
            setting, self.selection_score = select_settings(self.sources, self.budget)
            self.pool = int(setting['pool'])
            self.gp_args = {k: float(v) for k, v in setting.items() if k != 'pool'}
            _logger.info('TransferGP settings chosen on the sources %s: %s (mean pseudo-task gap %.3f)',
                         self.sources, setting, self.selection_score)
        keys, Z = source_scores(self.sources)
        top = np.argsort(-Z.mean(1), kind='stable')[:self.pool]
        self.keys = [keys[i] for i in top]
        self.samples = [ops_to_sample([int(c) for c in keys[i]]) for i in top]
        self._pool_keys = [SpaceSpec.key(s) for s in self.samples]
        self._index = {key: i for i, key in enumerate(self._pool_keys)}
        codes = np.array([[int(c) for c in keys[i]] for i in top])
        self.model = SourcePriorGP(Z[top], codes, **self.gp_args)

    def _observed(self) -> Tuple[List[int], List[float]]:
        idx, values = [], []
        for sample, value in self.valid_successes():
            i = self._index.get(SpaceSpec.key(sample))
            if i is not None and i not in idx:
                idx.append(i)
                values.append(value)
        return idx, values

    def _ask(self):
        idx, values = self._observed()
        free = np.array([i for i, key in enumerate(self._pool_keys) if key not in self._asked])
        if len(free) == 0:
            raise RuntimeError(f'TransferGP asked all {self.pool} cells of its pool; raise pool')
        if not idx:
            choice = int(free[0])                  # the pool is ordered by the mean source score
        else:
            ei = self.model.expected_improvement(idx, values, free)
            choice = int(free[int(np.argmax(ei))])
        return self._mark_asked(dict(self.samples[choice]))

    @classmethod
    def _protocol_args(cls, k: int, kwargs):
        # the settings are chosen on the sources for this many evaluations
        return {'budget': max(k, 1), **kwargs}

    def result_extra(self) -> dict:
        return {'settings': {'pool': self.pool, **self.gp_args}}

    def __repr__(self):
        return (f'TransferGP(target={self.target!r}, sources={self.sources}, pool={self.pool}, {self.gp_args}, '
                f'tune_on_sources={self.tune_on_sources})')


def transfer_gp(target: str, sources: Optional[Sequence[str]] = None, k: int = 0, seed: int = 0,
                **kwargs) -> dict:
    """Leave-one-dataset-out run on the NB201 tables: ``k`` target evaluations (200-epoch
    lookups) chosen by :class:`TransferGP`; returns the best evaluated cell (``k = 0``: the
    top cell of the prior, no lookup), the evaluated ``(cellstr, accuracy)`` in order and the
    settings used."""
    return TransferGP.on_table(target, sources, k, seed, **kwargs)
