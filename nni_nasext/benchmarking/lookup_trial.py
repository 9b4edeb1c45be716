"""Wall time of one NAS-Bench-201 lookup trial, the general path against the fast one.

A lookup trial (``python3 -m nni_nasext.trial_code --space nasbench201 --evaluator nb201``) is one
short process per trial, so its start-up is the cost of a large table-based search behind nnictl.
The general path imports NNI's NAS modules (``nni.nas.benchmark`` imports PyTorch Lightning),
builds the space to check the sample and recomputes the table's seed means. The fast path
(:func:`nni_nasext.trial_code.run.run_lookup_trial`) checks the sample against NB201's cell, reads the
table from its cache and imports neither torch nor Lightning. ``NASEXT_NO_FAST_LOOKUP=1`` forces
the general path. Each path runs ``--repeats`` times, alternating, one process at a time, with the
same random cells; the first fast run fills the cache and is reported apart. Both must report
the same value for every cell.

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


def one_trial(sample, fast: bool, cache: str, out: str) -> tuple:
    env = dict(os.environ, NASEXT_CACHE=cache)
    env.pop('NNI_PLATFORM', None)
    if not fast:
        env['NASEXT_NO_FAST_LOOKUP'] = '1'
    cmd = [sys.executable, '-m', 'nni_nasext.trial_code', '--space', 'nasbench201', '--evaluator', 'nb201',
           '--evaluator-args', json.dumps({'dataset': 'cifar10-valid', 'epochs': 12}),
           '--sample', json.dumps(sample), '--output-dir', out]
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
    from nni_nasext.nb201_cells import distinct_random_samples
    cells = distinct_random_samples(args.repeats, random.Random(0))
    start = time.time()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        first_wall, _ = one_trial(cells[0], True, cache, out)   # fills the table cache
        walls = {'general': [], 'fast': []}
        for i, cell in enumerate(cells):
            order = ('general', 'fast') if i % 2 == 0 else ('fast', 'general')
            values = {}
            for path in order:
                wall, values[path] = one_trial(cell, path == 'fast', cache, out)
                walls[path].append(wall)
            if values['general'] != values['fast']:
                raise AssertionError(f'{cell}: general {values["general"]} != fast {values["fast"]}')
    med = {k: statistics.median(v) for k, v in walls.items()}
    machine = machine_info()
    res = {'command': command_line('experiments/bench_lookup_trial.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine, 'runtime_s': time.time() - start,
           'walls': walls, 'median': med, 'first_fast_uncached': first_wall, 'same_values': True}
    lines = ['## One NAS-Bench-201 lookup trial: wall time per process', '',
             f'{args.repeats} random cells, each run by both paths (alternating order, one process at a time); '
             'the same value from both for every cell.', '',
             *markdown_table(['path', 'median s', 'min s', 'max s'],
                             [[k, f'{med[k]:.2f}', f'{min(walls[k]):.2f}', f'{max(walls[k]):.2f}'] for k in ('general', 'fast')])]
    lines += ['', f'Speed-up (median): {med["general"] / med["fast"]:.1f}x; the first fast trial, which fills the '
              f'table cache: {first_wall:.2f} s. Goal: at most 1.5 s per lookup trial -> '
              f'**{"met" if med["fast"] <= 1.5 else "missed"}**.', '',
              f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
              f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(Path(args.out), 'lookup_trial', res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
