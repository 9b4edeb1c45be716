"""The fast NB201 lookup trial gives what the general trial gives, without importing torch or
Lightning; the derived-table cache is exact and follows its source files."""
import json
import os

import pytest

from nni_nasext import benchmarks

from conftest import shared_data
from trial_helpers import final_result, imported_no_torch, run_trial_program

CELL = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_3x3', '1_2': 'none', '0_3': 'nor_conv_1x1', '1_3': 'avg_pool_3x3',
        '2_3': 'nor_conv_3x3'}


def trial(tmp_path, sample, fast, evaluator_args='{"dataset": "cifar100", "epochs": 200}', space='nasbench201',
          name=None):
    env = dict(os.environ, NASEXT_CACHE=str(tmp_path / 'cache'))
    out = tmp_path / (name or ('fast' if fast else 'general'))
    return run_trial_program(out, space, 'nb201', sample, fast, evaluator_args, env=env)


def test_the_fast_lookup_trial_matches_the_general_one_without_torch(tmp_path):
    """With a device, the result also carries latency and FLOPs: the general trial (first) counts the
    FLOPs of NB201's operations with torch and caches the counts; the fast trial reads them."""
    shared_data()
    args = '{"dataset": "cifar100", "epochs": 200, "device": "fpga"}'
    general, b = trial(tmp_path, CELL, False, args)
    fast, a = trial(tmp_path, CELL, True, args)
    assert fast.returncode == 0 and general.returncode == 0, fast.stderr + general.stderr
    assert imported_no_torch(fast) and 'TORCH True' in general.stdout
    a.pop('seconds'), b.pop('seconds')
    assert a == b and a['value'] == pytest.approx(benchmarks.NasBench201Table().query(CELL, 'cifar100', 200).accuracy)
    assert json.loads((tmp_path / 'fast' / 'sample.json').read_text()) == CELL
    final = final_result(fast)
    assert final == final_result(general) and final['flops'] > 0 and final['latency_ms'] > 0
    assert (tmp_path / 'cache' / 'nb201_macs_cifar100.json').exists()
    # a multi-fidelity budget picks the schedule, as in the general path
    _, result12 = trial(tmp_path, {**CELL, 'nasext_budget': 12}, True, name='fast12')
    assert result12['value'] == pytest.approx(benchmarks.NasBench201Table().query(CELL, 'cifar100', 12).accuracy)


@pytest.mark.parametrize('sample,evaluator_args,match', [
    ({**CELL, '0_1': 'conv_7x7'}, '{}', 'does not fit'),
    ({k: v for k, v in CELL.items() if k != '2_3'}, '{}', 'does not fit'),
    (CELL, '{"dataset": "mnist"}', 'Unknown NB201 dataset'),
    ({**CELL, 'nasext_budget': 50}, '{}', 'budgets here are'),
])
def test_the_fast_lookup_trial_fails_clearly(tmp_path, sample, evaluator_args, match):
    proc, _ = trial(tmp_path, sample, True, evaluator_args)
    assert proc.returncode == 1 and match in proc.stderr and 'TRIAL FAILED' in proc.stderr


def test_the_table_cache_is_exact_and_follows_its_sources(tmp_path, monkeypatch):
    shared_data()
    monkeypatch.setenv('NASEXT_CACHE', str(tmp_path))
    benchmarks.nb201_table.cache_clear()
    fresh = benchmarks.nb201_table('cifar10-valid', 12)
    cached_file = tmp_path / 'nb201_cifar10-valid_12.json'
    assert cached_file.exists()
    benchmarks.nb201_table.cache_clear()
    assert benchmarks.nb201_table('cifar10-valid', 12) == fresh          # floats survive JSON exactly
    blob = json.loads(cached_file.read_text())
    blob['stamp'][0][1] += 1                                          # the source file "changed"
    blob['value']['table'] = {k: [0, 0, 0, 0] for k in blob['value']['table']}
    cached_file.write_text(json.dumps(blob))
    benchmarks.nb201_table.cache_clear()
    assert benchmarks.nb201_table('cifar10-valid', 12) == fresh          # recomputed, not the stale copy
    cached_file.write_text('{not json')
    benchmarks.nb201_table.cache_clear()
    assert benchmarks.nb201_table('cifar10-valid', 12) == fresh
    benchmarks.nb201_table.cache_clear()
