"""One-shot (weight-sharing) search over the NAS-Bench-201 cell, trained as a Lightning module.

One :class:`OneShotModule` trains the :class:`~nni_nasext.strategies.oneshot_supernet.NB201Supernet`
and, for the differentiable methods, its architecture parameters ``α`` (6 edges x 5 ops),
alternating as in DARTS: the training data is split in two halves; each step takes one batch
of each, updates ``α`` on the second half (Adam) and the weights on the first (SGD, momentum,
cosine-annealed learning rate, gradient clipping). Validation accuracy of the supernet on the
dataset's validation split is measured after every epoch and reported with
``nni.report_intermediate_result``. The method decides how edges mix their ops:

``darts`` / ``darts2``
    Liu, Simonyan, Yang, "DARTS", ICLR 2019: ``w = softmax(α)``, soft mix. ``darts`` is the
    first-order approximation (``∇_α L_val(w, α)``); ``darts2`` the second-order one,
    ``∇_α L_val(w', α) - ξ (∇_α L_train(w⁺, α) - ∇_α L_train(w⁻, α)) / 2ε`` with the
    unrolled weights ``w' = w - ξ ∇_w L_train(w, α)`` and ``w^± = w ± ε ∇_{w'} L_val(w', α)``,
    ``ε = 0.01 / ||∇_{w'} L_val||`` (eq. 6-8; ``ξ`` = the current weight learning rate).
``gdas``
    Dong & Yang, "Searching for a robust neural architecture in four GPU hours", CVPR 2019:
    Gumbel-softmax sample per edge, hard one-hot in the forward pass (one op computed),
    straight-through gradient; temperature annealed linearly from ``tau_max`` 10 to
    ``tau_min`` 0.1 over the epochs.
``snas``
    Xie et al., "SNAS", ICLR 2019: relaxed (soft) Gumbel-softmax sample per edge, all ops
    computed, temperature annealed from ``tau_max`` by a factor per epoch down to ``tau_min``
    (the resource term of the paper is not included).
``pcdarts``
    Xu et al., "PC-DARTS", ICLR 2020: DARTS with partial channel connections (``partial_k``
    = K = 4: the ops see 1/K of the channels) and edge normalization (``softmax`` over the
    incoming edges of each node of per-edge parameters ``β``; an op's strength is
    ``softmax(α)·β``).
``fairdarts``
    Chu et al., "Fair DARTS", ECCV 2020: ``w = sigmoid(α)`` (independent, no competition
    between ops) and the zero-one loss ``L_01 = -mean((σ(α) - 0.5)^2)`` weighted by
    ``zero_one_weight`` (10) added to the architecture loss.
``rsps``
    Li & Talwalkar, "Random search and reproducibility for NAS", UAI 2019: one uniformly
    sampled path per step, no ``α``; then ``num_candidates`` random cells are scored by the
    trained supernet on the second half of the data and the best is kept.
``spos``
    Guo et al., "Single path one-shot NAS with uniform sampling", ECCV 2020: the same
    supernet training; then an evolutionary search (top-k parents, mutation and crossover)
    over cells scored by the supernet.

The derived cell (:meth:`OneShotModule.derive`) is the ``argmax`` op of every edge over all
five ops, including ``none``, as in the NB201 paper's one-shot protocol (the cause of its
all-skip/none collapses). :func:`search` runs the whole thing and returns the sample and
the history (``α`` softmax per epoch, validation accuracy per epoch).
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

import nni
import pytorch_lightning as pl

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.strategies.oneshot_supernet import Mix, NB201Supernet

__all__ = ['METHODS', 'MODULES', 'OneShotModule', 'module_class', 'PairedHalves', 'batches_of', 'darts_second_order_grad', 'make_loaders', 'search',
           'search_single_path', 'supernet_accuracy']

METHODS = ('darts', 'darts2', 'gdas', 'snas', 'pcdarts', 'fairdarts', 'rsps', 'spos')
_DIFFERENTIABLE = ('darts', 'darts2', 'gdas', 'snas', 'pcdarts', 'fairdarts')


#: every one-shot method -> ``(module, class)`` of its Lightning module (imported on use)
MODULES: Dict[str, tuple] = {
    **{m: ('nni_nasext.strategies.oneshot', 'OneShotModule') for m in METHODS},
    'proxyless': ('nni_nasext.strategies.proxylessnas', 'ProxylessModule'),
    'enas': ('nni_nasext.strategies.enas', 'EnasModule'),
    'rdarts': ('nni_nasext.strategies.oneshot_variants', 'RobustDartsModule'),
    'darts_plus': ('nni_nasext.strategies.oneshot_variants', 'DartsPlusModule'),
    'pdarts': ('nni_nasext.strategies.oneshot_variants', 'PDartsModule'),
    'asap': ('nni_nasext.strategies.oneshot_variants', 'AsapModule'),
    'darts_pt': ('nni_nasext.strategies.oneshot_variants', 'DartsPTModule'),
}


def module_class(method: str):
    """The Lightning module class that trains ``method`` (any name of :data:`MODULES`)."""
    import importlib
    if method not in MODULES:
        raise ValueError(f'unknown one-shot method {method!r}; choose one of {", ".join(MODULES)}')
    module, name = MODULES[method]
    return getattr(importlib.import_module(module), name)


class PairedHalves(Dataset):
    """Item ``i``: (example ``i`` of ``first``, example ``i mod len(second)`` of ``second``)."""

    def __init__(self, first: Dataset, second: Dataset):
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i):
        return self.first[i], self.second[i % len(self.second)]


def _gumbel_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    e = -torch.log(u.clamp_min(1e-20))  # Exp(1)
    return -torch.log(e.clamp_min(1e-20))


def darts_second_order_grad(weights: List[torch.Tensor], arch: List[torch.Tensor], train_loss, val_loss,
                            xi: float, weight_decay: float = 0.0) -> List[torch.Tensor]:
    """DARTS' second-order architecture gradient (eq. 7-8), for any model given as closures.

    ``train_loss()`` / ``val_loss()`` evaluate the losses at the *current* values of the
    tensors in ``weights`` and ``arch`` (which this function changes in place and restores).
    The virtual step is plain SGD with weight decay: ``w' = w - ξ (∇_w L_train + λ w)``.
    Returns ``∇_α L_val(w', α) - ξ (∇_α L_train(w⁺, α) - ∇_α L_train(w⁻, α)) / 2ε``.
    """
    backup = [w.detach().clone() for w in weights]
    g_train = torch.autograd.grad(train_loss(), weights, allow_unused=True)
    with torch.no_grad():
        for w, g in zip(weights, g_train):
            if g is not None:
                w.sub_(xi * (g + weight_decay * w))
            elif weight_decay:
                w.sub_(xi * weight_decay * w)
    loss = val_loss()
    grads = torch.autograd.grad(loss, list(arch) + list(weights), allow_unused=True)
    d_arch = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads[:len(arch)], arch)]
    d_w = [g if g is not None else torch.zeros_like(w) for g, w in zip(grads[len(arch):], weights)]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in d_w))
    eps = 0.01 / float(norm) if float(norm) > 0 else 0.0
    hessian = [torch.zeros_like(a) for a in arch]
    if eps > 0:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, b, d in zip(weights, backup, d_w):
                    w.copy_(b + sign * eps * d)
            g = torch.autograd.grad(train_loss(), arch, allow_unused=True)
            for h, gi in zip(hessian, g):
                if gi is not None:
                    h.add_(sign * gi)
    with torch.no_grad():
        for w, b in zip(weights, backup):
            w.copy_(b)
    if eps == 0:
        return d_arch
    return [da - xi * h / (2 * eps) for da, h in zip(d_arch, hessian)]


class OneShotModule(pl.LightningModule):
    """Supernet + architecture parameters + the method's training step (see the module docstring).

    Subclasses add methods: extend ``methods`` (and ``differentiable_methods``) and override
    :meth:`mixes`, :meth:`_arch_extra_loss`, :meth:`derive` or the epoch hooks.
    """

    methods = METHODS
    differentiable_methods = _DIFFERENTIABLE

    def __init__(self, method: str = 'darts', *, num_cells: int = 1, channels: int = 16, num_classes: int = 10,
                 in_channels: int = 3, epochs: int = 10, weight_lr: float = 0.025, weight_lr_min: float = 0.001,
                 momentum: float = 0.9, weight_decay: float = 3e-4, arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3,
                 grad_clip: float = 5.0, partial_k: Optional[int] = None, tau_max: float = 10.0, tau_min: float = 0.1,
                 zero_one_weight: float = 10.0, warmup_epochs: int = 0, seed: int = 0):
        super().__init__()
        if method not in self.methods:
            raise ValueError(f'unknown one-shot method {method!r}; choose one of {self.methods}')
        if epochs < 1:
            raise ValueError(f'epochs must be positive, got {epochs}')
        self.method, self.epochs, self.seed = method, int(epochs), int(seed)
        self.hp = dict(weight_lr=weight_lr, weight_lr_min=weight_lr_min, momentum=momentum, weight_decay=weight_decay,
                       arch_lr=arch_lr, arch_weight_decay=arch_weight_decay, grad_clip=grad_clip, tau_max=tau_max,
                       tau_min=tau_min, zero_one_weight=zero_one_weight, warmup_epochs=warmup_epochs)
        if partial_k is None:
            partial_k = 4 if method == 'pcdarts' else 1
        torch.manual_seed(seed)
        self.supernet = NB201Supernet(num_cells, channels, num_classes, in_channels, partial_k=partial_k)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGE_LABELS), len(OPS)))
        self.beta = nn.Parameter(1e-3 * torch.randn(len(EDGE_LABELS))) if method == 'pcdarts' else None
        self.supernet_kwargs = dict(num_cells=num_cells, channels=channels, num_classes=num_classes,
                                    in_channels=in_channels, partial_k=partial_k)
        self.automatic_optimization = False
        self.generator = torch.Generator().manual_seed(seed)
        self.tau = tau_max
        self.history: Dict[str, list] = {'alpha': [], 'val_acc': [], 'tau': [], 'train_loss': []}
        self._val_correct = self._val_total = 0
        self._train_losses: List[float] = []

    # ---------------------------------------------------------------- mixing
    @property
    def differentiable(self) -> bool:
        return self.method in self.differentiable_methods

    def arch_parameters(self) -> List[nn.Parameter]:
        return [p for p in (self.alpha, self.beta) if p is not None] if self.differentiable else []

    def weight_parameters(self) -> List[nn.Parameter]:
        return list(self.supernet.parameters())

    def op_strengths(self) -> torch.Tensor:
        """Per edge, the strength of each op used to derive the cell (6 x 5, detached)."""
        with torch.no_grad():
            if self.method == 'fairdarts':
                return torch.sigmoid(self.alpha)
            return F.softmax(self.alpha, dim=-1)

    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        """The :class:`Mix` of every edge for one forward pass."""
        n = len(OPS)
        if self.method in ('rsps', 'spos'):
            idx = torch.randint(0, n, (len(EDGE_LABELS),), generator=self.generator).tolist()
            return {label: Mix('single', index=[k]) for label, k in zip(EDGE_LABELS, idx)}
        if self.method == 'fairdarts':
            w = torch.sigmoid(self.alpha)
            return {label: Mix('soft', weights=w[e]) for e, label in enumerate(EDGE_LABELS)}
        if self.method in ('gdas', 'snas') and training:
            logits = (F.log_softmax(self.alpha, dim=-1) + _gumbel_like(self.alpha, self.generator)) / self.tau
            probs = F.softmax(logits, dim=-1)
            if self.method == 'snas':
                return {label: Mix('soft', weights=probs[e]) for e, label in enumerate(EDGE_LABELS)}
            index = probs.argmax(dim=-1)
            hard = F.one_hot(index, n).to(probs.dtype) - probs.detach() + probs
            return {label: Mix('hard', weights=hard[e], index=[int(index[e])]) for e, label in enumerate(EDGE_LABELS)}
        if self.method == 'gdas':  # evaluation: the argmax path
            w = F.softmax(self.alpha, dim=-1)
            index = w.argmax(dim=-1)
            hard = F.one_hot(index, n).to(w.dtype)
            return {label: Mix('hard', weights=hard[e], index=[int(index[e])]) for e, label in enumerate(EDGE_LABELS)}
        w = F.softmax(self.alpha, dim=-1)
        return {label: Mix('soft', weights=w[e]) for e, label in enumerate(EDGE_LABELS)}

    def edge_scale(self) -> Optional[Dict[str, torch.Tensor]]:
        """PC-DARTS edge normalization: softmax of ``β`` over the incoming edges of each node."""
        if self.beta is None:
            return None
        scale = {}
        for j in range(1, 4):
            labels = [f'{i}_{j}' for i in range(j)]
            idx = [EDGE_LABELS.index(lb) for lb in labels]
            s = F.softmax(self.beta[idx], dim=0)
            scale.update({lb: s[k] for k, lb in enumerate(labels)})
        return scale

    def forward(self, x: torch.Tensor, mixes: Optional[Dict[str, Mix]] = None) -> torch.Tensor:
        return self.supernet(x, mixes if mixes is not None else self.mixes(self.training), self.edge_scale())

    def derive(self) -> Dict[str, str]:
        """The NB201 sample: per edge the strongest op (PC-DARTS: weighted by the edge's β)."""
        if not self.differentiable:
            raise RuntimeError(f'{self.method} has no architecture weights; derive with search_single_path()')
        strength = self.op_strengths()
        return {label: OPS[int(strength[e].argmax())] for e, label in enumerate(EDGE_LABELS)}

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        hp = self.hp
        opt_w = torch.optim.SGD(self.weight_parameters(), lr=hp['weight_lr'], momentum=hp['momentum'],
                                weight_decay=hp['weight_decay'])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, self.epochs, eta_min=hp['weight_lr_min'])
        opts = [opt_w]
        if self.differentiable:
            opts.append(torch.optim.Adam(self.arch_parameters(), lr=hp['arch_lr'], betas=(0.5, 0.999),
                                         weight_decay=hp['arch_weight_decay']))
        return opts, [sched]

    def _backward(self, loss: torch.Tensor) -> None:
        """``manual_backward`` inside a Trainer, plain ``backward`` outside one (tests, notebooks)."""
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _arch_extra_loss(self) -> torch.Tensor:
        if self.method == 'fairdarts':
            return -self.hp['zero_one_weight'] * ((torch.sigmoid(self.alpha) - 0.5) ** 2).mean()
        return torch.zeros((), device=self.alpha.device)

    def _arch_step(self, opt_a, xt, yt, xv, yv) -> None:
        opt_a.zero_grad()
        if self.method == 'darts2':
            weights = [p for p in self.weight_parameters() if p.requires_grad]
            arch = self.arch_parameters()
            mixes_train = lambda: self.supernet(xt, self.mixes(True), self.edge_scale())  # noqa: E731
            grads = darts_second_order_grad(
                weights, arch,
                lambda: F.cross_entropy(mixes_train(), yt),
                lambda: F.cross_entropy(self.supernet(xv, self.mixes(True), self.edge_scale()), yv),
                xi=self.optimizers()[0].param_groups[0]['lr'], weight_decay=self.hp['weight_decay'])
            for p, g in zip(arch, grads):
                p.grad = g
        else:
            loss = F.cross_entropy(self(xv), yv) + self._arch_extra_loss()
            self._backward(loss)
        opt_a.step()
        for p in self.weight_parameters():  # the arch step must not leave gradients on the weights
            p.grad = None

    def training_step(self, batch, batch_idx):
        (xt, yt), (xv, yv) = batch
        opts = self.optimizers()
        opt_w = opts[0] if isinstance(opts, (list, tuple)) else opts
        if self.differentiable and self.current_epoch >= self.hp['warmup_epochs']:
            self._arch_step(opts[1], xt, yt, xv, yv)
        opt_w.zero_grad()
        loss = F.cross_entropy(self(xt), yt)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'{self.method}: training loss is {float(loss)} at epoch {self.current_epoch}')
        self.manual_backward(loss)
        self.clip_gradients(opt_w, gradient_clip_val=self.hp['grad_clip'], gradient_clip_algorithm='norm')
        opt_w.step()
        self._train_losses.append(float(loss.detach()))
        return loss.detach()

    def on_train_epoch_end(self):
        sched = self.lr_schedulers()
        sched.step()
        self.history['train_loss'].append(sum(self._train_losses) / max(1, len(self._train_losses)))
        self._train_losses = []
        self.history['tau'].append(self.tau)
        hp = self.hp
        if self.method == 'gdas':
            frac = (self.current_epoch + 1) / max(1, self.epochs - 1)
            self.tau = hp['tau_max'] - (hp['tau_max'] - hp['tau_min']) * min(1.0, frac)
        elif self.method == 'snas':
            self.tau = max(hp['tau_min'], self.tau * 0.9)
        if self.differentiable:
            self.history['alpha'].append(self.op_strengths().tolist())

    def validation_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            logits = self(x, self.mixes(training=False))
        self._val_correct += int((logits.argmax(-1) == y).sum())
        self._val_total += len(y)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or self._val_total == 0:
            self._val_correct = self._val_total = 0
            return
        acc = self._val_correct / self._val_total
        self._val_correct = self._val_total = 0
        self.history['val_acc'].append(acc)
        nni.report_intermediate_result(acc)


# -------------------------------------------------------------------- single-path search

@torch.no_grad()
def supernet_accuracy(module: OneShotModule, sample: Dict[str, str], batches) -> float:
    """Accuracy of ``sample``'s path of the trained supernet on ``batches`` (train-mode BN:
    batch statistics, as NB201's search networks; nothing is updated but BN running stats)."""
    net = module.supernet
    was = net.training
    net.train()
    mixes = net.single_path(sample)
    correct = total = 0
    for x, y in batches:
        correct += int((net(x, mixes).argmax(-1) == y).sum())
        total += len(y)
    net.train(was)
    return correct / max(1, total)


def _random_sample(rng: torch.Generator) -> Dict[str, str]:
    return {label: OPS[int(torch.randint(0, len(OPS), (1,), generator=rng))] for label in EDGE_LABELS}


def search_single_path(module: OneShotModule, batches, *, num_candidates: int = 100, seed: int = 0,
                       population: int = 16, parents: int = 8, mutate_prob: float = 0.2) -> Dict[str, Any]:
    """RSPS: best of ``num_candidates`` random cells; SPOS: evolution with the same number of
    evaluations (``population`` random cells, then children of the ``parents`` best by
    mutation (each edge resampled with ``mutate_prob``) and uniform crossover, half each).
    Returns ``{'sample', 'score', 'evaluated'}``."""
    rng = torch.Generator().manual_seed(seed)
    scored: Dict[str, tuple] = {}

    def evaluate(s):
        key = '|'.join(s[label] for label in EDGE_LABELS)
        if key not in scored:
            scored[key] = (supernet_accuracy(module, s, batches), s)
        return scored[key][0]

    if module.method == 'rsps':
        for _ in range(num_candidates * 10):
            if len(scored) >= num_candidates:
                break
            evaluate(_random_sample(rng))
    else:
        pool = []
        while len(pool) < min(population, num_candidates):
            s = _random_sample(rng)
            evaluate(s)
            pool.append(s)
        tries = 0
        while len(scored) < num_candidates and tries < num_candidates * 20:
            tries += 1
            top = sorted(scored.values(), key=lambda t: -t[0])[:parents]
            if torch.rand(1, generator=rng).item() < 0.5:
                parent = top[int(torch.randint(0, len(top), (1,), generator=rng))][1]
                child = {lb: (OPS[int(torch.randint(0, len(OPS), (1,), generator=rng))]
                              if torch.rand(1, generator=rng).item() < mutate_prob else op) for lb, op in parent.items()}
            else:
                i, j = torch.randint(0, len(top), (2,), generator=rng).tolist()
                child = {lb: (top[i][1][lb] if torch.rand(1, generator=rng).item() < 0.5 else top[j][1][lb])
                         for lb in EDGE_LABELS}
            evaluate(child)
    best_score, best = max(scored.values(), key=lambda t: t[0])
    return {'sample': dict(best), 'score': best_score, 'evaluated': len(scored)}


# -------------------------------------------------------------------- driver

def _resized(ds, size: Optional[int]):
    if size is None:
        return ds
    from nni_nasext.datasets import ImageDataset
    x = ds.images.float() * ds.scale
    x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
    return ImageDataset(x, ds.labels, 1.0)


def make_loaders(dataset: str = 'fashion-mnist', *, limit: Optional[int] = 5000, image_size: Optional[int] = None,
                 batch_size: int = 64, seed: int = 0):
    """The DARTS data protocol: the training split (``limit`` examples, resized to
    ``image_size``) halved into a weight half and an architecture half, paired per step; the
    dataset's validation split for the per-epoch supernet accuracy. Returns
    ``(paired_loader, val_loader, arch_half, info)``."""
    from nni_nasext.datasets import load_dataset
    train, val, info = load_dataset(dataset, split_seed=seed, limit=limit)
    train, val = _resized(train, image_size), _resized(val, image_size)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=gen).tolist()
    half = len(perm) // 2
    first, second = Subset(train, perm[:half]), Subset(train, perm[half:])
    loader = DataLoader(PairedHalves(first, second), batch_size=batch_size, shuffle=True, generator=gen, drop_last=True)
    return loader, DataLoader(val, batch_size=256, shuffle=False), second, info


def batches_of(ds, n: int = 1024, batch_size: int = 256):
    """The first ``n`` examples of ``ds`` as a list of ``(x, y)`` batches."""
    idx = list(range(min(len(ds), n)))
    return [(torch.stack([ds[i][0] for i in chunk]), torch.tensor([int(ds[i][1]) for i in chunk]))
            for chunk in _chunks(idx, batch_size)]


def search(method: str = 'darts', *, dataset: str = 'fashion-mnist', limit: Optional[int] = 5000,
           image_size: Optional[int] = None, epochs: int = 10, batch_size: int = 64, num_cells: int = 1,
           channels: int = 16, seed: int = 0, num_candidates: int = 100, accelerator: str = 'auto',
           verbose: bool = True, module_cls=None, callbacks=None, **method_args) -> Dict[str, Any]:
    """Train the supernet with ``method`` on ``dataset`` and derive a NB201 cell.

    The training split (``limit`` examples) is halved into the weight half and the
    architecture half; the dataset's validation split measures the supernet per epoch.
    ``module_cls`` (default: the class of ``method`` in :data:`MODULES`) and Lightning
    ``callbacks`` extend it.
    Returns ``{'sample', 'val_acc' (per epoch), 'alpha' (per epoch: 6 x 5 strengths),
    'train_loss', 'seconds', 'method', ...}``.
    """
    import time
    from nni_nasext.evaluators.classification import _interrupt_stays_interrupt, _quiet_lightning
    start = time.time()
    loader, val_loader, arch_half, info = make_loaders(dataset, limit=limit, image_size=image_size,
                                                       batch_size=batch_size, seed=seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = (module_cls or module_class(method))(method, num_cells=num_cells, channels=channels,
                                           num_classes=info.num_classes, in_channels=info.in_channels,
                                           epochs=epochs, seed=seed, **method_args)
    with _quiet_lightning():
        trainer = pl.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, num_sanity_val_steps=0,
                             logger=False, enable_checkpointing=False, enable_model_summary=False,
                             enable_progress_bar=verbose and sys.stderr.isatty(), callbacks=callbacks)
        with _interrupt_stays_interrupt():
            trainer.fit(module, loader, val_loader)
    module.to('cpu')
    result: Dict[str, Any] = {'method': method, 'dataset': dataset, 'epochs': epochs, 'seed': seed,
                              'num_cells': num_cells, 'channels': channels, 'val_acc': module.history['val_acc'],
                              'alpha': module.history['alpha'], 'train_loss': module.history['train_loss'],
                              'ops': list(OPS), 'edges': list(EDGE_LABELS), 'epochs_run': len(module.history['val_acc'])}
    for key, value in module.history.items():  # extra records of subclasses (eigenvalues, latency, ...)
        result.setdefault(key, value)
    if module.differentiable:
        result['sample'] = module.derive()
    else:
        found = search_single_path(module, batches_of(arch_half), num_candidates=num_candidates, seed=seed)
        result.update(sample=found['sample'], supernet_score=found['score'], evaluated=found['evaluated'])
    result['module'] = module
    result['seconds'] = time.time() - start
    if verbose:
        print(f'{method}: derived {result["sample"]} in {result["seconds"]:.0f} s; supernet val acc per epoch '
              f'{[round(a, 3) for a in result["val_acc"]]}', file=sys.stderr, flush=True)
    return result


def _chunks(seq, n):
    return [seq[i:i + n] for i in range(0, len(seq), n)]
