"""Train-and-validate evaluator for image classification, built on PyTorch Lightning (Fabric).

:class:`ImageClassification` is an ``nni.nas.evaluator.Evaluator``: ``NasExperiment`` (any
execution engine) and the ``nnictl`` trial code call :meth:`ImageClassification.evaluate` on
one concrete ``torch.nn.Module``. It trains the module with cross-entropy for
``max_epochs`` epochs (SGD with Nesterov momentum or Adam, cosine-annealed learning rate),
reports the validation accuracy after every epoch with ``nni.report_intermediate_result``
and the last one with ``nni.report_final_result``, and returns it (a float in ``[0, 1]``).

Choices that differ from NNI's own ``nni.nas.evaluator.pytorch.Classification``:

* every model trains under a fresh Lightning ``Fabric`` (accelerator, devices, DDP), in the
  epoch loop of Lightning's ``Trainer`` without its per-step hooks (NNI's evaluator reuses one
  ``Trainer`` and fails on the second model in the sequential engine with
  ``KeyError: 'val_acc'``); a one-shot search trains the same steps under a ``Trainer``;
* the datasets (:func:`nni_nasext.datasets.load_dataset`) are loaded once per evaluator
  instance, lazily, so the evaluator is cheap to build and to send to a trial;
* the model's weights are re-initialised from ``seed`` before training
  (``reset_parameters=True``), and the data order is seeded too, so the accuracy is a
  function of the architecture and the seed alone, whatever the global RNG did before;
* a NaN or infinite training loss fails the trial with :class:`TrialFailed` instead of
  reporting a number;
* nothing is written to disk (no logger, no checkpoints);
* Ctrl-C during training raises ``KeyboardInterrupt`` (Lightning's ``Trainer`` would
  ``sys.exit``).

Multi-fidelity: :meth:`ImageClassification.with_budget` gives the same evaluator at another
number of epochs; under ``NasExperiment`` a sample carrying ``nasext_budget``
(:mod:`nni_nasext.fidelity`) is trained for that many epochs.
"""
from __future__ import annotations

import dataclasses
import logging
import numbers
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import nni
import pytorch_lightning as pl
from nni.nas.evaluator import Evaluator

from nni_nasext.datasets import load_dataset
from nni_nasext.evaluators.sampling import EpochSampler
from nni_nasext.fidelity import split_budget

__all__ = ['ImageClassification', 'TrialFailed']

_OPTIMIZERS = ('sgd', 'adam')
_STRATEGIES = ('auto', 'ddp')


class TrialFailed(RuntimeError):
    """The model cannot be scored (e.g. its training loss became NaN); the trial fails."""


def _training_loss(logits: torch.Tensor, y: torch.Tensor, epoch: int, step: int, global_step: int) -> torch.Tensor:
    """Cross-entropy of one batch; a NaN or infinite loss fails the trial."""
    loss = F.cross_entropy(logits, y)
    if not torch.isfinite(loss):
        raise TrialFailed(f'Training loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} '
                          f'(global step {global_step + 1}); the model cannot be scored.')
    return loss


def _correct(logits: torch.Tensor, y: torch.Tensor) -> int:
    return int((logits.argmax(dim=1) == y).sum().item())


class _Classifier(pl.LightningModule):
    """Wraps one model: cross-entropy training, validation accuracy reported to NNI per epoch."""

    def __init__(self, model: nn.Module, hp: 'ImageClassification'):
        super().__init__()
        self.model, self.hp = model, hp
        self.val_accuracies: List[float] = []
        #: wall seconds of each epoch (training and validation), on this process
        self.epoch_seconds: List[float] = []
        self._correct = self._seen = 0
        self._epoch_start = None

    def on_train_epoch_start(self):
        self._epoch_start = time.perf_counter()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return _training_loss(self(x), y, self.current_epoch, batch_idx, self.global_step)

    def on_validation_epoch_start(self):
        self._correct = self._seen = 0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        correct = _correct(self(x), y)
        self._correct += correct
        self._seen += len(y)
        trainer = self._trainer   # (None when a one-shot method calls this step without a Trainer)
        self.log('val_acc', correct / max(len(y), 1), batch_size=len(y),
                 sync_dist=trainer is not None and trainer.world_size > 1)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        correct, seen = self._correct, self._seen
        if self.trainer.world_size > 1:   # DDP: each process validated its shard; count them all
            counts = self.trainer.strategy.reduce(torch.tensor([correct, seen], dtype=torch.float64),
                                                  reduce_op='sum')
            correct, seen = (float(v) for v in counts.tolist())
        accuracy = correct / max(seen, 1)
        self.val_accuracies.append(accuracy)
        if self._epoch_start is not None:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        if self.trainer.is_global_zero:   # one report per epoch, whatever the number of processes
            nni.report_intermediate_result(accuracy)

    def configure_optimizers(self):
        hp = self.hp
        if hp.optimizer == 'sgd':
            opt = torch.optim.SGD(self.parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                  weight_decay=hp.weight_decay, nesterov=hp.momentum > 0)
        else:
            opt = torch.optim.Adam(self.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.max_epochs)
        return {'optimizer': opt, 'lr_scheduler': sched}


def _reshaped(ds, size: Optional[int], channels: Optional[int]):
    """``ds`` (an :class:`~nni_nasext.datasets.ImageDataset`) resized to ``size`` and with
    ``channels`` channels (grey repeated, or colour averaged)."""
    from nni_nasext.datasets import ImageDataset
    x = ds.images.float() * ds.scale
    if size is not None:
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
    if channels is not None and channels != x.shape[1]:
        x = x.mean(dim=1, keepdim=True) if channels == 1 else x[:, :1].repeat(1, channels, 1, 1)
    return ImageDataset(x, ds.labels, 1.0)


def reset_all_parameters(model: nn.Module) -> None:
    """Re-initialise every submodule that has ``reset_parameters`` (a fresh start for a trained model)."""
    for module in model.modules():
        if hasattr(module, 'reset_parameters') and callable(module.reset_parameters):
            module.reset_parameters()


@contextmanager
def quiet_lightning():
    """Silence Lightning's per-Trainer banners ("GPU available ...") and hints that would repeat for
    every model (``catch_warnings`` resets Python's once-per-location memory each time)."""
    loggers = [logging.getLogger(n) for n in ('pytorch_lightning.utilities.rank_zero',
                                             'pytorch_lightning.accelerators.cuda',
                                             'lightning.pytorch.utilities.rank_zero')]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*does not have many workers.*')
        warnings.filterwarnings('ignore', message='.*is smaller than the logging interval.*')
        # Lightning 2.6 on torch 2.14: a deprecation inside Lightning, once per fit
        warnings.filterwarnings('ignore', message=r'.*isinstance\(treespec, LeafSpec\).*')
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextmanager
def interrupt_stays_interrupt():
    """Lightning answers Ctrl-C with ``sys.exit(1)`` and ignores SIGINT from then on; NNI's
    sequential engine would count that as one failed model and go on, deaf to Ctrl-C.
    Give the caller a ``KeyboardInterrupt`` and its SIGINT handler back instead."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SystemExit as exc:
        raise KeyboardInterrupt('training was interrupted') from exc
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


class ArgumentsEvaluator(Evaluator):
    """An evaluator that NNI serialises (``nni.dump``, with the model it sends to a trial) as
    its constructor arguments only, kept in ``self._arguments``."""

    def _dump(self) -> dict:
        return dict(self._arguments)

    @classmethod
    def _load(cls, **arguments):
        return cls(**arguments)


class ImageClassification(ArgumentsEvaluator):
    """Train a model on an image-classification dataset and score its validation accuracy.

    Parameters
    ----------
    dataset
        A name of :data:`nni_nasext.datasets.DATASETS` (``digits`` needs no data files).
    max_epochs, batch_size, learning_rate, weight_decay, momentum
        Training recipe; the learning rate follows a cosine schedule over ``max_epochs``.
    optimizer
        ``'sgd'`` (Nesterov momentum) or ``'adam'``.
    num_workers
        DataLoader worker processes (0: load in the main process).
    limit_train_batches, limit_val_batches
        Train (validate) on at most this many batches per epoch (an int), or this share (a float in (0, 1]).
    limit
        Keep at most this many training examples (see :func:`~nni_nasext.datasets.load_dataset`).
    seed
        Seeds the weight initialisation, the data order and the train/val split.
    image_size
        Resize the images to ``image_size`` x ``image_size`` (bilinear; default: as they are).
    in_channels
        Give the images this many channels: 3 repeats a grey image, 1 averages a colour one
        (default: as they are).
    data_root
        A directory searched for the dataset before ``NASEXT_DATA``.
    accelerator
        Lightning's accelerator; ``'auto'`` trains on a GPU when there is one.
    devices, strategy
        Lightning's: ``devices=2, strategy='ddp'`` trains one model with two processes
        (DistributedDataParallel: gloo on CPU, NCCL on GPUs). ``batch_size`` stays the global
        batch: each process takes its share of the batches one process would train on (the same
        global batches, :class:`~nni_nasext.evaluators.sampling.EpochSampler`); each process
        validates its share of the validation split and the counts are summed (when the split does
        not divide evenly, the last share repeats an example, as torch's ``DistributedSampler``);
        only the first process reports to NNI. Under ``nnictl`` the trial
        program hands its sample to the processes Lightning starts (:mod:`nni_nasext.trial_code`).
    sync_batchnorm
        With ``devices > 1``, batch norm normalises with the statistics of the global batch, as
        one process would (default): torch's ``SyncBatchNorm`` on GPUs, our
        :mod:`~nni_nasext.evaluators.sync_batchnorm` on CPU (torch's has no CPU version). It costs
        an all-reduce per batch-norm layer in each pass; ``False`` normalises each process's share
        on its own.
    reset_parameters
        Re-initialise the model's weights from ``seed`` before training.
    """

    def __init__(self, dataset: str = 'digits', *, max_epochs: int = 3, batch_size: int = 64,
                 learning_rate: float = 0.05, weight_decay: float = 5e-4, momentum: float = 0.9,
                 optimizer: str = 'sgd', num_workers: int = 0, limit_train_batches: Union[int, float, None] = None,
                 limit_val_batches: Union[int, float, None] = None,
                 limit: Optional[int] = None, seed: int = 0, data_root: Optional[str] = None,
                 accelerator: str = 'auto', reset_parameters: bool = True, image_size: Optional[int] = None,
                 in_channels: Optional[int] = None, devices: int = 1, strategy: str = 'auto',
                 sync_batchnorm: bool = True):
        from nni_nasext.datasets import dataset_key
        dataset_key(dataset)  # an unknown dataset is an error here, not when training starts
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f'Unknown optimizer {optimizer!r}; expected one of {_OPTIMIZERS}')
        for name, value in (('max_epochs', max_epochs), ('batch_size', batch_size)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ValueError(f'{name} must be a whole number, got {value!r}')
        if max_epochs < 1 or batch_size < 1:
            raise ValueError(f'max_epochs and batch_size must be positive, got {max_epochs}, {batch_size}')
        for name, value, ok in (('learning_rate', learning_rate, lambda v: v > 0),
                                ('weight_decay', weight_decay, lambda v: v >= 0),
                                ('momentum', momentum, lambda v: 0 <= v < 1)):
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not ok(value):
                raise ValueError(f'{name} out of range: {value!r} (learning_rate > 0, weight_decay >= 0, '
                                 '0 <= momentum < 1)')
        if image_size is not None and int(image_size) < 1:
            raise ValueError(f'image_size must be positive, got {image_size}')
        if in_channels not in (None, 1, 3):
            raise ValueError(f'in_channels must be 1 or 3, got {in_channels}')
        if not isinstance(devices, numbers.Integral) or isinstance(devices, bool) or devices < 1:
            raise ValueError(f'devices must be a whole number >= 1, got {devices!r}')
        if strategy not in _STRATEGIES:
            raise ValueError(f'Unknown strategy {strategy!r}; expected one of {_STRATEGIES}')
        _check_limit(limit_train_batches, 'limit_train_batches')
        _check_limit(limit_val_batches, 'limit_val_batches')
        if devices > 1 and strategy == 'auto':
            strategy = 'ddp'   # Lightning's 'auto' would pick a spawn-based DDP on CPU
        if devices > 1 and batch_size % devices:
            raise ValueError(f'batch_size {batch_size} is the global batch: it must divide among devices={devices}')
        self._arguments = dict(
            dataset=dataset, max_epochs=max_epochs, batch_size=batch_size, learning_rate=learning_rate,
            weight_decay=weight_decay, momentum=momentum, optimizer=optimizer, num_workers=num_workers,
            limit_train_batches=limit_train_batches, limit_val_batches=limit_val_batches, limit=limit, seed=seed,
            data_root=data_root,
            accelerator=accelerator, reset_parameters=reset_parameters, image_size=image_size,
            in_channels=in_channels, devices=devices, strategy=strategy, sync_batchnorm=bool(sync_batchnorm))
        vars(self).update(self._arguments)  # self.dataset, self.max_epochs, ...
        self._loaders = None
        self.info = None
        self.epoch_seconds: List[float] = []

    def extra_repr(self) -> str:
        return (f'{self.dataset!r}, max_epochs={self.max_epochs}, batch_size={self.batch_size}, '
                f'optimizer={self.optimizer!r}, learning_rate={self.learning_rate}, seed={self.seed}')

    def with_budget(self, budget) -> 'ImageClassification':
        """The same recipe trained for ``budget`` epochs (a positive whole number); the data
        loaders already built are shared, not reloaded."""
        epochs = int(round(float(budget)))
        if epochs < 1 or abs(float(budget) - epochs) > 1e-9:
            raise ValueError(f'ImageClassification budgets are whole numbers of epochs >= 1, got {budget!r}')
        other = type(self)(**{**self._arguments, 'max_epochs': epochs})
        other._loaders, other.info = self._loaders, self.info
        if getattr(self, '_generator', None) is not None:   # loaders built elsewhere with a generator
            other._generator = self._generator
        return other

    def _execute(self, model):
        _, budget = split_budget(model.sample) if model.sample is not None else (None, None)
        evaluator = self if budget is None else self.with_budget(budget)
        return evaluator.evaluate(model.executable_model())

    def dataloaders(self):
        """``(train_loader, val_loader)``, built on first use and kept for every later model."""
        if self._loaders is None:
            train_ds, val_ds, self.info = load_dataset(self.dataset, root=self.data_root, split_seed=self.seed,
                                                       limit=self.limit)
            if self.image_size is not None or self.in_channels is not None:
                train_ds, val_ds = (_reshaped(ds, self.image_size, self.in_channels) for ds in (train_ds, val_ds))
                self.info = dataclasses.replace(self.info, in_channels=self.in_channels or self.info.in_channels,
                                                image_size=self.image_size or self.info.image_size)
            persistent = self.num_workers > 0
            per_process = self.batch_size // self.devices   # batch_size is the global batch
            # the order is a function of the seed and the epoch: every model sees the same batches, and
            # under DDP each process takes its share of the batches one process would see
            train = DataLoader(train_ds, batch_size=per_process,
                               sampler=EpochSampler(len(train_ds), seed=self.seed, auto_shard=True),
                               num_workers=self.num_workers, persistent_workers=persistent)
            # in order; under DDP each process validates every devices-th example (the counts are summed)
            val = DataLoader(val_ds, batch_size=max(per_process, 256),
                             sampler=EpochSampler(len(val_ds), shuffle=False, auto_shard=True),
                             num_workers=self.num_workers, persistent_workers=persistent)
            self._loaders = (train, val)
        if getattr(self, '_generator', None) is not None:   # loaders built elsewhere: re-seed their shuffle
            self._generator.manual_seed(self.seed)
        sampler = getattr(self._loaders[0], 'sampler', None)
        if isinstance(sampler, EpochSampler):   # a model trained after another starts from epoch 0's order
            sampler.set_epoch(0)
        return self._loaders

    def oneshot_recipe(self, model: nn.Module):
        """The recipe a one-shot search trains a supernet with (:mod:`nni_nasext.strategies.oneshot`):
        this evaluator's module, data and epochs; architectures are scored by ``val_acc``. With
        ``devices > 1`` the search is data parallel as the trials are (``batch_size`` the global
        batch; batch norm per process on CPU)."""
        from nni_nasext.evaluators.recipe import Recipe
        train_loader, val_loader = self.dataloaders()
        # our samplers give each process its share themselves (Lightning's would shard them again)
        kwargs = dict(max_epochs=self.max_epochs, accelerator=self.accelerator, devices=self.devices,
                      use_distributed_sampler=False)
        if self.devices > 1:
            kwargs['strategy'] = self.strategy
            kwargs.update(self._batchnorm_sync())   # the supernet keeps its modules
        for key in ('limit_train_batches', 'limit_val_batches'):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return Recipe(module=_Classifier(model, self), train=train_loader, val=val_loader, trainer_kwargs=kwargs,
                      metric='val_acc', mode='max', seed=self.seed, reset_parameters=self.reset_parameters)

    def _batchnorm_sync(self) -> dict:
        """The Trainer arguments that make a supernet's batch norm use the global batch under DDP:
        :class:`~nni_nasext.evaluators.layer_sync.GlobalBatchNormSync`, which keeps the modules
        the same objects (torch's ``SyncBatchNorm`` would replace them) and runs on any device."""
        if self.devices <= 1 or not self.sync_batchnorm:
            return {}
        from nni_nasext.evaluators.layer_sync import GlobalBatchNormSync
        return {'plugins': [GlobalBatchNormSync()]}

    def evaluate(self, model: nn.Module) -> float:
        """Train ``model`` in place and return its final validation accuracy (also reported to NNI).

        The model trains under Lightning Fabric (accelerator, devices, DDP) in the loop of
        :func:`_fit`; a one-shot search trains the same :class:`_Classifier` steps under Lightning's
        ``Trainer`` (:meth:`oneshot_recipe`)."""
        train_loader, val_loader = self.dataloaders()
        pl.seed_everything(self.seed, workers=True, verbose=False)
        if self.reset_parameters:
            reset_all_parameters(model)
        module = _Classifier(model, self)
        with quiet_lightning():
            is_global_zero = _fit(module, self, train_loader, val_loader)
        if len(module.val_accuracies) != self.max_epochs:
            raise TrialFailed(f'Training stopped after {len(module.val_accuracies)} of {self.max_epochs} epochs')
        final = module.val_accuracies[-1]
        self.epoch_seconds = module.epoch_seconds   # of the last model trained (the trial program records it)
        if is_global_zero:
            nni.report_final_result(final)
        return final


def _limit(limit: Union[int, float, None], total: int, what: str) -> int:
    """How many of ``total`` batches an epoch takes, by Lightning's ``limit_*_batches`` rule: an
    int is at most that many, a float in (0, 1] that share (rounded down, at least one)."""
    _check_limit(limit, what)
    if limit is None:
        return total
    if isinstance(limit, numbers.Integral):
        return min(int(limit), total)
    return max(1, int(total * limit))


def _check_limit(limit, what: str) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, numbers.Real):
        raise ValueError(f'{what} must be a whole number of batches or a share in (0, 1], got {limit!r}')
    if isinstance(limit, numbers.Integral) and limit < 1 or not isinstance(limit, numbers.Integral) and not 0 < limit <= 1:
        raise ValueError(f'{what} must be a whole number >= 1 or a share in (0, 1], got {limit!r}')


def _fit(module: '_Classifier', hp: 'ImageClassification', train_loader, val_loader) -> bool:
    """Train ``module.model`` with the recipe of ``hp`` under Lightning Fabric: the epoch loop of
    Lightning's ``Trainer`` (train, validate, step the cosine schedule) without its per-step hooks,
    which cost tiny networks 5-15 % of their time (:mod:`nni_nasext.benchmarking.lightning_overhead`).
    Fills ``module.val_accuracies`` and ``module.epoch_seconds``; returns whether this process is
    the first (the one that reports to NNI)."""
    from lightning_fabric import Fabric
    fabric = Fabric(accelerator=hp.accelerator, devices=hp.devices, strategy=hp.strategy)
    fabric.launch()   # with devices > 1: starts the other processes (they re-run this program)
    model = module.model
    sync = hp.devices > 1 and hp.sync_batchnorm
    cpu_sync = sync and fabric.device.type != 'cuda'
    if cpu_sync:   # batch norm over the global batch (torch's SyncBatchNorm runs on GPUs only)
        from nni_nasext.evaluators.sync_batchnorm import to_global
        to_global(model)
    elif sync:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizers = module.configure_optimizers()
    optimizer, scheduler = optimizers['optimizer'], optimizers['lr_scheduler']
    try:
        # the module's forward is the model's; Fabric wraps it (DDP) and moves it to the device
        net, optimizer = fabric.setup(model, optimizer)
        train, val = fabric.setup_dataloaders(train_loader, val_loader, use_distributed_sampler=False)
        n_train = _limit(hp.limit_train_batches, len(train_loader), 'limit_train_batches')
        n_val = _limit(hp.limit_val_batches, len(val_loader), 'limit_val_batches')
        bar = None
        if fabric.is_global_zero and sys.stdout.isatty():
            from tqdm import tqdm
            bar = tqdm(total=hp.max_epochs * n_train, unit='step', leave=False)
        global_step = 0
        for epoch in range(hp.max_epochs):
            start = time.perf_counter()
            sampler = getattr(train_loader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):   # each epoch's order, as Lightning's loop sets it
                sampler.set_epoch(epoch)
            net.train()
            for step, (x, y) in enumerate(train):
                if step >= n_train:
                    break
                loss = _training_loss(net(x), y, epoch, step, global_step)
                optimizer.zero_grad()
                fabric.backward(loss)
                optimizer.step()
                global_step += 1
                if bar is not None:
                    bar.update()
            net.eval()
            counts = torch.zeros(2, dtype=torch.float64)
            with torch.no_grad():
                for step, (x, y) in enumerate(val):
                    if step >= n_val:
                        break
                    counts += torch.tensor([_correct(net(x), y), len(y)], dtype=torch.float64)
            if fabric.world_size > 1:   # DDP: each process validated its shard; count them all
                counts = fabric.all_reduce(counts.to(fabric.device), reduce_op='sum').cpu()
            scheduler.step()
            correct, seen = counts.tolist()
            accuracy = correct / max(seen, 1)
            module.val_accuracies.append(accuracy)
            module.epoch_seconds.append(time.perf_counter() - start)
            if fabric.is_global_zero:   # one report per epoch, whatever the number of processes
                nni.report_intermediate_result(accuracy)
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, val_acc=f'{accuracy:.4f}')
        if bar is not None:
            bar.close()
    finally:
        if cpu_sync:
            from nni_nasext.evaluators.sync_batchnorm import to_local
            to_local(model)
        if fabric.device.type != 'cpu':   # as Lightning's Trainer leaves it: the model back on the CPU
            model.cpu()
    return fabric.is_global_zero
