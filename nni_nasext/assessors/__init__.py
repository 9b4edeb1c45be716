"""Early stopping of trials as NNI assessors: the median stopping rule and learning-curve extrapolation.

Behind ``nnictl`` the NNI manager sends every intermediate result of a trial (here: the
per-epoch validation accuracy that :class:`~nni_nasext.evaluators.ImageClassification`
reports) to the experiment's *assessor* (``assess_trial(trial_id, history)``); an answer of
``AssessResult.Bad`` kills the trial, which the web UI then shows as ``EARLY_STOPPED``. When a
trial ends the assessor hears ``trial_end(trial_id, success)``; ``success`` is true only for
trials that ran to the end (an early-stopped trial ends with ``success=False``).

* :class:`MedianStop` -- the median stopping rule of D. Golovin, B. Solnik, S. Moitra,
  G. Kochanski, J. Karro, D. Sculley, "Google Vizier: A Service for Black-Box Optimization",
  KDD 2017 (Section 3.2.2).
* :class:`CurveExtrapolation` -- the learning-curve extrapolation of T. Domhan,
  J. T. Springenberg, F. Hutter, "Speeding up Automatic Hyperparameter Optimization of Deep
  Neural Networks by Extrapolation of Learning Curves", IJCAI 2015, with a closed-form
  approximation in place of the paper's MCMC (see the class).

Both are registered with ``nnictl algo register`` by ``nasext register`` under the builtin
names of :data:`ASSESSOR_CLASSES`, so an experiment YAML can say
``assessor: {name: NasextMedianStop, classArgs: {start_step: 3}}``.
:func:`replay` runs any assessor (ours or NNI's) offline over recorded learning curves.
"""
from __future__ import annotations

import functools
import logging
import math
import statistics
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from nni.assessor import AssessResult, Assessor

from nni_nasext import registry

__all__ = ['ASSESSOR_CLASSES', 'CurveExtrapolation', 'MedianStop', 'replay', 'scalar']

_logger = logging.getLogger(__name__)

#: nnictl builtin name -> class path, from the registry (``nasext list assessors``)
ASSESSOR_CLASSES = {e.extra['assessor']: e.target.replace(':', '.') for e in registry.ASSESSORS.values()}

_MODES = ('maximize', 'minimize')


def scalar(value: Any) -> float:
    """An NNI metric (a number, or a dict with ``'default'``) as a float; NaN when unusable."""
    if isinstance(value, dict):
        value = value.get('default')
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float('nan')


def _check_mode(optimize_mode: str) -> float:
    if optimize_mode not in _MODES:
        raise ValueError(f"optimize_mode must be 'maximize' or 'minimize', got {optimize_mode!r}")
    return 1.0 if optimize_mode == 'maximize' else -1.0


# ============================================================================ median stopping rule

class MedianStop(Assessor):
    """The median stopping rule (Golovin et al., "Google Vizier", KDD 2017, Sec. 3.2.2).

    "A pending trial is stopped at step s if the trial's best objective value by step s is
    strictly worse than the median value of the running averages of all completed trials'
    objectives reported up to step s."

    Here a trial is assessed at every step ``s >= start_step`` (``s`` = number of
    intermediate results so far, 1-based). The references are the trials that *completed*
    (``trial_end(..., success=True)``) and reported at least ``s`` results; the running
    average of a reference up to ``s`` is the mean of its first ``s`` results. The median is
    the ordinary median (mean of the two middle values for an even count). Without a
    reference the answer is Good. Trials that failed or were stopped early
    (``success=False``) are forgotten: they never become references. Non-finite results are
    ignored (a trial reporting only NaN is never judged).

    Parameters
    ----------
    optimize_mode
        ``'maximize'`` (accuracy) or ``'minimize'`` (loss).
    start_step
        Assess only from this many intermediate results on.
    """

    def __init__(self, optimize_mode: str = 'maximize', start_step: int = 1):
        self.sign = _check_mode(optimize_mode)
        if int(start_step) != start_step or start_step < 0:
            raise ValueError(f'start_step must be a non-negative integer, got {start_step!r}')
        self.optimize_mode = optimize_mode
        self.start_step = int(start_step)
        self._running: Dict[str, List[float]] = {}     # trial id -> signed results (higher is better)
        self._references: Dict[str, List[float]] = {}  # completed trial id -> running averages

    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        values = [self.sign * scalar(v) for v in trial_history]
        self._running[trial_job_id] = values
        step = len(values)
        if step < max(self.start_step, 1):
            return AssessResult.Good
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return AssessResult.Good
        best = max(finite)
        averages = [avg[step - 1] for avg in self._references.values()
                    if len(avg) >= step and math.isfinite(avg[step - 1])]
        if not averages:
            return AssessResult.Good
        median = statistics.median(averages)
        return AssessResult.Bad if best < median else AssessResult.Good

    def trial_end(self, trial_job_id: str, success: bool) -> None:
        values = self._running.pop(trial_job_id, None)
        if not success or not values:
            return
        averages, total, count = [], 0.0, 0
        for v in values:
            if math.isfinite(v):
                total, count = total + v, count + 1
            averages.append(total / count if count else float('nan'))
        self._references[trial_job_id] = averages

    def load_checkpoint(self) -> None:
        pass

    def save_checkpoint(self) -> None:
        pass


# ============================================================================ curve extrapolation
#
# Parametric families of Domhan et al. 2015 (Table 1 / Fig. 2), written in their notation,
# x = epoch (1, 2, ...), y = the (normalised) metric; each entry: function, parameter names,
# lower and upper bounds (for y in [0, 1]) and an initial guess from the data.

def _pow3(x, c, a, alpha):
    return c - a * np.power(x, -alpha)


def _ilog2(x, c, a):
    return c - a / np.log(x + 1.0)


def _log_power(x, a, b, c):
    return a / (1.0 + np.power(x / np.exp(b), c))


def _vapor_pressure(x, a, b, c):
    return np.exp(np.clip(a + b / x + c * np.log(x), -50., 5.))


def _mmf(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) / (1.0 + np.power(kappa * x, delta))


def _janoschek(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-kappa * np.power(x, delta))


def _weibull(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-np.power(kappa * x, delta))


def _guesses(name: str, y: np.ndarray) -> List[List[float]]:
    first, last = float(y[0]), float(y[-1])
    top = min(max(y.max() + 0.05, 0.05), 1.0)
    rise = max(top - first, 1e-3)
    return {
        'pow3': [[top, rise, 1.0], [1.0, 1.0 - first, 0.5]],
        'ilog2': [[top, rise * math.log(2)], [1.0, (1.0 - first) * math.log(2)]],
        'log_power': [[top, 0.0, -1.0], [1.0, 1.0, -0.5]],
        'vapor_pressure': [[math.log(max(top, 1e-3)), -0.5, 0.0],
                           [math.log(max(last, 1e-3)), -1.0, 0.05]],
        'mmf': [[top, first - 0.1 * rise, 1.0, 1.0], [1.0, 0.0, 0.5, 0.5]],
        'janoschek': [[top, first - 0.1 * rise, 0.5, 1.0], [1.0, 0.0, 0.1, 0.5]],
        'weibull': [[top, first - 0.1 * rise, 0.5, 1.0], [1.0, 0.0, 0.1, 0.5]],
    }[name]


#: name -> (function, lower bounds, upper bounds); y normalised to [0, 1]
FAMILIES: Dict[str, Tuple[Callable, Tuple[float, ...], Tuple[float, ...]]] = {
    'pow3': (_pow3, (0.0, 0.0, 0.01), (1.0, 5.0, 5.0)),
    'ilog2': (_ilog2, (0.0, 0.0), (1.0, 5.0)),
    'log_power': (_log_power, (0.0, -5.0, -5.0), (1.0, 10.0, -0.01)),
    'vapor_pressure': (_vapor_pressure, (-10.0, -10.0, -1.0), (0.5, 0.0, 1.0)),
    'mmf': (_mmf, (0.0, -1.0, 1e-3, 0.01), (1.0, 1.0, 10.0, 5.0)),
    'janoschek': (_janoschek, (0.0, -1.0, 1e-4, 0.01), (1.0, 1.0, 10.0, 5.0)),
    'weibull': (_weibull, (0.0, -1.0, 1e-3, 0.01), (1.0, 1.0, 10.0, 5.0)),
}


def _fit_family(name: str, x: np.ndarray, y: np.ndarray, target: float, noise_floor: float):
    """Bounded least squares of one family; returns (log-likelihood, n params, mean, variance of
    the prediction at ``target``) or None when the fit is unusable."""
    from scipy.optimize import least_squares
    func, lo, hi = FAMILIES[name]
    lo, hi = np.asarray(lo), np.asarray(hi)
    n, p = len(x), len(lo)
    if n < p + 2:  # at least two residual degrees of freedom, or the noise estimate means nothing
        return None
    best = None
    for guess in _guesses(name, y):
        x0 = np.clip(np.asarray(guess, float), lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        try:
            with np.errstate(all='ignore'):
                res = least_squares(lambda t: func(x, *t) - y, x0, bounds=(lo, hi), method='trf', max_nfev=300)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
        if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        return None
    theta = best.x
    with np.errstate(all='ignore'):
        mean = float(func(np.array([target]), *theta)[0])
        start = float(func(np.array([1.0]), *theta)[0])
    if not math.isfinite(mean):
        return None
    # the paper's prior: predictions inside the metric's range and a curve that does not fall
    if mean < -0.05 or mean > 1.05 or mean < start - 0.02:
        return None
    rss = float(np.sum(best.fun ** 2))
    sigma2 = max(rss / (n - p), noise_floor ** 2)        # residual variance (unbiased)
    sigma2_ml = max(rss / n, noise_floor ** 2)
    loglik = -0.5 * n * (math.log(2 * math.pi * sigma2_ml) + 1.0)
    # Laplace approximation of the parameter posterior: Gaussian likelihood (Jacobian at the
    # optimum) times a weak Gaussian prior as wide as the bound box, so directions the data
    # do not inform keep a large variance; the delta method carries it to the prediction.
    jac = np.asarray(best.jac, float)
    prior_precision = np.diag(4.0 / (hi - lo) ** 2)
    try:
        cov = np.linalg.inv(jac.T @ jac / sigma2 + prior_precision)
    except np.linalg.LinAlgError:
        return None
    grad = np.zeros(p)
    for j in range(p):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        with np.errstate(all='ignore'):
            grad[j] = (func(np.array([target]), *up)[0] - func(np.array([target]), *down)[0]) / (2 * h)
    if not np.all(np.isfinite(grad)):
        return None
    var = float(grad @ cov @ grad) + sigma2
    if not math.isfinite(var) or var <= 0:
        return None
    return loglik, p, mean, var, n - p


@functools.lru_cache(maxsize=65536)
def _predict(y: Tuple[float, ...], target: int, families: Tuple[str, ...], noise_floor: float,
             min_families: int = 2):
    """Predictive mixture at epoch ``target`` of a normalised curve ``y`` (values ~[0, 1]):
    a tuple of (weight, mean, scale, degrees of freedom) per usable family, weights from BIC."""
    x = np.arange(1, len(y) + 1, dtype=float)
    yy = np.asarray(y, float)
    fits = []
    for name in families:
        try:
            fit = _fit_family(name, x, yy, float(target), noise_floor)
        except Exception as err:  # a family that cannot be fitted is left out
            _logger.debug('fit of %s failed: %s', name, err)
            fit = None
        if fit is not None:
            fits.append(fit)
    if len(fits) < max(min_families, 1):
        return ()
    n = len(y)
    bic = np.array([p * math.log(n) - 2 * loglik for loglik, p, _, _, _ in fits])
    w = np.exp(-0.5 * (bic - bic.min()))
    w /= w.sum()
    return tuple((float(wk), float(m), math.sqrt(v), int(dof)) for wk, (_, _, m, v, dof) in zip(w, fits))


def _t_cdf(z: float, dof: int) -> float:
    from scipy.stats import t
    return float(t.cdf(z, dof))


class CurveExtrapolation(Assessor):
    """Learning-curve extrapolation (Domhan, Springenberg & Hutter, IJCAI 2015).

    At step ``s >= start_step`` (then every ``gap`` steps) the trial's curve ``y_1..y_s`` is
    extrapolated to ``epoch_num``; the trial is stopped when the predicted probability that
    its value at ``epoch_num`` beats the best final value of the completed trials so far,
    ``P(y_epoch_num > y_best)``, is below ``threshold`` (the paper's delta, 0.05).

    How the prediction is made (and where it departs from the paper):

    * the curve is normalised to [0, 1] through ``value_range`` (default ``(0, 1)``:
      accuracies); with ``value_range=None``, or values outside it, the observed values are
      mapped affinely to [0.1, 0.5] instead (so a curve may rise up to 2.25 observed spans
      higher); ``optimize_mode='minimize'`` negates the values first;
    * each family of :data:`FAMILIES` (seven of the paper's eleven: pow3, ilog2, log-power,
      vapor pressure, MMF, Janoschek, Weibull) is fitted by bounded least squares
      (``scipy.optimize.least_squares``, two starting points), as the paper does to
      initialise its sampler; a family with fewer than (its parameters + 2) points, or whose fit
      predicts outside the metric's range or a falling curve (the paper's prior
      ``f(1) <= f(epoch_num)``), is left out;
    * **instead of MCMC** over the weighted combination and all parameters, the families are
      combined by Bayesian model averaging with BIC weights, and each family's uncertainty
      is a Laplace approximation: Gaussian residuals (variance from the fit, at least
      ``noise_floor``\\ ^2), a Gaussian posterior of its parameters (Jacobian at the optimum
      and a weak prior as wide as the parameter bounds), carried to the value at
      ``epoch_num`` by the delta method, plus the observation noise; the unknown noise
      variance is integrated out in closed form (flat prior on its logarithm), which makes
      each family's predictive a Student t with ``n - p`` degrees of freedom (n points,
      p parameters): wide tails while the curve is short, as the paper's sampled noise gives;
    * fewer than ``min_families`` usable fits means no prediction (Good); with the default 2
      the first prediction needs 5 points (ilog2 plus the 3-parameter families);
    * the predictive distribution is the resulting mixture of Student t's, truncated to the
      metric's range, and ``P(y > y_best)`` is computed in closed form (deterministic, no
      sampling; fits are cached per curve prefix).

    Anything that goes wrong (too few points, flat or noisy curves, failed fits) answers
    Good; a trial is never stopped before one trial completed, nor once it reached
    ``epoch_num``.

    Parameters
    ----------
    epoch_num
        The number of intermediate results a full trial reports (the epoch to predict).
    start_step
        Assess only from this many intermediate results on.
    threshold
        Stop when ``P(y_epoch_num > y_best) < threshold``.
    gap
        Assess at ``start_step``, ``start_step + gap``, ``start_step + 2 gap``, ...
    optimize_mode
        ``'maximize'`` or ``'minimize'``.
    value_range
        ``(low, high)`` of the metric (in its own units and direction), or None.
    noise_floor
        Smallest standard deviation of the observation noise, in metric units.
    families
        Names of :data:`FAMILIES` to use (default: all).
    min_families
        Fewest usable family fits for a prediction.
    """

    def __init__(self, epoch_num: int = 20, start_step: int = 5, threshold: float = 0.05, gap: int = 1,
                 optimize_mode: str = 'maximize', value_range: Optional[Sequence[float]] = (0.0, 1.0),
                 noise_floor: float = 0.005, families: Optional[Iterable[str]] = None, min_families: int = 2):
        self.sign = _check_mode(optimize_mode)
        if int(epoch_num) != epoch_num or epoch_num < 2:
            raise ValueError(f'epoch_num must be an integer >= 2, got {epoch_num!r}')
        if int(start_step) != start_step or start_step < 1:
            raise ValueError(f'start_step must be a positive integer, got {start_step!r}')
        if int(gap) != gap or gap < 1:
            raise ValueError(f'gap must be a positive integer, got {gap!r}')
        if not 0 <= threshold < 1:
            raise ValueError(f'threshold must be a probability in [0, 1), got {threshold!r}')
        if value_range is not None:
            low, high = (float(v) for v in value_range)
            if not low < high:
                raise ValueError(f'value_range must be (low, high) with low < high, got {value_range!r}')
            low, high = sorted((self.sign * low, self.sign * high))
            value_range = (low, high)
        families = tuple(families) if families is not None else tuple(FAMILIES)
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f'unknown curve families {unknown}; known: {sorted(FAMILIES)}')
        self.epoch_num, self.start_step, self.gap = int(epoch_num), int(start_step), int(gap)
        self.threshold, self.optimize_mode = float(threshold), optimize_mode
        self.value_range, self.noise_floor, self.families = value_range, float(noise_floor), families
        self.min_families = int(min_families)
        self.best_final: Optional[float] = None       # signed: higher is better
        self._running: Dict[str, List[float]] = {}
        self.last_probability: Dict[str, float] = {}  # trial id -> last P(final > best), for inspection

    # ---------------------------------------------------------------- NNI interface
    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        try:
            values = [self.sign * scalar(v) for v in trial_history]
            self._running[trial_job_id] = values
            step = len(values)
            if (self.best_final is None or step < self.start_step or step >= self.epoch_num
                    or (step - self.start_step) % self.gap):
                return AssessResult.Good
            prob = self.probability_to_beat(values, self.best_final)
            if prob is None:
                return AssessResult.Good
            self.last_probability[trial_job_id] = prob
            return AssessResult.Bad if prob < self.threshold else AssessResult.Good
        except Exception as err:  # an assessor error would stop the whole experiment: never stop then
            _logger.warning('CurveExtrapolation could not assess trial %s (%s); answering Good.', trial_job_id, err)
            return AssessResult.Good

    def trial_end(self, trial_job_id: str, success: bool) -> None:
        values = self._running.pop(trial_job_id, None)
        if not success or not values:
            return
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            final = finite[-1]
            self.best_final = final if self.best_final is None else max(self.best_final, final)

    def load_checkpoint(self) -> None:
        pass

    def save_checkpoint(self) -> None:
        pass

    # ---------------------------------------------------------------- prediction
    def _normaliser(self, values: Sequence[float]) -> Tuple[float, float, float, float]:
        """(offset, scale, low, high): u = (v - offset) / scale; [low, high] the range of u."""
        lo_v, hi_v = min(values), max(values)
        if self.value_range is not None and self.value_range[0] <= lo_v and hi_v <= self.value_range[1]:
            low, high = self.value_range
            return low, high - low, 0.0, 1.0
        span = hi_v - lo_v
        if span <= 1e-12:
            span = max(abs(hi_v) * 0.01, 1e-6)
        scale = span / 0.4
        return lo_v - 0.1 * scale, scale, 0.0, 1.0

    def predict(self, values: Sequence[float]) -> List[Tuple[float, float, float]]:
        """The predictive mixture of the value at ``epoch_num`` for a (signed) curve: a list of
        (weight, mean, sd) in the curve's own units; empty when nothing could be fitted."""
        values = [v for v in values if math.isfinite(v)]
        if len(values) < 2:
            return []
        offset, scale, _, _ = self._normaliser(values)
        u = tuple(round((v - offset) / scale, 12) for v in values)
        mixture = _predict(u, self.epoch_num, self.families, self.noise_floor / scale, self.min_families)
        return [(w, offset + m * scale, sd * scale) for w, m, sd, _ in mixture]

    def _mixture(self, values: Sequence[float]):
        offset, scale, _, _ = self._normaliser(values)
        u = tuple(round((v - offset) / scale, 12) for v in values)
        mixture = _predict(u, self.epoch_num, self.families, self.noise_floor / scale, self.min_families)
        return [(w, offset + m * scale, sd * scale, dof) for w, m, sd, dof in mixture]

    def probability_to_beat(self, values: Sequence[float], best: float) -> Optional[float]:
        """``P(y_epoch_num > best)`` for a signed curve, or None when it cannot be predicted."""
        values = [v for v in values if math.isfinite(v)]
        if len(values) < 2:
            return None
        offset, scale, low, high = self._normaliser(values)
        lo_v, hi_v = offset + low * scale, offset + high * scale
        mixture = self._mixture(values)
        if not mixture:
            return None
        total = 0.0
        for w, mean, sd, dof in mixture:
            sd = max(sd, 1e-12)
            cdf = functools.partial(_t_cdf, dof=dof)
            mass = cdf((hi_v - mean) / sd) - cdf((lo_v - mean) / sd)
            if mass <= 1e-12:  # the whole Gaussian outside the range: a point at the nearest end
                above = 1.0 if min(max(mean, lo_v), hi_v) > best else 0.0
            else:
                above = max(cdf((hi_v - mean) / sd) - cdf((max(best, lo_v) - mean) / sd), 0.0) / mass
                if best < lo_v:
                    above = 1.0
            total += w * min(above, 1.0)
        return float(total)


# ============================================================================ offline replay

def replay(assessor: Assessor, curves: Sequence[Sequence[Any]], order: Optional[Iterable[int]] = None
           ) -> Dict[int, int]:
    """Feed recorded learning curves through ``assessor`` as trials arriving one at a time.

    Trials start in ``order`` (indices into ``curves``; default: as given). Each trial's
    intermediate results are assessed one step at a time (``assess_trial(id, history[:s])``,
    ``id`` the string of its index), as NNI's dispatcher does; at the first ``Bad`` the
    trial is stopped and ends with ``trial_end(id, False)`` (NNI: EARLY_STOPPED); a trial
    that reports all its results ends with ``trial_end(id, True)`` and becomes a reference.
    Returns ``{trial index: step at which it was stopped}`` (steps are 1-based: stopped after
    seeing that many results); trials not in the dict ran to the end.
    """
    stopped: Dict[int, int] = {}
    for index in (range(len(curves)) if order is None else order):
        curve, trial_id = list(curves[index]), str(index)
        for step in range(1, len(curve) + 1):
            result = assessor.assess_trial(trial_id, curve[:step])
            if result is AssessResult.Bad or result is False:
                stopped[index] = step
                break
        assessor.trial_end(trial_id, index not in stopped)
    return stopped
