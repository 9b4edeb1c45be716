"""LCRankNet: learning-curve ranking with transfer across tasks, and its NNI assessor.

Reference: M. Wistuba, T. Pedapati, "Learning to Rank Learning Curves", ICML 2020.

The model ``f(partial curve, architecture, task embedding) -> score`` is trained so that

    p_hat(i > j) = sigmoid(f(x_i) - f(x_j))                                      (paper Eq. 1)

is the probability that the model of curve ``i`` *ends* better than that of curve ``j``, with the
pairwise cross-entropy against the order of the final values,

    L = sum_{i,j} -p_ij log p_hat_ij - (1 - p_ij) log(1 - p_hat_ij),  p_ij in {0, 1/2, 1}   (Eq. 2)

over pairs of the same task. In every step each curve of a pair is cut at a random length
(1 .. full): for a quarter of the pairs independently, for a quarter at the same length, for a
quarter the second curve is complete (what the assessor compares with), and for a quarter the
second curve is the first one's own completion (equal finals: target 1/2, which ties the score
of a partial curve to that of its completion, i.e. calibrates across progress). One model thus
scores partial and complete curves alike.

The components follow the paper's, at the size of our small data:

* learning curve: the values as logits (``log(y / (1 - y))``, which spreads the small gaps between
  good accuracies), taken relative to the current value (so the shape features do not depend on a
  task's accuracy level); 1-D convolutions with kernel sizes 2, 3, 4 over the observed epochs
  (left-padded by repeating the first value), ReLU, max-pooling over time (any length); plus the
  current value and the progress ``t / T``. The score is
  ``f = b + softplus(a) * current value + softplus(c) * g(architecture)`` with ``(a, b, c)`` from an
  MLP over these features and the task embedding: the weight of the current value and of the
  architecture may depend on progress and task, but a higher current value never lowers ``f``.
  (This output form is ours; with an unconstrained MLP the model ranked held-out curves worse
  than their current value did, even at the last epochs.)
* architecture: the paper embeds the NASNet cell description and runs an LSTM over it
  (``arch_model='lstm'`` here: the sample as ``label=value`` tokens in sorted label order,
  embedded with a per-position vector, LSTM, last hidden state into the MLP). With a hundred
  architectures per task the LSTM memorises architecture -> final accuracy on the training tasks
  and then outweighs the curve on a new task, so the default is ``arch_model='additive'``:
  ``g`` is a sum of one learned weight per ``label=value`` token (per-decision effects that
  transfer between tasks). Values never seen in training map to an "unknown" token, and with
  probability ``arch_dropout`` (0.5) a training curve is shown without its architecture
  (``g = 0``, or a learned "no architecture" vector), so the model also scores trials whose
  architecture the assessor cannot see;
* task: a learned embedding per training task (the paper's dataset embedding). **An unseen task**
  starts at the mean of the learned embeddings, and the assessor stops no trial of it before
  ``adapt_min_trials`` (3) of its trials have completed; then it fits a new embedding for the task on
  their curves with the same ranking loss (network frozen, random truncations, an L2 pull toward
  the mean), again whenever the completed trials have grown by half. This stands in for the
  paper's learning of the new dataset's embedding while its curves come in.

:class:`LCRankNetAssessor` is the NNI assessor: at each intermediate result from
``start_step`` on it computes ``p(this trial ends better than the best completed trial)`` with the
best trial's complete curve and answers ``AssessResult.Bad`` when it is below ``threshold``
(0.45, the paper's delta). Registered as assessor ``lcranknet`` (nnictl ``NasextLCRankNet``).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from nni.assessor import AssessResult, Assessor

from nni_nasext.assessors import scalar

__all__ = ['LCRankNet', 'LCRankNetRanker', 'LCRankNetAssessor', 'ArchVocab']

_logger = logging.getLogger(__name__)
TaskData = Dict[str, Tuple[List[dict], np.ndarray]]   # task -> (samples, curves (n, T))


class ArchVocab:
    """Samples (label -> value dicts) as fixed-length token sequences; token 0 = unknown value."""

    def __init__(self, labels: Sequence[str], tokens: Sequence[str]):
        self.labels = list(labels)
        self.tokens = list(tokens)
        self.index = {t: i + 1 for i, t in enumerate(self.tokens)}

    @staticmethod
    def token(label: str, value: Any) -> str:
        return f'{label}={json.dumps(value, sort_keys=True)}'

    @classmethod
    def from_samples(cls, samples: Sequence[dict]) -> 'ArchVocab':
        labels = sorted({k for s in samples for k in s})
        tokens = sorted({cls.token(k, v) for s in samples for k, v in s.items()})
        return cls(labels, tokens)

    def encode(self, sample: Optional[dict]) -> List[int]:
        sample = sample or {}
        return [self.index.get(self.token(k, sample[k]), 0) if k in sample else 0 for k in self.labels]

    def state(self) -> dict:
        return {'labels': self.labels, 'tokens': self.tokens}


class LCRankNet(nn.Module):
    """The scoring network ``f``; ``forward`` takes a batch of right-padded curves.

    ``f = b + softplus(a) * last + softplus(c) * g(architecture)``, where ``(a, b, c)`` come from an
    MLP over the curve features, the progress, the task embedding (and, for ``arch_model='lstm'``,
    the LSTM's architecture vector), ``last`` is the logit of the current value and ``g`` is the
    architecture's additive score (``arch_model='additive'``: one learned weight per
    ``label=value`` token, summed; 0 when the architecture is unknown).
    """

    def __init__(self, num_tasks: int, vocab_size: int, num_labels: int, arch_model: str = 'additive',
                 conv_channels: int = 16, kernels: Sequence[int] = (2, 3, 4), arch_dim: int = 16,
                 arch_hidden: int = 32, task_dim: int = 8, hidden: int = 64):
        super().__init__()
        if arch_model not in ('additive', 'lstm'):
            raise ValueError(f"arch_model must be 'additive' or 'lstm', got {arch_model!r}")
        self.arch_model = arch_model
        self.kernels = tuple(int(k) for k in kernels)
        self.convs = nn.ModuleList(nn.Conv1d(1, conv_channels, k) for k in self.kernels)
        if arch_model == 'lstm':
            self.token = nn.Embedding(vocab_size + 1, arch_dim)
            self.position = nn.Parameter(torch.zeros(max(num_labels, 1), arch_dim))
            self.lstm = nn.LSTM(arch_dim, arch_hidden, batch_first=True)
            self.no_arch = nn.Parameter(torch.zeros(arch_hidden))
        else:
            self.token_weight = nn.Embedding(vocab_size + 1, 1)
            nn.init.zeros_(self.token_weight.weight)
            arch_hidden = 1   # the head sees only whether the architecture is known
        self.task = nn.Embedding(num_tasks, task_dim)
        nn.init.normal_(self.task.weight, std=0.1)
        width = len(self.kernels) * conv_channels + 2 + arch_hidden + task_dim
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 3))

    def forward(self, curves: torch.Tensor, lengths: torch.Tensor, total: torch.Tensor, tokens: torch.Tensor,
                has_arch: torch.Tensor, task_vec: torch.Tensor) -> torch.Tensor:
        """curves (B, T) right-padded, lengths (B,) >= 1, total (B,) full lengths, tokens (B, L),
        has_arch (B,) bool, task_vec (B, task_dim) -> scores (B,)."""
        curves = torch.logit(curves.clamp(1e-3, 1 - 1e-3))  # spreads the small gaps between good accuracies
        batch, width = curves.shape
        positions = torch.arange(width, device=curves.device)
        valid = positions[None, :] < lengths[:, None]
        last = curves.gather(1, (lengths - 1)[:, None])
        shape = curves - last                      # the curve relative to its current value: level-free
        first = shape[:, :1]
        feats = []
        for k, conv in zip(self.kernels, self.convs):
            x = torch.cat([first.expand(batch, k - 1), shape], dim=1)[:, None, :]    # causal, replicate-padded
            h = torch.relu(conv(x))                                                  # (B, C, T): window ending at t
            h = h.masked_fill(~valid[:, None, :], float('-inf'))
            feats.append(h.max(dim=2).values)
        progress = (lengths.float() / total.float())[:, None]
        if self.arch_model == 'lstm':
            if tokens.shape[1]:
                arch = self.lstm(self.token(tokens) + self.position[None, :tokens.shape[1]])[0][:, -1]
                arch = torch.where(has_arch[:, None], arch, self.no_arch.expand(batch, -1))
            else:
                arch = self.no_arch.expand(batch, -1)
            g = torch.zeros(batch)
        else:
            arch = has_arch.float()[:, None]
            g = self.token_weight(tokens).sum(dim=(1, 2)) * has_arch.float() if tokens.shape[1] else torch.zeros(batch)
        out = self.head(torch.cat(feats + [last, progress, arch, task_vec], dim=1))
        # a free part, a part monotone in the current value and the architecture's additive score,
        # their weights set by the context
        softplus = nn.functional.softplus
        return out[:, 0] + softplus(out[:, 1]) * last[:, 0] + softplus(out[:, 2]) * g


def _pad(curves: Sequence[Sequence[float]]) -> Tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in curves)
    out = torch.zeros(len(curves), width)
    for i, c in enumerate(curves):
        out[i, :len(c)] = torch.as_tensor(c, dtype=torch.float32)
        out[i, len(c):] = float(c[-1])
    return out, torch.tensor([len(c) for c in curves])


def pairwise_loss(f_i: torch.Tensor, f_j: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: cross-entropy of sigmoid(f_i - f_j) against p_ij."""
    return nn.functional.binary_cross_entropy_with_logits(f_i - f_j, target)


class LCRankNetRanker:
    """A trained :class:`LCRankNet` with its vocabulary and task names; fit, score, save, load."""

    def __init__(self, tasks: Sequence[str], vocab: ArchVocab, config: Optional[dict] = None):
        self.tasks = list(tasks)
        self.vocab = vocab
        self.config = dict(config or {})
        self.net = LCRankNet(len(self.tasks), len(vocab.tokens), len(vocab.labels),
                             **{k: v for k, v in self.config.items() if k in _NET_ARGS})
        self.history: List[float] = []

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, data: TaskData, steps: int = 2000, batch_size: int = 128, lr: float = 3e-3,
            arch_dropout: float = 0.5, seed: int = 0, log_every: int = 0, **net_args) -> 'LCRankNetRanker':
        """Train on ``{task: (samples, curves)}`` (an :class:`~nni_nasext.assessors.lc_database.LCDatabase`'s
        :meth:`curves` per task). Each step draws one task, ``batch_size`` pairs of its curves, an
        independent truncation length for each side, and takes an Adam step on Eq. 2."""
        data = {t: (s, np.asarray(c, float)) for t, (s, c) in data.items() if len(s) >= 2}
        if not data:
            raise ValueError('LCRankNet needs at least one task with two or more curves')
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        vocab = ArchVocab.from_samples([s for samples, _ in data.values() for s in samples])
        ranker = cls(sorted(data), vocab, {**net_args, 'steps': steps, 'batch_size': batch_size, 'lr': lr,
                                           'arch_dropout': arch_dropout, 'seed': seed})
        tensors = {t: (torch.tensor([vocab.encode(s) for s in samples], dtype=torch.long).reshape(len(samples), -1),
                       torch.as_tensor(curves, dtype=torch.float32))
                   for t, (samples, curves) in data.items()}
        opt = torch.optim.Adam(ranker.net.parameters(), lr=lr)
        ranker.net.train()
        running = None
        for step in range(steps):
            task = ranker.tasks[rng.integers(len(ranker.tasks))]
            loss = ranker._pair_loss(task, *tensors[task], rng, batch_size, arch_dropout)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            ranker.history.append(loss.item())
            if log_every and (step + 1) % log_every == 0:
                _logger.info('LCRankNet step %d/%d: loss %.4f', step + 1, steps, running)
        ranker.net.eval()
        return ranker

    def _pair_loss(self, task, tokens, curves, rng, batch_size, arch_dropout, task_vec=None):
        n, width = curves.shape
        i = torch.as_tensor(rng.integers(n, size=batch_size))
        j = torch.as_tensor((i.numpy() + rng.integers(1, n, size=batch_size)) % n)   # j != i
        lengths = rng.integers(1, width + 1, size=(2, batch_size))
        # 0: independent lengths, 1: the same length, 2: j complete, 3: j is i's own complete curve
        mode = rng.integers(4, size=batch_size)
        lengths[1] = np.where(mode == 1, lengths[0], np.where(mode >= 2, width, lengths[1]))
        j = torch.where(torch.as_tensor(mode == 3), i, j)
        lengths = torch.as_tensor(lengths)
        finals = curves[:, -1]
        target = 0.5 + 0.5 * torch.sign(finals[i] - finals[j])
        has = rng.random((2, batch_size)) >= arch_dropout
        has[1] = np.where(mode == 3, has[0], has[1])
        has = torch.as_tensor(has)
        if task_vec is None:
            task_vec = self.net.task(torch.full((batch_size,), self.tasks.index(task), dtype=torch.long))
        else:
            task_vec = task_vec.expand(batch_size, -1)
        total = torch.full((batch_size,), width)
        scores = [self.net(curves[idx], lengths[k], total, tokens[idx], has[k], task_vec)
                  for k, idx in enumerate((i, j))]
        return pairwise_loss(scores[0], scores[1], target)

    def fit_task_embedding(self, task: str, samples: Sequence[Optional[dict]], curves: Sequence[Sequence[float]],
                           steps: int = 60, lr: float = 0.05, prior: float = 0.1, batch_size: int = 128,
                           seed: int = 0) -> torch.Tensor:
        """An embedding for a task unseen in training, fitted on its complete curves (same length)
        with the network frozen: Eq. 2 over random pairs and truncations + ``prior * |e - mean|^2``.
        Pass it to :meth:`score` / :meth:`prob_better` as ``task_vec``."""
        if len(curves) < 2:
            raise ValueError('fitting a task embedding needs two or more complete curves')
        rng = np.random.default_rng(seed)
        tokens = torch.tensor([self.vocab.encode(s) for s in samples], dtype=torch.long).reshape(len(samples), -1)
        arch_known = [s is not None for s in samples]
        curves_t = torch.as_tensor(np.asarray(curves, float), dtype=torch.float32)
        mean = self.mean_embedding()
        emb = mean.clone().requires_grad_(True)
        opt = torch.optim.Adam([emb], lr=lr)
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(steps):
                loss = self._pair_loss(task, tokens, curves_t, rng, batch_size, 0.0 if all(arch_known) else 1.0,
                                       task_vec=emb[None])
                loss = loss + prior * ((emb - mean) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)
        return emb.detach()

    # ------------------------------------------------------------------ scoring
    def mean_embedding(self) -> torch.Tensor:
        return self.net.task.weight.detach().mean(dim=0)

    def embedding(self, task: Optional[str]) -> torch.Tensor:
        """The learned embedding of a training task; the mean embedding for any other task."""
        if task in self.tasks:
            return self.net.task.weight.detach()[self.tasks.index(task)]
        return self.mean_embedding()

    @torch.no_grad()
    def score(self, curves: Sequence[Sequence[float]], samples: Sequence[Optional[dict]], task: Optional[str],
              total: int, task_vec: Optional[torch.Tensor] = None) -> np.ndarray:
        """``f`` of (partial) curves of a task whose full curves have ``total`` epochs
        (``task_vec`` overrides the task's embedding)."""
        self.net.eval()
        padded, lengths = _pad(curves)
        tokens = torch.tensor([self.vocab.encode(s) for s in samples], dtype=torch.long).reshape(len(samples), -1)
        has = torch.tensor([s is not None for s in samples])
        task_vec = (self.embedding(task) if task_vec is None else task_vec)[None].expand(len(curves), -1)
        return self.net(padded, lengths, torch.full((len(curves),), int(total)), tokens, has, task_vec).numpy()

    def prob_better(self, curve: Sequence[float], sample: Optional[dict], reference: Sequence[float],
                    reference_sample: Optional[dict], task: Optional[str], total: int,
                    task_vec: Optional[torch.Tensor] = None) -> float:
        """``p(curve ends better than reference)`` = sigmoid(f(curve) - f(reference))."""
        f = self.score([curve, reference], [sample, reference_sample], task, total, task_vec)
        return float(1.0 / (1.0 + math.exp(-(float(f[0]) - float(f[1])))))

    # ------------------------------------------------------------------ persistence
    def save(self, path: Union[str, Path]) -> None:
        torch.save({'format': 'nasext-lcranknet-1', 'tasks': self.tasks, 'vocab': self.vocab.state(),
                    'config': self.config, 'state': self.net.state_dict()}, str(path))

    @classmethod
    def load(cls, path: Union[str, Path]) -> 'LCRankNetRanker':
        blob = torch.load(str(path), map_location='cpu', weights_only=False)
        if not isinstance(blob, dict) or blob.get('format') != 'nasext-lcranknet-1':
            raise ValueError(f'{path} is not an LCRankNet model file (saved by LCRankNetRanker.save)')
        ranker = cls(blob['tasks'], ArchVocab(**blob['vocab']), blob['config'])
        ranker.net.load_state_dict(blob['state'])
        ranker.net.eval()
        return ranker


_NET_ARGS = ('arch_model', 'conv_channels', 'kernels', 'arch_dim', 'arch_hidden', 'task_dim', 'hidden')

_RESULTS = Path(__file__).resolve().parents[2] / 'experiments' / 'results'
#: used when the assessor gets neither ``model_path`` nor ``database`` (nnictl without classArgs), in a
#: source checkout: the model that ``experiments/bench_early_termination.py`` saves (all tasks), else the
#: database of ``experiments/build_lc_database.py`` to train on
DEFAULT_MODEL = _RESULTS / 'lcranknet_model.pt'
DEFAULT_DATABASE = _RESULTS / 'lc_database.jsonl'


def _nni_trial_sample(trial_id: str) -> Optional[dict]:
    """The parameters of a trial of the running nnictl experiment, read from its sqlite database
    (the dispatcher runs with ``NNI_LOG_DIRECTORY=<experiment dir>/log``); None when unavailable."""
    log_dir = os.environ.get('NNI_LOG_DIRECTORY')
    if not log_dir:
        return None
    db = Path(log_dir).parent / 'db' / 'nni.sqlite'
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=5)
        try:
            rows = con.execute('SELECT data FROM TrialJobEvent WHERE trialJobId=? AND data IS NOT NULL '
                               'ORDER BY timestamp', (trial_id,)).fetchall()
        finally:
            con.close()
        for (data,) in rows:
            hp = json.loads(data)
            if isinstance(hp, dict) and isinstance(hp.get('parameters'), dict):
                return hp['parameters']
    except (sqlite3.Error, ValueError) as err:
        _logger.debug('no parameters for trial %s: %s', trial_id, err)
    return None


class LCRankNetAssessor(Assessor):
    """Stop a trial whose learning curve LCRankNet ranks below the best completed trial's.

    Parameters
    ----------
    model_path
        A model saved by :meth:`LCRankNetRanker.save`; or None to train one from ``database``.
    database
        A learning-curve database (:class:`~nni_nasext.assessors.lc_database.LCDatabase` or its path) to
        train on when there is no ``model_path`` (all its tasks; ``train_steps`` Adam steps).
        With neither: :data:`DEFAULT_MODEL`, else :data:`DEFAULT_DATABASE` (in a source checkout).
    task
        This experiment's task. A task of the model uses its learned embedding; any other name
        (or None) is an unseen task: mean embedding, fitted once ``adapt_min_trials`` completed
        (and nothing is stopped before, see ``min_completed``).
    threshold
        Stop when ``p(final > best final) < threshold`` (paper: 0.45).
    start_step
        Assess only from this many intermediate results on.
    epoch_num
        Intermediate results of a complete trial (default: the training curves' length).
    adapt_embedding, adapt_min_trials
        Fit an unseen task's embedding on its completed trials, first at ``adapt_min_trials``
        completed, then whenever their number has grown by half (3, 5, 8, 12, ...).
    min_completed
        Stop nothing before this many trials completed. Default: ``adapt_min_trials`` for an
        unseen task (without a few complete curves of the new task the model's calibration is
        untested, and a model that stops every trial would never see one), 1 for a known task.
    """

    def __init__(self, model_path: Optional[str] = None, database: Any = None, task: Optional[str] = None,
                 threshold: float = 0.45, start_step: int = 3, epoch_num: Optional[int] = None,
                 optimize_mode: str = 'maximize', adapt_embedding: bool = True, adapt_min_trials: int = 3,
                 min_completed: Optional[int] = None, train_steps: int = 2000, seed: int = 0,
                 ranker: Optional[LCRankNetRanker] = None):
        if optimize_mode != 'maximize':
            raise ValueError("LCRankNetAssessor ranks accuracy-like curves: optimize_mode must be 'maximize'")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f'threshold must be a probability in (0, 1), got {threshold!r}')
        if int(start_step) != start_step or start_step < 1:
            raise ValueError(f'start_step must be a positive integer, got {start_step!r}')
        if ranker is None:
            if model_path is None and database is None:
                if DEFAULT_MODEL.is_file():
                    model_path = str(DEFAULT_MODEL)
                elif DEFAULT_DATABASE.is_file():
                    database = str(DEFAULT_DATABASE)
                else:
                    raise ValueError('LCRankNetAssessor needs model_path (a model saved by LCRankNetRanker.save) '
                                     'or database (a learning-curve database to train on); neither '
                                     f'{DEFAULT_MODEL} nor {DEFAULT_DATABASE} exists')
            if model_path is not None:
                ranker = LCRankNetRanker.load(model_path)
            else:
                from nni_nasext.assessors.lc_database import LCDatabase
                db = database if isinstance(database, LCDatabase) else LCDatabase(database)
                ranker = LCRankNetRanker.fit({t: db.curves(t) for t in db.tasks()}, steps=train_steps, seed=seed)
        self.ranker, self.task = ranker, task
        self.threshold, self.start_step = float(threshold), int(start_step)
        self.epoch_num = int(epoch_num) if epoch_num else None
        self.adapt_embedding, self.adapt_min_trials, self.seed = adapt_embedding, int(adapt_min_trials), seed
        self._running: Dict[str, List[float]] = {}
        self._samples: Dict[str, Optional[dict]] = {}
        self._completed: List[Tuple[List[float], Optional[dict]]] = []
        self.best: Optional[Tuple[List[float], Optional[dict]]] = None
        self.last_probability: Dict[str, float] = {}
        self.task_vec: Optional[torch.Tensor] = None   # fitted embedding of an unseen task
        self._next_fit = self.adapt_min_trials
        if min_completed is None:
            min_completed = 1 if task in ranker.tasks else self.adapt_min_trials
        self.min_completed = max(int(min_completed), 1)

    def set_sample(self, trial_job_id: str, sample: Optional[dict]) -> None:
        """Tell the architecture of a trial (offline replay); nnictl trials are looked up."""
        self._samples[trial_job_id] = sample

    def _sample(self, trial_job_id: str) -> Optional[dict]:
        if trial_job_id not in self._samples:
            self._samples[trial_job_id] = sample = _nni_trial_sample(trial_job_id)
            _logger.info('LCRankNetAssessor: trial %s architecture %s', trial_job_id,
                         'read from nni.sqlite' if sample is not None else 'unavailable (scored without it)')
        return self._samples[trial_job_id]

    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        try:
            values = [v for v in (scalar(x) for x in trial_history) if math.isfinite(v)]
            self._running[trial_job_id] = values
            step = len(values)
            total = self.epoch_num or (len(self.best[0]) if self.best else 0)
            if (len(self._completed) < self.min_completed or step < self.start_step or not values
                    or step >= total):
                return AssessResult.Good
            prob = self.ranker.prob_better(values, self._sample(trial_job_id), self.best[0], self.best[1],
                                           self.task, total, self.task_vec)
            self.last_probability[trial_job_id] = prob
            return AssessResult.Bad if prob < self.threshold else AssessResult.Good
        except Exception as err:  # an assessor error would end the experiment: keep the trial instead
            _logger.warning('LCRankNetAssessor could not assess trial %s (%s); answering Good.', trial_job_id, err)
            return AssessResult.Good

    def trial_end(self, trial_job_id: str, success: bool) -> None:
        values = self._running.pop(trial_job_id, None)
        if not success or not values:
            return
        sample = self._sample(trial_job_id)
        if self.best is None or values[-1] > self.best[0][-1]:
            self.best = (values, sample)
        self._completed.append((values, sample))
        if self.adapt_embedding and self.task not in self.ranker.tasks:
            full = [(c, s) for c, s in self._completed if len(c) == len(self.best[0])]
            if len(full) >= self._next_fit:
                self._next_fit = max(len(full) + 1, math.ceil(1.5 * len(full)))
                try:
                    self.task_vec = self.ranker.fit_task_embedding(self.task, [s for _, s in full],
                                                                   [c for c, _ in full], seed=self.seed + len(full))
                except Exception as err:
                    _logger.warning('LCRankNetAssessor: could not fit the task embedding (%s)', err)

    def load_checkpoint(self) -> None:
        pass

    def save_checkpoint(self) -> None:
        pass
