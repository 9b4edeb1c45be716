"""TAPAS: transfer NAS with a train-less accuracy predictor conditioned on dataset difficulty.

R. Istrate, F. Scheidegger, G. Mariani, D. Nikolopoulos, C. Bekas, A. C. I. Malossi,
"TAPAS: Train-less Accuracy Predictor for Architecture Search", AAAI 2019.

The paper's three parts, and what stands in for each on this machine (NAS-Bench-201 tables,
no CIFAR/ImageNet images):

* **Dataset character number (DCN).** TAPAS trains a fixed, small landmark network briefly
  on a dataset and takes its validation accuracy in ``[0, 1]`` as the dataset's difficulty.
  :func:`dcn_from_training` does exactly that with the project's Lightning evaluator on the
  image datasets that exist here (``digits``, ``fashion-mnist``, ``mnist10k``, ...).
  For the NB201 datasets the stand-in is :func:`dcn_from_table`: the **12-epoch** validation
  accuracy (the NB201 "short training" table) of a fixed set of landmark cells
  (:data:`LANDMARK_CELLS`: all ``nor_conv_3x3``, all ``nor_conv_1x1`` and the ResNet cell),
  averaged and divided by 100. This is one short training run per landmark on the target,
  as in TAPAS; it reads only the 12-epoch table, never the 200-epoch one.
* **Dataset similarity.** TAPAS trains its predictor only on the metadata of datasets whose
  DCN is close to the target's (:func:`similar_datasets`). With the two NB201 source
  datasets of a leave-one-dataset-out split the rule keeps both (``min_datasets=2``), and the
  rows are *not* weighted by similarity: the DCN is an input of the predictor instead.
* **Train-less accuracy predictor (TAP).** Two stacked LSTMs read the architecture as a
  sequence, one step per decision (the 6 NB201 edges, each step the op's one-hot) with the
  DCN appended to every step; a small head on the last hidden state and the DCN regresses
  the accuracy (MSE on standardised targets). It is trained on the metadata: sampled cells of
  the source datasets with their 200-epoch validation accuracy / 100
  (:func:`nb201_metadata`). The paper's TAP also predicts layer by layer from partial
  networks (its LDE metadata is grown one layer at a time); NB201 cells are fixed-size, so
  only whole cells are predicted here.
  Our variant ``targets='top_quantile'`` (not in the paper) regresses, instead of the
  accuracy, ``-log(1 - q)`` of each cell's quantile ``q`` within its source dataset
  (:func:`top_quantile`): MSE on raw accuracies is spent on separating the many broken cells
  (about 10 % accuracy) from the working ones, while the search needs the order of the top
  1 %. On NB201 this shrinks the gap of the top predicted cells several-fold
  (``experiments/results/transfer_nb201.md``). The DCN stays an input.
* **Search.** As in the paper, an evolution with the predictor as its fitness proposes
  architectures without training anything on the target (:func:`predicted_evolution`:
  aging evolution, tournament selection, one-decision mutations, batched predictions).
  :func:`tapas_transfer` then spends ``k`` target evaluations: ``k = 0`` returns the best
  predicted cell, ``k > 0`` evaluates the top-``k`` distinct predicted cells (200-epoch
  target accuracy) and returns the best evaluated.

:class:`TAPAS` is the same as an ask/tell :class:`~nni_nasext.searcher.Searcher` (registered
as ``tapas``): ``ask()`` returns the predictor-ranked cells in order; with
``fine_tune=True`` (off by default) the predictor is fine-tuned on the told target values (times
``value_scale``; NB201 lookups report percent) and the remaining candidates re-ranked.
Without a ``target`` (and without ``target_dcn``) there is no metadata to transfer: the
searcher then warns and runs a plain predictor-guided search on the told values alone
(``num_initial`` random samples, then the best predicted unseen sample), on any space.
"""
from __future__ import annotations

import collections
import functools
import logging
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.predictors import ArchEncoder
from nni_nasext.checks import require
from nni_nasext.strategies.transfer.base import (  # noqa: F401  (nb201_spec, is_nb201 ... are read from here too)
    TransferSearcher, ask_tell_on_table, check_transfer_args, is_nb201, nb201_spec, top_quantile, with_context)

__all__ = ['TAPAS', 'LANDMARK_CELLS', 'AccuracyPredictor', 'dcn_from_table', 'dcn_from_training',
           'similar_datasets', 'nb201_metadata', 'nb201_spec', 'predicted_evolution', 'propose',
           'tapas_transfer', 'check_transfer_args', 'top_quantile', 'TARGETS']

_logger = logging.getLogger(__name__)

#: Landmark cells whose 12-epoch accuracy, averaged, is the NB201 DCN stand-in.
LANDMARK_CELLS: Dict[str, str] = {
    'all_conv3x3': '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|',
    'all_conv1x1': '|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|',
    'resnet': '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|',
}
DEFAULT_NUM_META_CELLS = 1000


# ----------------------------------------------------------------------------- datasets and DCN

@functools.lru_cache(maxsize=None)
def dcn_from_table(dataset: str, landmarks: Tuple[str, ...] = tuple(LANDMARK_CELLS.values()),
                   epochs: int = 12) -> float:
    """NB201 stand-in for TAPAS's DCN: mean ``epochs``-epoch validation accuracy of the landmark
    cells on ``dataset``, / 100 (a lookup, so the same for every seed)."""
    from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table
    from nni_nasext.data_paths import DataNotFoundError
    if dataset not in NB201_DATASETS:
        raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {NB201_DATASETS}')
    if not landmarks:
        raise ValueError('dcn_from_table needs at least one landmark cell')
    table = NasBench201Table()
    try:
        accs = [table.query(cell, dataset, epochs).accuracy for cell in landmarks]
    except DataNotFoundError as err:
        raise with_context(err, f'the TAPAS dataset character number of {dataset}') from None
    return float(np.mean(accs)) / 100.


def landmark_network(info) -> nn.Module:
    """TAPAS-style probe: a small fixed CNN (two 3x3 conv-BN-ReLU, the second stride 2, global
    pooling, linear) for ``info.in_channels`` inputs and ``info.num_classes`` outputs."""
    return nn.Sequential(
        nn.Conv2d(info.in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, info.num_classes))


def dcn_from_training(model_fn: Optional[Callable] = None, dataset_name: str = 'digits', seed: int = 0,
                      epochs: int = 3, *, limit: Optional[int] = None, batch_size: int = 64,
                      learning_rate: float = 0.05) -> float:
    """TAPAS's DCN as the paper computes it: train the fixed probe ``model_fn(info)`` (default
    :func:`landmark_network`; ``info`` is the dataset's :class:`~nni_nasext.datasets.DatasetInfo`)
    for ``epochs`` epochs with :class:`~nni_nasext.evaluators.ImageClassification` on CPU and
    return its validation accuracy in ``[0, 1]``. The evaluator seeds weights, split and data
    order, so the same seed gives the same number. ``limit`` trains on a subset (quick runs)."""
    from nni_nasext.evaluators import ImageClassification
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f'epochs must be a positive integer, got {epochs!r}')
    evaluator = ImageClassification(dataset_name, max_epochs=epochs, seed=seed, limit=limit, batch_size=batch_size,
                                    learning_rate=learning_rate, accelerator='cpu')
    evaluator.dataloaders()  # loads the data (unknown names raise ValueError) and sets evaluator.info
    model = (model_fn or landmark_network)(evaluator.info)
    return float(evaluator.evaluate(model))


def similar_datasets(target_dcn: float, source_dcns: Dict[str, float], max_distance: Optional[float] = None,
                     min_datasets: int = 2) -> List[str]:
    """TAPAS's selection of metadata: sources sorted by ``|DCN - target DCN|``, those within
    ``max_distance`` (all when ``None``), but never fewer than the ``min_datasets`` closest."""
    order = sorted(source_dcns, key=lambda d: (abs(source_dcns[d] - target_dcn), d))
    near = [d for d in order if max_distance is None or abs(source_dcns[d] - target_dcn) <= max_distance]
    return near if len(near) >= min_datasets else order[:min_datasets]


def nb201_metadata(sources: Sequence[str], num_cells: int = DEFAULT_NUM_META_CELLS, seed: int = 0,
                   epochs: int = 200) -> List[Tuple[str, float, List[Dict[str, str]], np.ndarray]]:
    """``[(source, DCN, cells, accuracy / 100)]``: ``num_cells`` distinct cells drawn per source
    (seeded; each source its own draw) with their ``epochs``-epoch validation accuracy."""
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.data_paths import DataNotFoundError
    from nni_nasext.search_spaces.nasbench201 import ops_to_sample
    if not 1 <= num_cells <= 5 ** 6:
        raise ValueError(f'num_cells must be in 1..15625, got {num_cells}')
    table, out = NasBench201Table(), []
    for i, source in enumerate(sources):
        rng = random.Random(f'{seed}/{i}/{source}')
        codes = rng.sample(range(5 ** 6), num_cells)
        cells = [ops_to_sample([(c // 5 ** p) % 5 for p in range(5, -1, -1)]) for c in codes]
        try:
            accs = np.array([table.query(c, source, epochs).accuracy for c in cells]) / 100.
        except DataNotFoundError as err:
            raise with_context(err, f'the TAPAS metadata of source {source}') from None
        out.append((source, dcn_from_table(source), cells, accs))
    return out


# ----------------------------------------------------------------------------- predictor

class SequenceEncoder:
    """Sample -> ``(T, W)`` array: one step per decision of the space, the step the decision's
    slice of the :class:`ArchEncoder` vector (op one-hot for NB201; multi-hot for a multiple
    choice; the scaled number for a numerical decision), zero-padded to ``W``."""

    def __init__(self, space: SpaceSpec):
        self.flat = ArchEncoder(space)
        self.dims = list(space.dims.values())
        self.steps = len(self.dims)
        self.width = max(1 if d.kind == 'numerical' else len(d.values) for d in self.dims)
        self._index = []
        for d in self.dims:
            try:
                self._index.append({(type(v), v): i for i, v in enumerate(d.values)})
            except TypeError:  # unhashable values: positions by equality
                self._index.append({})

    def _position(self, t: int, value) -> int:
        try:
            return self._index[t][(type(value), value)]
        except (KeyError, TypeError):
            return list(self.dims[t].values).index(value)  # e.g. 1.0 for 1

    def encode_many(self, samples: Sequence[Dict[str, Any]]) -> np.ndarray:
        out = np.zeros((len(samples), self.steps, self.width), dtype=np.float32)
        for n, sample in enumerate(samples):
            for t, d in enumerate(self.dims):
                value = sample[d.label]
                if d.kind == 'choice':
                    out[n, t, self._position(t, value)] = 1.
                elif d.kind == 'choice_multiple':
                    for v in value:
                        out[n, t, self._position(t, v)] = 1.
                else:
                    out[n, t, 0] = self.flat._scalar(d, value)
        return out


class _TAP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(width + 1, hidden, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, dcn: torch.Tensor) -> torch.Tensor:
        steps = torch.cat([x, dcn[:, None, None].expand(-1, x.shape[1], 1)], dim=2)
        out, _ = self.lstm(steps)
        return self.head(torch.cat([out[:, -1], dcn[:, None]], dim=1))[:, 0]


class AccuracyPredictor:
    """TAP: two stacked LSTMs over the step encoding with the DCN, regressing accuracy.

    ``fit(X, dcn, y)`` trains from scratch (``reset=True``) or continues (fine-tuning; the
    target standardisation of the first fit is kept) and returns the mean training loss of
    every epoch. Its own ``torch.Generator`` and a forked global RNG for the initialisation:
    the same seed and data give the same weights, and the global random state is untouched.
    """

    def __init__(self, width: int, hidden: int = 32, epochs: int = 40, lr: float = 3e-3, batch_size: int = 128,
                 weight_decay: float = 0., seed: int = 0):
        if hidden < 1 or epochs < 1 or lr <= 0 or batch_size < 1:
            raise ValueError('AccuracyPredictor needs hidden, epochs, batch_size >= 1 and lr > 0')
        self.width, self.hidden, self.epochs, self.lr = int(width), int(hidden), int(epochs), float(lr)
        self.batch_size, self.weight_decay, self.seed = int(batch_size), float(weight_decay), int(seed)
        self.net: Optional[_TAP] = None
        self._y_mean, self._y_std = 0., 1.
        self._gen = torch.Generator().manual_seed(self.seed)

    def fit(self, X, dcn, y, *, epochs: Optional[int] = None, lr: Optional[float] = None,
            reset: bool = True) -> List[float]:
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        d = torch.as_tensor(np.asarray(dcn, dtype=np.float32).reshape(-1))
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 3 or X.shape[2] != self.width or not len(X) == len(d) == len(y) or len(y) == 0:
            raise ValueError(f'fit needs X (n, T, {self.width}), dcn (n,), y (n,) with n >= 1; got '
                             f'{tuple(X.shape)}, {tuple(d.shape)}, {y.shape}')
        if not np.all(np.isfinite(y)):
            raise ValueError('fit got non-finite accuracies')
        if reset or self.net is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.net = _TAP(self.width, self.hidden)
            self._gen.manual_seed(self.seed)
            self._y_mean, std = float(y.mean()), float(y.std())
            self._y_std = std if std > 1e-8 else 1.
        t = torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float32)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr or self.lr, weight_decay=self.weight_decay)
        history = []
        self.net.train()
        for _ in range(epochs or self.epochs):
            perm, total = torch.randperm(len(t), generator=self._gen), 0.
            for start in range(0, len(t), self.batch_size):
                idx = perm[start:start + self.batch_size]
                opt.zero_grad()
                loss = ((self.net(X[idx], d[idx]) - t[idx]) ** 2).mean()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            history.append(total / len(t))
        self.net.eval()
        return history

    def predict(self, X, dcn) -> np.ndarray:
        if self.net is None:
            raise RuntimeError('AccuracyPredictor.predict before fit')
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        d = torch.as_tensor(np.broadcast_to(np.asarray(dcn, dtype=np.float32), (len(X),)).copy())
        with torch.no_grad():
            return self.net(X, d).double().numpy() * self._y_std + self._y_mean


# ----------------------------------------------------------------------------- search

def predicted_evolution(score: Callable[[List[dict]], np.ndarray], space: SpaceSpec, rng: random.Random, *,
                        population: int = 50, tournament: int = 10, generations: int = 60, children: int = 50,
                        initial: Sequence[dict] = ()) -> Dict[str, Tuple[dict, float]]:
    """Aging evolution whose fitness is the predictor: ``key -> (sample, predicted)`` of every
    sample visited. Each generation mutates ``children`` tournament winners (one decision each),
    predicts the new ones in one batch, appends them and drops the oldest beyond ``population``."""
    visited: Dict[str, Tuple[dict, float]] = {}

    def scored(samples):
        keys = [SpaceSpec.key(s) for s in samples]
        new = {}
        for key, s in zip(keys, samples):
            if key not in visited:
                new.setdefault(key, s)
        if new:
            for (key, s), v in zip(new.items(), score(list(new.values()))):
                visited[key] = (s, float(v))
        return [visited[key] for key in keys]

    start = list(initial)[:population]
    start += [space.random(rng) for _ in range(population - len(start))]
    pop = collections.deque(scored(start))
    for _ in range(generations):
        kids = []
        for _ in range(children):
            parent = max(rng.sample(list(pop), min(tournament, len(pop))), key=lambda t: t[1])[0]
            kids.append(space.mutate(parent, rng))
        pop.extend(scored(kids))
        while len(pop) > population:
            pop.popleft()
    return visited


def _ranked(visited: Dict[str, Tuple[dict, float]]) -> List[Tuple[dict, float]]:
    return sorted(visited.values(), key=lambda t: (-t[1], SpaceSpec.key(t[0])))


TARGETS = ('accuracy', 'top_quantile')


def propose(target: Optional[str], sources: Optional[Sequence[str]] = None, *, seed: int = 0,
            num_meta_cells: int = DEFAULT_NUM_META_CELLS, target_dcn: Optional[float] = None,
            max_distance: Optional[float] = None, targets: str = 'accuracy', predictor_args: Optional[dict] = None,
            evolution_args: Optional[dict] = None) -> dict:
    """TAPAS without any target training: metadata of the similar sources -> predictor ->
    predictor-driven evolution. Returns ``{'ranked': [(sample, predicted)], 'target_dcn',
    'dcn': {source: DCN}, 'used_sources', 'loss', 'predictor'}``. The target is read only
    through its DCN (``target_dcn``, or :func:`dcn_from_table` of ``target``); ``target=None``
    needs ``target_dcn`` and ``sources``. ``targets='accuracy'`` regresses the accuracy / 100
    (the paper); ``'top_quantile'`` regresses :func:`top_quantile` of it per source (ours)."""
    if targets not in TARGETS:
        raise ValueError(f'targets must be one of {TARGETS}, got {targets!r}')
    if target is not None:
        sources = check_transfer_args(target, sources)
    elif target_dcn is None or not sources:
        raise ValueError('propose needs a target dataset, or target_dcn and the sources')
    dcn = dcn_from_table(target) if target_dcn is None else float(target_dcn)
    meta = nb201_metadata(sources, num_meta_cells, seed)
    used = similar_datasets(dcn, {m[0]: m[1] for m in meta}, max_distance)
    meta = [m for m in meta if m[0] in used]
    space = nb201_spec()
    enc = SequenceEncoder(space)
    X = np.concatenate([enc.encode_many(m[2]) for m in meta])
    d = np.concatenate([np.full(len(m[2]), m[1]) for m in meta])
    y = np.concatenate([m[3] if targets == 'accuracy' else top_quantile(m[3]) for m in meta])
    predictor = AccuracyPredictor(enc.width, seed=seed, **(predictor_args or {}))
    loss = predictor.fit(X, d, y)
    visited = predicted_evolution(lambda s: predictor.predict(enc.encode_many(s), dcn), space,
                                  random.Random(seed), **(evolution_args or {}))
    return {'ranked': _ranked(visited), 'target_dcn': dcn, 'dcn': {m[0]: m[1] for m in meta},
            'used_sources': used, 'loss': loss, 'predictor': predictor}


def tapas_transfer(target: str, sources: Optional[Sequence[str]] = None, k: int = 0, seed: int = 0,
                   *, proposal: Optional[dict] = None, **propose_args) -> dict:
    """The k-evaluation protocol: ``k = 0`` returns the best predicted cell; ``k > 0`` looks up
    the 200-epoch target accuracy of the top-``k`` distinct predicted cells (exactly ``k``
    target queries) and returns the best. ``proposal`` reuses a :func:`propose` result."""
    from nni_nasext.benchmarks import NasBench201Table, to_cellstr
    sources = check_transfer_args(target, sources, k)
    if proposal is None:
        proposal = propose(target, sources, seed=seed, **propose_args)
    ranked = proposal['ranked']
    if k == 0:
        return {'cell': to_cellstr(ranked[0][0]), 'evaluated': [], 'predicted': ranked[0][1]}
    table = NasBench201Table()
    evaluated = [(to_cellstr(s), table.query(s, target, 200).accuracy) for s, _ in ranked[:k]]
    best = max(evaluated, key=lambda t: t[1])
    return {'cell': best[0], 'accuracy': best[1], 'evaluated': evaluated}


# ----------------------------------------------------------------------------- searcher

class TAPAS(TransferSearcher):
    """TAPAS as an ask/tell searcher (see the module docstring).

    Parameters
    ----------
    target
        NB201 dataset searched (``cifar10-valid``, ``cifar100``, ``ImageNet16-120``): its DCN comes
        from :func:`dcn_from_table`. ``None`` (and no ``target_dcn``): no metadata, a plain
        predictor-guided search on the told values (any space).
    sources
        NB201 datasets whose tables are the metadata (default: the NB201 datasets but the target).
    num_meta_cells
        Cells sampled per source for the metadata.
    target_dcn
        The target's DCN, e.g. from :func:`dcn_from_training`, instead of the table stand-in
        (it must be on the sources' scale to mean anything).
    max_distance
        :func:`similar_datasets`'s DCN radius (``None``: every source).
    targets
        What the predictor regresses: ``'accuracy'`` (the paper) or ``'top_quantile'`` (ours).
    fine_tune, fine_tune_epochs, fine_tune_lr, value_scale
        Fine-tune the predictor (from its metadata weights) on every told target value
        ``* value_scale`` before the next ask, and re-rank the candidates (``'accuracy'`` only).
    num_initial
        Without metadata: random samples before the predictor is used.
    hidden, epochs, lr, batch_size
        The :class:`AccuracyPredictor`.
    population, tournament, generations, children
        The :func:`predicted_evolution`.
    """

    needs_target = False   # without a target: a predictor-guided search on the told values alone

    def __init__(self, *, target: Optional[str] = None, sources: Optional[Sequence[str]] = None,
                 num_meta_cells: int = DEFAULT_NUM_META_CELLS, target_dcn: Optional[float] = None,
                 max_distance: Optional[float] = None, targets: str = 'accuracy', fine_tune: bool = False,
                 fine_tune_epochs: int = 30, fine_tune_lr: float = 1e-3, value_scale: float = 0.01,
                 num_initial: int = 5, hidden: int = 32,
                 epochs: int = 40, lr: float = 3e-3, batch_size: int = 128, population: int = 50,
                 tournament: int = 10, generations: int = 60, children: int = 50, seed: Optional[int] = None):
        super().__init__(target=target, sources=sources, seed=seed)
        sources = self.sources
        if target_dcn is not None and not 0 <= float(target_dcn) <= 1:
            raise ValueError(f'target_dcn is an accuracy in [0, 1], got {target_dcn}')
        if target is None and target_dcn is not None and sources is None:
            raise ValueError('TAPAS with target_dcn and no target needs the sources named')
        checks = [(num_initial >= 1, 'num_initial >= 1'), (population >= 1, 'population >= 1'),
                  (tournament >= 1, 'tournament >= 1'), (generations >= 0, 'generations >= 0'),
                  (children >= 1, 'children >= 1'), (value_scale > 0, 'value_scale > 0'),
                  (fine_tune_epochs >= 1 and fine_tune_lr > 0, 'fine_tune_epochs >= 1, fine_tune_lr > 0'),
                  (targets in TARGETS, f'targets in {TARGETS}'),
                  (not (fine_tune and targets != 'accuracy'), "targets='accuracy' to fine-tune on told values")]
        require('TAPAS', checks)
        self.target_dcn = target_dcn
        self.num_meta_cells, self.max_distance, self.targets = int(num_meta_cells), max_distance, targets
        self.fine_tune, self.fine_tune_epochs, self.fine_tune_lr = bool(fine_tune), int(fine_tune_epochs), fine_tune_lr
        self.value_scale, self.num_initial = float(value_scale), int(num_initial)
        self.predictor_args = dict(hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size)
        self.evolution_args = dict(population=population, tournament=tournament, generations=generations,
                                   children=children)
        self._torch_seed = seed if seed is not None else self.rng.getrandbits(31)
        self.uses_metadata = target is not None or target_dcn is not None
        self._reset()

    def _reset(self):
        self._asked: set = set()
        self._ranked: Optional[List[Tuple[dict, float]]] = None
        self._fit_n: Optional[int] = None   # successes the current ranking has seen
        self.proposal: Optional[dict] = None
        self.num_fits = 0

    def configure(self, space) -> 'TAPAS':
        old = self.space
        super().configure(space)
        if old != self.space:
            self._reset()
        if self.uses_metadata:
            self.require_nb201('metadata comes from the NAS-Bench-201 tables',
                               '; use target=None for a search without metadata')
        if self.uses_metadata:
            self._proposal()  # missing tables fail here, before the first trial
        else:
            _logger.warning('TAPAS without a target has no metadata to transfer: it runs a predictor-guided '
                            'search on the told values only')
        return self

    # ------------------------------------------------------------------ internals
    def _proposal(self) -> dict:
        if self.proposal is None:
            self.proposal = propose(
                self.target, self.sources, seed=self._torch_seed, num_meta_cells=self.num_meta_cells,
                target_dcn=self.target_dcn, max_distance=self.max_distance, targets=self.targets,
                predictor_args=self.predictor_args, evolution_args=self.evolution_args)
            self.proposal['base_state'] = {k: v.clone() for k, v in self.proposal['predictor'].net.state_dict().items()}
            self._ranked = list(self.proposal['ranked'])
            self.num_fits += 1
        return self.proposal

    def _fine_tuned_ranking(self, done):
        prop = self._proposal()
        predictor, dcn = prop['predictor'], prop['target_dcn']
        enc = SequenceEncoder(nb201_spec())
        predictor.net.load_state_dict(prop['base_state'])  # from the metadata weights, on all told values
        predictor._gen.manual_seed(self._torch_seed + len(done))
        predictor.fit(enc.encode_many([s for s, _ in done]), np.full(len(done), dcn),
                      [v * self.value_scale for _, v in done], epochs=self.fine_tune_epochs,
                      lr=self.fine_tune_lr, reset=False)
        pool = [s for s, _ in prop['ranked']]
        scores = predictor.predict(enc.encode_many(pool), dcn)
        self.num_fits += 1
        return _ranked({SpaceSpec.key(s): (s, float(v)) for s, v in zip(pool, scores)})

    def _cold_ranking(self, done):
        enc = SequenceEncoder(self.space)
        predictor = AccuracyPredictor(enc.width, seed=self._torch_seed, **self.predictor_args)
        predictor.fit(enc.encode_many([s for s, _ in done]), np.zeros(len(done)), [v for _, v in done])
        best = [s for s, _ in sorted(done, key=lambda t: -t[1])]
        evolution = {**self.evolution_args, 'generations': min(self.evolution_args['generations'], 10)}
        visited = predicted_evolution(lambda s: predictor.predict(enc.encode_many(s), 0.), self.space,
                                      random.Random(f'{self._torch_seed}/{len(done)}'), initial=best, **evolution)
        self.num_fits += 1
        return _ranked(visited)

    def _random_unseen(self):
        for _ in range(100):
            sample = self.space.random(self.rng)
            if SpaceSpec.key(sample) not in self._asked:
                break
        return sample

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        done = self.valid_successes()
        if self.uses_metadata:
            self._proposal()
            if not (self.fine_tune and done):
                self._ranked = self.proposal['ranked']
            elif len(done) != self._fit_n:
                self._ranked, self._fit_n = self._fine_tuned_ranking(done), len(done)
        elif len(done) >= max(self.num_initial, 2):
            if len(done) != self._fit_n:
                self._ranked, self._fit_n = self._cold_ranking(done), len(done)
        else:
            self._ranked = None
        sample = None
        for s, _ in self._ranked or ():
            if SpaceSpec.key(s) not in self._asked:
                sample = dict(s)
                break
        if sample is None:
            sample = self._random_unseen()
        return self._mark_asked(sample)

    def _rebuild(self):
        super()._rebuild()
        self._fit_n = None

    def state_dict(self):
        return {**super().state_dict(), 'predictor_seed': self._torch_seed}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        seed = state.get('predictor_seed', self._torch_seed)
        if seed != self._torch_seed:  # metadata, predictor and evolution follow the saved seed
            self._torch_seed, self.proposal, self._ranked = seed, None, None

    def __repr__(self):
        return (f'TAPAS(target={self.target!r}, sources={self.sources}, num_meta_cells={self.num_meta_cells}, '
                f'fine_tune={self.fine_tune}, seed={self.seed})')
