"""The Parzen densities of TPE (the Tree-structured Parzen Estimator): BOHB's model.

J. Bergstra, R. Bardenet, Y. Bengio, B. Kégl, "Algorithms for Hyper-Parameter Optimization",
NeurIPS 2011 (Section 4), with the density details of hyperopt's implementation that the
paper describes only in words (adaptive Parzen bandwidths, prior component).

**Idea.** Instead of modelling ``p(y | x)``, TPE models ``p(x | y)`` with two densities
(paper Eq. 2): ``l(x)``, fitted on the *good* observations (the ``n_good`` best values), and
``g(x)``, fitted on the others. Maximising Expected Improvement is then equivalent to
maximising the ratio ``l(x) / g(x)`` (paper Eq. 3-4): TPE draws ``num_candidates``
candidates from ``l`` and proposes the one with the largest ``log l(x) - log g(x)``.
Values are maximised here (the paper minimises a loss), so "good" is "highest".

**Where it is used.** The project's ``tpe`` strategy is Optuna's ``TPESampler``
(:class:`~nni_nasext.strategies.searchers.optuna_sampler.OptunaTPE`): it replaced our TPE
searcher after a side-by-side measurement (``experiments/results/tpe_decision.md``). This
module keeps the density model, :class:`TPEModel`, because BOHB fits it to the results of one
budget with its own share of good results (``top_n_percent``), which Optuna's TPE no longer
takes (its ``gamma`` argument is deprecated since Optuna 4.9):
:class:`~nni_nasext.strategies.searchers.bohb.BudgetTPE`.

**Split.** With ``n`` successful observations, ``n_good = min(ceil(gamma * n), max_good)``
(at least 1), the quantile rule of hyperopt/Optuna with Optuna's cap of 25; ties in value
are broken by the order in which the results were told.

**Densities** (:class:`TPEModel`), one independent factor per decision, as in the original
TPE (the "tree" is flat here: the spaces have no conditional decisions):

* ``choice``: smoothed counts, ``p(k) = (count_k + prior_weight) / (n + K prior_weight)``
  (a uniform pseudo-count of ``prior_weight`` per value, as hyperopt does);
* ``numerical``: a Parzen mixture of Gaussians truncated to ``[low, high]`` (in log space
  for ``loguniform``; untruncated for ``normal``), one per observation with weight 1, plus a
  *prior* component of weight ``prior_weight`` (mean the middle of the range and sigma its
  width; ``mu, sigma`` for ``normal``). Bandwidths (``bandwidth='neighbour'``, the paper's
  rule): each observation's sigma is the larger distance to its neighbours among the sorted
  means (prior mean included); ``'scott'``: ``prior_sigma * (n + 1) ** (-1/5)`` for all.
  With ``magic_clip`` (hyperopt's "magic clip") sigmas are clipped to
  ``[prior_sigma / min(100, n + 2), prior_sigma]``. With ``quantize`` a value's density is
  the mixture's mass on its rounding bin ``[v - q/2, v + q/2]`` (clipped to the range) and
  samples are rounded and clipped as :meth:`Dimension.random` does. The Jacobian of the log
  transform is left out: it cancels in ``l / g``;
* ``choice_multiple``: each value's inclusion is a Bernoulli with a Beta-like prior,
  ``p_j = (count_j + 2 prior_weight pi) / (n + 2 prior_weight)``, with ``pi`` the prior
  inclusion rate (``n_chosen / K``, or 1/2 for any subset). With ``n_chosen=None`` the values
  are independent; with ``n_chosen=k`` the subset follows the *conditional Bernoulli*
  distribution (the Bernoullis conditioned on choosing exactly ``k``, Chen, Dempster & Liu,
  Biometrika 1994): ``P(S) = prod_{j in S} w_j / e_k(w)`` with odds ``w_j = p_j / (1 - p_j)``
  and ``e_k`` the elementary symmetric polynomial. Its density is exact and it is sampled
  exactly, one value after another, by dynamic programming. Chosen values are listed in
  the order of the space.

All randomness comes from the searcher's ``random.Random``; the global ``random`` and
``numpy.random`` states are never used.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from nni_nasext.space_spec import Dimension, SampleError, SpaceSpec

__all__ = ['TPEModel']

_MAX_ROUNDS = 4        # rounds of n_candidates draws from l before falling back to the prior
_MAX_RANDOM = 100      # prior draws that look for a sample not yet asked
_MAX_REJECT = 100      # rejection-sampling tries of a truncated Gaussian
_LOG_FLOOR = -700.     # log of a mass that underflowed
_SQRT1_2 = math.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _norm_mass(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``Phi(beta) - Phi(alpha)`` for standardised bounds ``alpha <= beta``, accurate in the tails."""
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    e = lambda x: _erfc(x).astype(float)  # noqa: E731
    upper = 0.5 * (e(alpha * _SQRT1_2) - e(beta * _SQRT1_2))       # both bounds in the upper tail
    lower = 0.5 * (e(-beta * _SQRT1_2) - e(-alpha * _SQRT1_2))     # both in the lower tail
    middle = 1. - 0.5 * e(beta * _SQRT1_2) - 0.5 * e(-alpha * _SQRT1_2)
    return np.where(alpha >= 0, upper, np.where(beta <= 0, lower, middle))


def _draw_index(rng: random.Random, cum: Sequence[float]) -> int:
    """An index drawn with the probabilities whose running sums are ``cum``."""
    u = rng.random() * cum[-1]
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > u:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _index_of(values: tuple) -> Dict[str, int]:
    return {json.dumps(v, sort_keys=True): i for i, v in enumerate(values)}


def _find(dim: Dimension, lookup: Dict[str, int], value: Any) -> int:
    i = lookup.get(json.dumps(value, sort_keys=True))
    return i if i is not None else list(dim.values).index(value)  # 7.0 for 7: equal, as contains() says


# ---------------------------------------------------------------------- one factor per decision
class _Categorical:
    """Smoothed counts over the values of a ``choice``; values are encoded as indices."""

    def __init__(self, dim: Dimension, codes: List[int], prior_weight: float):
        counts = np.full(len(dim.values), prior_weight)
        for c in codes:
            counts[c] += 1.
        self.p = counts / counts.sum()
        self.logp = np.log(self.p)
        self.cum = np.cumsum(self.p).tolist()

    def sample(self, rng: random.Random) -> int:
        return _draw_index(rng, self.cum)

    def logpdf(self, codes: list) -> np.ndarray:
        return self.logp[np.asarray(codes, dtype=int)]


class _Subset:
    """Inclusion Bernoullis of a ``choice_multiple`` (conditioned on ``n_chosen`` when fixed);
    values are encoded as sorted tuples of indices."""

    def __init__(self, dim: Dimension, codes: List[tuple], prior_weight: float):
        size = len(dim.values)
        self.k = dim.n_chosen
        rate = 0.5 if self.k is None else self.k / size
        counts = np.zeros(size)
        for c in codes:
            counts[list(c)] += 1.
        p = (counts + 2 * prior_weight * rate) / (len(codes) + 2 * prior_weight)
        self.p = np.clip(p, 1e-12, 1 - 1e-12)
        self.log_in, self.log_out = np.log(self.p), np.log1p(-self.p)
        if self.k is not None:
            log_w = self.log_in - self.log_out
            log_w -= log_w.mean()  # rescaling the odds leaves P(S) unchanged; keeps e_k in range
            self.w = np.exp(log_w).tolist()
            self.log_w = log_w
            # table[j][r] = e_r(w_j .. w_(K-1)), the elementary symmetric polynomials of the tail
            table = [[0.] * (self.k + 1) for _ in range(size + 1)]
            table[size][0] = 1.
            for j in range(size - 1, -1, -1):
                table[j][0] = 1.
                for r in range(1, self.k + 1):
                    table[j][r] = table[j + 1][r] + self.w[j] * table[j + 1][r - 1]
            self.table = table
            self.log_norm = math.log(table[0][self.k])

    def sample(self, rng: random.Random) -> tuple:
        if self.k is None:
            return tuple(j for j, p in enumerate(self.p) if rng.random() < p)
        chosen, r = [], self.k
        for j in range(len(self.p)):
            if r == 0:
                break
            take = self.w[j] * self.table[j + 1][r - 1] / self.table[j][r]
            if rng.random() < take:
                chosen.append(j)
                r -= 1
        return tuple(chosen)

    def logpdf(self, codes: list) -> np.ndarray:
        out = np.empty(len(codes))
        for i, c in enumerate(codes):
            idx = list(c)
            if self.k is None:
                mask = np.zeros(len(self.p), dtype=bool)
                mask[idx] = True
                out[i] = self.log_in[mask].sum() + self.log_out[~mask].sum()
            else:
                out[i] = self.log_w[idx].sum() - self.log_norm
        return out


class _Parzen:
    """Mixture of truncated Gaussians on a ``numerical`` dimension, in log space for
    ``loguniform``; values are encoded as the numbers themselves."""

    def __init__(self, dim: Dimension, xs: List[float], prior_weight: float, bandwidth: str, magic_clip: bool):
        self.dim = dim
        self.log = dim.dist == 'loguniform'
        if dim.dist == 'normal':
            self.a, self.b = -math.inf, math.inf
            prior_mu, prior_sigma = dim.low, dim.high
        else:
            self.a, self.b = self._z(dim.low), self._z(dim.high)
            prior_mu, prior_sigma = 0.5 * (self.a + self.b), self.b - self.a
        zs = np.array([self._z(x) for x in xs], dtype=float)
        mus = np.append(zs, prior_mu)
        n = len(mus)
        max_sigma = prior_sigma
        min_sigma = prior_sigma / min(100., n + 1.) if magic_clip else prior_sigma * 1e-12
        if bandwidth == 'scott':
            sigmas = np.full(n, prior_sigma * len(mus) ** -0.2)
        elif n == 1:
            sigmas = np.array([prior_sigma])
        else:  # the larger gap to a neighbour among the sorted means
            order = np.argsort(mus, kind='stable')
            gaps = np.diff(mus[order])
            srt = np.empty(n)
            srt[0], srt[-1] = gaps[0], gaps[-1]
            srt[1:-1] = np.maximum(gaps[:-1], gaps[1:])
            sigmas = np.empty(n)
            sigmas[order] = srt
        sigmas = np.clip(sigmas, min_sigma, max_sigma)
        sigmas[-1] = prior_sigma
        weights = np.append(np.ones(len(zs)), prior_weight)
        self.mus, self.sigmas = mus, sigmas
        self.log_w = np.log(weights / weights.sum())
        self.cum = np.cumsum(weights).tolist()
        if math.isfinite(self.a):
            self.log_z = np.log(np.maximum(_norm_mass((self.a - mus) / sigmas, (self.b - mus) / sigmas), 1e-300))
        else:
            self.log_z = np.zeros(n)

    def _z(self, x: float) -> float:
        return math.log(x) if self.log else float(x)

    def sample(self, rng: random.Random) -> float:
        i = _draw_index(rng, self.cum)
        mu, sigma = float(self.mus[i]), float(self.sigmas[i])
        for _ in range(_MAX_REJECT):
            z = rng.normalvariate(mu, sigma)
            if self.a <= z <= self.b:
                break
        else:
            z = rng.uniform(self.a, self.b)
        dim = self.dim
        x = math.exp(z) if self.log else z
        if dim.dist != 'normal':
            x = min(max(x, dim.low), dim.high)
        if dim.quantize:
            x = round(x / dim.quantize) * dim.quantize
            if dim.dist != 'normal':
                x = min(max(x, dim.low), dim.high)
        return x

    def logpdf(self, xs: list) -> np.ndarray:
        dim = self.dim
        if dim.quantize:  # the mass of each value's rounding bin
            q = dim.quantize
            lo = np.array([x - q / 2 for x in xs], dtype=float)
            hi = np.array([x + q / 2 for x in xs], dtype=float)
            if dim.dist != 'normal':
                lo, hi = np.clip(lo, dim.low, dim.high), np.clip(hi, dim.low, dim.high)
            if self.log:
                lo, hi = np.log(lo), np.log(hi)
            mass = _norm_mass((lo[:, None] - self.mus) / self.sigmas, (hi[:, None] - self.mus) / self.sigmas)
            comp = np.log(np.maximum(mass, 1e-300)) - self.log_z + self.log_w
        else:
            z = np.array([self._z(x) for x in xs], dtype=float)
            d = (z[:, None] - self.mus) / self.sigmas
            comp = self.log_w - 0.5 * d * d - np.log(self.sigmas) - _LOG_SQRT_2PI - self.log_z
        return np.maximum(_logsumexp(comp, axis=1), _LOG_FLOOR)


class _Constant:
    """A decision with one possible value: nothing to model."""

    def __init__(self, code):
        self.code = code

    def sample(self, rng: random.Random):
        return self.code

    def logpdf(self, codes: list) -> np.ndarray:
        return np.zeros(len(codes))


# ---------------------------------------------------------------------- the model
class TPEModel:
    """The two densities ``l`` (good) and ``g`` (bad) of TPE over a :class:`SpaceSpec`.

    Usable on its own (BOHB fits it per budget)::

        model = TPEModel(space, gamma=0.25).fit(samples, values)
        sample = model.propose(rng, n_candidates=24, exclude=asked_keys)

    Parameters
    ----------
    space
        The decisions (see the module docstring for how each kind is modelled).
    gamma
        Quantile of the good observations: ``n_good = min(ceil(gamma * n), max_good)``, at
        least 1; in ``(0, 1]``.
    max_good
        Cap on ``n_good`` (Optuna's 25); ``None`` for no cap.
    prior_weight
        Weight of the prior: the uniform pseudo-count per value of a ``choice``, the weight of
        the prior component of a ``numerical`` mixture (observations weigh 1), the prior
        strength of a ``choice_multiple`` inclusion. ``> 0``.
    bandwidth
        ``'neighbour'`` (the paper's adaptive Parzen rule) or ``'scott'``.
    magic_clip
        Clip numerical bandwidths to ``[prior_sigma / min(100, n + 2), prior_sigma]``.
    """

    def __init__(self, space: SpaceSpec, *, gamma: float = 0.25, max_good: Optional[int] = 25,
                 prior_weight: float = 1.0, bandwidth: str = 'neighbour', magic_clip: bool = True):
        if not isinstance(space, SpaceSpec):
            raise ValueError(f'TPEModel needs a SpaceSpec, got {type(space).__name__}')
        _check_gamma(gamma)
        if max_good is not None:
            max_good = _check_positive_int('max_good', max_good)
        _check_prior_weight(prior_weight)
        if bandwidth not in ('neighbour', 'scott'):
            raise ValueError(f"bandwidth must be 'neighbour' or 'scott', got {bandwidth!r}")
        for dim in space.dims.values():
            _check_dimension(dim)
        self.space = space
        self.gamma, self.max_good, self.prior_weight = float(gamma), max_good, float(prior_weight)
        self.bandwidth, self.magic_clip = bandwidth, bool(magic_clip)
        self._lookup = {d.label: _index_of(d.values) for d in space.dims.values() if d.kind != 'numerical'}
        self.fit([], [])

    # ------------------------------------------------------------------ fitting
    def num_good(self, n: int) -> int:
        """How many of ``n`` observations are good."""
        if n <= 0:
            return 0
        good = max(1, math.ceil(self.gamma * n - 1e-9))
        return min(good, self.max_good, n) if self.max_good is not None else min(good, n)

    def fit(self, samples: Sequence[Dict[str, Any]], values: Sequence[Optional[float]]) -> 'TPEModel':
        """Fit ``l`` on the ``num_good`` highest values and ``g`` on the rest. ``None`` and NaN
        values are skipped; so are samples not in the space (counted in ``num_ignored``)."""
        if len(samples) != len(values):
            raise ValueError(f'fit needs as many values as samples, got {len(values)} and {len(samples)}')
        obs, self.num_ignored = [], 0
        for s, v in zip(samples, values):
            if v is None or v != v:
                continue
            try:
                obs.append((self._encode(s), float(v)))
            except (SampleError, TypeError, ValueError):
                self.num_ignored += 1
        order = sorted(range(len(obs)), key=lambda i: (-obs[i][1], i))  # best first, ties: told first
        self.n_good = self.num_good(len(obs))
        self.n_bad = len(obs) - self.n_good
        good = [obs[i][0] for i in order[:self.n_good]]
        bad = [obs[i][0] for i in order[self.n_good:]]
        self.l_factors = self._factors(good)
        self.g_factors = self._factors(bad)
        return self

    def _factors(self, codes: List[Dict[str, Any]]) -> Dict[str, Any]:
        out = {}
        for label, dim in self.space.dims.items():
            col = [c[label] for c in codes]
            if dim.size == 1 or (dim.kind == 'numerical' and dim.dist != 'normal' and dim.low == dim.high):
                out[label] = _Constant(self._encode_value(dim, dim.random(random.Random(0))))
            elif dim.kind == 'choice':
                out[label] = _Categorical(dim, col, self.prior_weight)
            elif dim.kind == 'choice_multiple':
                out[label] = _Subset(dim, col, self.prior_weight)
            else:
                out[label] = _Parzen(dim, col, self.prior_weight, self.bandwidth, self.magic_clip)
        return out

    # ------------------------------------------------------------------ samples <-> codes
    def _encode_value(self, dim: Dimension, value: Any):
        if dim.kind == 'choice':
            return _find(dim, self._lookup[dim.label], value)
        if dim.kind == 'choice_multiple':
            return tuple(sorted(_find(dim, self._lookup[dim.label], v) for v in value))
        return float(value)

    def _encode(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        self.space.validate(sample)
        return {label: self._encode_value(dim, sample[label]) for label, dim in self.space.dims.items()}

    def _decode(self, codes: Dict[str, Any]) -> Dict[str, Any]:
        out = {}
        for label, dim in self.space.dims.items():
            c = codes[label]
            if dim.kind == 'choice':
                out[label] = dim.values[c]
            elif dim.kind == 'choice_multiple':
                out[label] = [dim.values[i] for i in c]
            else:
                out[label] = c
        return out

    # ------------------------------------------------------------------ densities
    def _log_density(self, factors, codes: List[Dict[str, Any]]) -> np.ndarray:
        total = np.zeros(len(codes))
        for label, f in factors.items():
            total += f.logpdf([c[label] for c in codes])
        return total

    def log_l(self, sample: Dict[str, Any]) -> float:
        """``log l(x)``, the log density (or mass) of ``sample`` under the good model."""
        return float(self._log_density(self.l_factors, [self._encode(sample)])[0])

    def log_g(self, sample: Dict[str, Any]) -> float:
        """``log g(x)``, under the model of the other observations."""
        return float(self._log_density(self.g_factors, [self._encode(sample)])[0])

    def score(self, sample: Dict[str, Any]) -> float:
        """``log l(x) - log g(x)``: what :meth:`propose` maximises."""
        codes = [self._encode(sample)]
        return float(self._log_density(self.l_factors, codes)[0] - self._log_density(self.g_factors, codes)[0])

    def sample_good(self, rng: random.Random) -> Dict[str, Any]:
        """One draw from ``l`` (the decisions drawn independently)."""
        return self._decode({label: f.sample(rng) for label, f in self.l_factors.items()})

    # ------------------------------------------------------------------ proposing
    def propose(self, rng: random.Random, n_candidates: int = 24, exclude: Iterable[str] = ()) -> Dict[str, Any]:
        """Draw ``n_candidates`` candidates from ``l``, return the one with the highest
        ``log l - log g`` whose :meth:`SpaceSpec.key` is not in ``exclude``. If every candidate
        is excluded, up to 3 more rounds are drawn, then up to 100 samples of the space's
        prior; if all of those are excluded too (a nearly exhausted space), the best candidate
        is returned even though excluded. ``rng`` is the only source of randomness."""
        n_candidates = _check_positive_int('n_candidates', n_candidates)
        exclude = exclude if isinstance(exclude, (set, frozenset, dict)) else set(exclude)
        best, best_score = None, -math.inf
        for _ in range(_MAX_ROUNDS):
            codes = [{label: f.sample(rng) for label, f in self.l_factors.items()} for _ in range(n_candidates)]
            scores = self._log_density(self.l_factors, codes) - self._log_density(self.g_factors, codes)
            for i in sorted(range(n_candidates), key=lambda i: -scores[i]):  # stable: first drawn on ties
                sample = self._decode(codes[i])
                if scores[i] > best_score:
                    best, best_score = sample, scores[i]
                if SpaceSpec.key(sample) not in exclude:
                    return sample
        for _ in range(_MAX_RANDOM):
            sample = self.space.random(rng)
            if SpaceSpec.key(sample) not in exclude:
                return sample
        return best

    def __repr__(self):
        return (f'TPEModel(gamma={self.gamma}, max_good={self.max_good}, prior_weight={self.prior_weight}, '
                f'bandwidth={self.bandwidth!r}, magic_clip={self.magic_clip}, n_good={self.n_good}, '
                f'n_bad={self.n_bad})')


def _check_gamma(gamma):
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f'gamma must be in (0, 1], got {gamma!r}')


def _check_prior_weight(prior_weight):
    if isinstance(prior_weight, bool) or not isinstance(prior_weight, (int, float)) \
            or not (math.isfinite(prior_weight) and prior_weight > 0):
        raise ValueError(f'prior_weight must be a finite number > 0, got {prior_weight!r}')


def _check_dimension(dim: Dimension):
    if dim.kind in ('choice', 'choice_multiple'):
        if not dim.values:
            raise ValueError(f'{dim.label!r} has no values to choose from')
        if dim.kind == 'choice_multiple' and dim.n_chosen is not None and not 0 <= dim.n_chosen <= len(dim.values):
            raise ValueError(f'{dim.label!r} chooses {dim.n_chosen} of {len(dim.values)} values')
        return
    if dim.dist == 'normal':
        if not (math.isfinite(dim.low) and math.isfinite(dim.high) and dim.high > 0):
            raise ValueError(f'Normal {dim.label!r} needs a finite mu and sigma > 0, got {dim.low}, {dim.high}')
        return
    if not (math.isfinite(dim.low) and math.isfinite(dim.high) and dim.low <= dim.high):
        raise ValueError(f'{dim.label!r}: TPE needs a finite range low <= high, got [{dim.low}, {dim.high}]')
    if dim.dist == 'loguniform' and dim.low <= 0:
        raise ValueError(f'Log-uniform {dim.label!r} needs low > 0, got {dim.low}')


# ---------------------------------------------------------------------- the searcher
def _safe_key(sample) -> Optional[str]:
    try:
        return SpaceSpec.key(sample)
    except (TypeError, ValueError):  # not even JSON: not in any space
        return None
