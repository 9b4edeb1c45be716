import math
import re

import pytest
import torch
from scipy.stats import rankdata

from nni_nasext.evaluators.proxies import score_te_nas_linear_regions, score_te_nas_ntk
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
from nni_nasext.strategies.te_nas import TENAS, NB201Supernet

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'nor_conv_1x1',
          '0_3': 'avg_pool_3x3', '1_3': 'nor_conv_3x3', '2_3': 'none'}
ALL = {label: list(OPS) for label in EDGE_LABELS}


def _randomise_bn(net, gen):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


# ----------------------------------------------------------------------------- supernet

def test_edge_with_all_ops_outputs_their_mean():
    torch.manual_seed(0)
    net = NB201Supernet(num_cells=1, channels=4).eval()
    cell = net.cells[0]
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = torch.stack([cell.edges['1_2'][op](x) for op in OPS]).mean(0)
        got = cell.edge('1_2', x, net.alive['1_2'])
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, cell.edges['1_2']['nor_conv_3x3'](x), atol=1e-3)


def test_cell_uses_the_shared_mask_on_every_edge():
    torch.manual_seed(1)
    mask = {'0_1': ['nor_conv_3x3', 'avg_pool_3x3'], '0_2': ['skip_connect'], '1_2': list(OPS),
            '0_3': ['none', 'nor_conv_1x1'], '1_3': ['nor_conv_1x1', 'nor_conv_3x3', 'skip_connect'],
            '2_3': ['avg_pool_3x3']}
    net = NB201Supernet(num_cells=2, channels=4, alive=mask).eval()
    x = torch.randn(2, 4, 6, 6)
    for cell in (net.cells[0], net.cells[1]):
        with torch.no_grad():
            nodes = [x]
            for j in range(1, 4):
                nodes.append(sum(torch.stack([cell.edges[f'{i}_{j}'][op](nodes[i]) for op in mask[f'{i}_{j}']]).mean(0)
                                 for i in range(j)))
            assert torch.allclose(cell(x, net.alive), nodes[-1], atol=1e-6)
    # the whole network sees the mask: changing it changes the output
    y = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = net(y)
        net.set_alive({**mask, '0_2': ['nor_conv_3x3']})
        assert not torch.allclose(net(y), before, atol=1e-4)


def test_set_alive_validates_and_derive_needs_one_op_per_edge():
    net = NB201Supernet(num_cells=1, channels=2)
    assert net.alive == ALL
    with pytest.raises(ValueError, match='Unknown NB201 edge'):
        net.set_alive({**ALL, '0_4': ['none']})
    with pytest.raises(ValueError, match='unknown operations'):
        net.set_alive({**ALL, '1_3': ['nor_conv_5x5']})
    with pytest.raises(ValueError, match='at least one'):
        net.set_alive({**ALL, '2_3': []})
    with pytest.raises(ValueError, match='misses edges'):
        net.set_alive({k: v for k, v in ALL.items() if k != '0_1'})
    assert net.alive == ALL  # failed calls leave the mask alone
    with pytest.raises(ValueError, match='more than one'):
        net.derive()
    net.set_alive({**{k: [v] for k, v in SAMPLE.items()}, '0_3': ['avg_pool_3x3', 'none']})
    assert net.alive['0_3'] == ['none', 'avg_pool_3x3']  # kept in OPS order
    with pytest.raises(ValueError, match="'0_3'"):
        net.derive()
    net.set_alive(SAMPLE)  # one op name per edge is accepted
    assert net.derive() == SAMPLE
    copy = net.alive
    copy['0_1'].append('none')
    assert net.alive['0_1'] == ['nor_conv_3x3']


@pytest.mark.parametrize('train', [False, True])
def test_single_op_mask_equals_frozen_nb201_network(train):
    torch.manual_seed(2)
    frozen = NasBench201Space(num_cells=2, channels=4).freeze(SAMPLE)
    _randomise_bn(frozen, torch.Generator().manual_seed(3))
    net = NB201Supernet(num_cells=2, channels=4, alive=SAMPLE)
    # frozen names an op cells.<k>.edges.<label>.<...>; the supernet cells.<k>.edges.<label>.<op>.<...>
    state = {re.sub(r'^(cells\.\d+\.edges\.(\d_\d))\.', lambda m: f'{m.group(1)}.{SAMPLE[m.group(2)]}.', k): v
             for k, v in frozen.state_dict().items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected
    assert missing and all(re.match(r'cells\.\d+\.edges\.', k) for k in missing)
    assert not any(f'.edges.{label}.{op}.' in k for k in missing for label, op in SAMPLE.items())
    frozen.train(train)
    net.train(train)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        a, b = frozen(x), net(x)
    assert torch.allclose(a, b, atol=1e-6)
    with torch.no_grad():
        net.set_alive({**SAMPLE, '2_3': 'nor_conv_1x1'})
        assert not torch.allclose(net(x), a, atol=1e-4)


# ----------------------------------------------------------------------------- prune rule

def _weighted_score(order_per_edge, calls):
    """Cost = sum over alive ops of 2**position in the edge's removal order: removing the
    op listed first lowers the cost most. ntk = cost (smaller better), regions = -cost."""
    def score(mask):
        calls.append(mask)
        cost = sum(2.0 ** (len(OPS) - order_per_edge[label].index(op)) for label, ops in mask.items() for op in ops)
        return cost, -cost
    return score


def test_prune_rule_with_injected_scores():
    orders = {label: OPS[k % 5:] + OPS[:k % 5] for k, label in enumerate(EDGE_LABELS)}
    calls = []
    tenas = TENAS(score_fn=_weighted_score(orders, calls), verbose=False)
    sample = tenas.search()
    assert sample == {label: orders[label][-1] for label in EDGE_LABELS}
    assert [len(r) for r in tenas.history] == [30, 24, 18, 12]
    assert len(calls) == 84
    for k, rows in enumerate(tenas.history):
        pruned = {r['edge']: r['op'] for r in rows if r['pruned']}
        assert pruned == {label: orders[label][k] for label in EDGE_LABELS}
        for row in rows:
            assert row['rank_sum'] == row['ntk_rank'] + row['regions_rank']
    # each candidate mask removes exactly one op from the alive set of its round
    first = calls[:30]
    assert all(sum(len(v) for v in m.values()) == 29 for m in first)
    assert {(label, op) for m in first for label in EDGE_LABELS for op in OPS if op not in m[label]} == \
        {(label, op) for label in EDGE_LABELS for op in OPS}
    assert tenas.search_seconds is not None and tenas.search_seconds >= 0


def test_ranks_are_joint_average_ranks_and_sum_decides():
    # Round 1 only matters here: on 0_1, removing 'skip_connect' is best for the NTK but worst
    # for the regions; removing 'nor_conv_1x1' is second best on both and wins on the sum.
    def score(mask):
        removed = [(label, op) for label in EDGE_LABELS for op in OPS if op not in mask[label]]
        if len(removed) != 1:
            return 1.0, 1.0
        label, op = removed[0]
        if label == '0_1':
            return {'skip_connect': (0.1, 0.0), 'nor_conv_1x1': (0.2, 9.0)}.get(op, (5.0, 5.0))
        return 5.0, 5.0
    tenas = TENAS(score_fn=score, verbose=False)
    tenas.search()
    rows = tenas.history[0]
    ntk = [r['ntk'] for r in rows]
    assert [r['ntk_rank'] for r in rows] == list(rankdata(ntk) - 1)
    assert [r['regions_rank'] for r in rows] == list(rankdata([-r['regions'] for r in rows]) - 1)
    by_op = {r['op']: r for r in rows if r['edge'] == '0_1'}
    assert by_op['skip_connect']['ntk_rank'] == 0 and by_op['nor_conv_1x1']['regions_rank'] == 0
    assert by_op['nor_conv_1x1']['pruned'] and not by_op['skip_connect']['pruned']
    # the other edges tie on everything: the first op of OPS is pruned
    assert all(r['pruned'] == (r['op'] == 'none') for r in rows if r['edge'] != '0_1')


def test_ties_break_by_op_order_and_nan_ntk_is_worst():
    tenas = TENAS(score_fn=lambda mask: (1.0, 1.0), verbose=False)
    assert tenas.search() == {label: 'avg_pool_3x3' for label in EDGE_LABELS}
    assert [[r['op'] for r in rows if r['pruned']] for rows in tenas.history] == \
        [[op] * 6 for op in ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3']]

    def nan_without_none(mask):
        return (math.nan if any('none' not in ops for ops in mask.values()) else 1.0), 1.0
    tenas = TENAS(score_fn=nan_without_none, verbose=False)
    tenas.search()
    first = tenas.history[0]
    assert all(r['ntk'] == math.inf for r in first if r['op'] == 'none')
    assert [r['op'] for r in first if r['pruned']] == ['skip_connect'] * 6


def test_verbose_prints_one_line_per_round(capsys):
    TENAS(score_fn=lambda mask: (1.0, 1.0), verbose=True).search()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith('TE-NAS round')]
    assert len(lines) == 4 and '30 candidates' in lines[0] and '12 candidates' in lines[3]


def test_argument_checks_and_given_inputs():
    with pytest.raises(ValueError, match='in_channels'):
        TENAS(in_channels=1, verbose=False)
    with pytest.raises(ValueError, match='ntk_batch'):
        TENAS(ntk_batch=1, verbose=False)
    x = torch.randn(10, 1, 8, 8)
    tenas = TENAS(in_channels=1, inputs=x, ntk_batch=3, verbose=False)
    assert torch.equal(tenas.inputs, x[:3])
    a = TENAS(ntk_batch=4, seed=5, verbose=False).inputs
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, TENAS(ntk_batch=4, seed=5, verbose=False).inputs)
    assert not torch.equal(a, TENAS(ntk_batch=4, seed=6, verbose=False).inputs)


# ----------------------------------------------------------------------------- real measurement

TINY = dict(num_cells=1, channels=4, ntk_batch=4, lr_samples=100, input_size=(3, 8, 8), repeats=1, seed=0,
            verbose=False)


def test_measure_is_the_proxies_averaged_over_seeds():
    mask = {**ALL, '0_1': ['nor_conv_3x3', 'skip_connect'], '2_3': ['none', 'avg_pool_3x3']}
    rng_before = torch.get_rng_state()
    tenas = TENAS(**{**TINY, 'repeats': 2})
    cond, regions = tenas.measure(mask)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's global RNG is untouched
    net = NB201Supernet(1, 4, alive=mask)
    thin = NB201Supernet(1, 1, in_channels=1, alive=mask)
    dummy = torch.zeros(100, 1, 3, 3)
    conds = [score_te_nas_ntk(net, tenas.inputs, seed=s) for s in (0, 1)]
    regs = [score_te_nas_linear_regions(thin, dummy, seed=s) for s in (0, 1)]
    assert cond == pytest.approx(sum(conds) / 2, rel=1e-9)
    assert regions == pytest.approx(sum(regs) / 2)
    assert 1 < regions <= 100 and cond > 1
    # the mask matters for both measures
    other = TENAS(**TINY).measure({**ALL, '0_1': ['none']})
    assert other != TENAS(**TINY).measure(mask)


@pytest.fixture(scope='module')
def tiny_search():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tenas = TENAS(**TINY)
        return tenas.search(), tenas
    finally:
        torch.set_num_threads(before)


def test_tiny_real_search_returns_a_valid_sample(tiny_search):
    sample, tenas = tiny_search
    assert list(sample) == EDGE_LABELS and all(op in OPS for op in sample.values())
    assert [len(r) for r in tenas.history] == [30, 24, 18, 12]
    assert all(sum(r['pruned'] for r in rows) == 6 for rows in tenas.history)
    assert all(r['regions'] >= 1 and r['ntk'] >= 1 for rows in tenas.history for r in rows)
    NasBench201Space(num_cells=1, channels=4).freeze(sample)  # usable as an NB201 sample


def test_tiny_real_search_is_deterministic(tiny_search):
    """A second search of the same seed makes the same measurements, hence the same sample.
    (A second full search costs ~10 s here; re-measuring the decisive candidates of the
    first and last rounds with a fresh instance, then replaying every round's decisions from
    the recorded values, checks the same thing at a fraction of the cost.)"""
    sample, tenas = tiny_search
    fresh = TENAS(**TINY)
    alive = {label: list(OPS) for label in EDGE_LABELS}
    for k, rows in enumerate(tenas.history):
        for row in rows:
            if row['pruned'] and k in (0, len(tenas.history) - 1):
                mask = {label: [op for op in ops if not (label == row['edge'] and op == row['op'])]
                        for label, ops in alive.items()}
                assert fresh.measure(mask) == (row['ntk'], row['regions'])
        for row in rows:
            if row['pruned']:
                alive[row['edge']].remove(row['op'])
    recorded = {}
    alive = {label: list(OPS) for label in EDGE_LABELS}
    for rows in tenas.history:
        for row in rows:
            mask = tuple((label, tuple(op for op in ops if not (label == row['edge'] and op == row['op'])))
                         for label, ops in alive.items())
            recorded[mask] = (row['ntk'], row['regions'])
        for row in rows:
            if row['pruned']:
                alive[row['edge']].remove(row['op'])
    replay = TENAS(score_fn=lambda m: recorded[tuple((k, tuple(v)) for k, v in m.items())], verbose=False)
    assert replay.search() == sample


def test_start_ops_without_none_takes_three_rounds():
    tenas = TENAS(score_fn=lambda mask: (1.0, 1.0), start_ops=[op for op in OPS if op != 'none'], verbose=False)
    sample = tenas.search()
    assert [len(r) for r in tenas.history] == [24, 18, 12] and 'none' not in sample.values()
    with pytest.raises(ValueError, match='start_ops'):
        TENAS(start_ops=['conv_7x7'], verbose=False)
