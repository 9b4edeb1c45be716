"""A one-shot search (DARTS) with one process against two (Lightning DDP, gloo on this CPU).

Runs the one-shot trial program (``python3 -m nni_nasext.trial_code.oneshot``, the path nnictl
takes) on the quickstart space (the NB201 cell, with batch norm) and scikit-learn's digits, with
``devices`` 1 and 2 and the same global batch (each of two processes takes half of every weight
batch and every architecture batch), alternating, for several seeds and architecture learning
rates. Reports per seed:

* how far the search moved the architecture weights (``max |softmax(α_T) − softmax(α_0)|`` of the
  one-process run) against how far the two-process run ended from it
  (``max |softmax(α_T, 1 process) − softmax(α_T, 2 processes)|``);
* the decisions of the derived architectures that agree (of 6), against the agreement between
  one-process runs of *different* seeds (what an unrelated search gives);
* the median epoch time (training and validation, first epoch left out) and the final supernet
  validation accuracy.

On this CPU batch norm is not synchronised: each process normalises its own half of the batch,
which is where the two runs part (without batch norm they agree to float precision:
``tests/test_oneshot_ddp.py``).

    python experiments/bench_oneshot_ddp.py --seeds 4 --epochs 5
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def run(devices: int, seed: int, arch_lr: float, args, folder: Path) -> dict:
    ev = {'dataset': 'digits', 'max_epochs': args.epochs, 'devices': devices, 'accelerator': 'cpu',
          'seed': seed, 'batch_size': args.batch_size}
    out = folder / f'd{devices}-s{seed}-lr{arch_lr}'
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
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
    ap.add_argument('--threads', type=int, default=1, help='torch threads per process')
    ap.add_argument('--out', default=str(HERE / 'results' / 'oneshot_ddp'))
    args = ap.parse_args(argv)
    lrs = [float(x) for x in args.arch_lrs.split(',')]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lr in lrs:
            for seed in range(args.seeds):
                order = (1, 2) if seed % 2 == 0 else (2, 1)   # alternate which runs first
                got = {d: run(d, seed, lr, args, Path(tmp)) for d in order}
                # how far from uniform (the initial alpha are 1e-3 N(0, 1): uniform weights to 1e-3)
                one, two = got[1], got[2]
                moved = max(float(np.max(np.abs(np.asarray(v) - 1.0 / len(v)))) for v in one['strengths'].values())
                rows.append({'arch_lr': lr, 'seed': seed, 'moved': moved, 'gap': strengths_gap(one['strengths'], two['strengths']),
                             'agree': agreement(one['sample'], two['sample']), 'one': one, 'two': two})
                print(f"arch_lr {lr} seed {seed}: moved {moved:.4f}, gap {rows[-1]['gap']:.4f}, agree {rows[-1]['agree']}/6, "
                      f"epoch {one['epoch_s']:.2f} s vs {two['epoch_s']:.2f} s, val {one['val']:.3f} vs {two['val']:.3f}",
                      flush=True)
    summary = {}
    for lr in lrs:
        rs = [r for r in rows if r['arch_lr'] == lr]
        ones = [r['one'] for r in rs]
        across = [agreement(a['sample'], b['sample']) for a, b in itertools.combinations(ones, 2)]
        summary[str(lr)] = {
            'moved_median': statistics.median(r['moved'] for r in rs),
            'gap_median': statistics.median(r['gap'] for r in rs),
            'agree_same_seed_mean': statistics.mean(r['agree'] for r in rs),
            'agree_across_seeds_mean': statistics.mean(across) if across else None,
            'epoch_s_1': statistics.median(r['one']['epoch_s'] for r in rs),
            'epoch_s_2': statistics.median(r['two']['epoch_s'] for r in rs),
            'val_1': statistics.mean(r['one']['val'] for r in rs), 'val_2': statistics.mean(r['two']['val'] for r in rs),
            'processes_2': sorted({r['two']['processes'] for r in rs})}
    machine = {'platform': platform.platform(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
               'date': datetime.date.today().isoformat()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.json').write_text(json.dumps({'args': vars(args), 'machine': machine, 'rows': rows,
                                                    'summary': summary}, indent=1))
    lines = [f'# DARTS with one process against two (Lightning DDP, gloo), quickstart space, digits',
             '', f'`python experiments/bench_oneshot_ddp.py --seeds {args.seeds} --epochs {args.epochs}` '
             f'({machine["cpus"]} CPUs, {machine["platform"]}, {machine["date"]}; {args.threads} torch thread(s) per '
             f'process; global batch {args.batch_size})', '',
             '| arch lr | seed | α moved (1 proc) | 1 vs 2 proc gap | decisions agreeing | epoch s (1 / 2 proc) | val acc (1 / 2 proc) |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['arch_lr']} | {r['seed']} | {r['moved']:.4f} | {r['gap']:.4f} | {r['agree']}/6 | "
                     f"{r['one']['epoch_s']:.2f} / {r['two']['epoch_s']:.2f} | {r['one']['val']:.3f} / {r['two']['val']:.3f} |")
    lines += ['', '| arch lr | median α moved | median gap | agreeing, same seed | agreeing, different seeds (1 proc) | '
              'epoch time ratio 2/1 | mean val acc (1 / 2 proc) |', '|---|---|---|---|---|---|---|']
    for lr, s in summary.items():
        lines.append(f"| {lr} | {s['moved_median']:.4f} | {s['gap_median']:.4f} | {s['agree_same_seed_mean']:.2f}/6 | "
                     f"{_fmt(s['agree_across_seeds_mean'])}/6 | {s['epoch_s_2'] / s['epoch_s_1']:.2f}x | "
                     f"{s['val_1']:.3f} / {s['val_2']:.3f} |")
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
