"""Combining training-free proxies: rank aggregation and a small learned linear combination.

No single zero-cost proxy dominates (Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021, Section 5, vote of synflow/jacob_cov/snip); combining several is the obvious
next step (e.g. Krishnakumar et al., "NAS-Bench-Suite-Zero", NeurIPS 2022 Datasets and
Benchmarks, which feeds proxies to a predictor). Two combinations here:

* :func:`rank_aggregate` -- the mean of each proxy's rank within a population (no fitting;
  population-relative, so it ranks a set of networks rather than scoring one).
* :class:`ProxyCombination` -- a ridge regression of the accuracy *rank* (the target of a
  rank correlation) on standardised, transformed proxy features (``log`` of the magnitude-like
  proxies, ``-log`` of the NTK condition number), with an indicator per proxy for a
  non-finite score. Fitted on some cells, it scores any single network:
  :class:`CombinedProxy` is the NNI evaluator.

Features are computed from the *raw* values of :data:`nni_nasext.evaluators.proxies.PROXIES`
(the NTK condition number as returned, i.e. smaller-is-better); :func:`features` says how.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

import nni
from nni.nas.evaluator import Evaluator

from nni_nasext.evaluators.proxies import ZeroCostProxy

__all__ = ['features', 'rank_aggregate', 'ProxyCombination', 'CombinedProxy', 'LOG_PROXIES']

#: proxies whose magnitude spans orders of magnitude: the feature is ``log(value)``
LOG_PROXIES = frozenset({'params', 'flops', 'synflow', 'snip', 'grad_norm', 'te_nas_linear_regions'})


def feature(proxy: str, value: Optional[float]) -> float:
    """The feature of one raw proxy value (``nan`` when the value is missing or non-finite).

    ``log`` for :data:`LOG_PROXIES` (a non-positive value is ``nan``), ``-log`` for the NTK
    condition number (larger feature = better network, like every other proxy), identity for
    the log-scale ones (``naswot``, ``jacob_cov``, ``zen``)."""
    if value is None or not math.isfinite(value):
        return float('nan')
    if proxy in LOG_PROXIES:
        return math.log(value) if value > 0 else float('nan')
    if proxy == 'te_nas_ntk':
        return -math.log(value) if value > 0 else float('nan')
    return float(value)


def features(raw: Mapping[str, Sequence[Optional[float]]], proxies: Sequence[str]) -> np.ndarray:
    """``(n, len(proxies))`` array of :func:`feature` values from per-proxy lists of raw values."""
    return np.array([[feature(p, v) for p, v in zip(proxies, row)] for row in zip(*(raw[p] for p in proxies))],
                    dtype=float).reshape(-1, len(proxies))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (0-based); ``nan`` ranks below everything, tied."""
    from scipy.stats import rankdata
    x = np.where(np.isfinite(x), x, -np.inf)
    return rankdata(x) - 1


def rank_aggregate(feats: np.ndarray) -> np.ndarray:
    """Mean rank of each row over the columns (proxies) of ``feats``; larger = better."""
    feats = np.asarray(feats, dtype=float)
    return np.mean([_ranks(feats[:, j]) for j in range(feats.shape[1])], axis=0)


class ProxyCombination:
    """Ridge regression of the accuracy rank on standardised proxy features.

    ``fit(F, accuracy)`` with ``F`` from :func:`features`; ``predict(F)`` returns larger-is-better
    scores. Non-finite features are replaced by the training minimum of that column and flagged
    by an extra indicator column (a network that breaks a proxy is usually a bad network).
    ``to_dict``/``from_dict`` give a JSON-able form, used by :class:`CombinedProxy`.
    """

    def __init__(self, proxies: Sequence[str], alpha: float = 1.0):
        if not proxies:
            raise ValueError('ProxyCombination needs at least one proxy')
        if alpha < 0:
            raise ValueError(f'alpha must be >= 0, got {alpha}')
        self.proxies, self.alpha = list(proxies), float(alpha)
        self.fill = self.mean = self.std = self.weights = None
        self.intercept = 0.0

    def _design(self, F: np.ndarray) -> np.ndarray:
        F = np.asarray(F, dtype=float)
        if F.ndim != 2 or F.shape[1] != len(self.proxies):
            raise ValueError(f'expected features of shape (n, {len(self.proxies)}), got {F.shape}')
        broken = ~np.isfinite(F)
        filled = np.where(broken, self.fill[None, :], F)
        z = (filled - self.mean[None, :]) / self.std[None, :]
        return np.concatenate([z, broken.astype(float)], axis=1)

    def fit(self, F: np.ndarray, accuracy: Sequence[float]) -> 'ProxyCombination':
        F = np.asarray(F, dtype=float)
        y = np.asarray(accuracy, dtype=float)
        if len(F) != len(y) or len(y) < 3:
            raise ValueError('need the same number (>= 3) of feature rows and accuracies')
        finite = np.isfinite(F)
        self.fill = np.array([F[finite[:, j], j].min() if finite[:, j].any() else 0.0 for j in range(F.shape[1])])
        filled = np.where(finite, F, self.fill[None, :])
        self.mean = filled.mean(axis=0)
        self.std = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        X = self._design(F)
        target = _ranks(y) / (len(y) - 1)  # accuracy rank in [0, 1]
        target = target - target.mean()
        Xc = X - X.mean(axis=0)
        self.weights = np.linalg.solve(Xc.T @ Xc + self.alpha * np.eye(X.shape[1]), Xc.T @ target)
        self.intercept = float(-(X.mean(axis=0) @ self.weights))
        return self

    def predict(self, F: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError('ProxyCombination is not fitted')
        return self._design(F) @ self.weights + self.intercept

    def score(self, raw: Mapping[str, Optional[float]]) -> float:
        """The combined score of one network from its raw proxy values."""
        return float(self.predict(np.array([[feature(p, raw.get(p)) for p in self.proxies]]))[0])

    def to_dict(self) -> dict:
        return {'proxies': self.proxies, 'alpha': self.alpha, 'fill': self.fill.tolist(), 'mean': self.mean.tolist(),
                'std': self.std.tolist(), 'weights': self.weights.tolist(), 'intercept': self.intercept}

    @classmethod
    def from_dict(cls, d: Mapping) -> 'ProxyCombination':
        obj = cls(d['proxies'], d.get('alpha', 1.0))
        obj.fill, obj.mean, obj.std, obj.weights = (np.asarray(d[k], dtype=float) for k in ('fill', 'mean', 'std',
                                                                                             'weights'))
        if len(obj.weights) != 2 * len(obj.proxies):
            raise ValueError('weights do not match the proxies (expected two per proxy)')
        obj.intercept = float(d['intercept'])
        return obj


class CombinedProxy(Evaluator):
    """NNI evaluator: a fitted :class:`ProxyCombination` of several zero-cost proxies.

    Parameters
    ----------
    combination
        A :meth:`ProxyCombination.to_dict` dict, or the path of a JSON file holding one
        (``'nb201'``: the combination fitted on NAS-Bench-201 cifar10-valid by
        ``experiments/bench_proxy_combination.py``, shipped with the package).
    dataset, batch_size, seed, input_size, device
        As in :class:`~nni_nasext.evaluators.proxies.ZeroCostProxy`; ``te_nas_ntk`` uses
        the first ``ntk_batch`` examples of the same batch.
    """

    def __init__(self, combination: Union[str, dict] = 'nb201', dataset: Optional[str] = 'digits',
                 batch_size: int = 64, seed: int = 0, input_size: Optional[Sequence[int]] = None,
                 ntk_batch: int = 16, device: Optional[str] = None):
        self.combination_arg = combination
        if isinstance(combination, str):
            path = Path(__file__).with_name('combined_proxy_nb201.json') if combination == 'nb201' \
                else Path(combination)
            if not path.exists():
                raise FileNotFoundError(f'no proxy combination at {path}')
            combination = json.loads(path.read_text())
        self.combination = ProxyCombination.from_dict(combination)
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.input_size = tuple(input_size) if input_size is not None else None
        self.ntk_batch, self.device = int(ntk_batch), device
        self.evaluators = {
            p: ZeroCostProxy(p, dataset=dataset, batch_size=self.ntk_batch if p == 'te_nas_ntk' else batch_size,
                             seed=seed, input_size=input_size, device=device)
            for p in self.combination.proxies}

    def _dump(self) -> dict:
        return {'combination': self.combination_arg, 'dataset': self.dataset, 'batch_size': self.batch_size,
                'seed': self.seed, 'input_size': list(self.input_size) if self.input_size else None,
                'ntk_batch': self.ntk_batch, 'device': self.device}

    @classmethod
    def _load(cls, **arguments) -> 'CombinedProxy':
        return cls(**arguments)

    def raw_scores(self, model) -> Dict[str, float]:
        return {p: ev.score(model) for p, ev in self.evaluators.items()}

    def score(self, model) -> float:
        return self.combination.score(self.raw_scores(model))

    def evaluate(self, model) -> float:
        value = self.score(model)
        nni.report_final_result(value)
        return value
