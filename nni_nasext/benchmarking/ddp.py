"""One trial trained by one process against two (Lightning DDP, gloo on this CPU).

Runs the trial program (``python3 -m nni_nasext.trial_code``, the path nnictl takes) on the same
architecture with one process, two processes with batch norm over the global batch (the default,
``sync_batchnorm=True``: on CPU our ``GlobalBatchNorm``), and two processes with batch norm per
process (``sync_batchnorm=False``), in alternating order, for several seeds; the global batch stays
the same (each of two processes takes half). Reports the median epoch time (training and validation,
from the first process; the first epoch is left out as warm-up), the trial's wall time (process
starts and gloo set-up included), and the final validation accuracy per seed, so that the metric
of a two-process run can be compared with the spread of one-process runs over seeds. Each process
uses ``--threads`` torch threads (a trial under nnictl uses 1).

    python experiments/bench_ddp.py --seeds 3 --epochs 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, mean_se, write_results

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_1x1', '1_2': 'skip_connect', '0_3': 'avg_pool_3x3',
          '1_3': 'nor_conv_3x3', '2_3': 'skip_connect'}


#: the runs compared: (processes, batch norm over the global batch)
CONFIGS = {'1': (1, True), '2': (2, True), '2-local-bn': (2, False)}
LABELS = {'1': '1', '2': '2 (DDP, gloo; batch norm over the global batch)',
          '2-local-bn': '2 (DDP, gloo; batch norm per process, sync_batchnorm=False)'}


def trial(config: str, seed: int, args, folder: Path) -> dict:
    devices, sync = CONFIGS[config]
    ev = {'dataset': args.dataset, 'max_epochs': args.epochs, 'devices': devices, 'accelerator': 'cpu',
          'seed': seed, 'batch_size': args.batch_size, 'sync_batchnorm': sync}
    if args.limit:
        ev['limit'] = args.limit
    out = folder / f'{config}-s{seed}'
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))   # torch's thread count in every process
    env.pop('NNI_PLATFORM', None)
    # (python -m: Lightning's DDP launcher starts the second process with the same command line)
    cmd = [sys.executable, '-m', 'nni_nasext.trial_code', '--space', args.space, '--evaluator', 'classification', '--evaluator-args', json.dumps(ev),
           '--sample', json.dumps(SAMPLE), '--output-dir', str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr)[-3000:])
    res = json.loads((out / 'result.json').read_text())
    epochs = res['epoch_seconds'][1:] or res['epoch_seconds']
    return {'config': config, 'devices': devices, 'seed': seed, 'value': res['value'], 'wall_s': wall,
            'epoch_s': statistics.median(epochs), 'epoch_seconds': res['epoch_seconds'],
            'processes': proc.stdout.count('MEMBER:') + proc.stderr.count('MEMBER:')}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--dataset', default='digits')
    ap.add_argument('--space', default='quickstart')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--limit', type=int, default=None)
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix='nasext-ddp-') as tmp:
        for seed in range(args.seeds):
            for config in (list(CONFIGS) if seed % 2 == 0 else list(reversed(CONFIGS))):   # alternating order
                r = trial(config, seed, args, Path(tmp))
                rows.append(r)
                print(f'[ddp] seed {seed} {config}: acc {r["value"]:.4f}, epoch {r["epoch_s"]:.3f} s, '
                      f'wall {r["wall_s"]:.1f} s', flush=True)
    by = {c: [r for r in rows if r['config'] == c] for c in CONFIGS}
    summary = {}
    for d, rs in by.items():
        acc = mean_se([r['value'] for r in rs])
        summary[d] = {'epoch_s': statistics.median(r['epoch_s'] for r in rs),
                      'wall_s': statistics.median(r['wall_s'] for r in rs),
                      'acc_mean': acc['mean'], 'acc_sd': acc['std']}
    diffs = {c: [b['value'] - a['value'] for a, b in zip(sorted(by['1'], key=lambda r: r['seed']),
                                                         sorted(by[c], key=lambda r: r['seed']))] for c in CONFIGS if c != '1'}
    machine = machine_info()
    res = {'command': command_line('experiments/bench_ddp.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine, 'runtime_s': time.time() - t0,
           'rows': rows, 'summary': summary, 'acc_diff_per_seed': diffs}
    s1 = summary['1']
    table = []
    for c, sc in summary.items():
        diff = ', '.join(f'{d:+.4f}' for d in diffs[c]) if c in diffs else '-'
        table.append([LABELS[c], f'{sc["epoch_s"]:.3f}', f'**{sc["epoch_s"] / s1["epoch_s"]:.2f}x**', f'{sc["wall_s"]:.1f}',
                      f'{sc["acc_mean"]:.4f} ± {sc["acc_sd"]:.4f}', diff])
    lines = [f'Dataset {args.dataset}, space {args.space}, global batch {args.batch_size}, {args.epochs} epochs, '
             f'{args.threads} torch thread(s) per process, {args.seeds} seeds:', '',
             *markdown_table(['processes', 'epoch time, median s', 'epoch time ratio to 1', 'trial wall, median s',
                              'final val acc, mean ± sd over seeds', 'accuracy difference to 1 process, per seed'], table),
             '', f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
             f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(args.out, f'ddp_{args.dataset}', res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
