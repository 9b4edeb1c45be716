"""Shrinking an existing (trained) mobile network to a budget by pruning channels.

The prunable channels are the expanded hidden channels of every inverted-residual block
(:class:`~nni_nasext.search_spaces.mobile.MBConv` with an expansion conv: conv1x1 expand - BN - act -
depthwise - BN - act - [SE] - conv1x1 project - BN). Removing hidden channel ``i`` removes filter ``i``
of the expand conv, entry ``i`` of both batch norms, filter ``i`` of the depthwise conv (and of the SE
gate) and input channel ``i`` of the project conv: the block's input and output widths, hence the
residual connections, are untouched. This is the channel space AMC prunes on MobileNetV2.

* :func:`prune` / :func:`prunable_blocks` / :func:`channel_norms` -- the shared pruning utility (keep a
  list of hidden channels of each block); :func:`uniform_shrink` and :func:`uniform_to_budget` -- the
  baseline that keeps the same fraction of the hidden channels of every block (filters chosen by norm);
  :func:`finetune` and :func:`accuracy` -- plain training / evaluation helpers.
* :func:`netadapt` -- NetAdapt (T.-J. Yang, A. Howard, B. Chen, X. Zhang, A. Go, M. Sandler, V. Sze and
  H. Adam, "NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications", ECCV 2018):
  iterative, latency-driven; per iteration one proposal per block, each the largest width of that block
  meeting the iteration's latency target, filters chosen by L2 norm, short-term fine-tuned and scored
  on a held-out split; the best proposal is kept; long-term fine-tuning at the end.
* :class:`AMC` -- AMC (Y. He, J. Lin, Z. Liu, H. Wang, L.-J. Li and S. Han, "AMC: AutoML for Model
  Compression and Acceleration on Mobile Devices", ECCV 2018): a DDPG agent (T. Lillicrap et al.,
  ICLR 2016) walks the blocks, observes a layer embedding and outputs a continuous pruning ratio; the
  FLOPs budget is enforced by clipping each action (the paper's Algorithm 2); the reward is the
  -error of the pruned network on a held-out split after batch-norm recalibration, no fine-tuning.

Costs are callables ``cost(model) -> float``: :func:`macs_of` (multiply-accumulates, counted with
:func:`nni_nasext.search_spaces.nasbench_macro.count_flops`) or the ``predict`` of a
:class:`nni_nasext.hardware.latency_predictor.LatencyPredictor`.

Written for this project from the papers; no code is taken from their releases.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['prunable_blocks', 'hidden_channels', 'channel_norms', 'select_channels', 'prune', 'uniform_shrink', 'uniform_to_budget',
           'macs_of', 'finetune', 'accuracy', 'recalibrate_bn', 'netadapt', 'AMC', 'DDPG']

_log = logging.getLogger(__name__)

Batches = Iterable[Tuple[torch.Tensor, torch.Tensor]]
Cost = Callable[[nn.Module], float]


# ============================================================================ pruning utility

def _block_parts(block: nn.Module) -> Optional[Tuple[nn.Sequential, nn.Sequential, Optional[nn.Module],
                                                     nn.Sequential]]:
    """(expand, depthwise, se or None, project) of an inverted-residual block with an expand conv, else None."""
    from nni_nasext.search_spaces.mobile import MBConv, SqueezeExcite
    if not isinstance(block, MBConv):
        return None
    layers = list(block.block)
    if len(layers) not in (3, 4):
        return None
    expand, dw, project = layers[0], layers[-2] if len(layers) == 3 else layers[1], layers[-1]
    se = layers[2] if len(layers) == 4 else None
    if se is not None and not isinstance(se, SqueezeExcite):
        return None
    try:
        e, d, p = expand[0], dw[0], project[0]
    except (TypeError, IndexError):
        return None
    if not all(isinstance(c, nn.Conv2d) for c in (e, d, p)):
        return None
    hidden = e.out_channels
    if e.kernel_size != (1, 1) or e.groups != 1 or d.groups != hidden or d.in_channels != hidden \
            or p.in_channels != hidden or p.groups != 1:
        return None
    return expand, dw, se, project


def prunable_blocks(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, block)`` of the blocks of ``net`` whose hidden channels can be pruned (inverted-residual
    :class:`~nni_nasext.search_spaces.mobile.MBConv` blocks with an expand conv), in forward order."""
    return [(name, m) for name, m in net.named_modules() if _block_parts(m) is not None]


def hidden_channels(block: nn.Module) -> int:
    """Number of hidden (expanded) channels of a prunable block."""
    parts = _block_parts(block)
    if parts is None:
        raise ValueError(f'{type(block).__name__} is not a prunable inverted-residual block')
    return parts[0][0].out_channels


def channel_norms(block: nn.Module, norm: str = 'l1') -> torch.Tensor:
    """Per hidden channel, the ``'l1'`` or ``'l2'`` norm of the expand conv's filter (its importance)."""
    parts = _block_parts(block)
    if parts is None:
        raise ValueError(f'{type(block).__name__} is not a prunable inverted-residual block')
    w = parts[0][0].weight.detach().flatten(1)
    if norm == 'l1':
        return w.abs().sum(1)
    if norm == 'l2':
        return w.pow(2).sum(1).sqrt()
    raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")


def select_channels(block: nn.Module, n: int, norm: str = 'l1') -> List[int]:
    """Indices (ascending) of the ``n`` hidden channels of ``block`` with the largest filter norm
    (ties broken by the lower index)."""
    c = hidden_channels(block)
    if not 1 <= n <= c:
        raise ValueError(f'Cannot keep {n} of {c} hidden channels (keep between 1 and {c})')
    scores = channel_norms(block, norm).double().numpy()
    order = np.lexsort((np.arange(c), -scores))     # descending norm, then ascending index
    return sorted(int(i) for i in order[:n])


def _new_conv(old: nn.Conv2d, c_in: int, c_out: int, groups: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, old.kernel_size, old.stride, old.padding, old.dilation, groups,
                     bias=old.bias is not None, padding_mode=old.padding_mode)
    return conv.to(device=old.weight.device, dtype=old.weight.dtype).train(old.training)


def _new_bn(old: nn.BatchNorm2d, idx: torch.Tensor) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(len(idx), old.eps, old.momentum, old.affine, old.track_running_stats)
    bn = bn.to(device=idx.device).train(old.training)
    with torch.no_grad():
        if old.affine:
            bn.weight.copy_(old.weight[idx])
            bn.bias.copy_(old.bias[idx])
        if old.track_running_stats:
            bn.running_mean.copy_(old.running_mean[idx])
            bn.running_var.copy_(old.running_var[idx])
            bn.num_batches_tracked.copy_(old.num_batches_tracked)
    return bn


@torch.no_grad()
def _prune_block_(block: nn.Module, keep: Sequence[int]) -> None:
    """Keep the hidden channels ``keep`` of ``block`` (in place)."""
    expand, dw, se, project = _block_parts(block)
    c = expand[0].out_channels
    keep = sorted(set(int(i) for i in keep))
    if not keep or keep[0] < 0 or keep[-1] >= c:
        raise ValueError(f'keep must be a non-empty list of hidden channels in [0, {c}), got {keep[:8]}...')
    idx = torch.tensor(keep, dtype=torch.long, device=expand[0].weight.device)
    n = len(keep)
    e = expand[0]
    new = _new_conv(e, e.in_channels, n, 1)
    new.weight.copy_(e.weight[idx])
    if e.bias is not None:
        new.bias.copy_(e.bias[idx])
    expand[0], expand[1] = new, _new_bn(expand[1], idx)
    d = dw[0]
    new = _new_conv(d, n, n, n)
    new.weight.copy_(d.weight[idx])
    if d.bias is not None:
        new.bias.copy_(d.bias[idx])
    dw[0], dw[1] = new, _new_bn(dw[1], idx)
    if se is not None:
        r = se.reduce
        new = _new_conv(r, n, r.out_channels, 1)
        new.weight.copy_(r.weight[:, idx])
        if r.bias is not None:
            new.bias.copy_(r.bias)
        se.reduce = new
        x = se.expand
        new = _new_conv(x, x.in_channels, n, 1)
        new.weight.copy_(x.weight[idx])
        if x.bias is not None:
            new.bias.copy_(x.bias[idx])
        se.expand = new
    p = project[0]
    new = _new_conv(p, n, p.out_channels, 1)
    new.weight.copy_(p.weight[:, idx])
    if p.bias is not None:
        new.bias.copy_(p.bias)
    project[0] = new


def prune(net: nn.Module, keep: Mapping[str, Sequence[int]]) -> nn.Module:
    """A pruned copy of ``net``: block ``name`` keeps the hidden channels ``keep[name]`` (indices);
    blocks not named are copied unchanged. ``net`` itself is not modified."""
    blocks = dict(prunable_blocks(net))
    unknown = [k for k in keep if k not in blocks]
    if unknown:
        raise ValueError(f'Not prunable blocks of this network: {unknown}; prunable: {list(blocks)}')
    out = copy.deepcopy(net)
    new_blocks = dict(prunable_blocks(out))
    for name, idx in keep.items():
        _prune_block_(new_blocks[name], idx)
    return out


def _require_blocks(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    blocks = prunable_blocks(net)
    if not blocks:
        raise ValueError(f'{type(net).__name__} has no prunable block (an MBConv inverted-residual block with an '
                         'expand conv); nothing to shrink')
    return blocks


def _round_keep(c: int, fraction: float, divisor: int, min_channels: int) -> int:
    """Channels kept of ``c`` at ``fraction``: rounded to a multiple of ``divisor`` (or ``c``), within
    [min(min_channels, c), c]."""
    n = int(round(c * fraction / divisor)) * divisor
    return int(min(c, max(n, min(min_channels, c))))


def uniform_shrink(net: nn.Module, fraction: float, *, norm: str = 'l1', divisor: int = 1,
                   min_channels: int = 1) -> nn.Module:
    """The uniform width-scaling baseline: keep ``fraction`` of the hidden channels of every prunable
    block (rounded to a multiple of ``divisor``, at least ``min_channels``), the ones with the largest
    filter ``norm``. Returns a pruned copy."""
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    blocks = _require_blocks(net)
    return prune(net, {name: select_channels(b, _round_keep(hidden_channels(b), fraction, divisor, min_channels),
                                             norm) for name, b in blocks})


def uniform_to_budget(net: nn.Module, budget: float, cost: Cost, *, norm: str = 'l1', divisor: int = 1,
                      min_channels: int = 1, tol: float = 1e-3) -> Tuple[nn.Module, float]:
    """Uniform width scaling to a budget: the largest kept fraction (bisection to ``tol``) whose pruned
    network has ``cost <= budget``. Returns ``(pruned network, fraction)``."""
    lo_net = uniform_shrink(net, 1e-9, norm=norm, divisor=divisor, min_channels=min_channels)
    if cost(lo_net) > budget:
        raise ValueError(f'Budget {budget:.4g} is below the cost of the narrowest uniform network '
                         f'({cost(lo_net):.4g})')
    full = cost(net)
    if full <= budget:
        return copy.deepcopy(net), 1.0
    lo, hi, best = 0.0, 1.0, lo_net
    while hi - lo > tol:
        mid = (lo + hi) / 2
        cand = uniform_shrink(net, mid, norm=norm, divisor=divisor, min_channels=min_channels)
        if cost(cand) <= budget:
            lo, best = mid, cand
        else:
            hi = mid
    return best, lo


def macs_of(input_shape: Sequence[int]) -> Cost:
    """A cost function: multiply-accumulates of convolutions and linear layers for one input of
    ``input_shape`` (batch included), :func:`~nni_nasext.search_spaces.nasbench_macro.count_flops`."""
    from nni_nasext.search_spaces.nasbench_macro import count_flops
    shape = tuple(int(v) for v in input_shape)
    return lambda model: float(count_flops(model, shape))


# ============================================================================ training helpers

def _cycle(batches: Batches):
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError('No training batches given')


def finetune(net: nn.Module, batches: Batches, steps: int, *, lr: float = 0.01, momentum: float = 0.9,
             weight_decay: float = 4e-5, cosine: bool = True, seed: Optional[int] = None) -> nn.Module:
    """``steps`` steps of SGD (Nesterov, cosine decay to 0 when ``cosine``) of cross-entropy on
    ``batches`` (cycled), in place; returns ``net`` in eval mode."""
    if steps <= 0:
        return net.eval()
    if seed is not None:
        torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    net.train()
    for _, (x, y) in zip(range(steps), _cycle(batches)):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if sched is not None:
            sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, batches: Batches) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on ``batches``."""
    net.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((net(x).argmax(-1) == y).sum())
        total += len(y)
    if not total:
        raise ValueError('No evaluation batches given')
    return correct / total


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Batches) -> nn.Module:
    """Re-estimate every batch norm's running statistics on ``batches`` (cumulative average); eval mode."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    old = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    for x, _ in batches:
        net(x)
    for m, mom in zip(bns, old):
        m.momentum = mom
    return net.eval()


# ============================================================================ NetAdapt

def _candidates(c: int, divisor: int, min_channels: int) -> List[int]:
    """Channel counts a block of ``c`` hidden channels may keep, descending: ``c``, then the multiples
    of ``divisor`` below it down to ``min(min_channels, c)``."""
    low = min(min_channels, c)
    out = [c] + [n for n in range((c - 1) // divisor * divisor, low - 1, -divisor) if n >= low and n < c]
    if out[-1] != low:
        out.append(low)
    return out


def netadapt(net: nn.Module, budget: Union[float, Sequence[float]], *, cost: Cost, train_batches: Batches,
             held_batches: Batches, step_fraction: float = 0.05, step_decay: float = 1.0,
             short_term_steps: int = 20, long_term_steps: int = 0, lr: float = 0.01, long_term_lr: float = 0.01,
             norm: str = 'l2', divisor: int = 1, min_channels: int = 1, max_iterations: int = 200,
             max_halvings: int = 4,
             seed: int = 0, log: Optional[Callable[[str], None]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
    """NetAdapt (Yang et al., ECCV 2018) on the hidden channels of ``net``'s inverted-residual blocks.

    Iteration ``i`` sets the target ``cost(current) - step_fraction * step_decay**i * cost(initial)``
    (never below the next pending budget, so that budgets are met, not overshot). For every block it
    proposes the largest number of hidden channels (a multiple of ``divisor``, at least ``min_channels``;
    found by bisection, taking the cost as non-increasing in the width, like the paper's per-layer
    lookup) whose network meets the target, prunes that block keeping the filters of
    largest ``norm`` (the paper's magnitude criterion), fine-tunes the proposal for
    ``short_term_steps`` steps and scores it on ``held_batches``; the proposal with the best held-out
    accuracy becomes the current network. When no single block can meet an iteration's target (a
    block's whole share of the cost can be smaller than the step) the step of that iteration is
    halved, up to ``max_halvings`` times (a deviation from the paper, whose step is fixed). When a budget is met the current network is copied out and
    fine-tuned for ``long_term_steps`` steps (the paper's long-term fine-tuning).

    ``cost``: latency in any unit (e.g. ``LatencyPredictor.predict``) or any cost function; the
    algorithm only needs it to fall as channels are removed. ``budget``: an absolute cost, or a
    sequence of them (one run passes through all, the networks at each are returned, in the order
    given). ``net`` itself is not modified.

    Returns (per budget) ``{'network', 'keep' (block -> kept channel indices of the original),
    'widths', 'cost', 'held_acc' (before long-term fine-tuning), 'iterations', 'history', 'seconds'}``.
    """
    log = log or _log.info
    budgets = [float(budget)] if np.isscalar(budget) else [float(b) for b in budget]
    if not budgets:
        raise ValueError('No budget given')
    if not 0 < step_fraction <= 1:
        raise ValueError(f'step_fraction must be in (0, 1], got {step_fraction}')
    if norm not in ('l1', 'l2'):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    blocks = _require_blocks(net)
    start = time.time()
    c0 = float(cost(net))
    too_high = [b for b in budgets if b >= c0]
    if too_high:
        raise ValueError(f'Budget {too_high[0]:.4g} is not below the current cost {c0:.4g}: nothing to shrink')
    floor = float(cost(prune(net, {n: list(range(min(min_channels, hidden_channels(b)))) for n, b in blocks})))
    if floor > min(budgets):
        raise ValueError(f'Budget {min(budgets):.4g} is unreachable: every block pruned to {min_channels} hidden '
                         f'channel(s) still costs {floor:.4g} (the rest of the network is not prunable)')
    # work on a copy; ``origin[name]`` maps the current hidden channels to the original indices
    cur = copy.deepcopy(net)
    origin = {name: list(range(hidden_channels(b))) for name, b in blocks}
    cur_cost, history, results = c0, [], {}
    pending = sorted(set(budgets), reverse=True)
    torch.manual_seed(seed)
    train_iter = _cycle(train_batches)
    held_batches = list(held_batches)
    for it in range(max_iterations):
        if not pending:
            break
        step = step_fraction * step_decay ** it * c0
        for _ in range(max_halvings + 1):
            target = max(cur_cost - step, pending[0])
            proposals = _netadapt_proposals(cur, target, cost, train_iter, held_batches, short_term_steps, lr,
                                            norm, divisor, min_channels)
            if proposals:
                break
            log(f'NetAdapt iteration {it}: no single block reaches the target {target:.4g}; halving the step')
            step /= 2
        if not proposals:
            raise RuntimeError(f'NetAdapt iteration {it}: no single block can be pruned to meet the target '
                               f'{target:.4g} (current cost {cur_cost:.4g}), even after halving the step '
                               f'{max_halvings} times; lower min_channels/divisor or the budget')
        best = max(proposals, key=lambda p: (p['acc'], -p['cost']))
        cur, cur_cost = best['net'], best['cost']
        origin[best['block']] = [origin[best['block']][i] for i in best['keep']]
        history.append({'iteration': it, 'target': target, 'block': best['block'], 'channels': best['channels'],
                        'from': best['from'], 'cost': cur_cost, 'held_acc': best['acc'],
                        'proposals': [{k: p[k] for k in ('block', 'channels', 'cost', 'acc')} for p in proposals]})
        log(f'NetAdapt iteration {it}: target {target:.4g}, pruned {best["block"]} {best["from"]}->'
            f'{best["channels"]} channels, cost {cur_cost:.4g} ({cur_cost / c0:.1%}), held-out acc '
            f'{best["acc"]:.4f} (best of {len(proposals)} proposals)')
        while pending and cur_cost <= pending[0]:
            b = pending.pop(0)
            out = copy.deepcopy(cur)
            acc = best['acc']
            finetune(out, train_batches, long_term_steps, lr=long_term_lr, seed=seed)
            results[b] = {'network': out, 'keep': {k: list(v) for k, v in origin.items()},
                          'widths': {k: len(v) for k, v in origin.items()}, 'cost': cur_cost, 'budget': b,
                          'held_acc': acc, 'iterations': it + 1, 'history': list(history),
                          'seconds': time.time() - start}
            log(f'NetAdapt: budget {b:.4g} met after {it + 1} iterations (cost {cur_cost:.4g})')
    if pending:
        raise RuntimeError(f'NetAdapt did not reach budget(s) {pending} in {max_iterations} iterations')
    out = [results[b] for b in budgets]
    return out[0] if np.isscalar(budget) else out


def _netadapt_proposals(cur, target, cost, train_iter, held_batches, short_term_steps, lr, norm, divisor,
                        min_channels) -> List[Dict[str, Any]]:
    """One NetAdapt proposal per block that can meet ``target`` alone: the largest width that does,
    filters of largest ``norm`` kept, short-term fine-tuned and scored on ``held_batches``."""
    proposals = []
    for name, block in prunable_blocks(cur):
        c = hidden_channels(block)
        options = _candidates(c, divisor, min_channels)[1:]          # descending
        if not options:
            continue

        def evaluate(i):
            keep = select_channels(block, options[i], norm)
            cand = prune(cur, {name: keep})
            return keep, cand, float(cost(cand))

        # the largest width meeting the target, by bisection (cost taken as non-increasing in the width)
        lo, hi = 0, len(options) - 1
        found = evaluate(hi)
        if found[2] > target:
            continue        # even at its narrowest this block cannot meet the target alone
        while lo < hi:
            mid = (lo + hi) // 2
            trial = evaluate(mid)
            if trial[2] <= target:
                hi, found = mid, trial
            else:
                lo = mid + 1
        n = options[hi]
        keep, cand, cc = found
        _short_term(cand, train_iter, short_term_steps, lr)
        acc = accuracy(cand, held_batches)
        proposals.append({'block': name, 'channels': n, 'from': c, 'cost': cc, 'acc': acc, 'keep': keep,
                          'net': cand})
    return proposals


def _short_term(net: nn.Module, it, steps: int, lr: float) -> None:
    if steps <= 0:
        net.eval()
        return
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=4e-5)
    net.train()
    for _ in range(steps):
        x, y = next(it)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
    net.eval()


# ============================================================================ AMC

class DDPG:
    """A small DDPG agent (Lillicrap et al., ICLR 2016) as AMC configures it: actor and critic MLPs
    (two hidden layers of ``hidden`` units), a sigmoid actor output in [0, 1], target networks updated
    softly (``tau``), a replay buffer of ``buffer_size`` transitions, truncated-normal exploration noise
    of width ``sigma`` decaying by ``sigma_decay`` per episode, and an exponential moving average of the
    episode rewards (``baseline_decay``) subtracted from every reward it stores (the paper's variance
    reduction)."""

    def __init__(self, state_dim: int, *, hidden: int = 300, actor_lr: float = 1e-4, critic_lr: float = 1e-3,
                 tau: float = 0.01, gamma: float = 1.0, buffer_size: int = 2000, batch_size: int = 64,
                 sigma: float = 0.5, sigma_decay: float = 0.99, baseline_decay: float = 0.95, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.actor = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                   nn.Linear(hidden, 1), nn.Sigmoid())
        self.critic = _Critic(state_dim, hidden)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.state_dim, self.tau, self.gamma = state_dim, tau, gamma
        self.buffer_size, self.batch_size = buffer_size, batch_size
        self.sigma, self.sigma_decay, self.baseline_decay = sigma, sigma_decay, baseline_decay
        self.buffer: List[Tuple[np.ndarray, float, float, np.ndarray, bool]] = []
        self.baseline: Optional[float] = None
        self.rng = np.random.RandomState(seed)
        self._gen = gen

    @torch.no_grad()
    def act(self, state: np.ndarray, explore: bool = True) -> float:
        """The actor's action in [0, 1] for ``state``, with truncated-normal noise when ``explore``."""
        mu = float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])
        return self.truncated_normal(mu, self.sigma) if explore else mu

    def truncated_normal(self, mu: float, sigma: float, low: float = 0.0, high: float = 1.0) -> float:
        """A sample of N(mu, sigma) truncated to [low, high] (rejection sampling; clipped as a fallback)."""
        if sigma <= 0:
            return float(min(high, max(low, mu)))
        for _ in range(100):
            v = self.rng.normal(mu, sigma)
            if low <= v <= high:
                return float(v)
        return float(min(high, max(low, mu)))

    def observe_episode(self, transitions: Sequence[Tuple[np.ndarray, float, np.ndarray, bool]],
                        reward: float) -> float:
        """Store an episode's ``(state, action, next state, done)`` transitions, each with the episode
        ``reward`` minus the moving-average baseline (then updated with ``reward``); returns the
        advantage stored."""
        base = reward if self.baseline is None else self.baseline
        adv = float(reward - base)
        for s, a, s2, done in transitions:
            self.buffer.append((np.asarray(s, np.float32), float(a), adv, np.asarray(s2, np.float32), bool(done)))
        del self.buffer[:-self.buffer_size]
        self.baseline = reward if self.baseline is None else (
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward)
        return adv

    def end_episode(self) -> None:
        self.sigma *= self.sigma_decay

    def update(self) -> Optional[Tuple[float, float]]:
        """One gradient step of critic and actor on a replay minibatch, soft target update; ``(critic
        loss, actor loss)``, or None while the buffer is smaller than a batch."""
        if len(self.buffer) < self.batch_size:
            return None
        idx = self.rng.randint(0, len(self.buffer), size=self.batch_size)
        s, a, r, s2, d = zip(*(self.buffer[i] for i in idx))
        s, s2 = torch.as_tensor(np.stack(s)), torch.as_tensor(np.stack(s2))
        a = torch.tensor(a, dtype=torch.float32)[:, None]
        r = torch.tensor(r, dtype=torch.float32)[:, None]
        d = torch.tensor(d, dtype=torch.float32)[:, None]
        with torch.no_grad():
            y = r + self.gamma * (1 - d) * self.critic_target(s2, self.actor_target(s2))
        critic_loss = F.mse_loss(self.critic(s, a), y)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, q in zip(net.parameters(), tgt.parameters()):
                    q.mul_(1 - self.tau).add_(self.tau * p)
        return float(critic_loss.detach()), float(actor_loss.detach())


class _Critic(nn.Module):
    def __init__(self, state_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, a], 1))


class AMC:
    """AMC (He et al., ECCV 2018) for the hidden channels of ``net``'s inverted-residual blocks, under a
    FLOPs (multiply-accumulate) budget.

    An episode walks the prunable blocks in forward order. At block ``t`` the agent observes the layer
    embedding (all features scaled to [0, 1]): ``t``, input channels, hidden channels, output channels,
    input side, stride, kernel, the block's prunable MACs, MACs already removed, prunable MACs of the
    blocks after ``t``, and the previous action. Its action in [0, 1] maps to a pruning ratio in
    ``[0, max_ratio]``; the ratio is then raised, if needed, so that the MACs budget can still be met
    when every later block is pruned by ``max_ratio`` (the paper's Algorithm 2): the budget holds for
    every episode. The kept channels are those of largest ``norm`` of each block; the reward is
    ``-error`` on ``held_batches`` after re-estimating the batch norms on ``calib_batches`` (no
    fine-tuning). DDPG (:class:`DDPG`) learns after ``warmup`` episodes of random actions.

    ``budget``: the MACs budget as a fraction of ``net``'s MACs (``budget_fraction``) or absolute
    (``budget_macs``); exactly one. :meth:`search` returns the best policy found; :meth:`apply` builds
    its network (then fine-tune it with :func:`finetune`).
    """

    STATE_DIM = 11

    def __init__(self, net: nn.Module, *, input_shape: Sequence[int], held_batches: Batches,
                 calib_batches: Batches = (), budget_fraction: Optional[float] = None,
                 budget_macs: Optional[float] = None, max_ratio: float = 0.8, divisor: int = 1,
                 min_channels: int = 1, norm: str = 'l1', seed: int = 0, log: Optional[Callable[[str], None]] = None,
                 **ddpg_args):
        self.log = log or _log.info
        if (budget_fraction is None) == (budget_macs is None):
            raise ValueError('Give exactly one of budget_fraction and budget_macs')
        if not 0 < max_ratio < 1:
            raise ValueError(f'max_ratio must be in (0, 1), got {max_ratio}')
        if norm not in ('l1', 'l2'):
            raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
        self.blocks = _require_blocks(net)
        self.net, self.norm, self.max_ratio = net, norm, float(max_ratio)
        self.divisor, self.min_channels, self.seed = int(divisor), int(min_channels), seed
        self.macs = macs_of(input_shape)
        self.total = self.macs(net)
        self.budget = float(budget_macs) if budget_macs is not None else float(budget_fraction) * self.total
        if self.budget >= self.total:
            raise ValueError(f'MACs budget {self.budget:.4g} is not below the network\'s {self.total:.4g}: '
                             'nothing to prune')
        self._embed(input_shape)
        if self.fixed + float(np.dot(self.per_channel, self.min_keep)) > self.budget + 1e-6:
            lowest = self.fixed + float(np.dot(self.per_channel, self.min_keep))
            raise ValueError(f'MACs budget {self.budget:.4g} ({self.budget / self.total:.1%}) is unreachable with '
                             f'max_ratio {max_ratio}: every block at its maximum pruning still has {lowest:.4g} '
                             f'({lowest / self.total:.1%})')
        self.held = list(held_batches)
        self.calib = list(calib_batches)
        if not self.held:
            raise ValueError('No held-out batches for the reward')
        self.agent = DDPG(self.STATE_DIM, seed=seed, **ddpg_args)
        self.episodes: List[Dict[str, Any]] = []
        self.best: Optional[Dict[str, Any]] = None
        self._order = {name: torch.argsort(-channel_norms(b, norm).double(), stable=True).tolist()
                       for name, b in self.blocks}

    # ------------------------------------------------------------------ layer embedding
    def _embed(self, input_shape) -> None:
        """Static features per block and the linear MACs model ``fixed + sum per_channel[t] * keep[t]``."""
        shapes: Dict[str, Tuple[int, ...]] = {}
        handles = [b.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(i[0].shape)))
                   for name, b in self.blocks]
        try:
            was = self.net.training
            self.net.eval()
            with torch.no_grad():
                self.net(torch.zeros(*input_shape))
            self.net.train(was)
        finally:
            for h in handles:
                h.remove()
        feats, per_channel, hidden = [], [], []
        for t, (name, b) in enumerate(self.blocks):
            expand, dw, se, project = _block_parts(b)
            c = expand[0].out_channels
            # MACs are linear in the hidden width (nothing else changes): slope from one prune
            one = prune(self.net, {name: [0]})
            per_channel.append((self.total - self.macs(one)) / (c - 1) if c > 1 else 0.0)
            hidden.append(c)
            feats.append([t, expand[0].in_channels, c, project[0].out_channels, shapes[name][-1],
                          dw[0].stride[0], dw[0].kernel_size[0]])
        self.per_channel = np.array(per_channel)
        self.hidden = np.array(hidden)
        self.fixed = self.total - float(np.dot(self.per_channel, self.hidden))
        self.static = np.array(feats, dtype=np.float64)
        self.static /= np.maximum(self.static.max(0), 1e-12)
        self.min_keep = np.array([_round_keep_up(c, 1 - self.max_ratio, self.divisor, self.min_channels)
                                  for c in hidden])

    def state(self, t: int, removed: float, prev_action: float) -> np.ndarray:
        """The embedding of block ``t`` given the MACs ``removed`` so far and the previous action."""
        prunable = self.per_channel * self.hidden
        return np.concatenate([self.static[t], [prunable[t] / self.total, removed / self.total,
                                                prunable[t + 1:].sum() / self.total, prev_action]]).astype(np.float32)

    def keep_count(self, t: int, ratio: float, decided: Sequence[int]) -> int:
        """Channels block ``t`` keeps at pruning ``ratio``, clipped so that the budget stays reachable with
        the earlier blocks at ``decided`` and every later block at its maximum pruning."""
        c = int(self.hidden[t])
        options = _candidates(c, self.divisor, int(self.min_keep[t]))
        want = min(options, key=lambda n: (abs(n - c * (1 - ratio)), -n))
        spent = self.fixed + float(np.dot(self.per_channel[:t], decided)) + \
            float(np.dot(self.per_channel[t + 1:], self.min_keep[t + 1:]))
        if self.per_channel[t] > 0:
            allowed = (self.budget - spent) / self.per_channel[t]
            if want > allowed + 1e-9:
                # the largest admissible count not above ``allowed`` (min_keep always is, by the check at init)
                want = max([n for n in options if n <= allowed + 1e-9] or [int(self.min_keep[t])])
        return want

    def policy_network(self, widths: Sequence[int]) -> nn.Module:
        """The network keeping ``widths[t]`` channels (largest norm) of block ``t``."""
        return prune(self.net, {name: sorted(self._order[name][:int(n)]) for (name, _), n in zip(self.blocks, widths)})

    def reward(self, net: nn.Module) -> Tuple[float, float]:
        """``(-error, accuracy)`` of ``net`` on the held-out batches, batch norms re-estimated first."""
        if self.calib:
            recalibrate_bn(net, self.calib)
        acc = accuracy(net, self.held)
        return acc - 1.0, acc

    # ------------------------------------------------------------------ search
    def episode(self, explore: bool = True, random: bool = False) -> Dict[str, Any]:
        """One episode: actions, clipped widths, the network's MACs and reward; transitions stored."""
        widths: List[int] = []
        actions, ratios, states = [], [], []
        removed, prev = 0.0, 0.0
        for t in range(len(self.blocks)):
            s = self.state(t, removed, prev)
            a = float(self.agent.rng.uniform()) if random else self.agent.act(s, explore)
            n = self.keep_count(t, a * self.max_ratio, widths)
            widths.append(n)
            ratio = 1 - n / self.hidden[t]
            removed += self.per_channel[t] * (self.hidden[t] - n)
            states.append(s)
            # the action actually taken (after clipping) is what the agent learns from
            actions.append(min(1.0, ratio / self.max_ratio))
            ratios.append(ratio)
            prev = actions[-1]
        net = self.policy_network(widths)
        macs = self.macs(net)
        r, acc = self.reward(net)
        nxt = states[1:] + [np.zeros_like(states[0])]
        trans = [(s, a, s2, t == len(states) - 1) for t, (s, a, s2) in enumerate(zip(states, actions, nxt))]
        adv = self.agent.observe_episode(trans, r)
        ep = {'widths': widths, 'ratios': ratios, 'actions': actions, 'states': states, 'macs': macs,
              'reward': r, 'acc': acc, 'advantage': adv}
        self.episodes.append(ep)
        if self.best is None or r > self.best['reward']:
            self.best = ep
        return ep

    def search(self, episodes: int = 100, warmup: int = 20) -> Dict[str, Any]:
        """``warmup`` episodes of uniformly random actions, then ``episodes - warmup`` of the agent's
        actions with decaying noise, ``len(blocks)`` DDPG updates after each. Returns the best episode:
        ``{'widths', 'ratios', 'macs', 'reward', 'acc', ...}`` (``acc``: held-out, BN re-estimated)."""
        if episodes < 1 or warmup < 0:
            raise ValueError(f'episodes must be >= 1 and warmup >= 0, got {episodes}, {warmup}')
        start = time.time()
        for e in range(episodes):
            ep = self.episode(random=e < warmup)
            if e >= warmup:
                for _ in range(len(self.blocks)):
                    self.agent.update()
                self.agent.end_episode()
            if e % 10 == 0 or e == episodes - 1:
                self.log(f'AMC episode {e}: MACs {ep["macs"] / self.total:.1%} of {self.total:.4g} (budget '
                         f'{self.budget / self.total:.1%}), held-out acc {ep["acc"]:.4f}, best '
                         f'{self.best["acc"]:.4f}, sigma {self.agent.sigma:.3f}, {time.time() - start:.0f} s')
        return dict(self.best, seconds=time.time() - start)

    def apply(self, widths: Optional[Sequence[int]] = None) -> nn.Module:
        """The pruned network of ``widths`` (default: the best episode's), batch norms not re-estimated."""
        if widths is None:
            if self.best is None:
                raise RuntimeError('No episode run yet: call search() first')
            widths = self.best['widths']
        return self.policy_network(widths)


def _round_keep_up(c: int, fraction: float, divisor: int, min_channels: int) -> int:
    """Smallest admissible count >= ``c * fraction``: a multiple of ``divisor`` (or ``c``), at least
    ``min(min_channels, c)``."""
    n = int(math.ceil(c * fraction / divisor - 1e-9)) * divisor
    return int(min(c, max(n, min(min_channels, c))))
