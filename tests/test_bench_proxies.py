"""Smoke tests of the zero-cost benchmark scripts (tiny sizes)."""
import json

import pytest

from conftest import load_experiment, shared_data





@pytest.fixture
def data(nb12):
    if not (shared_data() / 'fashion-mnist').exists():
        pytest.skip('fashion-mnist absent under NASEXT_DATA')


def test_proxy_correlation_script(data, tmp_path):
    bench = load_experiment('bench_proxies_nb201')
    assert bench.main(['--cells', '4', '--proxies', 'params', 'synflow', '--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'proxies_nb201_4cells.json').read_text())
    assert result['cells'] == 4 and set(result['proxies']) == {'params', 'synflow'}
    for entry in result['proxies'].values():
        assert -1 <= entry['cifar10-valid']['spearman'] <= 1 and entry['finite'] == 4


def test_zero_shot_search_script(data, tmp_path):
    bench = load_experiment('bench_zero_shot_search')
    assert bench.main(['--seeds', '1', '--n', '3', '--proxies', 'params', '--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'zero_shot_search.json').read_text())
    run = result['runs']['params'][0]
    from nni_nasext.benchmarks import NasBench201Table
    assert run['val_acc_200']['cifar10-valid'] == pytest.approx(
        NasBench201Table().query(run['cell'], 'cifar10-valid', 200).accuracy)
