"""XferNAS: an NAO-style encoder-decoder whose surrogate is split into universal + task residual.

M. Wistuba, "XferNAS: Transfer Neural Architecture Search", ECML-PKDD 2020; the search space
and the encoder-decoder follow NAO (R. Luo et al., "Neural Architecture Optimization", NeurIPS 2018).

The paper's parts, as built here for the NAS-Bench-201 cell (6 edges x 5 ops):

* **Encoder-decoder.** An LSTM reads the cell as a sequence (one step per edge, the op's
  embedding); a linear map of its last hidden state is the latent code ``z`` (tanh-bounded).
  An LSTM decoder, given ``z`` at every step and the previous op, reconstructs the ops
  (teacher forcing in training, greedy decoding in the search). Every decoded sequence of six
  ops is a valid NB201 cell, so decoding cannot leave the space.
* **Transfer surrogate** (the paper's Eq. ``g^(i) = g^(u) + r^(i)``): ``f_t(z) = u(z) + r_t(z)``,
  ``u`` a universal MLP shared by all tasks, ``r_t`` a small per-task residual MLP.
  Pre-training on the source tasks minimises ``alpha * L_pred + (1 - alpha) * L_rec`` (the
  paper's/NAO's loss) with ``u``, the encoder-decoder and one residual per source learned
  jointly. On the target, a fresh residual (last layer zero, so ``f_t = u`` at the start) is
  the only thing learned: ``u`` and the encoder-decoder are frozen.
* **Search** (the tutorial's loop): start from the best known cells (the top cells of each
  source's metadata) and the cells evaluated so far, take gradient-ascent steps on ``f_t`` in
  latent space, decode, evaluate the decoded cell with the highest ``f_t`` (of its re-encoding)
  not yet evaluated on the target (one of the ``k`` target evaluations), refit the residual,
  repeat. ``k = 0`` returns the best decoded cell under the universal surrogate alone.
* **As a strategy**: :class:`XferNAS` is this loop as an ask/tell searcher (registered as
  ``xfernas``, tuner ``NasextXferNAS``); :func:`xfernas_transfer` runs it on the NB201 tables.

What stands in for what, and where we deviate:

* Metadata = :func:`source_metadata` (the draw of :func:`~nni_nasext.strategies.transfer.tapas.nb201_metadata`):
  ``num_cells`` sampled cells per *source* dataset with their 200-epoch validation accuracy.
  Nothing of the target is read except the ``k`` evaluations (200-epoch validation accuracy
  lookups); no 12-epoch table is needed.
* The surrogate regresses ``-log(1 - q)`` of each cell's accuracy quantile ``q`` within its
  source (:func:`~nni_nasext.strategies.transfer.tapas.top_quantile`, as TAPAS-tq) instead of the raw
  accuracy: MSE on raw NB201 accuracies is spent on the broken cells. Because the target's
  quantiles are unknown with few evaluations, the target residual is fitted with a pairwise
  logistic ranking loss on the evaluated cells (scale-free) plus weight decay, not with MSE.
* NAO's attention in the decoder and its symmetric-graph augmentation are left out.
"""
from __future__ import annotations

import functools
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nni_nasext.space_spec import SpaceSpec

from nni_nasext.strategies.transfer.base import TransferSearcher, top_quantile
from nni_nasext.checks import require

__all__ = ['XferNASModel', 'pretrain', 'fit_autoencoder', 'fit_residual', 'latent_search', 'xfernas_transfer',
           'cells_to_ops', 'ops_to_cells', 'source_metadata', 'XferNAS']

NUM_OPS, NUM_EDGES = 5, 6


def cells_to_ops(cells: Sequence) -> np.ndarray:
    """NB201 cells (sample dicts or cell strings) -> ``(n, 6)`` int array of op indices."""
    from nni_nasext.benchmarks import to_sample
    from nni_nasext.search_spaces.nasbench201 import sample_to_ops
    return np.array([sample_to_ops(c if isinstance(c, dict) else to_sample(c)) for c in cells], dtype=np.int64
                    ).reshape(-1, NUM_EDGES)


def ops_to_cells(ops: np.ndarray) -> List[str]:
    from nni_nasext.search_spaces.nasbench201 import ops_to_sample, sample_to_cellstr
    return [sample_to_cellstr(ops_to_sample([int(o) for o in row])) for row in np.asarray(ops)]


def source_metadata(sources: Sequence[str], num_cells: int, seed: int = 0) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """``[(source, ops (n, 6), accuracy / 100)]``: ``num_cells`` distinct cells drawn per source
    (seeded, the same draw as :func:`~nni_nasext.strategies.transfer.tapas.nb201_metadata`) with their
    200-epoch validation accuracy. Reads only the sources' tables."""
    from nni_nasext.benchmarks import NasBench201Table
    if not 1 <= num_cells <= NUM_OPS ** NUM_EDGES:
        raise ValueError(f'num_cells must be in 1..{NUM_OPS ** NUM_EDGES}, got {num_cells}')
    table, out = NasBench201Table(), []
    for i, source in enumerate(sources):
        codes = random.Random(f'{seed}/{i}/{source}').sample(range(NUM_OPS ** NUM_EDGES), num_cells)
        ops = np.array([[(c // NUM_OPS ** p) % NUM_OPS for p in range(NUM_EDGES - 1, -1, -1)] for c in codes])
        out.append((source, ops, np.array([table.query(c, source, 200).accuracy for c in ops_to_cells(ops)]) / 100.))
    return out


def _mlp(width: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, 1))


class XferNASModel(nn.Module):
    """Encoder LSTM -> latent ``z`` -> decoder LSTM, with ``u(z)`` and residuals ``r_t(z)``."""

    def __init__(self, num_tasks: int, latent: int = 16, hidden: int = 32, embed: int = 16):
        super().__init__()
        if num_tasks < 1 or latent < 1 or hidden < 1 or embed < 1:
            raise ValueError('XferNASModel needs num_tasks, latent, hidden, embed >= 1')
        self.embed = nn.Embedding(NUM_OPS + 1, embed)          # index NUM_OPS: the decoder's start token
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTM(latent + embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, NUM_OPS)
        self.universal = _mlp(latent, 32)
        self.residuals = nn.ModuleList(_mlp(latent, 8) for _ in range(num_tasks))

    def encode(self, ops: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder(self.embed(ops))
        return torch.tanh(self.to_latent(h[:, -1]))

    def decode_logits(self, z: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(n, 6, 5)`` of ``ops`` given ``z``."""
        prev = torch.cat([torch.full_like(ops[:, :1], NUM_OPS), ops[:, :-1]], dim=1)
        steps = torch.cat([z[:, None].expand(-1, NUM_EDGES, -1), self.embed(prev)], dim=2)
        h, _ = self.decoder(steps)
        return self.out(h)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Greedy autoregressive decoding: ``(n, 6)`` op indices, always a valid NB201 cell."""
        prev = torch.full((len(z),), NUM_OPS, dtype=torch.long)
        state, ops = None, []
        for _ in range(NUM_EDGES):
            h, state = self.decoder(torch.cat([z, self.embed(prev)], dim=1)[:, None], state)
            prev = self.out(h[:, 0]).argmax(1)
            ops.append(prev)
        return torch.stack(ops, 1)

    def surrogate(self, z: torch.Tensor, task: int) -> torch.Tensor:
        """``f_t(z) = u(z) + r_t(z)``."""
        return self.universal(z)[:, 0] + self.residuals[task](z)[:, 0]

    def add_task(self) -> int:
        """A fresh residual whose last layer is zero (``f_t = u`` until it is fitted); its index."""
        res = _mlp(self.residuals[0][0].in_features, 8)
        nn.init.zeros_(res[2].weight), nn.init.zeros_(res[2].bias)
        self.residuals.append(res)
        return len(self.residuals) - 1


def fit_autoencoder(model: XferNASModel, ops, y, task, *, epochs: int = 30, lr: float = 5e-3,
                    batch_size: int = 128, alpha: float = 0.5, seed: int = 0) -> List[float]:
    """Joint training ``alpha * MSE(f_task(z), y) + (1 - alpha) * CE(decoder(z), ops)``; per-epoch losses."""
    ops = torch.as_tensor(np.asarray(ops), dtype=torch.long)
    y = torch.as_tensor(np.asarray(y, dtype=np.float32))
    task = torch.as_tensor(np.asarray(task), dtype=torch.long)
    if ops.ndim != 2 or ops.shape[1] != NUM_EDGES or not len(ops) == len(y) == len(task) or len(y) == 0:
        raise ValueError(f'fit_autoencoder needs ops (n, 6), y (n,), task (n,); got {tuple(ops.shape)}, '
                         f'{tuple(y.shape)}, {tuple(task.shape)}')
    if not torch.isfinite(y).all():
        raise ValueError('fit_autoencoder got non-finite targets')
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(epochs):
        perm, total = torch.randperm(len(y), generator=gen), 0.
        for start in range(0, len(y), batch_size):
            idx = perm[start:start + batch_size]
            z = model.encode(ops[idx])
            u = model.universal(z)[:, 0]
            r = torch.stack([res(z)[:, 0] for res in model.residuals], 1).gather(1, task[idx, None])[:, 0]
            pred = ((u + r - y[idx]) ** 2).mean()
            logits = model.decode_logits(z, ops[idx])
            rec = nn.functional.cross_entropy(logits.reshape(-1, NUM_OPS), ops[idx].reshape(-1))
            loss = alpha * pred + (1 - alpha) * rec
            if not torch.isfinite(loss):
                raise FloatingPointError('XferNAS training loss is not finite')
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(y))
    model.eval()
    return history


@functools.lru_cache(maxsize=4)
def pretrain(sources: Tuple[str, ...], seed: int = 0, num_cells: int = 1000, epochs: int = 30,
             latent: int = 16, hidden: int = 32) -> dict:
    """The source phase: metadata of ``sources`` -> trained :class:`XferNASModel` (cached; the
    caller must not modify it). Returns ``{'model', 'state', 'start_ops'}``: ``start_ops`` are the
    best known cells, the top 10 of each source."""
    meta = source_metadata(sources, num_cells, seed)
    ops = np.concatenate([m[1] for m in meta])
    y = np.concatenate([top_quantile(m[2]) for m in meta])
    task = np.concatenate([np.full(len(m[1]), i) for i, m in enumerate(meta)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = XferNASModel(len(meta), latent, hidden)
    loss = fit_autoencoder(model, ops, y, task, epochs=epochs, seed=seed)
    start = []
    for i, m in enumerate(meta):
        start.extend(m[1][np.argsort(-m[2], kind='stable')[:10]])
    return {'model': model, 'state': {k: v.clone() for k, v in model.state_dict().items()},
            'start_ops': np.unique(np.array(start), axis=0), 'loss': loss}


def fit_residual(model: XferNASModel, task: int, z: torch.Tensor, acc: Sequence[float], *, steps: int = 20,
                 lr: float = 2e-2, weight_decay: float = 1e-2) -> Optional[float]:
    """Fit only ``r_task`` (``u`` and the encoder-decoder frozen) with a pairwise logistic loss on
    the evaluated cells' latents ``z`` and target accuracies; ``None`` when there is no pair."""
    acc = torch.as_tensor(np.asarray(acc, dtype=np.float32))
    better = acc[:, None] > acc[None, :]
    if not better.any():
        return None
    with torch.no_grad():
        u = model.universal(z)[:, 0]
    res = model.residuals[task]
    opt = torch.optim.Adam(res.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        f = u + res(z)[:, 0]
        loss = nn.functional.softplus(-(f[:, None] - f[None, :])[better]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.item())


def latent_search(model: XferNASModel, task: int, start_ops: np.ndarray, *, top: int = 8, steps: int = 6,
                  step_size: float = 0.15) -> Tuple[np.ndarray, np.ndarray]:
    """Gradient ascent on ``f_task`` from the latents of the ``top`` best (by ``f_task``) of
    ``start_ops``; every decode along the way (step 0 included). Returns the distinct decoded
    cells and ``f_task`` of their re-encoding, best first."""
    with torch.no_grad():
        z0 = model.encode(torch.as_tensor(start_ops, dtype=torch.long))
        f0 = model.surrogate(z0, task)
    z = z0[torch.argsort(f0, descending=True)[:top]].clone()
    decoded = [model.decode(z)]
    for _ in range(steps):
        z.requires_grad_(True)
        grad, = torch.autograd.grad(model.surrogate(z, task).sum(), z)
        z = (z + step_size * grad / (grad.norm(dim=1, keepdim=True) + 1e-8)).detach().clamp(-1, 1)
        decoded.append(model.decode(z))
    cand = np.unique(torch.cat(decoded).numpy(), axis=0)
    with torch.no_grad():
        score = model.surrogate(model.encode(torch.as_tensor(cand)), task).numpy()
    order = np.lexsort((np.arange(len(cand)), -score))
    return cand[order], score[order]


class XferNAS(TransferSearcher):
    """XferNAS as an ask/tell searcher on the NB201 cell (see the module docstring).

    The source phase (:func:`pretrain` on the sources' metadata) runs in :meth:`configure`, so a
    missing table fails before the first trial. Every ask then returns the best candidate of the
    latent search not yet asked: with no told value, the search under the universal surrogate
    ``u`` from the best known cells; after told values, the target residual ``r_t`` is fitted on
    them (one :func:`fit_residual` per successful value, in the order told, each on all the values
    so far, so the residual is the same whether the values come one by one or in a batch) and the
    latent search restarts from the best known cells plus the five best told cells. Failed trials
    (value ``None``) are skipped. When every candidate has been asked, a random unasked cell.

    Parameters
    ----------
    target
        NB201 dataset searched (``cifar10-valid``, ``cifar100``, ``ImageNet16-120``); nothing of it
        is read but the told values.
    sources
        NB201 datasets whose 200-epoch tables are the metadata (default: the other two).
    seed
        Seeds the metadata draw, the pre-training, the target residual's initialisation and the
        random fallback (``None``: a random seed, kept in :meth:`state_dict`).
    num_cells, epochs, latent, hidden
        :func:`pretrain`'s settings: metadata cells per source, epochs of the joint training,
        latent size, LSTM width.
    """

    def __init__(self, *, target: Optional[str] = None, sources: Optional[Sequence[str]] = None,
                 seed: Optional[int] = None, num_cells: int = 1000, epochs: int = 30, latent: int = 16,
                 hidden: int = 32):
        super().__init__(target=target, sources=sources, seed=seed)
        checks = [(1 <= num_cells <= NUM_OPS ** NUM_EDGES, f'num_cells in 1..{NUM_OPS ** NUM_EDGES}'),
                  (epochs >= 1, 'epochs >= 1'), (latent >= 1 and hidden >= 1, 'latent, hidden >= 1')]
        require('XferNAS', checks)
        self.pretrain_args = dict(num_cells=int(num_cells), epochs=int(epochs), latent=int(latent),
                                  hidden=int(hidden))
        self._set_model_seed(seed if seed is not None else self.rng.getrandbits(31))
        self.pre: Optional[dict] = None
        self._reset()

    def _set_model_seed(self, seed: int):
        self._model_seed = int(seed)
        self.rng = random.Random(f'xfernas/{self.target}/{self._model_seed}')   # the random fallback's

    def _reset(self):
        """Forget the target: a fresh residual (its initial weights depend on the seed only)."""
        self._asked = set()
        self.model: Optional[XferNASModel] = None
        self._fitted: List[Tuple[Tuple[int, ...], float]] = []   # the told values the residual has seen
        self.candidates: Optional[np.ndarray] = None
        self.scores: Optional[np.ndarray] = None

    def configure(self, space) -> 'XferNAS':
        old = self.space
        super().configure(space)
        self.require_nb201('reads NAS-Bench-201 source tables and decodes NB201 cells')
        if old is not None and old != self.space:
            self._reset()
        self._model()   # missing tables fail here, before the first trial
        return self

    # ------------------------------------------------------------------ internals
    def _model(self) -> XferNASModel:
        if self.pre is None:
            self.pre = pretrain(tuple(self.sources), self._model_seed, **self.pretrain_args)
        if self.model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self._model_seed)
                model = XferNASModel(len(self.sources), self.pre['model'].to_latent.out_features,
                                     self.pre['model'].to_latent.in_features)
                model.load_state_dict(self.pre['state'])
                for p in model.parameters():
                    p.requires_grad_(False)
                self.task = model.add_task()
            model.eval()
            for p in model.residuals[self.task].parameters():
                p.requires_grad_(True)
            self.model, self._fitted = model, []
            self.candidates, self.scores = latent_search(model, self.task, self.pre['start_ops'])
        return self.model

    def _told(self) -> List[Tuple[Tuple[int, ...], float]]:
        """``(op indices, value)`` of the successful told cells, first told first (a cell told
        twice keeps its first place and its last value)."""
        from nni_nasext.search_spaces.nasbench201 import sample_to_ops
        told: Dict[Tuple[int, ...], float] = {}
        for sample, value in self.valid_successes():
            told[tuple(sample_to_ops(sample))] = value
        return list(told.items())

    def _update(self):
        """Fit the residual on the told values it has not seen and redo the latent search."""
        told = self._told()
        if told[:len(self._fitted)] != self._fitted:     # not a continuation (a reload, a changed value)
            self.model = None
        model = self._model()
        if len(told) == len(self._fitted):
            return
        for n in range(len(self._fitted) + 1, len(told) + 1):
            done = np.array([c for c, _ in told[:n]], dtype=np.int64)
            with torch.no_grad():
                z = model.encode(torch.as_tensor(done))
            fit_residual(model, self.task, z, [v for _, v in told[:n]])
        self._fitted = told
        best_done = done[np.argsort(-np.array([v for _, v in told]), kind='stable')[:5]]
        self.candidates, self.scores = latent_search(model, self.task,
                                                     np.concatenate([self.pre['start_ops'], best_done]))

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        from nni_nasext.search_spaces.nasbench201 import ops_to_sample
        self._update()
        sample = None
        for c in self.candidates:
            s = ops_to_sample([int(o) for o in c])
            if SpaceSpec.key(s) not in self._asked:
                sample = s
                break
        while sample is None or SpaceSpec.key(sample) in self._asked:   # every decode asked: a random cell
            if len(self._asked) >= NUM_OPS ** NUM_EDGES:
                raise RuntimeError('XferNAS asked every NB201 cell')
            sample = ops_to_sample([self.rng.randrange(NUM_OPS) for _ in range(NUM_EDGES)])
        return self._mark_asked(sample)

    def _rebuild(self):
        super()._rebuild()
        self.model = None    # the residual is refitted on the history at the next ask

    def prediction(self) -> dict:
        """``k = 0``: the best candidate of the latent search under the universal surrogate."""
        return {'cell': ops_to_cells(self.candidates[:1])[0], 'predicted': float(self.scores[0])}

    def state_dict(self):
        return {**super().state_dict(), 'model_seed': self._model_seed}

    def load_state_dict(self, state):
        seed = state.get('model_seed', self._model_seed)
        if seed != self._model_seed:     # metadata, pre-training and residual follow the saved seed
            self._set_model_seed(seed)
            self.pre = None
        super().load_state_dict(state)

    def __repr__(self):
        return f'XferNAS(target={self.target!r}, sources={self.sources}, {self.pretrain_args}, seed={self.seed})'


def xfernas_transfer(target: str, sources: Optional[Sequence[str]] = None, k: int = 0, seed: int = 0,
                     **pretrain_args) -> dict:
    """The k-evaluation protocol on NB201 (see the module docstring): at most ``k`` lookups of the
    target's 200-epoch validation accuracy, chosen one by one by :class:`XferNAS`. Returns
    ``{'cell', 'evaluated', 'predicted'}`` (``k = 0``) or ``{'cell', 'accuracy', 'evaluated'}``."""
    return XferNAS.on_table(target, sources, k, seed, **pretrain_args)
