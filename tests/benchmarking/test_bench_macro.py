"""Smoke test of the NAS-Bench-Macro benchmark (nni_nasext.benchmarking.macro_search) and of the
per-dataset table of the NB201 benchmark."""
import json

import pytest

from conftest import shared_data





@pytest.fixture(scope='module')
def macro():
    from nni_nasext.benchmarking import macro_search
    return macro_search


def test_macro_runs_count_queries_and_score_the_best(macro, tmp_path):
    if not (shared_data() / 'nas_bench_macro' / 'nas-bench-macro_cifar10.json').exists():
        pytest.skip('NAS-Bench-Macro table absent under NASEXT_DATA')
    assert not set(macro.MULTI_FIDELITY) & set(macro.METHODS)
    runs = macro.run_benchmark([0, 1], ['ours-REA', 'nni-Random', 'ours-PNAS'], queries=20)
    table = macro.NasBenchMacroTable()
    for rs in runs.values():
        for r in rs:
            assert r['num_queries'] == 20 and r['num_unique_networks'] <= 20
            assert r['best_acc'] == pytest.approx(table.query(r['best_key']).mean_acc)
            assert list(r['_best_so_far']) == sorted(r['_best_so_far'])
    summary = macro.summarize(runs)
    assert set(summary['methods']) == set(runs) and summary['methods']['ours-REA']['best_acc_mean'] > 90
    rc = macro.main(['--seeds', '1', '--queries', '10', '--methods', 'ours-RS', 'nni-Random', '--out', str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / 'macro_search.json').read_text())
    assert data['optimum']['mean_acc'] == pytest.approx(93.127, abs=0.01) and (tmp_path / 'macro_search.png').exists()
    assert 'ours-RS vs nni-Random' in data['summary']['comparisons']


def test_nb201_second_table_searches_each_dataset_on_its_own_reward(tmp_path, nb12):
    from nni_nasext.benchmarking import nb201_search as nb
    runs = nb.run_benchmark([0, 1], ['ours-REA', 'ours-SH'], budget=1500.)
    other = nb.run_benchmark([0, 1], ['ours-REA', 'ours-SH'], budget=1500., dataset='cifar100')
    table = nb.NasBench201Table()
    for rs in other.values():
        for r in rs:
            assert r['search_dataset'] == 'cifar100'
            assert r['best_reward'] == pytest.approx(table.query(r['best_cell'], 'cifar100', r['best_reward_epochs']).accuracy)
    result = nb.build_result(runs, [0, 1], 1500., 1.0, 'test', {'cifar100': other})
    assert set(result['by_dataset']) == {'cifar10-valid', 'cifar100'}
    assert result['by_dataset']['cifar100']['ours-REA']['mean'] == pytest.approx(
        sum(r['val_acc_200']['cifar100'] for r in other['ours-REA']) / 2)
    assert 'Each dataset searched on its own reward' in nb.render_markdown(result)
    assert set(result['goal']) == {'ours-SH'}
