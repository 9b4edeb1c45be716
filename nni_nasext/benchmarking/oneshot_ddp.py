"""A one-shot search (DARTS) with one process against two (Lightning DDP, gloo on this CPU).

Runs the one-shot trial program (``python3 -m nni_nasext.trial_code.oneshot``, the path nnictl
takes) on the quickstart space (the NB201 cell, with batch norm) and scikit-learn's digits, for
several seeds and architecture learning rates, three ways with the same global batch:

* ``one``: one process, one torch thread (the reference);
* ``two``: two processes (each takes half of every weight and architecture batch; gradients
  averaged; batch norm over the global batch), one thread each;
* ``twin``: one process with two torch threads: the same arithmetic as ``one`` in another
  summation order, i.e. what float rounding alone does to a DARTS trajectory (the noise that
  "equal within noise" is measured against).

Reports per seed how far ``two`` and ``twin`` end from ``one``
(``max |softmax(α_T) − softmax(α_T, one)|`` over the decisions, against how far the search moved
the weights from uniform), the decisions of the derived architecture that agree with ``one``'s
(of 6), the agreement between ``one`` runs of different seeds (what unrelated searches give), the
median epoch time (training and validation, first epoch left out) and the last supernet
validation accuracy.

    python experiments/bench_oneshot_ddp.py --seeds 4 --epochs 5
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results


def run(devices: int, seed: int, arch_lr: float, args, folder: Path, threads: int = 1) -> dict:
    ev = {'dataset': 'digits', 'max_epochs': args.epochs, 'devices': devices, 'accelerator': 'cpu',
          'seed': seed, 'batch_size': args.batch_size}
    out = folder / f'd{devices}-t{threads}-s{seed}-lr{arch_lr}'
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop('NNI_PLATFORM', None)
    cmd = [sys.executable, '-m', 'nni_nasext.trial_code.oneshot', '--method', 'darts', '--space', 'quickstart',
           '--evaluator', 'classification', '--evaluator-args', json.dumps(ev), '--seed', str(seed),
           '--method-args', json.dumps({'arch_lr': arch_lr}), '--output-dir', str(out), '--no-resume']
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr)[-3000:])
    h = json.loads((out / 'oneshot_history.json').read_text())
    epochs = h['history_epoch_seconds'][1:] or h['history_epoch_seconds']
    return {'devices': devices, 'seed': seed, 'arch_lr': arch_lr, 'sample': h['sample'], 'val': h['val'][-1],
            'strengths': h['strengths'][-1], 'wall_s': wall, 'epoch_s': statistics.median(epochs),
            'processes': (proc.stdout + proc.stderr).count('MEMBER:') or 1}


def strengths_gap(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


def agreement(a: dict, b: dict) -> int:
    return sum(a[k] == b[k] for k in a)


def _fmt(v) -> str:
    return '-' if v is None else f'{v:.2f}'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=4)
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--arch-lrs', default='3e-4,0.01', help='DARTS architecture learning rates (3e-4: the paper\'s)')
    ap.add_argument('--out', default=str(EXPERIMENTS / 'results' / 'oneshot_ddp'))
    args = ap.parse_args(argv)
    lrs = [float(x) for x in args.arch_lrs.split(',')]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lr in lrs:
            for seed in range(args.seeds):
                kinds = {'one': (1, 1), 'two': (2, 1), 'twin': (1, 2)}   # (processes, threads)
                order = list(kinds) if seed % 2 == 0 else list(reversed(kinds))   # alternate which runs first
                got = {k: run(kinds[k][0], seed, lr, args, Path(tmp), kinds[k][1]) for k in order}
                one, two, twin = got['one'], got['two'], got['twin']
                # how far from uniform (the initial alpha are 1e-3 N(0, 1): uniform weights to 1e-3)
                moved = max(float(np.max(np.abs(np.asarray(v) - 1.0 / len(v)))) for v in one['strengths'].values())
                rows.append({'arch_lr': lr, 'seed': seed, 'moved': moved,
                             'gap': strengths_gap(one['strengths'], two['strengths']),
                             'gap_twin': strengths_gap(one['strengths'], twin['strengths']),
                             'agree': agreement(one['sample'], two['sample']),
                             'agree_twin': agreement(one['sample'], twin['sample']), 'one': one, 'two': two, 'twin': twin})
                r = rows[-1]
                print(f"arch_lr {lr} seed {seed}: moved {moved:.4f}, gap two {r['gap']:.4f} twin {r['gap_twin']:.4f}, "
                      f"agree two {r['agree']}/6 twin {r['agree_twin']}/6, epoch {one['epoch_s']:.2f} s vs "
                      f"{two['epoch_s']:.2f} s, val {one['val']:.3f} / {two['val']:.3f} / {twin['val']:.3f}", flush=True)
    summary = {}
    for lr in lrs:
        rs = [r for r in rows if r['arch_lr'] == lr]
        ones = [r['one'] for r in rs]
        across = [agreement(a['sample'], b['sample']) for a, b in itertools.combinations(ones, 2)]
        summary[str(lr)] = {
            'moved_median': statistics.median(r['moved'] for r in rs),
            'gap_median': statistics.median(r['gap'] for r in rs),
            'gap_twin_median': statistics.median(r['gap_twin'] for r in rs),
            'agree_same_seed_mean': statistics.mean(r['agree'] for r in rs),
            'agree_twin_mean': statistics.mean(r['agree_twin'] for r in rs),
            'agree_across_seeds_mean': statistics.mean(across) if across else None,
            'epoch_s_1': statistics.median(r['one']['epoch_s'] for r in rs),
            'epoch_s_2': statistics.median(r['two']['epoch_s'] for r in rs),
            'val_1': statistics.mean(r['one']['val'] for r in rs), 'val_2': statistics.mean(r['two']['val'] for r in rs),
            'val_twin': statistics.mean(r['twin']['val'] for r in rs),
            'processes_2': sorted({r['two']['processes'] for r in rs})}
    info = machine_info()
    machine = {**info, 'cpus': info['cpu_count'], 'date': datetime.date.today().isoformat()}
    out = Path(args.out)
    per_seed = [[r['arch_lr'], r['seed'], f"{r['moved']:.4f}", f"{r['gap']:.4f}", f"{r['gap_twin']:.4f}",
                 f"{r['agree']}/6 / {r['agree_twin']}/6", f"{r['one']['epoch_s']:.2f} / {r['two']['epoch_s']:.2f}",
                 f"{r['one']['val']:.3f} / {r['two']['val']:.3f} / {r['twin']['val']:.3f}"] for r in rows]
    per_lr = [[lr, f"{s['moved_median']:.4f}", f"{s['gap_median']:.4f} / {s['gap_twin_median']:.4f}",
               f"{s['agree_same_seed_mean']:.2f} / {s['agree_twin_mean']:.2f} / {_fmt(s['agree_across_seeds_mean'])} (of 6)",
               f"{s['epoch_s_2'] / s['epoch_s_1']:.2f}x", f"{s['val_1']:.3f} / {s['val_2']:.3f} / {s['val_twin']:.3f}"]
              for lr, s in summary.items()]
    lines = ['# DARTS with one process against two (Lightning DDP, gloo), quickstart space, digits',
             '', f'`{command_line("experiments/bench_oneshot_ddp.py", argv)}` '
             f'({machine["cpus"]} CPUs, {machine["platform"]}, {machine["date"]}; global batch {args.batch_size}; '
             'one = 1 process, 1 thread; two = 2 processes, 1 thread each; twin = 1 process, 2 threads)', '',
             *markdown_table(['arch lr', 'seed', 'weights moved (one)', 'gap two', 'gap twin',
                              'decisions agreeing with one (two / twin)', 'epoch s (one / two)',
                              'val acc (one / two / twin)'], per_seed), '',
             *markdown_table(['arch lr', 'median weights moved', 'median gap two / twin',
                              'agreeing with one: two / twin / other seeds', 'epoch time two / one',
                              'mean val acc (one / two / twin)'], per_lr)]
    write_results(out.parent, out.stem, {'args': vars(args), 'machine': machine, 'rows': rows, 'summary': summary},
                  '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
