"""RapidNAS (MetaD2A): generate cells from a dataset encoding, rank them with a dataset-aware predictor.

H. Lee, E. Hyung, S. J. Hwang, "Rapid Neural Architecture Search by Learning to Generate
Graphs from Datasets" (MetaD2A), ICLR 2021.

The paper's parts, as built here for the NAS-Bench-201 cell (6 edges x 5 ops):

* **Set encoder.** A permutation-invariant encoder of a dataset given as a set of samples
  (the paper: Set Transformer over class-wise image sets). Here :class:`SetEncoder`, a
  DeepSets encoder ``rho(mean_i phi(x_i))``.
* **Architecture generator.** A conditional VAE: the set encoding parameterises
  ``q(z | D)``, a decoder generates the cell given ``z``; trained by maximising the ELBO on the
  good architectures of each source dataset only (the paper's generator is a graph decoder;
  an NB201 cell is six op decisions, so :class:`CellGenerator` is an autoregressive GRU over
  the six edges, ``z`` its initial state).
* **Dataset-aware predictor.** Its own set encoder of the dataset plus the cell's encoding
  -> score, trained by squared error on all sampled cells of the sources
  (:class:`DatasetAwarePredictor`).
* **Search** (meta-test): encode the target set, sample ``num_generated`` cells from the
  generator, rank the distinct ones by the predictor; ``k = 0`` returns the top-ranked cell,
  ``k > 0`` evaluates the top ``k`` on the target (200-epoch validation accuracy) and returns
  the best evaluated.
* **As a strategy**: :class:`RapidNAS` asks the ranked cells best first (registered as
  ``rapidnas``, tuner ``NasextRapidNAS``); :func:`rapidnas_transfer` runs it on the NB201 tables.

What stands in for what (no CIFAR/ImageNet images on these machines):

* **The "dataset" the set encoders see** is not images. It is the set of
  ``(op one-hot of the cell, 12-epoch validation accuracy / 100)`` pairs of a fixed random
  *probe set* of ``num_probe`` cells (:func:`probe_set`, drawn with the seed, the same cells
  for every dataset), read from that dataset's **12-epoch** NB201 table: the cheap "short
  training" signal, which characterises a dataset as its images would. For the target these
  are ``num_probe`` lookups of the target's 12-epoch table: they are NOT the 200-epoch target
  table and do not count toward ``k`` (the LODO harness counts and reports them separately).
  Training episodes draw random subsets of the probe set, so the encoders see many sets per
  source dataset (the paper samples many image batches per dataset).
* **Metadata** = ``num_cells`` sampled cells per *source* with their 200-epoch validation
  accuracy (:func:`~nni_nasext.strategies.transfer.xfernas.source_metadata`); the generator is trained on
  the top ``top_fraction`` of them. The predictor regresses ``-log(1 - q)`` of each cell's
  accuracy quantile within its source (:func:`~nni_nasext.strategies.transfer.tapas.top_quantile`,
  ours, as TAPAS-tq) instead of the raw accuracy.
"""
from __future__ import annotations

import functools
import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nni_nasext.space_spec import SpaceSpec

from nni_nasext.strategies.transfer.base import TransferSearcher, top_quantile
from nni_nasext.checks import require
from .xfernas import NUM_EDGES, NUM_OPS, ops_to_cells, source_metadata

__all__ = ['SetEncoder', 'CellGenerator', 'DatasetAwarePredictor', 'probe_set', 'dataset_set', 'pretrain',
           'propose', 'rapidnas_transfer', 'one_hot', 'RapidNAS']

ELEMENT_WIDTH = NUM_OPS * NUM_EDGES + 1


def one_hot(ops) -> torch.Tensor:
    """``(n, 6)`` op indices -> ``(n, 30)`` flat one-hot."""
    ops = torch.as_tensor(np.asarray(ops), dtype=torch.long)
    return nn.functional.one_hot(ops, NUM_OPS).float().reshape(len(ops), -1)


def probe_set(num_probe: int = 64, seed: int = 0) -> np.ndarray:
    """The fixed random probe cells (``(num_probe, 6)`` op indices) whose short-training accuracies
    stand in for a dataset's samples; the same cells for every dataset of a run."""
    if not 1 <= num_probe <= NUM_OPS ** NUM_EDGES:
        raise ValueError(f'num_probe must be in 1..{NUM_OPS ** NUM_EDGES}, got {num_probe}')
    codes = random.Random(f'rapidnas-probe/{seed}').sample(range(NUM_OPS ** NUM_EDGES), num_probe)
    return np.array([[(c // NUM_OPS ** p) % NUM_OPS for p in range(NUM_EDGES - 1, -1, -1)] for c in codes])


def dataset_set(dataset: str, probe: np.ndarray, epochs: int = 12) -> torch.Tensor:
    """The set encoders' view of ``dataset``: ``(num_probe, 31)`` rows ``[one-hot(cell), acc_epochs / 100]``
    from the ``epochs``-epoch table (``len(probe)`` lookups)."""
    from nni_nasext.benchmarks import NasBench201Table
    table = NasBench201Table()
    acc = torch.tensor([table.query(c, dataset, epochs).accuracy / 100. for c in ops_to_cells(probe)])
    return torch.cat([one_hot(probe), acc[:, None]], dim=1)


class SetEncoder(nn.Module):
    """DeepSets: ``rho(mean_i phi(x_i))``, invariant to the order of the set's rows. Input
    ``(n, W)`` (one set) or ``(b, n, W)`` (a batch of sets) -> ``(out,)`` or ``(b, out)``."""

    def __init__(self, width: int = ELEMENT_WIDTH, out: int = 16, hidden: int = 32):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rho(self.phi(x).mean(dim=-2))


class CellGenerator(nn.Module):
    """Conditional VAE over cells: ``q(z | D)`` from a :class:`SetEncoder`, an autoregressive GRU
    decoder ``p(cell | z)`` over the six edges."""

    def __init__(self, latent: int = 8, hidden: int = 32):
        super().__init__()
        self.latent = latent
        self.set_encoder = SetEncoder(out=2 * latent)
        self.init = nn.Linear(latent, hidden)
        self.embed = nn.Embedding(NUM_OPS + 1, 8)       # index NUM_OPS: start token
        self.gru = nn.GRUCell(8, hidden)
        self.out = nn.Linear(hidden, NUM_OPS)

    def posterior(self, dataset: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.set_encoder(dataset).split(self.latent, dim=-1)
        return mu, logvar.clamp(-6, 2)

    def log_likelihood(self, z: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """``log p(ops | z)`` per row (teacher forcing)."""
        h, prev, total = torch.tanh(self.init(z)), torch.full((len(ops),), NUM_OPS, dtype=torch.long), 0.
        for t in range(NUM_EDGES):
            h = self.gru(self.embed(prev), h)
            total = total - nn.functional.cross_entropy(self.out(h), ops[:, t], reduction='none')
            prev = ops[:, t]
        return total

    @torch.no_grad()
    def sample(self, dataset: torch.Tensor, n: int, generator: torch.Generator) -> np.ndarray:
        """``n`` cells ``(n, 6)``: ``z ~ q(z | D)``, then the ops drawn edge by edge."""
        mu, logvar = self.posterior(dataset)
        z = mu + torch.randn(n, self.latent, generator=generator) * (0.5 * logvar).exp()
        h, prev, ops = torch.tanh(self.init(z)), torch.full((n,), NUM_OPS, dtype=torch.long), []
        for _ in range(NUM_EDGES):
            h = self.gru(self.embed(prev), h)
            prev = torch.multinomial(self.out(h).softmax(1), 1, generator=generator)[:, 0]
            ops.append(prev)
        return torch.stack(ops, 1).numpy()


class DatasetAwarePredictor(nn.Module):
    """``score(cell, D) = MLP([one-hot(cell), SetEncoder(D)])``."""

    def __init__(self, set_out: int = 16, hidden: int = 64):
        super().__init__()
        self.set_encoder = SetEncoder(out=set_out)
        self.head = nn.Sequential(nn.Linear(NUM_OPS * NUM_EDGES + set_out, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, cells: torch.Tensor, dataset: torch.Tensor) -> torch.Tensor:
        e = self.set_encoder(dataset)
        e = e.expand(len(cells), -1) if e.ndim == 1 else e
        return self.head(torch.cat([cells, e], dim=1))[:, 0]


def _subset(dataset: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    return dataset[torch.randperm(len(dataset), generator=gen)[:size]]


def train_predictor(predictor: DatasetAwarePredictor, tasks: Sequence[Tuple[torch.Tensor, np.ndarray, np.ndarray]],
                    *, steps: int = 300, batch_size: int = 128, subset: int = 32, lr: float = 3e-3,
                    seed: int = 0) -> List[float]:
    """Squared error on ``[(dataset set, ops (n, 6), y (n,))]``; each step one random subset of each
    task's set and a batch of its cells. Returns the loss of every step."""
    if not tasks or any(len(ops) != len(y) or len(y) == 0 for _, ops, y in tasks):
        raise ValueError('train_predictor needs tasks (set, ops, y) with len(ops) == len(y) >= 1')
    gen, history = torch.Generator().manual_seed(seed), []
    data = [(s, one_hot(ops), torch.as_tensor(np.asarray(y, dtype=np.float32))) for s, ops, y in tasks]
    opt = torch.optim.Adam(predictor.parameters(), lr=lr)
    predictor.train()
    for _ in range(steps):
        loss = 0.
        for s, x, y in data:
            idx = torch.randint(len(y), (min(batch_size, len(y)),), generator=gen)
            loss = loss + ((predictor(x[idx], _subset(s, subset, gen)) - y[idx]) ** 2).mean() / len(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.item()))
    predictor.eval()
    return history


def train_generator(generator: CellGenerator, tasks: Sequence[Tuple[torch.Tensor, np.ndarray]], *,
                    steps: int = 300, subset: int = 32, beta: float = 0.1, lr: float = 3e-3,
                    seed: int = 0) -> List[float]:
    """Negative ELBO on ``[(dataset set, good ops (n, 6))]``: ``-log p(cell | z) + beta KL(q(z|D) || N(0, I))``."""
    gen, history = torch.Generator().manual_seed(seed), []
    opt = torch.optim.Adam(generator.parameters(), lr=lr)
    generator.train()
    for _ in range(steps):
        loss = 0.
        for s, ops in tasks:
            ops = torch.as_tensor(np.asarray(ops), dtype=torch.long)
            mu, logvar = generator.posterior(_subset(s, subset, gen))
            z = mu + torch.randn(len(ops), generator.latent, generator=gen) * (0.5 * logvar).exp()
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum()
            loss = loss + (-generator.log_likelihood(z, ops).mean() + beta * kl) / len(tasks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.item()))
    generator.eval()
    return history


@functools.lru_cache(maxsize=4)
def pretrain(sources: Tuple[str, ...], seed: int = 0, num_cells: int = 600, num_probe: int = 64,
             top_fraction: float = 0.1, steps: int = 200) -> dict:
    """Meta-training on the sources (cached per arguments): ``{'generator', 'predictor', 'probe'}``."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f'top_fraction must be in (0, 1], got {top_fraction}')
    probe = probe_set(num_probe, seed)
    meta = source_metadata(sources, num_cells, seed)
    sets = [dataset_set(m[0], probe) for m in meta]
    n_top = max(1, int(round(top_fraction * num_cells)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator, predictor = CellGenerator(), DatasetAwarePredictor()
    g_loss = train_generator(generator, [(s, m[1][np.argsort(-m[2], kind='stable')[:n_top]])
                                         for s, m in zip(sets, meta)], steps=steps, seed=seed)
    p_loss = train_predictor(predictor, [(s, m[1], top_quantile(m[2])) for s, m in zip(sets, meta)],
                             steps=steps, seed=seed)
    return {'generator': generator, 'predictor': predictor, 'probe': probe, 'generator_loss': g_loss,
            'predictor_loss': p_loss}


@functools.lru_cache(maxsize=8)
def propose(target: str, sources: Tuple[str, ...], seed: int = 0, num_generated: int = 300,
            min_distinct: int = 100, **pretrain_args) -> dict:
    """Meta-test without any 200-epoch target lookup: the target's probe set (``num_probe``
    12-epoch lookups) -> generated cells ranked by the predictor, ``{'ranked': [(ops, score)]}``."""
    pre = pretrain(tuple(sources), int(seed), **pretrain_args)
    target_set = dataset_set(target, pre['probe'])
    gen = torch.Generator().manual_seed(seed)
    cells = np.unique(pre['generator'].sample(target_set, num_generated, gen), axis=0)
    for _ in range(10):       # a peaked generator: draw more until min_distinct distinct cells (or give up)
        if len(cells) >= min_distinct:
            break
        cells = np.unique(np.concatenate([cells, pre['generator'].sample(target_set, num_generated, gen)]), axis=0)
    with torch.no_grad():
        score = pre['predictor'](one_hot(cells), target_set).numpy()
    order = np.lexsort((np.arange(len(cells)), -score))
    return {'ranked': [(tuple(int(o) for o in cells[i]), float(score[i])) for i in order],
            'target_12ep_lookups': len(pre['probe'])}


class RapidNAS(TransferSearcher):
    """RapidNAS (MetaD2A) as an ask/tell searcher on the NB201 cell (see the module docstring).

    :meth:`configure` meta-trains on the sources and ranks the cells generated for the target
    (:func:`propose`; it reads the target's 12-epoch table for the probe set, ``num_probe``
    lookups, and nothing of its 200-epoch table), so a missing table fails before the first
    trial. Every ask returns the best-ranked cell not yet asked, and a random unasked cell once
    the ranking is used up. As in the paper's meta-test, the told values do not change the
    ranking (the search is one-shot: the target is never trained on); they are recorded.

    Parameters
    ----------
    target
        NB201 dataset searched (``cifar10-valid``, ``cifar100``, ``ImageNet16-120``).
    sources
        NB201 datasets whose tables are the meta-training data (default: the other two).
    seed
        Seeds the probe set, the metadata draw, the meta-training, the generation and the random
        fallback (``None``: a random seed, kept in :meth:`state_dict`).
    num_generated, min_distinct
        :func:`propose`: cells drawn from the generator, and the distinct cells to reach by
        drawing again.
    num_cells, num_probe, top_fraction, steps
        :func:`pretrain`: metadata cells per source, probe-set size, fraction of the best source
        cells the generator learns from, training steps of the generator and the predictor.
    """

    def __init__(self, *, target: Optional[str] = None, sources: Optional[Sequence[str]] = None,
                 seed: Optional[int] = None, num_generated: int = 300, min_distinct: int = 100,
                 num_cells: int = 600, num_probe: int = 64, top_fraction: float = 0.1, steps: int = 200):
        super().__init__(target=target, sources=sources, seed=seed)
        n = NUM_OPS ** NUM_EDGES
        checks = [(num_generated >= 1, 'num_generated >= 1'), (min_distinct >= 1, 'min_distinct >= 1'),
                  (1 <= num_cells <= n, f'num_cells in 1..{n}'), (1 <= num_probe <= n, f'num_probe in 1..{n}'),
                  (0 < top_fraction <= 1, 'top_fraction in (0, 1]'), (steps >= 1, 'steps >= 1')]
        require('RapidNAS', checks)
        self.propose_args = dict(num_generated=int(num_generated), min_distinct=int(min_distinct),
                                 num_cells=int(num_cells), num_probe=int(num_probe),
                                 top_fraction=float(top_fraction), steps=int(steps))
        self._model_seed = int(seed) if seed is not None else self.rng.getrandbits(31)
        self.ranked: Optional[List[Tuple[Tuple[int, ...], float]]] = None

    def configure(self, space) -> 'RapidNAS':
        old = self.space
        super().configure(space)
        self.require_nb201('reads NAS-Bench-201 tables and generates NB201 cells')
        if old is not None and old != self.space:
            self._asked = set()
        self._ranking()   # missing tables fail here, before the first trial
        return self

    def _ranking(self) -> List[Tuple[Tuple[int, ...], float]]:
        if self.ranked is None:
            self.ranked = propose(self.target, tuple(self.sources), self._model_seed, **self.propose_args)['ranked']
        return self.ranked

    def _ask(self):
        from nni_nasext.search_spaces.nasbench201 import ops_to_sample
        sample = None
        for ops, _ in self._ranking():
            s = ops_to_sample(list(ops))
            if SpaceSpec.key(s) not in self._asked:
                sample = s
                break
        if sample is None:                       # the ranking is used up: a random unasked cell
            if len(self._asked) >= NUM_OPS ** NUM_EDGES:
                raise RuntimeError('RapidNAS asked every NB201 cell')
            sample = self.space.random(self.rng)
            while SpaceSpec.key(sample) in self._asked:
                sample = self.space.random(self.rng)
        return self._mark_asked(sample)

    def prediction(self) -> dict:
        """``k = 0``: the top generated-and-ranked cell."""
        ranked = self._ranking()
        return {'cell': ops_to_cells([ranked[0][0]])[0], 'predicted': ranked[0][1]}

    def rounds(self, k: int) -> int:
        return min(k, len(self._ranking()))   # the generated cells, no more

    def state_dict(self):
        return {**super().state_dict(), 'model_seed': self._model_seed}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        seed = state.get('model_seed', self._model_seed)
        if seed != self._model_seed:             # the ranking follows the saved seed
            self._model_seed, self.ranked = seed, None

    def __repr__(self):
        return f'RapidNAS(target={self.target!r}, sources={self.sources}, {self.propose_args}, seed={self.seed})'


def rapidnas_transfer(target: str, sources: Optional[Sequence[str]] = None, k: int = 0, seed: int = 0,
                      **propose_args) -> dict:
    """The k-evaluation protocol: the top ``k`` generated-and-ranked cells (the first ``k`` asks of
    :class:`RapidNAS`) evaluated on the target (200-epoch validation accuracy, exactly
    ``min(k, #generated)`` lookups); ``k = 0``: the top one."""
    return RapidNAS.on_table(target, sources, k, seed, **propose_args)
