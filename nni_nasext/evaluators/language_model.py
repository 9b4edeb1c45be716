"""Train-and-validate evaluator for character-level language modelling, built on PyTorch Lightning.

:class:`LanguageModel` is an ``nni.nas.evaluator.Evaluator`` like
:class:`~nni_nasext.evaluators.classification.ImageClassification` (fresh Trainer per model,
weights re-initialised from ``seed``, quiet, no files written, NaN loss -> :class:`TrialFailed`,
``with_budget(epochs)``), for the recurrent-cell space of
:mod:`nni_nasext.search_spaces.rnn_cells` (ENAS, Pham et al. ICML 2018; DARTS, Liu et al.
ICLR 2019, whose language-model recipe, truncated BPTT with the hidden state carried and
detached between segments plus gradient-norm clipping, it follows at a small scale).

Data: the corpus (``'tinyshakespeare'`` -> ``text/tinyshakespeare.txt`` under ``NASEXT_DATA``,
Karpathy's char-rnn corpus, 1.1M characters, 65 symbols) is read as characters; the
vocabulary is the sorted set of characters of the whole text (:attr:`LanguageModel.vocab_size`,
which the space must be built with). The first 90% is the training stream, the last 10% the
validation stream; each is cut into ``batch_size`` contiguous rows, read left to right in
windows of ``seq_len`` characters (the target is the next character).

Metric (decided): the evaluator reports the **validation perplexity** ``exp(mean cross
entropy per character)``, lower is better, after every epoch
(``nni.report_intermediate_result``) and at the end (``nni.report_final_result``); it is also
what :meth:`LanguageModel.evaluate` returns. Under ``nnictl`` set the tuner's
``optimize_mode: minimize`` (our tuners negate the metric then). Where the searcher can only
maximise (``NasExperiment`` with ``nni_nasext.adapters.SearcherStrategy``), build the evaluator
with ``metric='neg_perplexity'``: everything reported is then ``-perplexity``.
:attr:`LanguageModel.optimize_mode` says which direction the reported number wants.

The network protocol: ``model(tokens, hidden)`` with ``tokens`` ``(batch, time)`` ids and
``hidden`` ``None`` at the start of a stream, returning ``(logits (batch, time, vocab),
new_hidden)``; ``new_hidden`` may be a tensor or a tuple/list of tensors (an LSTM's ``(h, c)``).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import nni
import pytorch_lightning as pl

from nni_nasext.data_paths import find_data
from nni_nasext.evaluators.classification import (ArgumentsEvaluator, TrialFailed, interrupt_stays_interrupt,
                                                  quiet_lightning, reset_all_parameters)
from nni_nasext.fidelity import split_budget

__all__ = ['LanguageModel', 'CORPORA', 'TrialFailed', 'load_corpus']

#: Corpus name -> path relative to a data root (``NASEXT_DATA``).
CORPORA: Dict[str, str] = {'tinyshakespeare': 'text/tinyshakespeare.txt'}
_METRICS = ('perplexity', 'neg_perplexity')


class Corpus:
    """A character corpus: vocabulary and the 90/10 train/validation id streams."""

    def __init__(self, text: str, val_fraction: float = 0.1):
        if len(text) < 2:
            raise ValueError('The corpus is empty')
        self.chars: List[str] = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = torch.tensor([self.index[c] for c in text], dtype=torch.long)
        split = int(len(ids) * (1 - val_fraction))
        self.train, self.val = ids[:split], ids[split:]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)


def load_corpus(name: str, data_root: Optional[str] = None) -> Corpus:
    """Read a corpus of :data:`CORPORA`; :class:`~nni_nasext.data_paths.DataNotFoundError` when absent."""
    if name not in CORPORA:
        raise ValueError(f'Unknown corpus {name!r}; expected one of {sorted(CORPORA)}')
    extra = [Path(data_root) / CORPORA[name]] if data_root else []
    path = find_data(CORPORA[name], what=f'Text corpus {name!r} ({CORPORA[name]})', extra=extra,
                     hint='tinyshakespeare is the char-rnn corpus (input.txt of karpathy/char-rnn), '
                          f'saved as <data root>/{CORPORA[name]}.')
    return Corpus(path.read_text(encoding='utf-8'))


class _Windows(Dataset):
    """A stream cut into ``batch_size`` rows; item ``k`` is the ``k``-th ``seq_len`` window (whole batch)."""

    def __init__(self, stream: torch.Tensor, batch_size: int, seq_len: int):
        cols = len(stream) // batch_size
        if cols < 2:
            raise ValueError(f'The stream ({len(stream)} characters) is too short for batch_size={batch_size}')
        self.rows = stream[:cols * batch_size].view(batch_size, cols)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return math.ceil((self.rows.size(1) - 1) / self.seq_len)

    def __getitem__(self, k: int):
        start = k * self.seq_len
        end = min(start + self.seq_len, self.rows.size(1) - 1)
        return self.rows[:, start:end], self.rows[:, start + 1:end + 1]


def _detach(hidden):
    if hidden is None:
        return None
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)(_detach(h) for h in hidden)


class _LMModule(pl.LightningModule):
    def __init__(self, model: nn.Module, hp: 'LanguageModel'):
        super().__init__()
        self.model, self.hp = model, hp
        self.val_perplexities: List[float] = []
        self._hidden = None
        self._loss_sum, self._count = 0., 0

    def _step(self, x, y):
        logits, hidden = self.model(x, _detach(self._hidden))  # truncated BPTT: no gradient into the past
        if logits.shape[-1] != self.hp.vocab_size:
            raise ValueError(f'The model predicts {logits.shape[-1]} symbols but corpus {self.hp.corpus!r} has '
                             f'{self.hp.vocab_size}; build the space with vocab_size={self.hp.vocab_size}.')
        self._hidden = _detach(hidden)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))

    def on_train_epoch_start(self):
        self._hidden = None

    def training_step(self, batch, batch_idx):
        loss = self._step(*batch)
        if not torch.isfinite(loss):
            raise TrialFailed(f'Training loss is {loss.item()} at epoch {self.current_epoch + 1}, '
                              f'step {batch_idx + 1} (global step {self.global_step + 1}); '
                              'the model cannot be scored.')
        return loss

    def on_validation_epoch_start(self):
        self._train_hidden, self._hidden = self._hidden, None
        self._loss_sum, self._count = 0., 0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._loss_sum += self._step(x, y).item() * y.numel()
        self._count += y.numel()

    def on_validation_epoch_end(self):
        self._hidden = self._train_hidden
        if self.trainer.sanity_checking:
            return
        mean = self._loss_sum / max(self._count, 1)
        if not math.isfinite(mean):
            raise TrialFailed(f'Validation loss is {mean} after epoch {self.current_epoch + 1}; '
                              'the model cannot be scored.')
        perplexity = math.exp(min(mean, 700.))  # float overflow past e**709
        self.val_perplexities.append(perplexity)
        nni.report_intermediate_result(self.hp._sign * perplexity)

    def configure_optimizers(self):
        hp = self.hp
        if hp.optimizer == 'sgd':
            opt = torch.optim.SGD(self.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(self.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.max_epochs)
        return {'optimizer': opt, 'lr_scheduler': sched}


class LanguageModel(ArgumentsEvaluator):
    """Train a language model on a character corpus and score its validation perplexity.

    Parameters
    ----------
    corpus
        A name of :data:`CORPORA` (``'tinyshakespeare'``), read from ``NASEXT_DATA``.
    seq_len
        Truncated-BPTT window: gradients flow through at most this many steps; the hidden
        state is carried (detached) from window to window along each of ``batch_size`` rows.
    batch_size, max_epochs, learning_rate, weight_decay
        Training recipe; the learning rate follows a cosine schedule over ``max_epochs``.
    optimizer
        ``'adam'`` (default, robust at short budgets) or ``'sgd'`` (plain, as DARTS trains).
    grad_clip
        Gradient-norm clipping (DARTS: 0.25 with SGD at lr 20; here 0.25 too, Adam at 3e-3).
    limit_train_batches, limit_val_batches
        At most this many windows (int) or this share (float) per epoch; ``None`` = all.
    metric
        ``'perplexity'`` (reported as is; minimise it) or ``'neg_perplexity'`` (reported negated,
        for searchers that maximise). See the module docstring.
    seed
        Seeds the weight initialisation (and dropout).
    data_root
        A directory searched for the corpus (``<data_root>/text/...``) after ``NASEXT_DATA``.
    accelerator
        Lightning's accelerator.
    reset_parameters
        Re-initialise the model's weights from ``seed`` before training.
    """

    def __init__(self, corpus: str = 'tinyshakespeare', *, seq_len: int = 64, batch_size: int = 32,
                 max_epochs: int = 1, limit_train_batches: Union[int, float, None] = 200,
                 limit_val_batches: Union[int, float, None] = None, learning_rate: float = 3e-3,
                 weight_decay: float = 0., optimizer: str = 'adam', grad_clip: float = 0.25,
                 metric: str = 'perplexity', seed: int = 0, data_root: Optional[str] = None,
                 accelerator: str = 'auto', reset_parameters: bool = True):
        if corpus not in CORPORA:
            raise ValueError(f'Unknown corpus {corpus!r}; expected one of {sorted(CORPORA)}')
        if optimizer not in ('sgd', 'adam'):
            raise ValueError(f"Unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")
        if metric not in _METRICS:
            raise ValueError(f'Unknown metric {metric!r}; expected one of {_METRICS}')
        if min(seq_len, batch_size, max_epochs) < 1:
            raise ValueError(f'seq_len, batch_size and max_epochs must be positive, got {seq_len}, '
                             f'{batch_size}, {max_epochs}')
        self._arguments = dict(
            corpus=corpus, seq_len=seq_len, batch_size=batch_size, max_epochs=max_epochs,
            limit_train_batches=limit_train_batches, limit_val_batches=limit_val_batches,
            learning_rate=learning_rate, weight_decay=weight_decay, optimizer=optimizer, grad_clip=grad_clip,
            metric=metric, seed=seed, data_root=data_root, accelerator=accelerator,
            reset_parameters=reset_parameters)
        vars(self).update(self._arguments)
        self._sign = 1. if metric == 'perplexity' else -1.
        self._corpus: Optional[Corpus] = None

    def extra_repr(self) -> str:
        return (f'{self.corpus!r}, seq_len={self.seq_len}, batch_size={self.batch_size}, '
                f'max_epochs={self.max_epochs}, metric={self.metric!r}, seed={self.seed}')

    @property
    def optimize_mode(self) -> str:
        """``'minimize'`` for ``metric='perplexity'``, ``'maximize'`` for ``'neg_perplexity'``."""
        return 'minimize' if self._sign > 0 else 'maximize'

    @property
    def data(self) -> Corpus:
        """The corpus, read on first use and kept (shared with :meth:`with_budget` copies)."""
        if self._corpus is None:
            self._corpus = load_corpus(self.corpus, self.data_root)
        return self._corpus

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters of the corpus: the space's ``vocab_size``."""
        return self.data.vocab_size

    def with_budget(self, budget) -> 'LanguageModel':
        """The same recipe trained for ``budget`` epochs (a positive whole number)."""
        epochs = int(round(float(budget)))
        if epochs < 1 or abs(float(budget) - epochs) > 1e-9:
            raise ValueError(f'LanguageModel budgets are whole numbers of epochs >= 1, got {budget!r}')
        other = type(self)(**{**self._arguments, 'max_epochs': epochs})
        other._corpus = self._corpus
        return other

    def _execute(self, model):
        _, budget = split_budget(model.sample) if model.sample is not None else (None, None)
        evaluator = self if budget is None else self.with_budget(budget)
        return evaluator.evaluate(model.executable_model())

    def dataloaders(self):
        data = self.data
        train = DataLoader(_Windows(data.train, self.batch_size, self.seq_len), batch_size=None, shuffle=False)
        val = DataLoader(_Windows(data.val, self.batch_size, self.seq_len), batch_size=None, shuffle=False)
        return train, val

    def evaluate(self, model: nn.Module) -> float:
        """Train ``model`` in place; return (and report) its final validation perplexity
        (negated when ``metric='neg_perplexity'``)."""
        declared = getattr(model, 'vocab_size', None)
        if declared is not None and declared != self.vocab_size:
            raise ValueError(f'The model was built for vocab_size={declared} but corpus {self.corpus!r} has '
                             f'{self.vocab_size} characters; build the space with '
                             f'vocab_size={self.vocab_size} (LanguageModel(...).vocab_size).')
        train_loader, val_loader = self.dataloaders()
        pl.seed_everything(self.seed, workers=True, verbose=False)
        if self.reset_parameters:
            reset_all_parameters(model)
        module = _LMModule(model, self)
        with quiet_lightning():
            trainer = pl.Trainer(
                max_epochs=self.max_epochs, accelerator=self.accelerator, devices=1,
                limit_train_batches=self.limit_train_batches, limit_val_batches=self.limit_val_batches,
                gradient_clip_val=self.grad_clip or None, num_sanity_val_steps=0,
                logger=False, enable_checkpointing=False, enable_model_summary=False,
                enable_progress_bar=sys.stdout.isatty(),
            )
            with interrupt_stays_interrupt():
                trainer.fit(module, train_loader, val_loader)
        if len(module.val_perplexities) != self.max_epochs:
            raise TrialFailed(f'Training stopped after {len(module.val_perplexities)} of {self.max_epochs} epochs')
        final = self._sign * module.val_perplexities[-1]
        nni.report_final_result(final)
        return final
