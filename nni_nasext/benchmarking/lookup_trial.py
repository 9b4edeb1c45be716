"""Wall time of one lookup trial, the general path against the fast one, for each table.

A lookup trial (``python3 -m nni_nasext.trial_code --space nasbench201 --evaluator nb201``, and the
same for NAS-Bench-Graph and NAS-Bench-Macro) is one short process per trial, so its start-up is
the cost of a large table-based search behind nnictl. The general path imports NNI's NAS modules
(``nni.nas.benchmark`` imports PyTorch Lightning), builds the space to check the sample and, for
NB201, recomputes the table's seed means. The fast path
(:func:`nni_nasext.trial_code.run.fast_lookup`) checks the sample against the space's decisions,
reads the table (NB201: from its cache; with a device, the FLOP counts of NB201's operations from
theirs) and imports neither torch nor Lightning. ``NASEXT_NO_FAST_LOOKUP=1`` forces the general
path. For every table each path runs ``--repeats`` times, alternating, one process at a time,
with the same random samples; the first fast run of a table fills the caches and is reported
apart. Both paths must report the same value for every sample.

    NASEXT_DATA=../shared/data python experiments/bench_lookup_trial.py --repeats 10
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results


def _nb201_samples(n, rng):
    from nni_nasext.nb201_cells import distinct_random_samples
    return distinct_random_samples(n, rng)


def _graph_samples(n, rng):
    from nni_nasext.nas_bench_graph_arch import all_samples
    pool = [s for s in all_samples() if any(v != 'skip' for k, v in s.items() if k.startswith('op_'))]
    return rng.sample(pool, n)


def _macro_samples(n, rng):
    from nni_nasext.nasbench_macro_arch import all_keys, key_to_sample
    return [key_to_sample(k) for k in rng.sample(list(all_keys()), n)]


#: table -> (space, evaluator, evaluator arguments, samples(n, rng))
CASES = {
    'NAS-Bench-201 (12 epochs)': ('nasbench201', 'nb201', {'dataset': 'cifar10-valid', 'epochs': 12}, _nb201_samples),
    'NAS-Bench-201 + FPGA latency and FLOPs': ('nasbench201', 'nb201',
                                               {'dataset': 'cifar10-valid', 'epochs': 200, 'device': 'fpga'},
                                               _nb201_samples),
    'NAS-Bench-Graph (cora)': ('nas_bench_graph', 'nas_bench_graph', {'dataset': 'cora'}, _graph_samples),
    'NAS-Bench-Macro': ('nasbench_macro', 'nasbench_macro', {}, _macro_samples),
}


def one_trial(case, sample, fast: bool, cache: str, out: str) -> tuple:
    space, evaluator, evaluator_args, _ = CASES[case]
    env = dict(os.environ, NASEXT_CACHE=cache)
    env.pop('NNI_PLATFORM', None)
    if not fast:
        env['NASEXT_NO_FAST_LOOKUP'] = '1'
    cmd = [sys.executable, '-m', 'nni_nasext.trial_code', '--space', space, '--evaluator', evaluator,
           '--evaluator-args', json.dumps(evaluator_args), '--sample', json.dumps(sample), '--output-dir', out]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return wall, json.loads((Path(out) / 'result.json').read_text())['value']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=10)
    ap.add_argument('--out', default=str(EXPERIMENTS / 'results'))
    args = ap.parse_args(argv)
    start = time.time()
    walls, first = {}, {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        for case, (*_, samples) in CASES.items():
            cells = samples(args.repeats, random.Random(0))
            first[case], _ = one_trial(case, cells[0], True, cache, out)   # fills the caches
            walls[case] = {'general': [], 'fast': []}
            for i, cell in enumerate(cells):
                order = ('general', 'fast') if i % 2 == 0 else ('fast', 'general')
                values = {}
                for path in order:
                    wall, values[path] = one_trial(case, cell, path == 'fast', cache, out)
                    walls[case][path].append(wall)
                if values['general'] != values['fast']:
                    raise AssertionError(f'{case} {cell}: general {values["general"]} != fast {values["fast"]}')
    med = {case: {k: statistics.median(v) for k, v in w.items()} for case, w in walls.items()}
    machine = machine_info()
    res = {'command': command_line('experiments/bench_lookup_trial.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine, 'runtime_s': time.time() - start,
           'walls': walls, 'median': med, 'first_fast_uncached': first, 'same_values': True}
    rows = [[case, path, f'{med[case][path]:.2f}', f'{min(walls[case][path]):.2f}', f'{max(walls[case][path]):.2f}',
             f'{med[case]["general"] / med[case]["fast"]:.1f}x' if path == 'fast' else '']
            for case in CASES for path in ('general', 'fast')]
    worst = max(m['fast'] for m in med.values())
    lines = ['## One lookup trial: wall time per process', '',
             f'{args.repeats} random samples per table, each run by both paths (alternating order, one process at a '
             'time); the same value from both for every sample.', '',
             *markdown_table(['table', 'path', 'median s', 'min s', 'max s', 'speed-up (median)'], rows)]
    lines += ['', 'The first fast trial of each table, which fills the caches: '
              + '; '.join(f'{case} {first[case]:.2f} s' for case in CASES) + '. Goal: at most 1.5 s per lookup trial -> '
              f'**{"met" if worst <= 1.5 else "missed"}** (slowest median of the fast path: {worst:.2f} s).', '',
              f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
              f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(Path(args.out), 'lookup_trial', res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
