"""Once-for-All: progressive shrinking, then a constrained search of sub-networks without retraining.

H. Cai, C. Gan, T. Wang, Z. Zhang, S. Han, "Once-for-All: Train One Network and Specialize it
for Efficient Deployment", ICLR 2020.

Training (:class:`OFAModule`, a Lightning module with manual optimisation) follows the
paper's *progressive shrinking* (Sec. 3.3, Fig. 2): the largest network is trained first
(phase ``full``); then the supernet is fine-tuned while sampling sub-networks from a space
that grows phase by phase:

==========  ===============  =============  ==================
phase       kernel           depth          expansion
==========  ===============  =============  ==================
full        7                4              6
kernel      3, 5, 7          4              6
depth       3, 5, 7          {3,4} then {2,3,4}   6
expand      3, 5, 7          2, 3, 4        {4,6} then {3,4,6}
==========  ===============  =============  ==================

Each step of a shrinking phase samples ``subnets_per_step`` sub-networks (and an input
resolution each) and accumulates their gradients. The loss is cross-entropy plus
``kd_ratio`` times the knowledge-distillation loss against the largest network as it was at
the end of phase ``full`` (the paper's teacher). The hidden channels are sorted by
importance before the ``expand`` phase (:meth:`ElasticMBConv.sort_channels`). Every phase
has its own cosine learning-rate schedule (``lr_full`` for ``full``, ``lr_shrink`` after).
``progressive=False`` is the paper's "without PS" ablation: after ``full``, every dimension
is elastic at once, for the same number of steps.

After every epoch the largest and the smallest sub-networks are validated (each with
re-estimated BN statistics, :func:`~nni_nasext.strategies.oneshot.ofa_supernet.calibrate_bn`);
the largest one's accuracy is reported with ``nni.report_intermediate_result``.

Search (:func:`evolve_subnet`, Sec. 3.4): an evolutionary search over sub-networks under a
budget on multiply-accumulates (``max_macs``, counted by :meth:`OFASupernet.macs`), each
sub-network scored by its accuracy with the inherited weights (BN re-estimated) on a held-out
part of the training data -- no sub-network is retrained. The paper scores candidates with
an accuracy predictor fitted to 16K measured sub-networks; at the scale of this machine the
measurement itself is cheap enough to use directly.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import nni
import pytorch_lightning as pl

from nni_nasext.search_spaces.mobile import OFA_DEPTHS, OFA_EXPANSIONS, OFA_KERNELS, ofa_max_sample
from nni_nasext.strategies.oneshot.ofa_supernet import OFASupernet, calibrate_bn, ofa_min_sample

__all__ = ['PHASES', 'OFAModule', 'evaluate_subnet', 'evolve_subnet', 'latency_budget', 'latency_cost', 'phase_choices',
           'random_subnets', 'search_ofa']

PHASES = ('full', 'kernel', 'depth', 'expand')


def phase_choices(phase: str, second_half: bool, progressive: bool = True) -> Dict[str, Tuple[int, ...]]:
    """The kernel / depth / expansion choices sampled in ``phase`` (see the module table)."""
    k, d, e = tuple(OFA_KERNELS), tuple(OFA_DEPTHS), tuple(OFA_EXPANSIONS)
    if phase not in PHASES:
        raise ValueError(f'Unknown OFA phase {phase!r}; expected one of {PHASES}')
    if phase == 'full':
        return {'kernels': (max(k),), 'depths': (max(d),), 'expansions': (max(e),)}
    if not progressive or phase == 'expand':
        widths = e if (second_half or not progressive) else e[-2:]
        return {'kernels': k, 'depths': d, 'expansions': widths}
    if phase == 'kernel':
        return {'kernels': k, 'depths': (max(d),), 'expansions': (max(e),)}
    return {'kernels': k, 'depths': d if second_half else d[-2:], 'expansions': (max(e),)}


class OFAModule(pl.LightningModule):
    """Progressive-shrinking training of an :class:`OFASupernet` (see the module docstring).

    ``schedule`` maps each phase of :data:`PHASES` to its number of epochs (0 skips a phase).
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, resolutions: Sequence[int] = (24, 28, 32),
                 width_mult: float = 0.25, dropout: float = 0.1,
                 schedule: Optional[Dict[str, int]] = None, progressive: bool = True,
                 lr_full: float = 0.05, lr_shrink: float = 0.02, momentum: float = 0.9, weight_decay: float = 3e-5,
                 kd_ratio: float = 1.0, subnets_per_step: int = 2, calibration_batches: int = 4, seed: int = 0):
        super().__init__()
        schedule = dict(schedule or {'full': 4, 'kernel': 2, 'depth': 2, 'expand': 2})
        unknown = set(schedule) - set(PHASES)
        if unknown or any(int(v) < 0 for v in schedule.values()) or sum(schedule.values()) < 1:
            raise ValueError(f'schedule must map phases of {PHASES} to epochs >= 0 (at least one epoch), '
                             f'got {schedule}')
        if subnets_per_step < 1 or kd_ratio < 0:
            raise ValueError(f'Need subnets_per_step >= 1 and kd_ratio >= 0, got {subnets_per_step}, {kd_ratio}')
        self.schedule = {p: int(schedule.get(p, 0)) for p in PHASES}
        self.epochs = sum(self.schedule.values())
        self.progressive = progressive
        self.hp = dict(lr_full=lr_full, lr_shrink=lr_shrink, momentum=momentum, weight_decay=weight_decay,
                       kd_ratio=kd_ratio, subnets_per_step=subnets_per_step, calibration_batches=calibration_batches)
        torch.manual_seed(seed)
        self.supernet = OFASupernet(num_classes, resolutions, width_mult, in_channels, dropout)
        self.generator = torch.Generator().manual_seed(seed)
        self.automatic_optimization = False
        self.teacher: Optional[OFASupernet] = None
        self.history: Dict[str, list] = {'phase': [], 'val_acc': [], 'val_acc_min': [], 'train_loss': []}
        self._losses: List[float] = []
        self._calib: List[Tuple[torch.Tensor, torch.Tensor]] = []
        self._val_batches: List[Tuple[torch.Tensor, torch.Tensor]] = []
        self._sorted = False

    # ---------------------------------------------------------------- schedule
    def phase_at(self, epoch: int) -> Tuple[str, int, int]:
        """``(phase, epoch within the phase, epochs of the phase)`` of a global epoch."""
        start = 0
        for p in PHASES:
            n = self.schedule[p]
            if epoch < start + n:
                return p, epoch - start, n
            start += n
        return PHASES[-1], 0, 1

    def choices(self, epoch: int) -> Dict[str, Tuple[int, ...]]:
        phase, i, n = self.phase_at(epoch)
        return phase_choices(phase, second_half=i >= n // 2, progressive=self.progressive)

    def configure_optimizers(self):
        return torch.optim.SGD(self.supernet.parameters(), lr=self.hp['lr_full'], momentum=self.hp['momentum'],
                               nesterov=True, weight_decay=self.hp['weight_decay'])

    def _lr(self, batch_idx: int) -> float:
        phase, i, n = self.phase_at(self.current_epoch)
        steps = max(1, self.trainer.num_training_batches)
        t = (i * steps + batch_idx) / (n * steps)
        base = self.hp['lr_full'] if phase == 'full' else self.hp['lr_shrink']
        return 0.5 * base * (1 + math.cos(math.pi * t))

    def on_train_epoch_start(self):
        phase, i, _ = self.phase_at(self.current_epoch)
        if phase != 'full' and self.teacher is None and self.hp['kd_ratio'] > 0 and self.schedule['full'] > 0:
            self.teacher = copy.deepcopy(self.supernet).eval()   # the largest network after phase 'full'
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        if not self._sorted and (phase == 'expand' or (not self.progressive and phase != 'full')):
            self.supernet.sort_channels()
            self._sorted = True
        self._calib = []

    # ---------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        x, y = batch
        if len(self._calib) < self.hp['calibration_batches']:
            self._calib.append((x.detach(), y.detach()))
        opt = self.optimizers()
        lr = self._lr(batch_idx)
        for group in opt.param_groups:
            group['lr'] = lr
        opt.zero_grad()
        phase, _, _ = self.phase_at(self.current_epoch)
        n = 1 if phase == 'full' else self.hp['subnets_per_step']
        soft = None
        if self.teacher is not None and phase != 'full':
            with torch.no_grad():
                self.teacher.set_active(ofa_max_sample(self.supernet.resolutions[-1]))
                soft = F.softmax(self.teacher(x), dim=-1)
        total = 0.0
        for _ in range(n):
            sample = self.supernet.random_sample(self.generator, **self.choices(self.current_epoch))
            self.supernet.set_active(sample)
            logits = self.supernet(x)
            loss = F.cross_entropy(logits, y)
            if soft is not None:
                loss = loss + self.hp['kd_ratio'] * -(soft * F.log_softmax(logits, dim=-1)).sum(-1).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f'OFA: training loss is {float(loss)} in phase {phase}')
            if self._trainer is not None:
                self.manual_backward(loss / n)
            else:
                (loss / n).backward()
            total += float(loss.detach()) / n
        self.clip_gradients(opt, gradient_clip_val=5.0, gradient_clip_algorithm='norm')
        opt.step()
        self._losses.append(total)
        return torch.tensor(total)

    def on_train_epoch_end(self):
        self.history['train_loss'].append(sum(self._losses) / max(1, len(self._losses)))
        self.history['phase'].append(self.phase_at(self.current_epoch)[0])
        self._losses = []

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx):
        self._val_batches.append((batch[0].detach(), batch[1].detach()))

    def on_validation_epoch_end(self):
        batches, self._val_batches = self._val_batches, []
        if self.trainer.sanity_checking or not batches or not self._calib:
            return
        r = self.supernet.resolutions
        acc_max = evaluate_subnet(self.supernet, ofa_max_sample(r[-1]), self._calib, batches)
        acc_min = evaluate_subnet(self.supernet, ofa_min_sample(r[0]), self._calib, batches)
        self.history['val_acc'].append(acc_max)
        self.history['val_acc_min'].append(acc_min)
        nni.report_intermediate_result({'default': acc_max, 'smallest_subnet': acc_min})


# -------------------------------------------------------------------- sub-network evaluation and search

@torch.no_grad()
def evaluate_subnet(supernet: OFASupernet, sample: Dict[str, Any], calibration, batches) -> float:
    """Accuracy of ``sample`` with the supernet's weights, BN statistics re-estimated on
    ``calibration`` batches (the supernet's own statistics are put back afterwards)."""
    was = supernet.active
    supernet.set_active(sample)
    try:
        with calibrate_bn(supernet, calibration):
            correct = total = 0
            for x, y in batches:
                x, y = x.to(_device(supernet)), y.to(_device(supernet))
                correct += int((supernet(x).argmax(-1) == y).sum())
                total += len(y)
    finally:
        supernet.set_active(was)
    return correct / max(1, total)


def _device(net) -> torch.device:
    return next(net.parameters()).device


def _key(sample: Dict[str, Any]) -> tuple:
    return tuple(sorted(sample.items()))


def latency_cost(supernet: OFASupernet, predictor) -> Callable[[Dict[str, Any]], float]:
    """A sub-network's latency in ms by a :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor`
    (the exported plain network, :meth:`OFASupernet.export`; cached per sub-network): the cost to
    give :func:`evolve_subnet` for a search under a latency budget. The predictor's input is the
    supernet's input at the largest resolution: a sub-network at a smaller one resizes it first,
    as the exported network does."""
    cache: Dict[tuple, float] = {}

    def cost(sample: Dict[str, Any]) -> float:
        k = _key(sample)
        if k not in cache:
            cache[k] = float(predictor.predict(supernet.export(sample)))
        return cache[k]

    return cost


def latency_budget(max_latency: Optional[float], latency_predictor):
    """The predictor of a latency budget, checked before any training: both or neither of
    ``max_latency`` (ms, > 0) and ``latency_predictor`` (a predictor, its state, or the path of
    its JSON; loaded here). ``None`` without a budget."""
    if max_latency is None and latency_predictor is None:
        return None
    if max_latency is None or latency_predictor is None or max_latency <= 0:
        raise ValueError('A latency budget needs both max_latency (ms, > 0) and a latency_predictor')
    from nni_nasext.hardware.latency_predictor import LatencyPredictor
    return LatencyPredictor.from_state_dict(latency_predictor)


def _within(supernet: OFASupernet, max_macs, cost, max_cost):
    if (cost is None) != (max_cost is None):
        raise ValueError('cost and max_cost go together (a budget needs its cost function and the reverse)')

    def fits(s) -> bool:
        return (max_macs is None or supernet.macs(s) <= max_macs) and (max_cost is None or cost(s) <= max_cost)

    return fits


def random_subnets(supernet: OFASupernet, n: int, *, max_macs: Optional[float] = None, seed: int = 0,
                   tries: int = 100000, cost: Optional[Callable[[Dict[str, Any]], float]] = None,
                   max_cost: Optional[float] = None) -> List[Dict[str, Any]]:
    """``n`` distinct uniformly random sub-networks within ``max_macs`` and ``cost(s) <= max_cost``
    (rejection sampling; e.g. ``cost=latency_cost(supernet, predictor)``)."""
    fits = _within(supernet, max_macs, cost, max_cost)
    smallest = ofa_min_sample(min(supernet.resolutions))
    if not fits(smallest):  # the smallest sub-network is the cheapest: nothing else can fit
        raise ValueError(f'No sub-network within max_macs={max_macs}, max_cost={max_cost}: the smallest one has '
                         f'{supernet.macs(smallest)} MACs' + ('' if cost is None else f' and costs {cost(smallest):.4g}'))
    gen = torch.Generator().manual_seed(seed)
    out: Dict[tuple, Dict[str, Any]] = {}
    for _ in range(tries):
        if len(out) >= n:
            break
        s = supernet.random_sample(gen)
        if _key(s) not in out and fits(s):
            out[_key(s)] = s
    if len(out) < n:
        raise ValueError(f'Found only {len(out)} sub-networks within max_macs={max_macs}, max_cost={max_cost} '
                         f'in {tries} draws')
    return list(out.values())


def _mutate(supernet: OFASupernet, sample: Dict[str, Any], prob: float, gen: torch.Generator) -> Dict[str, Any]:
    fresh = supernet.random_sample(gen)
    child = {k: (fresh[k] if float(torch.rand(1, generator=gen)) < prob else v) for k, v in sample.items()}
    return _canonical(child)


def _crossover(a: Dict[str, Any], b: Dict[str, Any], gen: torch.Generator) -> Dict[str, Any]:
    return _canonical({k: (a[k] if float(torch.rand(1, generator=gen)) < 0.5 else b[k]) for k in a})


def _canonical(sample):
    from nni_nasext.search_spaces.mobile import ofa_canonical_sample
    return ofa_canonical_sample(sample)


def evolve_subnet(supernet: OFASupernet, calibration, batches, *, max_macs: Optional[float] = None,
                  population: int = 20, generations: int = 10, parents: int = 5, mutate_prob: float = 0.1,
                  mutation_share: float = 0.5, seed: int = 0, verbose: bool = False,
                  cost: Optional[Callable[[Dict[str, Any]], float]] = None,
                  max_cost: Optional[float] = None) -> Dict[str, Any]:
    """OFA's evolutionary search (Sec. 3.4) for the most accurate sub-network within ``max_macs``
    and, with a ``cost`` function, ``cost(s) <= max_cost`` (the paper's latency constraint:
    ``cost=latency_cost(supernet, predictor)``, ``max_cost`` in ms).

    Each generation keeps the ``parents`` best, and fills the population with mutations
    (``mutation_share``; every decision redrawn with ``mutate_prob``) and crossovers of parents,
    rejecting children over the budget. Fitness: :func:`evaluate_subnet` on ``batches``
    (cached). Returns ``{'sample', 'accuracy', 'macs', 'evaluated', 'curve'}`` (``curve``: the best
    accuracy after each generation).
    """
    gen = torch.Generator().manual_seed(seed)
    cache: Dict[tuple, float] = {}

    def fitness(s):
        k = _key(s)
        if k not in cache:
            cache[k] = evaluate_subnet(supernet, s, calibration, batches)
        return cache[k]

    fits = _within(supernet, max_macs, cost, max_cost)
    pop = random_subnets(supernet, population, max_macs=max_macs, seed=seed, cost=cost, max_cost=max_cost)
    curve = []
    for g in range(generations):
        ranked = sorted(pop, key=fitness, reverse=True)
        curve.append(fitness(ranked[0]))
        if verbose:
            print(f'OFA search generation {g + 1}/{generations}: best {curve[-1]:.4f} '
                  f'({len(cache)} sub-networks evaluated)', file=sys.stderr, flush=True)
        elite = ranked[:parents]
        children: List[Dict[str, Any]] = []
        attempts = 0
        while len(children) < population - parents and attempts < 1000 * population:
            attempts += 1
            if len(children) < int(mutation_share * (population - parents)):
                i = int(torch.randint(len(elite), (1,), generator=gen))
                child = _mutate(supernet, elite[i], mutate_prob, gen)
            else:
                i, j = torch.randint(len(elite), (2,), generator=gen).tolist()
                child = _crossover(elite[i], elite[j], gen)
            if fits(child):
                children.append(child)
        pop = elite + children
    best = max(pop, key=fitness)
    return {'sample': best, 'accuracy': fitness(best), 'macs': supernet.macs(best), 'evaluated': len(cache),
            'curve': curve, **({} if cost is None else {'cost': cost(best)})}


# -------------------------------------------------------------------- driver

def ofa_loaders(dataset: str = 'fashion-mnist', *, limit: Optional[int] = 5000, batch_size: int = 64,
                search_fraction: float = 0.1, seed: int = 0):
    """Training loader, the held-out search split (a list of batches, for the sub-network
    search), the dataset's validation loader and its info."""
    from nni_nasext.datasets import load_dataset
    from nni_nasext.datasets import batches_of
    train, val, info = load_dataset(dataset, split_seed=seed, limit=limit)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=gen).tolist()
    cut = max(1, int(len(perm) * search_fraction))
    held, fit = Subset(train, perm[:cut]), Subset(train, perm[cut:])
    loader = DataLoader(fit, batch_size=batch_size, shuffle=True, generator=gen, drop_last=True)
    return loader, batches_of(held, n=len(held)), DataLoader(val, batch_size=256, shuffle=False), info


def search_ofa(*, dataset: str = 'fashion-mnist', limit: Optional[int] = 5000, batch_size: int = 64,
               schedule: Optional[Dict[str, int]] = None, max_macs: Optional[float] = None,
               resolutions: Sequence[int] = (24, 28, 32), width_mult: float = 0.25, seed: int = 0,
               population: int = 20, generations: int = 10, accelerator: str = 'auto', verbose: bool = True,
               callbacks=None, val_batches: Optional[int] = 8, max_latency: Optional[float] = None,
               latency_predictor=None, **module_args) -> Dict[str, Any]:
    """Train an OFA supernet by progressive shrinking on ``dataset``, then search the best
    sub-network within ``max_macs`` (multiply-accumulates; ``None``: no budget) on a held-out
    tenth of the training data. The per-epoch validation uses ``val_batches`` batches of 256
    (``None``: all); the chosen sub-network is measured on the whole validation split. Returns ``{'sample', 'search_accuracy', 'val_acc' (the chosen
    sub-network on the validation split, inherited weights), 'macs', 'history', 'module', ...}``.

    ``max_latency`` (ms) adds a latency budget to the search, by ``latency_predictor`` (a
    :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor`, its state or the path of its JSON, for
    inputs of the largest resolution); the result then holds the chosen sub-network's
    ``latency_ms``."""
    cost = None
    latency_predictor = latency_budget(max_latency, latency_predictor)
    from nni_nasext.evaluators.classification import interrupt_stays_interrupt, quiet_lightning
    start = time.time()
    loader, held, val_loader, info = ofa_loaders(dataset, limit=limit, batch_size=batch_size, seed=seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = OFAModule(num_classes=info.num_classes, in_channels=info.in_channels, resolutions=resolutions,
                       width_mult=width_mult, schedule=schedule, seed=seed, **module_args)
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=module.epochs, accelerator=accelerator, devices=1, num_sanity_val_steps=0,
                             logger=False, enable_checkpointing=False, enable_model_summary=False,
                             enable_progress_bar=verbose and sys.stderr.isatty(), callbacks=callbacks,
                             limit_val_batches=val_batches)
        with interrupt_stays_interrupt():
            trainer.fit(module, loader, val_loader)
    module.to('cpu')
    if module.teacher is not None:
        module.teacher.to('cpu')
    net = module.supernet
    calib = module._calib or [next(iter(loader))]
    if latency_predictor is not None:
        cost = latency_cost(net, latency_predictor)
    found = evolve_subnet(net, calib, held, max_macs=max_macs, population=population, generations=generations,
                          seed=seed, verbose=verbose, cost=cost, max_cost=max_latency)
    val = [(x, y) for x, y in val_loader]
    result = {'method': 'ofa', 'dataset': dataset, 'seed': seed, 'schedule': module.schedule,
              'progressive': module.progressive, 'max_macs': max_macs, 'sample': found['sample'],
              'macs': found['macs'], 'search_accuracy': found['accuracy'], 'evaluated': found['evaluated'],
              'search_curve': found['curve'], 'val_acc_subnet': evaluate_subnet(net, found['sample'], calib, val),
              'val_acc': module.history['val_acc'], 'val_acc_min': module.history['val_acc_min'],
              'phase': module.history['phase'], 'train_loss': module.history['train_loss'], 'module': module,
              'calibration': calib, **({} if cost is None else {'max_latency': max_latency,
                                                                  'latency_ms': found['cost']})}
    result['seconds'] = time.time() - start
    if verbose:
        print(f'ofa: sub-network with {found["macs"] / 1e6:.2f} M MACs, held-out accuracy {found["accuracy"]:.4f}, '
              f'validation {result["val_acc_subnet"]:.4f}, in {result["seconds"]:.0f} s', file=sys.stderr, flush=True)
    return result
