"""Proxy combination: features, rank aggregation, ridge fit, the CombinedProxy evaluator, the benchmark."""
import importlib
import json
import math

import numpy as np
import pytest

from nni_nasext.evaluators.proxy_combination import (ProxyCombination, feature, features, rank_aggregate)

NAMES = ['params', 'synflow', 'snip', 'grad_norm', 'jacob_cov', 'naswot', 'zen', 'te_nas_ntk']


def test_feature_transforms():
    assert feature('synflow', math.e ** 3) == pytest.approx(3.0)
    assert feature('te_nas_ntk', math.e ** 2) == pytest.approx(-2.0)  # small condition number = good
    assert feature('naswot', -5.0) == -5.0
    assert math.isnan(feature('synflow', 0.0)) and math.isnan(feature('naswot', None))
    assert math.isnan(feature('zen', float('-inf')))
    F = features({'params': [1.0, math.e], 'naswot': [3.0, float('nan')]}, ['params', 'naswot'])
    assert F.shape == (2, 2) and F[1, 0] == pytest.approx(1.0) and math.isnan(F[1, 1])


def test_rank_aggregate_puts_broken_last():
    F = np.array([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]])
    r = rank_aggregate(F)
    assert r.tolist() == [0.5, 0.5, 2.0]  # row 1 is best on column 0 (rank 1) and last on column 1 (rank 0)


def _synthetic(n=300, seed=0):
    rng = np.random.default_rng(seed)
    acc = rng.normal(size=n)
    # two noisy views of the accuracy: their mean is better than either
    F = np.stack([acc + rng.normal(size=n), acc + rng.normal(size=n), rng.normal(size=n)], axis=1)
    return F, acc


def test_ridge_beats_each_single_view_on_held_out_rows():
    from scipy import stats
    F, acc = _synthetic()
    model = ProxyCombination(['naswot', 'jacob_cov', 'zen']).fit(F[:200], acc[:200])
    combined = stats.spearmanr(model.predict(F[200:]), acc[200:]).statistic
    singles = [stats.spearmanr(F[200:, j], acc[200:]).statistic for j in range(3)]
    assert combined > max(singles) + 0.05
    assert abs(model.weights[2]) < 0.5 * min(abs(model.weights[0]), abs(model.weights[1]))  # noise column small


def test_ridge_round_trip_and_missing_values():
    F, acc = _synthetic(60)
    F[0, 1] = np.nan
    model = ProxyCombination(['naswot', 'jacob_cov', 'zen'], alpha=0.5).fit(F, acc)
    again = ProxyCombination.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.allclose(model.predict(F), again.predict(F)) and np.isfinite(model.predict(F)).all()
    assert again.score({'naswot': F[3, 0], 'jacob_cov': F[3, 1], 'zen': F[3, 2]}) == pytest.approx(model.predict(F[3:4])[0])
    with pytest.raises(ValueError, match='shape'):
        model.predict(F[:, :2])
    with pytest.raises(RuntimeError, match='not fitted'):
        ProxyCombination(['zen']).predict(F[:, :1])


def test_combined_proxy_evaluator(tmp_path):
    from nni_nasext.evaluators.proxy_combination import CombinedProxy
    from nni_nasext.search_spaces.nasbench201 import QuickstartSpace
    F, acc = _synthetic(30)
    model = ProxyCombination(['params', 'synflow', 'naswot']).fit(np.abs(F) + 0.1, acc)
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(model.to_dict()))
    ev = CombinedProxy(str(path), dataset='digits', batch_size=16)
    good = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_3x3', '1_2': 'nor_conv_3x3', '0_3': 'skip_connect',
            '1_3': 'nor_conv_3x3', '2_3': 'nor_conv_3x3'}
    net = QuickstartSpace().freeze(good)
    raw = ev.raw_scores(net)
    assert set(raw) == {'params', 'synflow', 'naswot'}
    assert ev.score(net) == pytest.approx(model.score(raw))
    assert CombinedProxy._load(**ev._dump()).score(net) == pytest.approx(ev.score(net))
    with pytest.raises(FileNotFoundError):
        CombinedProxy(str(tmp_path / 'missing.json'))


def test_shipped_combination_ranks_a_conv_cell_above_a_pooling_cell():
    from nni_nasext.evaluators.proxy_combination import CombinedProxy
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, QuickstartSpace
    ev = CombinedProxy('nb201', dataset='digits', batch_size=16)  # the package data file is installed
    assert set(ev.combination.proxies) == set(NAMES)
    conv = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_3x3', '1_2': 'nor_conv_3x3', '0_3': 'skip_connect',
            '1_3': 'nor_conv_3x3', '2_3': 'nor_conv_3x3'}
    pool = {label: 'avg_pool_3x3' for label in EDGE_LABELS}
    assert ev.score(QuickstartSpace().freeze(conv)) > ev.score(QuickstartSpace().freeze(pool))


def test_combination_benchmark_on_synthetic_scores(tmp_path):
    bench = importlib.import_module('nni_nasext.benchmarking.proxy_combination')
    rng = np.random.default_rng(1)
    n = 60
    acc = {ds: (rng.normal(size=n) * 5 + 80).tolist() for ds in ('cifar10-valid', 'cifar100', 'ImageNet16-120')}
    base = np.asarray(acc['cifar10-valid'])
    scores = {p: np.exp((base - 80) / 5 + rng.normal(size=n)).tolist() for p in NAMES}
    scores['te_nas_ntk'] = [-v for v in scores['te_nas_ntk']]  # stored negated, as bench_proxies_nb201 does
    scores['naswot'][0] = None
    (tmp_path / 'in.json').write_text(json.dumps({'scores': scores, 'val_acc_200': acc}))
    assert bench.main(['--input', str(tmp_path / 'in.json'), '--folds', '3', '--repeats', '1', '--no-ship',
                       '--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'proxy_combination.json').read_text())
    ridge = result['summary']['cifar10-valid']['ridge combination (this dataset)']
    assert len(ridge['values']) == 3 and ridge['mean'] > result['summary']['cifar10-valid']['params']['mean']
    assert (tmp_path / 'proxy_combination.png').exists()
