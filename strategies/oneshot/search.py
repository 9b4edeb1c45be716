"""Run one one-shot search: any space, any evaluator with a Lightning module, any method.

:func:`search` builds the supernet from a *copy* of the space (the space stays a space), wraps
the evaluator's Lightning module, trains with a fresh Lightning ``Trainer`` (the evaluator's
Trainer arguments; gradient clipping moves into the method), derives the architecture and
checks that it is a sample of the space. With ``output_dir`` it checkpoints every epoch
(``output_dir/checkpoints/last.ckpt``) and, when that file exists, *resumes* from it: the
weights, architecture parameters, optimiser states, every random generator of the method and
the data order continue where they stopped, so a search killed half-way and restarted ends
with the same architecture as one never stopped (with the same seed, on the same machine).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from torch import nn

import pytorch_lightning as pl

from .base import OneShotModule
from .data import first_batch, paired_loaders, recipe_for
from .supernet import Supernet, build_supernet, inherit

__all__ = ['OneShotResult', 'check_method_args', 'method_class', 'search']

_logger = logging.getLogger(__name__)

#: arguments of a method's module that the search sets itself
SET_BY_SEARCH = ('self', 'inner', 'supernet', 'seed', 'metric', 'mode')
#: arguments of :func:`search` itself (not method arguments)
SEARCH_ARGS = ('epochs', 'arch_data', 'seed', 'output_dir', 'resume', 'verbose', 'hooks', 'accelerator', 'callbacks',
               'num_score_batches', 'data_parallel')


def method_class(method: str):
    """The module class of a one-shot method (a name of the ``oneshot`` registry table)."""
    from nni_nasext.registry import lookup
    if not isinstance(method, str):
        raise TypeError(f'method must be a name, got {type(method).__name__}')
    return lookup('oneshot', method).load()


def check_method_args(method: str, method_args: Dict[str, Any], cls=None) -> type:
    """Raise a ``ValueError`` naming the argument if ``method_args`` has one that the method
    does not take (or one that the search sets itself). Returns the method's class."""
    cls = cls or method_class(method)
    accepted = set()
    for klass in cls.__mro__:
        if '__init__' in vars(klass):
            params = inspect.signature(klass.__init__).parameters
            accepted |= {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
    accepted -= set(SET_BY_SEARCH)
    for key in method_args:
        if key in SET_BY_SEARCH or key in SEARCH_ARGS:
            raise ValueError(f'{key!r} is a search setting, not an argument of one-shot method {method!r}')
        if key not in accepted:
            raise ValueError(f'Unknown argument {key!r} for one-shot method {method!r}; accepted: '
                             f'{", ".join(sorted(accepted))}')
    return cls


@dataclasses.dataclass
class OneShotResult:
    """What a search returns: the derived ``sample``, the per-epoch ``history`` (validation
    metric, training loss, strengths), the trained ``module`` and ``supernet``, ``seconds``."""
    method: str
    sample: Dict[str, Any]
    history: Dict[str, list]
    module: OneShotModule
    supernet: Supernet
    seconds: float
    settings: Dict[str, Any]
    resumed_from: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        extra = {k: v for k, v in self.history.items() if k not in ('val', 'train_loss', 'strengths')}
        return {'method': self.method, 'sample': self.sample, 'val': self.history.get('val', []),
                'train_loss': self.history.get('train_loss', []), 'strengths': self.history.get('strengths', []),
                'seconds': self.seconds, 'settings': self.settings, 'resumed_from': self.resumed_from,
                'decisions': {k: [str(c) for c in d.candidates] for k, d in self.supernet.decisions.items()},
                **{f'history_{k}': v for k, v in extra.items()}}

    def network(self, inherit_weights: bool = False) -> nn.Module:
        """The derived network: built fresh from the space (``space.freeze``), or with the
        supernet's weights (``inherit_weights=True``)."""
        if inherit_weights:
            return inherit(self.supernet, self.sample)
        return self.settings['_space'].freeze(self.sample)


def search(space, evaluator, method: str = 'darts', *, epochs: Optional[int] = None, arch_data: Optional[str] = None,
           seed: Optional[int] = None, output_dir: Optional[str] = None, resume: bool = True, verbose: bool = True,
           hooks: Sequence = (), accelerator: Optional[str] = None, callbacks: Sequence = (),
           num_score_batches: int = 4, data_parallel: bool = True, **method_args) -> OneShotResult:
    """Search ``space`` with one-shot ``method``, training with ``evaluator``'s recipe.

    ``epochs`` overrides the evaluator's; ``arch_data`` is ``'split'`` (halve the training
    data) or ``'val'`` (the validation data; default: the evaluator's preference);
    ``num_score_batches`` architecture batches score candidates in the methods that search
    the trained supernet (RSPS, SPOS, DARTS-PT, ...). An evaluator that trains with several
    processes (``devices=2``) makes the search data parallel (:func:`_trainer`: Lightning runs
    the program again in each further process, so call this from a script or the trial
    program); ``data_parallel=False`` refuses that (NNI's ``NasExperiment`` runs the search
    inside the experiment's own process). Everything else is an argument of the method's
    module. Bad arguments, spaces or evaluators raise before any training.
    """
    start = time.time()
    cls = check_method_args(method, method_args)
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f'epochs must be positive, got {epochs}')
    original = space
    seed = int(getattr(evaluator, 'seed', 0) or 0) if seed is None else int(seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    space = copy.deepcopy(space)
    supernet = build_supernet(space, method, weighted=cls.weighted,
                              partial_k=int(method_args.get('partial_k', cls.partial_k)), hooks=hooks)
    recipe = recipe_for(evaluator, supernet.model)
    if recipe.reset_parameters:  # the weights are a function of the seed alone, as the evaluator's trials
        for m in supernet.model.modules():
            if callable(getattr(m, 'reset_parameters', None)):
                m.reset_parameters()
    loaders = paired_loaders(recipe, arch_data, seed)
    module = cls(recipe.module, supernet, seed=seed, metric=recipe.metric, mode=recipe.mode, **method_args)
    try:
        module.probe(first_batch(loaders.train)['train'])
    except (RuntimeError, ValueError, IndexError) as err:
        raise ValueError(f'{method}: the supernet of {type(original).__name__} does not run on a training batch of '
                         f'{type(evaluator).__name__} ({type(err).__name__}: {err}); check that the space fits the data '
                         '(input channels, image size, number of classes)') from err
    kwargs = dict(recipe.trainer_kwargs)
    clip = kwargs.pop('gradient_clip_val', None)
    kwargs.pop('gradient_clip_algorithm', None)
    if clip is not None and 'grad_clip' not in method_args:
        module.hp['grad_clip'] = clip
    if epochs is not None:
        kwargs['max_epochs'] = int(epochs)
    if accelerator is not None:
        kwargs['accelerator'] = accelerator
    kwargs.setdefault('max_epochs', 1)
    if kwargs['max_epochs'] is None or kwargs['max_epochs'] < 1:
        raise ValueError(f'The evaluator trains for max_epochs={kwargs["max_epochs"]}; a one-shot search needs >= 1')
    all_callbacks = list(kwargs.pop('callbacks', None) or []) + list(callbacks)
    ckpt_path = None
    if output_dir is not None:
        ckpt_dir = Path(output_dir) / 'checkpoints'
        module.checkpoint_dir = ckpt_dir
        last = ckpt_dir / 'last.ckpt'
        if resume and last.exists():
            ckpt_path = str(last)
            if verbose and _is_first_process():
                print(f'{method}: resuming from {ckpt_path}', file=sys.stderr, flush=True)
    kwargs.update(callbacks=all_callbacks, num_sanity_val_steps=0, enable_checkpointing=False,
                  enable_model_summary=False)
    kwargs.setdefault('logger', False)
    kwargs.setdefault('enable_progress_bar', bool(verbose and sys.stderr.isatty()))
    from nni_nasext.evaluators.classification import interrupt_stays_interrupt, quiet_lightning
    if getattr(cls, 'training_free', False):
        sample = supernet.validate(module.prune(first_batch(loaders.train)['train']))
    else:
        with quiet_lightning():
            trainer = _trainer(kwargs, cls, method, loaders, data_parallel)
            loaders.train.epoch_fn = lambda: trainer.current_epoch
            loaders.train.shard_fn = lambda: (trainer.global_rank, trainer.world_size)
            with interrupt_stays_interrupt():
                trainer.fit(module, loaders.train, loaders.val, ckpt_path=ckpt_path)
        if trainer.interrupted:
            raise KeyboardInterrupt('the one-shot search was interrupted')
        module.score_data = [module._to_device(b) for b in loaders.score_batches(num_score_batches)]
        module.eval()
        sample = supernet.validate(module.derive())
    original.validate(sample)
    seconds = time.time() - start
    settings = {'method': method, 'epochs': kwargs['max_epochs'], 'seed': seed,
                'arch_data': arch_data or recipe.arch_data, 'method_args': _jsonable(method_args), '_space': original}
    result = OneShotResult(method, sample, module.history, module, supernet, seconds, settings, ckpt_path)
    if verbose and _is_first_process():
        val = [round(v, 4) for v in module.history.get('val', [])]
        print(f'{method}: derived {sample} in {seconds:.0f} s; supernet {recipe.metric} per epoch {val}',
              file=sys.stderr, flush=True)
    return result


def _trainer(kwargs: Dict[str, Any], cls, method: str, loaders, data_parallel: bool = True) -> pl.Trainer:
    """The Trainer of a search. With more than one process (``devices``, ``num_nodes``) it is
    data parallel (Lightning DDP, each process started by running the program again, as a
    trial's DDP): every process trains the same supernet on its share of each global batch
    (:meth:`~.data.EpochSampler.set_shard`); :meth:`OneShotModule._backward` goes through
    Lightning's ``manual_backward``, which averages the gradients of every backward pass over
    the processes, so weights and architecture parameters stay equal on every process.
    Parameters a step does not use (single-path methods) are allowed
    (``find_unused_parameters``). Methods that step with gradients DDP does not see, or decide
    on what only one process saw, are refused (``ddp_unsupported``), as are the spawn-based
    DDP variants (they train in copies of the module that do not come back with the search's
    state)."""
    from pytorch_lightning.strategies import DDPStrategy
    trainer = pl.Trainer(**kwargs)
    if trainer.world_size <= 1:
        return trainer
    world = trainer.world_size
    if not data_parallel:
        raise ValueError(f'The evaluator trains with {world} processes; this one-shot search runs inside the process that '
                         'called it (NNI\'s NasExperiment), where Lightning\'s DDP would run the whole program again in '
                         'each further process. Give the evaluator devices=1, or run the search as a trial program '
                         '(python3 -m nni_nasext.trial_code.oneshot, under nnictl) or from a script calling '
                         'nni_nasext.strategies.oneshot.search')
    if cls.ddp_unsupported:
        raise ValueError(f'One-shot method {method!r} does not run with {world} processes: {cls.ddp_unsupported}. '
                         'Search with devices=1 (and num_nodes=1)')
    if not loaders.train.shardable():
        raise ValueError(f'A one-shot search with {world} processes gives each process its share of the data, which '
                         'needs map-style datasets in DataLoaders for both the weight and the architecture batches '
                         '(this evaluator\'s data is an iterable dataset, a stream, or has no batch size)')
    strategy = trainer.strategy
    if not isinstance(strategy, DDPStrategy) or getattr(strategy, '_start_method', 'popen') != 'popen':
        raise ValueError(f'A one-shot search with {world} processes needs Lightning\'s strategy=\'ddp\' (each process '
                         f'runs the program); got {type(strategy).__name__}'
                         + (f' starting its processes by {strategy._start_method}' if isinstance(strategy, DDPStrategy)
                            else ''))
    if kwargs.get('strategy', 'auto') in (None, 'auto', 'ddp', 'ddp_find_unused_parameters_false',
                                           'ddp_find_unused_parameters_true'):
        kwargs = dict(kwargs, strategy=DDPStrategy(find_unused_parameters=True))
        trainer = pl.Trainer(**kwargs)
    return trainer


def _is_first_process() -> bool:
    """Not one of the processes that Lightning's DDP started for a search (they print nothing)."""
    return int(os.environ.get('LOCAL_RANK', '0') or 0) == 0 and int(os.environ.get('NODE_RANK', '0') or 0) == 0


def _jsonable(args: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in args.items():
        out[k] = v if isinstance(v, (int, float, str, bool, type(None), list, dict)) else repr(v)
    return out

