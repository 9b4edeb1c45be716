"""Shrinking a network to a budget (strategies/oneshot/shrink.py): the hidden-channel pruning of inverted-residual
blocks, the uniform baseline, NetAdapt and AMC. Costs are MACs (deterministic), never timings."""
import re

import numpy as np
import pytest
import torch
from torch import nn

from nni_nasext.search_spaces.mobile import MBConv, MobileNetwork
from net_helpers import randomize_batch_norm
from nni_nasext.strategies.oneshot.shrink import (
    AMC, DDPG, accuracy, channel_norms, finetune, macs_of, netadapt, prunable_blocks, prune, select_channels,
    uniform_shrink, uniform_to_budget,
)

SHAPE = (1, 1, 8, 8)


def _net(seed=0, se=False):
    """A tiny MobileNetwork: stem 8 - sepconv - 3 MBConv (expansion 3 and 6, one residual, one SE) - head."""
    torch.manual_seed(seed)
    squeeze = 2 if se else 0
    blocks = [MBConv(8, 8, 3, 1, 'sepconv'), MBConv(8, 8, 3, 1, 'mbconv', 3, squeeze),
              MBConv(8, 12, 3, 2, 'mbconv', 6), MBConv(12, 12, 5, 1, 'mbconv', 3)]
    net = MobileNetwork(8, blocks, 12, 16, 3, in_channels=1)
    return randomize_batch_norm(net).eval()


def _data(n=4, size=32, seed=0):
    """A learnable 3-class problem: the class sets the mean brightness of one image quadrant."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(3, (size,), generator=g)
        x = 0.3 * torch.randn(size, 1, 8, 8, generator=g)
        for c in range(3):
            r, col = divmod(c, 2)
            x[y == c, :, 4 * r:4 * r + 4, 4 * col:4 * col + 4] += 1.0
        out.append((x, y))
    return out


def _params(net):
    return sum(p.numel() for p in net.parameters())


def test_prunable_blocks_are_the_mbconvs_with_an_expand_conv():
    names = [n for n, _ in prunable_blocks(_net())]
    assert names == ['blocks.1', 'blocks.2', 'blocks.3']   # the sepconv block has no hidden channels


@pytest.mark.parametrize('se', [False, True])
def test_keeping_every_channel_keeps_the_function(se):
    net = _net(se=se)
    x = torch.randn(5, *SHAPE[1:])
    full = {n: list(range(b.block[0][0].out_channels)) for n, b in prunable_blocks(net)}
    same = prune(net, full)
    assert torch.equal(net(x), same(x))
    # a permuted keep list is the same set of channels
    assert torch.equal(net(x), prune(net, {k: v[::-1] for k, v in full.items()})(x))


def test_pruned_channels_are_exactly_removed():
    """Zeroing the removed channels' expand filters and BN shifts in the original gives the pruned function."""
    net = _net(se=True)
    keep = {'blocks.1': [0, 3, 5, 7, 20], 'blocks.2': list(range(0, 48, 3))}
    small = prune(net, keep)
    ref = _net(se=True)
    with torch.no_grad():
        for name, b in prunable_blocks(ref):
            if name in keep:
                drop = [i for i in range(b.block[0][0].out_channels) if i not in keep[name]]
                b.block[0][1].weight[drop] = 0          # expand BN output 0 -> ReLU 0 -> depthwise sees 0
                b.block[0][1].bias[drop] = 0
                b.block[1][1].weight[drop] = 0          # depthwise BN output 0 -> contributes nothing
                b.block[1][1].bias[drop] = 0
    x = torch.randn(4, *SHAPE[1:])
    assert torch.allclose(small(x), ref(x), atol=1e-5)


def test_l1_selection_keeps_the_largest_filters():
    net = _net()
    block = dict(prunable_blocks(net))['blocks.2']
    c = block.block[0][0].out_channels
    scale = torch.tensor([float((7 * i) % c) + 1 for i in range(c)])   # a permutation of 1..c
    with torch.no_grad():
        block.block[0][0].weight.copy_(torch.sign(torch.randn_like(block.block[0][0].weight)) * scale[:, None, None, None])
    norms = channel_norms(block, 'l1')
    assert torch.allclose(norms, scale * block.block[0][0].in_channels)
    keep = select_channels(block, 10, 'l1')
    assert keep == sorted(torch.argsort(-scale)[:10].tolist())
    small = prune(net, {'blocks.2': keep})
    sb = dict(prunable_blocks(small))['blocks.2']
    assert torch.equal(sb.block[0][0].weight, block.block[0][0].weight[keep])
    assert torch.equal(sb.block[2][0].weight, block.block[2][0].weight[:, keep])
    assert torch.equal(sb.block[1][0].weight, block.block[1][0].weight[keep])
    assert sb.block[1][0].groups == 10
    with pytest.raises(ValueError, match='norm'):
        channel_norms(block, 'l3')


def test_params_and_macs_drop_by_the_expected_amount():
    net = _net()
    macs = macs_of(SHAPE)
    k = 11                                                  # channels removed from blocks.2 (8 -> 12, stride 2, k 3)
    c = 48
    small = prune(net, {'blocks.2': list(range(c - k))})
    # per hidden channel: expand 8 + BN 2 + depthwise 9 + BN 2 + project 12 parameters
    assert _params(net) - _params(small) == k * (8 + 2 + 9 + 2 + 12)
    # input 4x4 (after the stem's stride 2), output 2x2: expand 8*16, depthwise 9*4, project 12*4
    assert macs(net) - macs(small) == k * (8 * 16 + 9 * 4 + 12 * 4)


def test_uniform_shrink_keeps_the_same_fraction_everywhere():
    net = _net()
    small = uniform_shrink(net, 0.5, divisor=4, min_channels=4)
    widths = [b.block[0][0].out_channels for _, b in prunable_blocks(small)]
    assert widths == [12, 24, 20]                           # 24, 48, 40 hidden channels halved, multiples of 4
    cost = macs_of(SHAPE)
    budget = 0.7 * cost(net)
    fit, frac = uniform_to_budget(net, budget, cost, divisor=1)
    assert cost(fit) <= budget
    assert cost(uniform_shrink(net, min(1.0, frac + 0.02))) > budget   # the largest fraction that fits
    with pytest.raises(ValueError, match='fraction'):
        uniform_shrink(net, 0.0)


def test_netadapt_meets_its_budgets_and_keeps_valid_channels():
    torch.manual_seed(0)
    net = _net()
    data = _data(6)
    finetune(net, data, 30, lr=0.05, seed=0)
    cost = macs_of(SHAPE)
    c0 = cost(net)
    logs = []
    res = netadapt(net, [0.6 * c0, 0.8 * c0], cost=cost, train_batches=data[:4], held_batches=data[4:],
                   step_fraction=0.1, short_term_steps=2, long_term_steps=3, divisor=2, min_channels=2,
                   log=logs.append, seed=0)
    assert [r['budget'] for r in res] == [0.6 * c0, 0.8 * c0]
    for r in res:
        assert cost(r['network']) == r['cost'] <= r['budget']
        for name, b in prunable_blocks(r['network']):
            assert b.block[0][0].out_channels == r['widths'][name] == len(r['keep'][name])
    # iterations: each step takes at most a tenth of the initial cost, so 0.8 needs >= 2, 0.6 needs >= 4
    assert res[1]['iterations'] >= 2 and res[0]['iterations'] >= 4
    costs = [h['cost'] for h in res[0]['history']]
    assert all(a > b for a, b in zip(costs, costs[1:]))
    assert all(h['cost'] <= h['target'] for h in res[0]['history'])
    assert any('NetAdapt iteration' in m for m in logs)
    assert cost(net) == c0                                  # the input network is untouched
    single = netadapt(net, 0.9 * c0, cost=cost, train_batches=data[:4], held_batches=data[4:],
                      step_fraction=0.2, short_term_steps=1, log=logs.append)
    assert isinstance(single, dict) and single['cost'] <= 0.9 * c0


def test_netadapt_refuses_bad_input_before_training():
    net, cost = _net(), macs_of(SHAPE)
    c0 = cost(net)

    class NoTrain(list):
        def __iter__(self):
            raise AssertionError('trained before checking its input')

    kw = dict(cost=cost, train_batches=NoTrain(), held_batches=NoTrain())
    with pytest.raises(ValueError, match='not below the current cost'):
        netadapt(net, 1.1 * c0, **kw)
    with pytest.raises(ValueError, match='unreachable'):
        netadapt(net, 0.05 * c0, **kw)
    with pytest.raises(ValueError, match='no prunable block'):
        netadapt(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()), 1.0, **kw)
    with pytest.raises(ValueError, match='step_fraction'):
        netadapt(net, 0.5 * c0, step_fraction=0, **kw)


def _amc(net=None, fraction=0.5, **kw):
    data = _data(3)
    return AMC(net or _net(), input_shape=SHAPE, held_batches=data[:2], calib_batches=data[2:],
               budget_fraction=fraction, max_ratio=0.75, seed=0, batch_size=8, hidden=16, log=lambda m: None, **kw)


@pytest.mark.parametrize('fraction', [0.45, 0.6, 0.9])
def test_amc_clipping_always_meets_the_flops_budget(fraction):
    amc = _amc(fraction=fraction, divisor=2, min_channels=2)
    rng = np.random.RandomState(0)
    for policy in [np.zeros(3), np.ones(3), *rng.uniform(size=(40, 3))]:
        widths = []
        for t, a in enumerate(policy):
            widths.append(amc.keep_count(t, a * amc.max_ratio, widths))
        assert amc.macs(amc.policy_network(widths)) <= amc.budget
        assert all(amc.min_keep[t] <= n <= amc.hidden[t] for t, n in enumerate(widths))
    # the linear MACs model is exact
    widths = [10, 30, 20]
    assert amc.fixed + float(np.dot(amc.per_channel, widths)) == pytest.approx(amc.macs(amc.policy_network(widths)))
    # without clipping pressure (loose budget) the action is taken as is
    loose = _amc(fraction=0.99)
    assert loose.keep_count(0, 0.0, []) == 24 and loose.keep_count(0, 0.5, []) == 12


def test_amc_episode_state_and_reward_plumbing():
    amc = _amc(fraction=0.6)
    ep = amc.episode(random=True)
    states = np.stack(ep['states'])
    assert states.shape == (3, AMC.STATE_DIM) and states.min() >= 0 and states.max() <= 1
    assert list(states[:, 0]) == pytest.approx([0, 0.5, 1])                      # layer index
    assert states[0, -1] == 0 and list(states[1:, -1]) == pytest.approx(ep['actions'][:-1])   # previous action
    assert all(b >= a for a, b in zip(states[:, 8], states[1:, 8]))               # MACs removed so far
    assert states[-1, 9] == 0                                                     # nothing prunable after the last
    assert ep['macs'] <= amc.budget
    net = amc.policy_network(ep['widths'])
    from nni_nasext.strategies.oneshot.shrink import recalibrate_bn
    acc = accuracy(recalibrate_bn(net, amc.calib), amc.held)
    assert ep['reward'] == pytest.approx(acc - 1) and ep['acc'] == pytest.approx(acc)
    # the first episode is its own baseline; the next stores reward minus the moving average
    assert ep['advantage'] == 0 and amc.agent.baseline == pytest.approx(ep['reward'])
    ep2 = amc.episode(random=True)
    assert ep2['advantage'] == pytest.approx(ep2['reward'] - ep['reward'])
    assert len(amc.agent.buffer) == 6 and amc.agent.buffer[-1][4] and not amc.agent.buffer[-2][4]
    assert [b[2] for b in amc.agent.buffer[3:]] == pytest.approx([ep2['advantage']] * 3)
    best = amc.search(episodes=6, warmup=2)
    assert best['reward'] == max(e['reward'] for e in amc.episodes)
    assert amc.agent.sigma == pytest.approx(0.5 * 0.99 ** 4)
    assert amc.macs(amc.apply()) <= amc.budget


def test_ddpg_learns_a_one_step_bandit():
    """The critic and actor move towards the better action of a one-step problem (reward = action)."""
    agent = DDPG(2, hidden=16, actor_lr=1e-2, critic_lr=1e-2, batch_size=16, seed=0)
    assert agent.update() is None
    s = np.array([0.5, 0.5], np.float32)
    before = agent.act(s, explore=False)
    for _ in range(150):
        a = agent.act(s)
        assert 0 <= a <= 1
        agent.observe_episode([(s, a, np.zeros(2), True)], reward=a)
        agent.update()
        agent.end_episode()
    assert agent.act(s, explore=False) > max(before, 0.8)


def test_amc_refuses_bad_input():
    with pytest.raises(ValueError, match='exactly one'):
        AMC(_net(), input_shape=SHAPE, held_batches=_data(1))
    with pytest.raises(ValueError, match='unreachable'):
        _amc(fraction=0.1)
    with pytest.raises(ValueError, match='not below'):
        _amc(fraction=1.0)
    with pytest.raises(ValueError, match='no prunable block'):
        AMC(nn.Sequential(nn.Conv2d(1, 2, 3)), input_shape=SHAPE, held_batches=_data(1), budget_fraction=0.5)
    with pytest.raises(ValueError, match='max_ratio'):
        AMC(_net(), input_shape=SHAPE, held_batches=_data(1), budget_fraction=0.5, max_ratio=1.0)


def test_bench_quick_runs(tmp_path, monkeypatch):
    """The benchmark's --quick smoke run, when the data is there and it is fast enough."""
    from conftest import shared_data
    root = shared_data()
    if not (root / 'fashion-mnist').exists():
        pytest.skip('Fashion-MNIST absent from NASEXT_DATA')
    from nni_nasext.benchmarking import shrink as mod
    monkeypatch.setattr(mod, 'RESULTS', tmp_path)
    assert mod.main(['--quick', '--quiet']) == 0         # ~10 s on 2 cores
    text = (tmp_path / 'shrink_quick.md').read_text()
    assert 'NetAdapt' in text and 'AMC' in text and 'uniform' in text
    assert not re.search(r'\bnan\b', text)   # every figure of the reading is there (with the quick budgets too)
