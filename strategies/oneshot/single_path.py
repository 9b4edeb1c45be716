"""Weight sharing without architecture parameters: train sampled paths, then search.

:class:`RSPS` (``rsps``)
    Li & Talwalkar, "Random search and reproducibility for neural architecture search", UAI
    2019: every weight step trains one uniformly random architecture of the space (path mode:
    a sample of every label, NNI's ``Mutable.random``); afterwards ``num_candidates`` distinct
    random architectures are scored by the trained supernet (the evaluator's metric on a few
    architecture batches, batch norm on batch statistics) and the best is kept.
:class:`SPOS` (``spos``)
    Guo et al., "Single path one-shot neural architecture search with uniform sampling", ECCV
    2020: the same training; the search is evolutionary with the same number of evaluations:
    ``population`` random architectures, then children of the ``parents`` best, half by
    mutation (each label resampled with ``mutate_prob``), half by uniform crossover.
:class:`Bender` (``bender``)
    Bender et al., "Understanding and simplifying one-shot architecture search", ICML 2018: the
    one-shot model is trained with *path dropout*: on every step each candidate of a decision
    with ``k`` candidates is dropped with probability ``r^{1/k}`` (so all of them with ``r``; then
    one, uniformly chosen, is kept), and the rate ``r`` grows linearly from 0 to
    ``dropout_rate`` over the epochs. The kept candidates are summed (``Mix.path``). Decisions
    that are one value (a depth, a layer size) take one uniformly random value. The search
    afterwards is random search as in RSPS, each architecture scored with only its own paths.

Validation during training runs one random architecture per batch (a different one each
batch, from a generator re-seeded every epoch, so it does not disturb the training samples).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from .base import OneShotModule, random_sample
from .supernet import Mix

__all__ = ['Bender', 'RSPS', 'SPOS', 'evolution_search', 'random_search']


def _key(sample: Dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in sample.items()))


def random_search(module: OneShotModule, num_candidates: int, rng: np.random.RandomState) -> Dict[str, Any]:
    """Best of ``num_candidates`` distinct random samples by ``module.score``."""
    scored: Dict[str, tuple] = {}
    for _ in range(num_candidates * 20):
        if len(scored) >= num_candidates:
            break
        s = random_sample(module.supernet, rng)
        k = _key(s)
        if k not in scored:
            scored[k] = (module.score(s), s)
    best = max(scored.values(), key=lambda t: t[0])
    return {'sample': best[1], 'score': best[0], 'evaluated': len(scored),
            'scores': sorted((round(v, 6) for v, _ in scored.values()), reverse=True)}


def evolution_search(module: OneShotModule, num_candidates: int, rng: np.random.RandomState, *, population: int = 16,
                     parents: int = 8, mutate_prob: float = 0.2) -> Dict[str, Any]:
    """SPOS' evolution with ``num_candidates`` evaluations (see the module docstring)."""
    supernet = module.supernet
    labels = list(supernet.space_mutables)
    scored: Dict[str, tuple] = {}

    def evaluate(s):
        k = _key(s)
        if k not in scored:
            scored[k] = (module.score(s), s)

    tries = 0
    while len(scored) < min(population, num_candidates) and tries < num_candidates * 20:
        tries += 1
        evaluate(random_sample(supernet, rng))
    tries = 0
    while len(scored) < num_candidates and tries < num_candidates * 20:
        tries += 1
        top = sorted(scored.values(), key=lambda t: -t[0])[:parents]
        if rng.rand() < 0.5:
            parent = top[rng.randint(len(top))][1]
            fresh = random_sample(supernet, rng)
            child = {lb: (fresh[lb] if rng.rand() < mutate_prob else parent[lb]) for lb in labels}
        else:
            a, b = top[rng.randint(len(top))][1], top[rng.randint(len(top))][1]
            child = {lb: (a[lb] if rng.rand() < 0.5 else b[lb]) for lb in labels}
        try:
            supernet.validate(child)
        except ValueError:
            continue
        evaluate(child)
    best = max(scored.values(), key=lambda t: t[0])
    return {'sample': best[1], 'score': best[0], 'evaluated': len(scored),
            'scores': sorted((round(v, 6) for v, _ in scored.values()), reverse=True)}


class RSPS(OneShotModule):
    """Random sampling of single paths, then random search (see the module docstring)."""
    method = 'rsps'
    paper = 'Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019'
    weighted = False
    differentiable = False
    eval_batch_stats = True

    def __init__(self, inner, supernet, *, num_candidates: int = 100, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if int(num_candidates) < 1:
            raise ValueError(f'num_candidates must be positive, got {num_candidates}')
        self.num_candidates = int(num_candidates)
        self.history['search'] = None

    def weight_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.set_sample(self.random_sample())
        return self.optimize_weights(self.inner_loss(batch, batch_idx))

    def prepare_eval(self, batch_idx: int) -> None:
        rng = np.random.RandomState(self.seed * 7919 + self.current_epoch * 104729 + batch_idx)
        self.set_sample(random_sample(self.supernet, rng))

    def search_rng(self) -> np.random.RandomState:
        return np.random.RandomState(self.seed + 17)

    def derive(self) -> Dict[str, Any]:
        found = random_search(self, self.num_candidates, self.search_rng())
        self.history['search'] = {k: v for k, v in found.items() if k != 'sample'}
        return found['sample']


class SPOS(RSPS):
    method = 'spos'
    paper = 'Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020'

    def __init__(self, inner, supernet, *, population: int = 16, parents: int = 8, mutate_prob: float = 0.2, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if population < 1 or parents < 1 or not 0 <= mutate_prob <= 1:
            raise ValueError('population and parents must be positive and mutate_prob in [0, 1]')
        self.evolution = dict(population=int(population), parents=int(parents), mutate_prob=float(mutate_prob))

    def derive(self) -> Dict[str, Any]:
        found = evolution_search(self, self.num_candidates, self.search_rng(), **self.evolution)
        self.history['search'] = {k: v for k, v in found.items() if k != 'sample'}
        return found['sample']


class Bender(RSPS):
    method = 'bender'
    paper = 'Bender et al., "Understanding and Simplifying One-Shot Architecture Search", ICML 2018'

    def __init__(self, inner, supernet, *, dropout_rate: float = 0.5, **kwargs):
        super().__init__(inner, supernet, **kwargs)
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f'dropout_rate must lie in [0, 1), got {dropout_rate}')
        self.dropout_rate = float(dropout_rate)
        self.history['path_dropout'] = []

    def current_rate(self) -> float:
        total = self.trainer.max_epochs if self._trainer is not None else 1
        n = self.trainer.num_training_batches if self._trainer is not None else 1
        n = n if isinstance(n, int) and n > 0 else 1
        progress = (self.current_epoch + (self.global_step % n) / n) / max(1, total)
        return self.dropout_rate * min(1.0, progress)

    def dropout_mixes(self, rate: float) -> Dict[str, Mix]:
        mixes = {}
        for key, d in self.supernet.decisions.items():
            n = d.size
            if d.kind in ('value', 'repeat') or n == 1:
                mixes[key] = Mix.path([int(self.rng.randint(n))])
                continue
            if d.kind == 'input' and d.n_chosen == 1:
                mixes[key] = Mix.path([int(self.rng.randint(n))])
                continue
            keep_p = 1.0 - rate ** (1.0 / n) if rate > 0 else 1.0
            kept = [i for i in range(n) if self.rng.rand() < keep_p]
            mixes[key] = Mix.path(kept or [int(self.rng.randint(n))])
        return mixes

    def weight_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.set_mixes(self.dropout_mixes(self.current_rate()))
        return self.optimize_weights(self.inner_loss(batch, batch_idx))

    def on_epoch_schedule(self) -> None:
        self.history['path_dropout'].append(self.current_rate())

    def extra_state(self) -> Dict[str, Any]:
        return {}

