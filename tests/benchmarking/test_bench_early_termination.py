"""The early-termination benchmark's own logic: successive halving and the knob sweep."""
import argparse

import numpy as np

from nni_nasext.benchmarking import early_termination as bench


def _curves(n=27, epochs=9, seed=0):
    rng = np.random.default_rng(seed)
    final = rng.uniform(0.5, 0.9, n)
    t = np.arange(1, epochs + 1) / epochs
    return final[:, None] * (0.6 + 0.4 * t[None, :])   # every curve keeps its rank at every epoch


def test_successive_halving_keeps_the_best_fraction_at_each_rung():
    curves = _curves()
    stops = bench.successive_halving(curves, list(range(27)), eta=3)   # rungs 1, 3, 9
    finals = curves[:, -1]
    completed = [i for i in range(27) if i not in stops]
    assert sorted(completed) == sorted(np.argsort(-finals)[:3].tolist())   # 27 -> 9 -> 3, the best third each time
    assert list(stops.values()).count(1) == 18 and list(stops.values()).count(3) == 6
    stops2 = bench.successive_halving(curves, list(range(27)), eta=2)
    assert len([i for i in range(27) if i not in stops2]) >= 1 and int(np.argmax(finals)) not in stops2


def test_run_task_reports_the_sweep_separately_with_regret_and_time():
    curves = _curves()
    seconds = np.ones_like(curves)
    samples = [{'a': str(i)} for i in range(len(curves))]
    args = argparse.Namespace(seed=0, seeds=2, trials=0, start_step=3, threshold=0.45,
                              methods=['no early termination', 'successive halving'],
                              sweep_thresholds=[], sweep_etas=[2, 4])
    out = bench.run_task('toy', samples, curves, seconds, {}, args)
    assert set(out['methods']) == {'no early termination', 'successive halving'}
    assert set(out['sweep']) == {'successive halving η=2', 'successive halving η=4'}
    none = out['methods']['no early termination']
    assert none['regret_mean'] == 0 and none['time_share'] == 1 and none['completed'] == 27
    sh = out['methods']['successive halving']
    assert sh['regret_mean'] == 0 and sh['time_share'] < 0.5   # monotone curves: SH keeps the best
    for r in out['sweep'].values():
        assert 0 < r['time_share'] < 1 and r['regret_mean'] == 0
