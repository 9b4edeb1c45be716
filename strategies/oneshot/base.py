"""The base Lightning module of every one-shot method.

:class:`OneShotModule` wraps the evaluator's own Lightning module (``inner``: its loss, metrics,
logging and optimiser stay the user's, as in NNI's ``BaseOneShotLightningModule``) around the
supernet of :mod:`.supernet`, and trains it with manual optimisation. Each training step
receives ``{'train': batch, 'arch': batch}`` (:mod:`.data`) and runs

1. the **architecture step** (differentiable methods, from epoch ``warmup_epochs`` on): the
   supernet mixed by :meth:`OneShotModule.mixes`, the inner module's training loss on the
   architecture batch plus :meth:`OneShotModule.arch_extra_loss`, one step of the architecture
   optimiser (Adam, ``arch_lr``, ``betas=(0.5, 0.999)``, ``arch_weight_decay``: DARTS' settings);
2. the **weight step**: the supernet mixed (or sampled) by the method, the inner module's
   training loss on the weight batch, one step of the inner module's own optimiser, gradients
   clipped to ``grad_clip`` (DARTS: 5).

Validation runs the inner module's ``validation_step`` on the supernet as the method evaluates
it (:meth:`OneShotModule.eval_mixes`), so the user's metrics are logged and reported to NNI by
the user's module as in any trial. After training, :meth:`OneShotModule.derive` gives the
architecture: a sample of the space (``space.freeze(sample)`` builds it).

A method is a subclass that overrides one policy (the module attributes and methods marked
*policy*): how ``α`` becomes weights (:meth:`probs`), the mixes of a step (:meth:`mixes`), the
extra loss (:meth:`arch_extra_loss`), the schedule (:meth:`on_epoch_schedule`), the
architecture step (:meth:`arch_step`) or the derivation (:meth:`derive`).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import pytorch_lightning as pl

from .supernet import Decision, Mix, Supernet

__all__ = ['OneShotModule', 'bn_batch_statistics', 'captured_logs', 'derive_from_strengths', 'random_sample']


def plain(obj):
    """``obj`` with every str / int / float subclass (NNI's labels, torch's version) made the
    plain type, recursively: what torch's weights-only loading of a checkpoint accepts."""
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj) if type(obj) in (list, tuple) else [plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or torch.is_tensor(obj):
        return obj
    for t in (str, int, float):
        if isinstance(obj, t) and type(obj) is not t:
            return t(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def random_sample(supernet: Supernet, rng: np.random.RandomState) -> Dict[str, Any]:
    """A uniformly random sample of the space (every label drawn by NNI's ``Mutable.random``)."""
    memo: Dict[str, Any] = {}
    for mutable in supernet.space_mutables.values():
        mutable.random(memo, rng)
    return {label: memo[label] for label in supernet.space_mutables}


@contextlib.contextmanager
def bn_batch_statistics(model: nn.Module):
    """Evaluation mode, except batch norm, which normalises with the batch's statistics
    without updating its running ones (how NB201's search networks are scored). Afterwards every
    module has its own mode back and every buffer its value.

    Entered once per scored architecture, so it is kept cheap on supernets of a thousand modules:
    torch's own batch norm (``_BatchNorm.forward``, NNI's mutable batch norm included) is put in
    training mode with ``track_running_stats`` off, which normalises with the batch's statistics
    and leaves every buffer untouched; only the buffers of other modules (a batch-norm subclass
    with its own forward, anything else) are copied and put back. Where a module has its own
    ``train()``, modes change through ``model.eval()`` / ``train()`` as before."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    plain = [m for m in modules if isinstance(m, _BatchNorm) and type(m).forward is _BatchNorm.forward]
    plain_ids = {id(m) for m in plain}
    tracking = [m.track_running_stats for m in plain]
    others = [b for m in modules if id(m) not in plain_ids for b in m.buffers(recurse=False)]
    saved = [b.detach().clone() for b in others]
    own_train = any(type(m).train is not nn.Module.train for m in modules)
    if own_train:
        model.eval()
    for m in modules:
        if isinstance(m, _BatchNorm):
            m.training = True
        elif not own_train:
            m.training = False
    for m in plain:
        m.track_running_stats = False
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in zip(others, saved):
                b.copy_(value)
        for m, flag in zip(plain, tracking):
            m.track_running_stats = flag
        if own_train:
            model.train(modes[0])
        for m, mode in zip(modules, modes):
            m.training = mode


@contextlib.contextmanager
def captured_logs(module: pl.LightningModule):
    """Redirect ``module.log`` / ``log_dict`` into a dict (name -> list of floats)."""
    logged: Dict[str, List[float]] = {}
    had_log, had_dict = 'log' in vars(module), 'log_dict' in vars(module)
    old_log, old_dict = vars(module).get('log'), vars(module).get('log_dict')

    def log(name, value, *args, **kwargs):
        if torch.is_tensor(value):
            value = value.detach()
            if value.numel() != 1:
                return
            value = float(value)
        elif hasattr(value, 'compute'):
            value = float(value.compute())
        logged.setdefault(name, []).append(float(value))

    def log_dict(values, *args, **kwargs):
        for k, v in values.items():
            log(k, v)

    module.log, module.log_dict = log, log_dict
    try:
        yield logged
    finally:
        for name, had, old in (('log', had_log, old_log), ('log_dict', had_dict, old_dict)):
            if had:
                setattr(module, name, old)
            else:
                vars(module).pop(name, None)


def derive_from_strengths(supernet: Supernet, strengths: Dict[str, torch.Tensor], *,
                          keep_threshold: Optional[float] = None) -> Dict[str, Any]:
    """The architecture that the strengths (decision key -> one number per candidate) favour.

    Labelled decisions take their strongest candidate (``InputChoice(n_chosen=k)``: the ``k``
    strongest; ``n_chosen=None``: every candidate stronger than ``keep_threshold``, default the
    uniform ``1/n``). A cell keeps, per node, the ``num_ops_per_node`` incoming edges whose
    strongest op other than ``none`` is strongest, each with that op (DARTS, Liu et al. 2019,
    Section 2.4; NNI's ``DifferentiableMixedCell.export``): distinct inputs first.
    """
    sample: Dict[str, Any] = {}
    for key, d in supernet.decisions.items():
        if d.label is None or d.label in sample:
            continue
        s = strengths[key].detach().float().cpu()
        if d.kind == 'input':
            if d.n_chosen is None:
                thr = (1.0 / d.size) if keep_threshold is None else keep_threshold
                chosen = [i for i in range(d.size) if float(s[i]) > thr]
            else:
                chosen = sorted(torch.argsort(s, descending=True, stable=True)[:d.n_chosen].tolist())
            sample[d.label] = [d.candidates[i] for i in sorted(chosen)]
        else:
            sample[d.label] = d.candidates[int(torch.argmax(s))]
    for group in supernet.state.cells.values():
        none = set(supernet.decisions[group.nodes[min(group.nodes)][0][1]].none)
        for i, edges in group.nodes.items():
            scored = []
            for j, key in edges:
                s = strengths[key].detach().float().cpu().clone()
                if len(none) < len(s):
                    for k in none:
                        s[k] = -math.inf
                best = int(torch.argmax(s))
                scored.append((float(s[best]), j, best))
            order = sorted(scored, key=lambda t: (-t[0], t[1]))
            firsts, seen = [], set()
            for t in order:
                if t[1] not in seen:
                    firsts.append(t)
                    seen.add(t[1])
            ranked = firsts + [t for t in order if t not in firsts]
            for k in range(group.slots):
                _, j, best = ranked[k % len(ranked)]
                sample[group.op_labels[(i, k)]] = group.op_names[best]
                sample[group.input_labels[(i, k)]] = [group.input_values[(i, k)][j]]
    return {label: sample[label] for label in supernet.space_mutables}


class OneShotModule(pl.LightningModule):
    """One-shot search over a supernet with the evaluator's module (see the module docstring).

    Parameters
    ----------
    inner
        The evaluator's Lightning module, whose model is the supernet.
    supernet
        The :class:`~.supernet.Supernet` (built for this method).
    arch_lr, arch_weight_decay, arch_betas
        Adam on the architecture parameters (DARTS: 3e-4, 1e-3, (0.5, 0.999)).
    grad_clip
        Gradient-norm clipping of the weight step (``None``: none).
    warmup_epochs
        Epochs of weight training before the architecture is trained.
    seed
        Seeds the architecture parameters and every sampling of the method.
    metric, mode
        The logged validation metric that scores an architecture (``'val_acc'``, ``'max'``).
    """

    #: policy: the method's name and paper (for listings)
    method = 'oneshot'
    paper = ''
    #: policy: the supernet mixes candidates by weights (``False``: one path at a time)
    weighted = True
    #: policy: the method has architecture parameters trained by gradient
    differentiable = True
    #: PC-DARTS' partial channels (``partial_k``) requested from the supernet
    partial_k = 1
    #: policy: the method trains under data parallelism (Lightning DDP): every gradient it
    #: steps with comes from :meth:`_backward` (which DDP averages over the processes) and
    #: every decision it takes during training is a function of what all processes share.
    #: ``None``: it does; else the reason why not (the search refuses it before training).
    ddp_unsupported: Optional[str] = None
    #: policy: the per-epoch validation normalises batch norm with each batch's statistics.
    #: Methods that train one sampled path at a time set it: the running statistics are pooled
    #: over every path trained and belong to none, so in plain eval mode the validated path
    #: can score near chance (measured: ProxylessNAS 0.09-0.10 on 10 classes). ``score`` always
    #: does this; a constructor argument ``val_bn_batch_stats`` overrides the default.
    eval_batch_stats = False

    def __init__(self, inner: pl.LightningModule, supernet: Supernet, *, arch_lr: float = 3e-4,
                 arch_weight_decay: float = 1e-3, arch_betas: Tuple[float, float] = (0.5, 0.999),
                 grad_clip: Optional[float] = 5.0, warmup_epochs: int = 0, seed: int = 0,
                 metric: Optional[str] = None, mode: str = 'max', val_bn_batch_stats: Optional[bool] = None):
        super().__init__()
        if arch_lr < 0 or arch_weight_decay < 0 or warmup_epochs < 0:
            raise ValueError('arch_lr, arch_weight_decay and warmup_epochs must be non-negative')
        self.inner = inner
        object.__setattr__(self, 'supernet', supernet)
        self.automatic_optimization = False
        self.hp = dict(arch_lr=float(arch_lr), arch_weight_decay=float(arch_weight_decay),
                       arch_betas=tuple(arch_betas), grad_clip=grad_clip, warmup_epochs=int(warmup_epochs))
        self.seed, self.metric, self.mode = int(seed), metric, mode
        self.val_bn_batch_stats = self.eval_batch_stats if val_bn_batch_stats is None else bool(val_bn_batch_stats)
        self.keys: List[str] = list(supernet.decisions)
        self.key_index = {k: i for i, k in enumerate(self.keys)}
        init = torch.Generator().manual_seed(self.seed)
        self.alpha = nn.ParameterList(
            [nn.Parameter(self.init_alpha(supernet.decisions[k], init)) for k in self.keys]) if self.differentiable else None
        self.generator = torch.Generator().manual_seed(self.seed + 1)
        self.rng = np.random.RandomState(self.seed + 2)
        self.history: Dict[str, list] = {'val': [], 'train_loss': [], 'strengths': [], 'epoch_seconds': []}
        self._epoch_start: Optional[float] = None
        self._losses: List[float] = []
        self.score_data: Optional[List[Any]] = None
        #: where :meth:`on_train_epoch_end` writes ``last.ckpt`` (``None``: nowhere)
        self.checkpoint_dir: Optional[Path] = None

    # ------------------------------------------------------------------ policy
    def init_alpha(self, decision: Decision, generator: torch.Generator) -> torch.Tensor:
        """*Policy*: the initial architecture parameters of a decision (DARTS: ``1e-3 · N(0, 1)``)."""
        return 1e-3 * torch.randn(decision.size, generator=generator)

    def a(self, key: str) -> torch.Tensor:
        """The architecture parameters of decision ``key``."""
        return self.alpha[self.key_index[key]]

    def probs(self, key: str) -> torch.Tensor:
        """*Policy*: how ``α`` becomes weights (DARTS: ``softmax(α)``)."""
        return F.softmax(self.a(key), dim=-1)

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        """*Policy*: the mix of every decision for one forward pass (DARTS: soft, all candidates)."""
        return {k: Mix.soft(self.probs(k)) for k in self.keys}

    def eval_mixes(self) -> Dict[str, Mix]:
        """*Policy*: the mixes of the per-epoch validation (default: :meth:`mixes` not training)."""
        return self.mixes(training=False)

    def arch_extra_loss(self) -> torch.Tensor:
        """*Policy*: a term added to the architecture loss (default none)."""
        return torch.zeros((), device=self.device)

    def strengths(self) -> Dict[str, torch.Tensor]:
        """*Policy*: per decision, how strongly each candidate is favoured (for :meth:`derive`)."""
        with torch.no_grad():
            return {k: self.probs(k).detach().cpu() for k in self.keys}

    def derive(self) -> Dict[str, Any]:
        """*Policy*: the architecture found (a sample of the space)."""
        return derive_from_strengths(self.supernet, self.strengths())

    def on_epoch_schedule(self) -> None:
        """*Policy*: called after every training epoch (temperatures, dropout rates, early stops)."""

    def extra_state(self) -> Dict[str, Any]:
        """*Policy*: what a method keeps in checkpoints besides parameters (JSON-like)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        """*Policy*: restore :meth:`extra_state`."""

    # ------------------------------------------------------------------ helpers
    def set_mixes(self, mixes: Dict[str, Mix]) -> None:
        self.supernet.set_mixes(mixes)

    def set_sample(self, sample: Dict[str, Any]) -> None:
        self.supernet.set_sample(sample)

    def random_sample(self) -> Dict[str, Any]:
        return random_sample(self.supernet, self.rng)

    def arch_parameters(self) -> List[nn.Parameter]:
        return list(self.alpha) if self.alpha is not None else []

    def weight_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.inner.parameters() if p.requires_grad]

    def inner_loss(self, batch, batch_idx: int = 0) -> torch.Tensor:
        """The inner module's training loss on ``batch``."""
        out = self.inner.training_step(batch, batch_idx)
        loss = out['loss'] if isinstance(out, dict) else out
        if not torch.is_tensor(loss):
            raise TypeError(f'The evaluator\'s training_step returned {type(out).__name__}; one-shot search needs the '
                            'loss (a tensor, or a dict with "loss")')
        return loss

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def global_mean(self, value: float) -> float:
        """``value`` averaged over the processes of a data-parallel search (itself on one): what a
        method computes on its own share of a global batch and then decides with (ENAS's reward)."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return float(value)
        t = torch.tensor(float(value), dtype=torch.float64, device=self.device)
        return float(self.trainer.strategy.reduce(t, reduce_op='mean'))

    def _weight_optimizer(self):
        opts = self.optimizers()
        return opts[0] if isinstance(opts, (list, tuple)) else opts

    def _arch_optimizer(self):
        opts = self.optimizers()
        return opts[1] if isinstance(opts, (list, tuple)) and len(opts) > 1 else None

    # ------------------------------------------------------------------ training
    def configure_optimizers(self):
        conf = self.inner.configure_optimizers()
        opts, scheds = _split_optimizer_conf(conf)
        if len(opts) != 1:
            raise ValueError(f'The evaluator configures {len(opts)} optimizers; one-shot search needs exactly one for the '
                             'weights (as NNI\'s one-shot strategies)')
        arch = self.configure_arch_optimizers()
        return opts + arch, scheds

    def configure_arch_optimizers(self) -> List[torch.optim.Optimizer]:
        """*Policy*: the optimisers of the architecture (default: Adam on ``α``)."""
        if not self.arch_parameters():
            return []
        hp = self.hp
        return [torch.optim.Adam(self.arch_parameters(), lr=hp['arch_lr'], betas=hp['arch_betas'],
                                 weight_decay=hp['arch_weight_decay'])]

    def setup(self, stage=None):
        self.inner.trainer = self.trainer
        self.inner.log, self.inner.log_dict = self.log, self.log_dict
        return self.inner.setup(stage)

    def teardown(self, stage=None):
        for name in ('log', 'log_dict'):
            vars(self.inner).pop(name, None)
        return self.inner.teardown(stage)

    def training_step(self, batch, batch_idx):
        train_batch, arch_batch = batch['train'], batch['arch']
        if self.arch_parameters() and self.current_epoch >= self.hp['warmup_epochs']:
            self.arch_step(train_batch, arch_batch, batch_idx)
        loss = self.weight_step(train_batch, batch_idx)
        self._losses.append(float(loss.detach()))
        return loss.detach()

    def weight_step(self, batch, batch_idx: int) -> torch.Tensor:
        """*Policy*: one step of the weights (default: the supernet mixed by :meth:`mixes`)."""
        self.set_mixes(self.mixes(training=True))
        return self.optimize_weights(self.inner_loss(batch, batch_idx))

    def optimize_weights(self, loss: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(loss):
            raise FloatingPointError(f'{self.method}: the training loss is {float(loss)} at epoch {self.current_epoch}')
        opt = self._weight_optimizer()
        opt.zero_grad()
        self._backward(loss)
        if self.hp['grad_clip']:
            self.clip_gradients(opt, gradient_clip_val=self.hp['grad_clip'], gradient_clip_algorithm='norm')
        opt.step()
        self._step_schedulers('step')
        return loss

    def arch_step(self, train_batch, arch_batch, batch_idx: int) -> None:
        """*Policy*: one step of the architecture (default: first-order DARTS, Liu et al. 2019,
        eq. 5 with ``ξ = 0``: ``∇_α L_val(w, α)``)."""
        opt = self._arch_optimizer()
        opt.zero_grad()
        self.set_mixes(self.mixes(training=True))
        loss = self.inner_loss(arch_batch, batch_idx) + self.arch_extra_loss()
        self._backward(loss)
        opt.step()
        self.clear_weight_grads()

    def clear_weight_grads(self) -> None:
        for p in self.weight_parameters():
            p.grad = None

    def _step_schedulers(self, interval: str) -> None:
        if self._trainer is None:
            return
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == interval and not config.reduce_on_plateau:
                config.scheduler.step()

    def on_train_epoch_start(self):
        self._losses = []
        self._epoch_start = time.perf_counter()
        return self.inner.on_train_epoch_start()

    def on_train_epoch_end(self):
        self._step_schedulers('epoch')
        if self._epoch_start is not None:   # the epoch's training and its validation (which Lightning runs first)
            self.history.setdefault('epoch_seconds', []).append(time.perf_counter() - self._epoch_start)
        self.history['train_loss'].append(float(np.mean(self._losses)) if self._losses else float('nan'))
        if self.differentiable:
            self.history['strengths'].append({k: v.tolist() for k, v in self.strengths().items()})
        self.on_epoch_schedule()
        out = self.inner.on_train_epoch_end()
        self.save_last_checkpoint()
        return out

    def save_last_checkpoint(self) -> None:
        """Write ``checkpoint_dir/last.ckpt`` (after the epoch's validation and every schedule
        of the method), atomically: the new file replaces the old one only once complete, so a
        process killed while writing leaves the previous epoch's checkpoint intact."""
        if self.checkpoint_dir is None or self._trainer is None:
            return
        Path(self.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(self.checkpoint_dir) / 'last.ckpt.part'
        self.trainer.save_checkpoint(str(tmp))   # every process calls it (it ends in a barrier); the first writes
        if self.trainer.is_global_zero:
            os.replace(tmp, Path(self.checkpoint_dir) / 'last.ckpt')

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx):
        self.prepare_eval(batch_idx)
        if self.val_bn_batch_stats:
            with bn_batch_statistics(self.inner):
                return self.inner.validation_step(batch, batch_idx)
        return self.inner.validation_step(batch, batch_idx)

    def prepare_eval(self, batch_idx: int) -> None:
        """*Policy*: set the supernet for one validation batch (default :meth:`eval_mixes`)."""
        self.set_mixes(self.eval_mixes())

    def on_validation_epoch_start(self):
        return self.inner.on_validation_epoch_start()

    def on_validation_epoch_end(self):
        out = self.inner.on_validation_epoch_end()
        if not self.trainer.sanity_checking and self.metric is not None:
            value = self.trainer.callback_metrics.get(self.metric)
            if value is not None:
                self.history['val'].append(float(value))
        return out

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, sample: Optional[Dict[str, Any]] = None, batches: Optional[Iterable[Any]] = None, *,
              mixes: Optional[Dict[str, Mix]] = None) -> float:
        """``metric`` of ``sample``'s path of the supernet (or of the supernet under ``mixes``)
        on ``batches`` (default :attr:`score_data`), batch norm on batch statistics
        (:func:`bn_batch_statistics`). Higher is better (a minimised metric is negated)."""
        batches = self.score_data if batches is None else batches
        if not batches:
            raise RuntimeError(f'{self.method}: no batches to score architectures on')
        if mixes is not None:
            self.set_mixes(mixes)
        else:
            self.set_sample(sample)
        with bn_batch_statistics(self.inner), captured_logs(self.inner) as logged:
            for i, batch in enumerate(batches):
                self.inner.validation_step(self._to_device(batch), i)
        if self.metric not in logged:
            raise RuntimeError(f'{self.method}: the evaluator logged {sorted(logged)} in validation_step, not the metric '
                               f'{self.metric!r} that scores architectures')
        value = float(np.mean(logged[self.metric]))
        return value if self.mode == 'max' else -value

    def _to_device(self, batch):
        from lightning_fabric.utilities.apply_func import move_data_to_device
        return move_data_to_device(batch, self.device)

    # ------------------------------------------------------------------ probe
    @torch.no_grad()
    def probe(self, batch) -> None:
        """One forward pass of the inner training step before training: it checks that the
        supernet runs on the data (a shape error names the module) and settles PC-DARTS'
        partial channels. Batch-norm statistics are restored."""
        saved = {n: b.detach().clone() for n, b in self.inner.named_buffers()}
        if self.weighted:
            self.set_mixes({k: Mix.soft(torch.full((d.size,), 1.0 / d.size)) for k, d in self.supernet.decisions.items()})
        else:
            self.set_sample(random_sample(self.supernet, np.random.RandomState(self.seed)))
        try:
            with captured_logs(self.inner):
                self.inner_loss(batch, 0)
        finally:
            for n, b in self.inner.named_buffers():
                if n in saved and saved[n].shape == b.shape:
                    b.copy_(saved[n])

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        checkpoint['oneshot'] = {
            'generator': self.generator.get_state(), 'rng': [kind, torch.as_tensor(keys), int(pos), int(has_gauss),
                                                             float(cached)],
            'torch_rng': torch.get_rng_state(), 'history': plain(self.history), 'extra': plain(self.extra_state()),
            'partial': {name: m.partial_k for name, m in self.named_modules() if hasattr(m, 'requested_k')}}

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        state = checkpoint.get('oneshot')
        if not state:
            return
        self.generator.set_state(state['generator'])
        kind, keys, pos, has_gauss, cached = state['rng']
        self.rng.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state['torch_rng'])
        self.history = state['history']
        self.load_extra_state(state['extra'])

    # ------------------------------------------------------------------ forwarding of the other hooks
    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def on_fit_start(self):
        return self.inner.on_fit_start()

    def on_fit_end(self):
        return self.inner.on_fit_end()

    def on_train_start(self):
        return self.inner.on_train_start()

    def on_train_end(self):
        return self.inner.on_train_end()

    def on_validation_start(self):
        return self.inner.on_validation_start()

    def on_validation_end(self):
        return self.inner.on_validation_end()


def _split_optimizer_conf(conf) -> Tuple[List[Any], List[Any]]:
    """Lightning's ``configure_optimizers`` forms -> (optimizers, scheduler configs)."""
    if conf is None:
        return [], []
    if isinstance(conf, torch.optim.Optimizer):
        return [conf], []
    if isinstance(conf, dict):
        scheds = [conf['lr_scheduler']] if conf.get('lr_scheduler') is not None else []
        return [conf['optimizer']], scheds
    if isinstance(conf, (list, tuple)):
        if len(conf) == 2 and isinstance(conf[0], (list, tuple)):
            return list(conf[0]), list(conf[1])
        if all(isinstance(c, dict) for c in conf):
            opts, scheds = [], []
            for c in conf:
                o, s = _split_optimizer_conf(c)
                opts += o
                scheds += s
            return opts, scheds
        return list(conf), []
    raise TypeError(f'Unknown optimizer configuration from the evaluator: {type(conf).__name__}')
