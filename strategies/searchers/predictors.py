"""Shared pieces of the predictor-based searchers: an architecture encoder and an MLP ensemble.

Used by :class:`~nni_nasext.strategies.searchers.pnas.PNAS` (C. Liu et al., "Progressive Neural
Architecture Search", ECCV 2018) and :class:`~nni_nasext.strategies.searchers.neural_predictor
.NeuralPredictor` (W. Wen et al., "Neural Predictor for Neural Architecture Search", ECCV
2020). Both papers predict accuracy from the architecture; PNAS uses an LSTM or an MLP ensemble
over the cell's tokens, Wen et al. a graph convolutional network. Here one small model serves
both: an ensemble of MLPs on a fixed-length vector encoding (the ensemble also gives a spread,
as PNAS's ensemble of 5 predictors does).

:class:`ArchEncoder` turns a sample (or a *partial* sample, some labels missing) into a float
vector, one slice per dimension of the :class:`~nni_nasext.space_spec.SpaceSpec`:

* ``choice``: one-hot over the values;
* ``choice_multiple``: multi-hot over the values (1 for each chosen value);
* ``numerical``: one scalar in roughly ``[0, 1]``: ``(x - low) / (high - low)``, in log space
  for ``loguniform``, ``(x - (mu - 2 sigma)) / (4 sigma)`` for ``normal``;
* a label missing from the sample: its slice is all zero; with ``presence=True`` one more bit
  per dimension says whether the label was given (it tells a missing numerical value from
  ``low``, and partial from full samples in general).

:class:`MLPEnsemble` fits ``num_models`` MLPs (ReLU, Adam, MSE on standardised targets) and
predicts the mean and the standard deviation over the members. Every member starts from its
own ``torch.Generator`` (seeded from ``seed``), the members are trained together as one batched
network (``torch.bmm``; Adam is element-wise, so this is exactly training them one by one),
and nothing touches the global random state: the same data and seed give the same weights.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nni_nasext.space_spec import Dimension, SpaceSpec
from nni_nasext.checks import require

__all__ = ['ArchEncoder', 'MLPEnsemble', 'dim_settings']


def dim_settings(dim: Dimension, num_bins: int = 10, limit: Optional[int] = None) -> list:
    """Every value a dimension can take, discretised: its values (``choice``), every subset of
    the allowed size in increasing position (``choice_multiple``; at most ``limit``, the first
    ones by size and position), ``dim.grid(num_bins)`` (``numerical``)."""
    import itertools
    if dim.kind == 'choice':
        return list(dim.values)
    if dim.kind == 'numerical':
        return dim.grid(num_bins)
    n = len(dim.values)
    sizes = [dim.n_chosen] if dim.n_chosen is not None else range(n + 1)
    out = []
    for k in sizes:
        for idx in itertools.combinations(range(n), k):
            out.append([dim.values[i] for i in idx])
            if limit is not None and len(out) >= limit:
                return out
    return out


class ArchEncoder:
    """Fixed-length float encoding of (possibly partial) samples of a space (see module docstring)."""

    def __init__(self, space: SpaceSpec, presence: bool = False):
        if not isinstance(space, SpaceSpec):
            space = SpaceSpec.from_space(space)
        self.space, self.presence = space, bool(presence)
        self._slices: Dict[str, Tuple[int, int]] = {}
        self._index: Dict[str, Dict[str, int]] = {}
        offset = 0
        for label, d in space.dims.items():
            width = 1 if d.kind == 'numerical' else len(d.values)
            self._slices[label] = (offset, width)
            if d.kind != 'numerical':
                self._index[label] = {_vkey(v): i for i, v in enumerate(d.values)}
            offset += width
        self._presence_offset = offset
        self.dim = offset + (len(space.dims) if self.presence else 0)

    def _position(self, label: str, value: Any) -> int:
        i = self._index[label].get(_vkey(value))
        if i is None:  # 1.0 for 1: equal, as Dimension.contains says
            i = list(self.space.dims[label].values).index(value)
        return i

    def _scalar(self, d: Dimension, x: float) -> float:
        if d.dist == 'loguniform':
            lo, hi, x = math.log(d.low), math.log(d.high), math.log(max(float(x), 1e-300))
        elif d.dist == 'normal':
            lo, hi = d.low - 2 * d.high, d.low + 2 * d.high
        else:
            lo, hi = d.low, d.high
        return (float(x) - lo) / (hi - lo) if hi > lo else 0.5

    def encode(self, sample: Dict[str, Any]) -> np.ndarray:
        """One vector; labels missing from ``sample`` are all-zero (presence bit 0)."""
        out = np.zeros(self.dim, dtype=np.float32)
        for k, (label, d) in enumerate(self.space.dims.items()):
            if label not in sample:
                continue
            value = sample[label]
            start, _ = self._slices[label]
            if d.kind == 'choice':
                out[start + self._position(label, value)] = 1.
            elif d.kind == 'choice_multiple':
                for v in value:
                    out[start + self._position(label, v)] = 1.
            else:
                out[start] = self._scalar(d, value)
            if self.presence:
                out[self._presence_offset + k] = 1.
        return out

    def encode_many(self, samples: Sequence[Dict[str, Any]]) -> np.ndarray:
        if not samples:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.encode(s) for s in samples])

    def __repr__(self):
        return f'ArchEncoder(dims={len(self.space)}, width={self.dim}, presence={self.presence})'


def _vkey(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class Ensemble:
    """Base of the predictors' regressor ensembles (:class:`MLPEnsemble`, and
    :class:`~nni_nasext.strategies.searchers.graph_predictor.GCNEnsemble`): the training settings,
    the standardisation of the targets, and ``predict`` from the members' predictions. A subclass
    implements ``fit(X, y)`` (calling :meth:`_standardise`) and ``predict_members(X)``."""

    def __init__(self, *, num_models: int, epochs: int, lr: float, weight_decay: float,
                 batch_size: Optional[int], seed: Optional[int]):
        self.num_models, self.epochs = int(num_models), int(epochs)
        self.lr, self.weight_decay, self.batch_size = float(lr), float(weight_decay), batch_size
        self.seed = 0 if seed is None else int(seed)
        self._params: Optional[List[torch.Tensor]] = None
        self._y_mean, self._y_std = 0., 1.
        self.num_fits = 0

    @property
    def fitted(self) -> bool:
        return self._params is not None

    def _standardise(self, y: np.ndarray) -> torch.Tensor:
        """The targets as float32 with mean 0 and std 1 (std 1 kept for constant targets);
        the mean and std are kept to undo it in ``predict_members``."""
        self._y_mean = float(y.mean())
        std = float(y.std())
        self._y_std = std if std > 1e-12 else 1.
        return torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float32)

    def predict_members(self, X) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the members, each of shape ``(n,)``."""
        members = self.predict_members(X)
        return members.mean(axis=0), members.std(axis=0)


class MLPEnsemble(Ensemble):
    """An ensemble of MLP regressors: ``fit(X, y)``, ``predict(X) -> (mean, std)``.

    Parameters
    ----------
    num_models
        Members; each has its own initialisation (and batch order), from its own generator.
    hidden
        Widths of the hidden layers (ReLU).
    epochs
        Passes over the data (full batch: one Adam step per epoch).
    lr, weight_decay
        Adam's learning rate and L2 penalty.
    batch_size
        ``None`` (default): full batch. Otherwise mini-batches of that size, shuffled per member
        and epoch by the member's generator.
    seed
        Seed of the members' generators; the same seed and data give the same predictions.
    """

    def __init__(self, num_models: int = 5, hidden: Sequence[int] = (64, 64), epochs: int = 100,
                 lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: Optional[int] = None, seed: int = 0):
        hidden = tuple(int(h) for h in hidden)
        checks = [(num_models >= 1, 'num_models >= 1'), (all(h >= 1 for h in hidden), 'hidden widths >= 1'),
                  (epochs >= 1, 'epochs >= 1'), (lr > 0, 'lr > 0'), (weight_decay >= 0, 'weight_decay >= 0'),
                  (batch_size is None or batch_size >= 1, 'batch_size >= 1 or None')]
        require('MLPEnsemble', checks)
        super().__init__(num_models=num_models, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, seed=seed)
        self.hidden = hidden

    def _forward(self, x: torch.Tensor, params: List[torch.Tensor]) -> torch.Tensor:
        # x: (M, n, d); params alternate W (M, in, out) and b (M, 1, out)
        h = x
        last = len(params) // 2 - 1
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i // 2 < last:
                h = torch.relu(h)
        return h[..., 0]

    def fit(self, X, y) -> 'MLPEnsemble':
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f'fit needs X of shape (n, d) and y of shape (n,), n >= 1; got {tuple(X.shape)} '
                             f'and {y.shape}')
        target = self._standardise(y)
        n, d = X.shape
        M = self.num_models
        seeder = random.Random(self.seed)
        gens = [torch.Generator().manual_seed(seeder.getrandbits(63)) for _ in range(M)]
        sizes = [d] + list(self.hidden) + [1]
        params: List[torch.Tensor] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1. / math.sqrt(max(fan_in, 1))  # torch.nn.Linear's default range
            w = torch.empty(M, fan_in, fan_out)
            b = torch.empty(M, 1, fan_out)
            for m, g in enumerate(gens):
                w[m].uniform_(-bound, bound, generator=g)
                b[m].uniform_(-bound, bound, generator=g)
            params += [w.requires_grad_(), b.requires_grad_()]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        xs = X.unsqueeze(0).expand(M, n, d)
        ts = target.unsqueeze(0).expand(M, n)
        bs = self.batch_size
        for _ in range(self.epochs):
            if bs is None or bs >= n:
                batches = [(xs, ts)]
            else:
                perm = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (M, n)
                batches = []
                for start in range(0, n, bs):
                    idx = perm[:, start:start + bs]
                    batches.append((X[idx], target[idx]))
            for xb, tb in batches:
                opt.zero_grad()
                # sum over members of each member's mean squared error: independent gradients
                loss = ((self._forward(xb, params) - tb) ** 2).mean(dim=1).sum()
                loss.backward()
                opt.step()
        self._params = [p.detach() for p in params]
        self.num_fits += 1
        return self

    def predict_members(self, X) -> np.ndarray:
        """Every member's prediction, shape ``(num_models, n)``, in the units of ``y``."""
        if self._params is None:
            raise RuntimeError('MLPEnsemble.predict before fit')
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if X.ndim != 2:
            raise ValueError(f'predict needs X of shape (n, d), got {tuple(X.shape)}')
        with torch.no_grad():
            out = self._forward(X.unsqueeze(0).expand(self.num_models, *X.shape), self._params)
        return out.double().numpy() * self._y_std + self._y_mean

    def __repr__(self):
        return (f'MLPEnsemble(num_models={self.num_models}, hidden={self.hidden}, epochs={self.epochs}, '
                f'lr={self.lr}, weight_decay={self.weight_decay}, seed={self.seed})')
