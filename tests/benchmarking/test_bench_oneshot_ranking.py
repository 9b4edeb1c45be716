"""Smoke tests of experiments/bench_oneshot_ranking.py: restricted cells, the restricted space, a tiny run."""
import importlib
import json
import math

import pytest

from conftest import shared_data


@pytest.fixture(scope='module')
def bench():
    return importlib.import_module('nni_nasext.benchmarking.oneshot_ranking')


def test_cells_for_fixes_the_later_edges(bench):
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
    assert bench.FREE == {1: ['0_1'], 2: ['0_1', '0_2', '1_2'], 3: EDGE_LABELS}
    one = bench.cells_for(1, 200, 0)
    assert sorted(c['0_1'] for c in one) == sorted(OPS)  # all 5, fewer than asked
    assert all(c[lb] == bench.FIXED_OP for c in one for lb in EDGE_LABELS if lb != '0_1')
    assert len(bench.cells_for(2, 200, 0)) == 125
    some = bench.cells_for(2, 30, 0)
    assert len({tuple(c.values()) for c in some}) == 30
    assert all(c[lb] == bench.FIXED_OP for c in some for lb in ('0_3', '1_3', '2_3'))
    full = bench.cells_for(3, 50, 1)
    assert full == bench.cells_for(3, 50, 1) and len({tuple(c.values()) for c in full}) == 50
    assert full != bench.cells_for(3, 50, 2)


def test_restricted_space_has_only_the_free_labels(bench):
    for k in (1, 2, 3):
        space = bench.RestrictedNB201Space(k, num_cells=1, channels=4)
        assert sorted(space.simplify()) == sorted(bench.FREE[k])


def test_quick_run_writes_md_json_png(bench, tmp_path):
    shared_data()
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.data_paths import DataNotFoundError
    from nni_nasext.datasets import load_dataset
    try:
        NasBench201Table().query({lb: 'skip_connect' for lb in bench.EDGE_LABELS}, 'cifar10-valid', 200)
        load_dataset('fashion-mnist', limit=8)
    except DataNotFoundError as err:
        pytest.skip(f'data absent: {err}')
    assert bench.main(['--quick', '--cells', '6', '--bn-images', '64', '--val-images', '128',
                       '--out', str(tmp_path)]) == 0
    for ext in ('md', 'json', 'png'):
        assert (tmp_path / f'oneshot_ranking.{ext}').stat().st_size > 0
    data = json.loads((tmp_path / 'oneshot_ranking.json').read_text())
    assert set(data['summary']) == {f'{m}/k={k}' for m in ('spos', 'rsps') for k in (1, 2, 3)}
    assert data['summary']['spos/k=1']['n'] == 5 and data['summary']['rsps/k=3']['n'] == 6
    for run in data['runs']:
        assert len(run['cells']['2']) == 6 and len({r[0] for r in run['cells']['3']}) == 6
        assert all(0.0 <= r[1] <= 1.0 and 0.0 <= r[2] <= 1.0 for r in run['cells']['3'])
    assert sorted(r['seed'] for r in data['runs']) == [0, 100]
    tau = data['summary']['spos/k=3']['tau_recal']['mean']
    assert math.isnan(tau) or -1.0 <= tau <= 1.0
    assert 'restriction of the *evaluated cells*' in (tmp_path / 'oneshot_ranking.md').read_text()
