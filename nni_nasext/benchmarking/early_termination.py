"""Early termination in random search over recorded learning curves: regret and training time.

Reproduces, at our scale, the random-search experiment of M. Wistuba, T. Pedapati, "Learning to
Rank Learning Curves", ICML 2020 (the "Random Neural Architecture Search with Early Stopping"
table of the Wistuba-Pedapati NAS tutorial: regret and GPU time per method and dataset), on the
lifelong learning-curve database of ``experiments/build_lc_database.py``
(:mod:`nni_nasext.assessors.lc_database`; NB201 cells at N=1, C=8, 12 epochs, five small tasks).

Protocol (leave one task out). For each task of the database, LCRankNet
(:class:`nni_nasext.assessors.lcranknet.LCRankNetRanker`, ``--steps`` Adam steps) is trained on the curves of
the *other* tasks only; the held-out task is new to it (mean task embedding, then an embedding
fitted on the task's completed trials). Each of ``--seeds`` random searches visits that task's
architectures (all of them, or ``--trials``) in a random order, one trial at a time, and each
method decides after every epoch whether the running trial goes on, seeing the curves epoch by
epoch as an NNI assessor would (:func:`nni_nasext.assessors.replay`; a trial that runs to the end
becomes a reference, a stopped one does not):

* no early termination -- every trial runs all epochs;
* median stopping -- :class:`nni_nasext.assessors.MedianStop` (Golovin et al., KDD 2017);
* successive halving -- Jamieson & Talwalkar (AISTATS 2016) over the whole batch of the search's
  trials, ``eta=3``, rungs at ``T / 9, T / 3, T`` epochs (rounded, at least 1): every trial trains
  to the first rung, the best third (by the value at the rung) goes on to the next, ...; a trial
  is paid once for each epoch it trained (resumed, not restarted);
* curve extrapolation -- :class:`nni_nasext.assessors.CurveExtrapolation` (Domhan et al., IJCAI 2015;
  closed-form stand-in for their MCMC), ``threshold=0.05``;
* LCRankNet -- :class:`nni_nasext.assessors.lcranknet.LCRankNetAssessor`, ``threshold=0.45`` as in the paper,
  with the architecture of each trial (our default additive architecture component); "LCRankNet
  (mean embedding)": the same without fitting the new task's embedding; "LCRankNet (LSTM arch.)":
  the paper's LSTM over the architecture description instead of the additive component.

All methods start deciding at ``--start-step`` (3; curve extrapolation needs 5 points before its
first prediction). Measured per task, averaged over seeds:

* **regret** (as in the tutorial: "difference of best solution and best solution without early
  stopping"): the best final validation accuracy among the search's trials (what random search
  without early termination returns) minus the best final validation accuracy among the trials
  the method ran to completion, in accuracy points (percent);
* **time**: the sum of the recorded per-epoch training seconds of the epochs the method actually
  trained, as a share of the time without early termination (and in seconds).

Run from the repository root::

    OMP_NUM_THREADS=1 nice -n 15 python experiments/bench_early_termination.py

Writes ``early_termination.md`` (also printed) and ``early_termination.json`` under ``--out``
(default ``experiments/results``) and the LCRankNet trained on every task to
``lcranknet_model.pt`` there (the default model of ``LCRankNetAssessor``; ``--no-save-model``).
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import datetime
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = EXPERIMENTS.parent

METHODS = ('no early termination', 'median stopping', 'successive halving', 'curve extrapolation', 'LCRankNet',
           'LCRankNet (mean embedding)', 'LCRankNet (LSTM arch.)')


def successive_halving(curves: np.ndarray, order: Sequence[int], eta: int = 3) -> Dict[int, int]:
    """Batch successive halving over the trials ``order``; ``{trial: epochs trained}`` for the
    trials that stopped before the last epoch."""
    epochs = curves.shape[1]
    levels = int(math.floor(math.log(epochs, eta) + 1e-9))
    rungs = sorted({max(1, int(round(epochs / eta ** k))) for k in range(levels, -1, -1)})
    alive, stops = list(order), {}
    for rung, nxt in zip(rungs[:-1], rungs[1:]):
        ranked = sorted(alive, key=lambda i: -curves[i, rung - 1])
        keep = max(1, len(alive) // eta)
        for i in ranked[keep:]:
            stops[i] = rung
        alive = ranked[:keep]
    return stops


def run_task(task: str, samples: List[dict], curves: np.ndarray, seconds: np.ndarray, rankers: dict, args) -> dict:
    from nni_nasext.assessors import CurveExtrapolation, MedianStop, replay
    from nni_nasext.assessors.lcranknet import LCRankNetAssessor
    n, epochs = curves.shape
    finals = curves[:, -1]
    rng = np.random.default_rng(args.seed)
    orders = [rng.permutation(n)[:args.trials or n].tolist() for _ in range(args.seeds)]
    sweep = [f'LCRankNet δ={th:g}' for th in args.sweep_thresholds] + \
        [f'successive halving η={eta}' for eta in args.sweep_etas]
    names = list(args.methods) + sweep
    rows: Dict[str, List[dict]] = {m: [] for m in names}
    clock: Dict[str, float] = {m: 0.0 for m in names}

    def lcranknet(order, method, threshold):
        assessor = LCRankNetAssessor(ranker=rankers['lstm' if 'LSTM' in method else 'additive'], task=task,
                                     threshold=threshold, start_step=args.start_step, epoch_num=epochs,
                                     adapt_embedding='mean embedding' not in method, seed=args.seed)
        for i in order:
            assessor.set_sample(str(i), samples[i])
        return replay(assessor, curves.tolist(), order)

    for order in orders:
        full_time = float(sum(seconds[i].sum() for i in order))
        best = float(max(finals[i] for i in order))
        for method in names:
            t0 = time.perf_counter()
            if method == 'no early termination':
                stops = {}
            elif method == 'median stopping':
                stops = replay(MedianStop(start_step=args.start_step), curves.tolist(), order)
            elif method == 'successive halving':
                stops = successive_halving(curves, order, eta=3)
            elif method.startswith('successive halving η='):
                stops = successive_halving(curves, order, eta=int(method.rpartition('=')[2]))
            elif method == 'curve extrapolation':
                stops = replay(CurveExtrapolation(epoch_num=epochs, start_step=args.start_step, threshold=0.05),
                               curves.tolist(), order)
            elif method.startswith('LCRankNet δ='):
                stops = lcranknet(order, 'LCRankNet', float(method.rpartition('=')[2]))
            else:
                stops = lcranknet(order, method, args.threshold)
            clock[method] += time.perf_counter() - t0
            completed = [i for i in order if i not in stops]
            spent = float(sum(seconds[i, :stops.get(i, epochs)].sum() for i in order))
            rows[method].append({
                'regret': 100 * (best - (max(finals[i] for i in completed) if completed else 0.0)),
                'time_share': spent / full_time, 'seconds': spent, 'completed': len(completed),
                'epochs': int(sum(stops.get(i, epochs) for i in order)),
            })
    out = {'trials': len(orders[0]), 'architectures': n, 'epochs': epochs,
           'best_final': float(finals.max()), 'median_final': float(np.median(finals)), 'methods': {}, 'sweep': {}}
    for method, rs in rows.items():
        out['sweep' if method in sweep else 'methods'][method] = {
            'regret_mean': float(np.mean([r['regret'] for r in rs])),
            'regret_max': float(np.max([r['regret'] for r in rs])),
            'time_share': float(np.mean([r['time_share'] for r in rs])),
            'seconds': float(np.mean([r['seconds'] for r in rs])),
            'completed': float(np.mean([r['completed'] for r in rs])),
            'decision_seconds': clock[method] / len(orders),
        }
        r = out['sweep' if method in sweep else 'methods'][method]
        print(f'[{task}] {method:27s} regret {r["regret_mean"]:5.2f} time {100 * r["time_share"]:5.1f} % '
              f'completed {r["completed"]:5.1f}/{len(orders[0])}', flush=True)
    return out


def machine_info() -> dict:
    import nni
    import torch
    return {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
            'cpu_count': os.cpu_count(), 'python': platform.python_version(), 'nni': nni.__version__,
            'torch': torch.__version__, 'numpy': np.__version__, 'torch_threads': torch.get_num_threads()}


def render(result: dict) -> str:
    tasks = list(result['tasks'])
    methods = result['protocol']['methods']
    lines = [
        '# Early termination in random search (leave one task out)',
        '',
        f'Command: `{result["command"]}`  ',
        f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s; machine: {result["machine"]["platform"]}, '
        f'{result["machine"]["cpu_count"]} CPUs, Python {result["machine"]["python"]}, NNI {result["machine"]["nni"]}, '
        f'torch {result["machine"]["torch"]} ({result["machine"]["torch_threads"]} thread).',
        '',
        f'Database: `{result["database"]}` ({result["records"]} records). Per task, '
        f'{result["protocol"]["seeds"]} random orders of its architectures; LCRankNet trained on the other tasks '
        f'({result["protocol"]["steps"]} steps). Regret: best final validation accuracy of the search minus the best '
        'final validation accuracy among the trials the method ran to completion, in accuracy points (mean over '
        'orders). Time: recorded training seconds of the epochs actually trained, relative to no early termination.',
        '',
        '| method | ' + ' | '.join(f'{t} regr. | {t} time' for t in tasks) + ' | mean regr. | mean time |',
        '|---|' + '---|---|' * len(tasks) + '---|---|',
    ]
    for m in methods:
        cells = []
        for t in tasks:
            r = result['tasks'][t]['methods'][m]
            cells += [f'{r["regret_mean"]:.2f}', f'{100 * r["time_share"]:.0f} %']
        mr = np.mean([result['tasks'][t]['methods'][m]['regret_mean'] for t in tasks])
        mt = np.mean([result['tasks'][t]['methods'][m]['time_share'] for t in tasks])
        lines.append(f'| {m} | ' + ' | '.join(cells) + f' | {mr:.2f} | {100 * mt:.0f} % |')
    lines += ['', '| task | architectures | trials per search | best final | median final | '
              'no-stopping time (s) | completed trials: ' + ', '.join(methods) + ' |',
              '|---|---|---|---|---|---|---|']
    for t in tasks:
        r = result['tasks'][t]
        done = ', '.join(f'{r["methods"][m]["completed"]:.1f}' for m in methods)
        lines.append(f'| {t} | {r["architectures"]} | {r["trials"]} | {r["best_final"]:.4f} | '
                     f'{r["median_final"]:.4f} | {r["methods"]["no early termination"]["seconds"]:.0f} | {done} |')
    if any(result['tasks'][t].get('sweep') for t in tasks):
        lines += ['', '### Trade-off: regret against time as each method\'s knob moves', '',
                  'LCRankNet (additive architecture, adapted embedding) at other stopping thresholds δ and successive '
                  'halving at other η, with the rows above that use the default knobs; mean over held-out tasks. '
                  'A method is better than another where it has lower regret at equal or lower time.', '',
                  '| setting | mean regret | mean time | mean completed |', '|---|---|---|---|']
        rows = []
        for m in list(next(iter(result['tasks'].values()))['sweep']) + ['LCRankNet', 'successive halving']:
            rs = [result['tasks'][t]['sweep'].get(m) or result['tasks'][t]['methods'].get(m) for t in tasks]
            if all(rs):
                rows.append((m, np.mean([r['regret_mean'] for r in rs]), np.mean([r['time_share'] for r in rs]),
                             np.mean([r['completed'] for r in rs])))
        for m, rg, tm, done in sorted(rows, key=lambda r: (not r[0].startswith('LCRankNet'), r[2])):
            label = m if '=' in m else (f'{m} δ={result["protocol"]["threshold"]:g}' if m == 'LCRankNet'
                                        else f'{m} η=3')
            lines.append(f'| {label} | {rg:.2f} | {100 * tm:.0f} % | {done:.1f} |')
    lines += ['', f'Regret max over orders and decision time per search are in `early_termination.json`. '
              f'Start step {result["protocol"]["start_step"]}; LCRankNet threshold {result["protocol"]["threshold"]}.']
    return '\n'.join(lines) + '\n'


def plot(result: dict, path: Path) -> None:
    """Regret against the share of training time, one point per (method, held-out task), the
    mean over tasks as a large marker: lower left is better. Dashed: the mean trade-off of
    LCRankNet over its thresholds and of successive halving over eta (the sweep)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = list(next(iter(result['tasks'].values()))['methods'])
    for i, m in enumerate(methods):
        colour = f'C{i}'
        xs = [100 * t['methods'][m]['time_share'] for t in result['tasks'].values()]
        ys = [t['methods'][m]['regret_mean'] for t in result['tasks'].values()]
        ax.scatter(xs, ys, s=18, color=colour, alpha=0.5)
        ax.scatter([np.mean(xs)], [np.mean(ys)], s=120, color=colour, edgecolor='k', label=m)
    tasks = list(result['tasks'].values())
    for family, default in (('LCRankNet', 'LCRankNet'), ('successive halving', 'successive halving')):
        names = [n for n in tasks[0].get('sweep', {}) if n.startswith(family)]
        if not names or default not in methods:
            continue
        pts = [(np.mean([100 * t['sweep'][n]['time_share'] for t in tasks]),
                np.mean([t['sweep'][n]['regret_mean'] for t in tasks]), n.rpartition(' ')[2]) for n in names]
        pts.append((np.mean([100 * t['methods'][default]['time_share'] for t in tasks]),
                    np.mean([t['methods'][default]['regret_mean'] for t in tasks]), 'default'))
        pts.sort()
        colour = f'C{methods.index(default)}'
        ax.plot([p[0] for p in pts], [p[1] for p in pts], '--', color=colour, lw=1)
        for x, y, knob in pts:
            if knob != 'default':
                ax.annotate(knob, (x, y), fontsize=7, color=colour, xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('training time, % of no early termination')
    ax.set_ylabel('regret (accuracy points)')
    ax.set_title('Early termination, leave one task out (small: per task; large: mean)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--database', default=str(REPO / 'experiments' / 'results' / 'lc_database.jsonl'))
    p.add_argument('--tasks', default='', help='comma-separated held-out tasks (default: all)')
    p.add_argument('--methods', default=','.join(METHODS), help='comma-separated subset of ' + ', '.join(METHODS))
    p.add_argument('--seeds', type=int, default=10, help='random search orders per task')
    p.add_argument('--trials', type=int, default=0, help='trials per search (default: all of the task)')
    p.add_argument('--steps', type=int, default=2000, help='LCRankNet training steps')
    p.add_argument('--start-step', type=int, default=3)
    p.add_argument('--threshold', type=float, default=0.45)
    p.add_argument('--sweep-thresholds', type=float, nargs='*', default=[0.05, 0.1, 0.2, 0.3],
                   help='extra LCRankNet thresholds for the regret/time trade-off (additive, adapted embedding)')
    p.add_argument('--sweep-etas', type=int, nargs='*', default=[2, 4, 6],
                   help='extra successive-halving eta values for the trade-off')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=str(REPO / 'experiments' / 'results'))
    p.add_argument('--no-save-model', action='store_true')
    p.add_argument('--plot-only', action='store_true', help='redraw the plot from the saved JSON')
    args = p.parse_args(argv)
    if args.plot_only:
        out = Path(args.out)
        plot(json.loads((out / 'early_termination.json').read_text()), out / 'early_termination.png')
        return 0
    args.methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f'unknown methods {unknown}; known: {METHODS}')

    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import torch
    torch.set_num_threads(1)
    logging.getLogger('nni_nasext.assessors').setLevel(logging.ERROR)
    from nni_nasext.assessors.lc_database import LCDatabase
    from nni_nasext.assessors.lcranknet import LCRankNetRanker

    start = time.time()
    db = LCDatabase(args.database)
    all_tasks = db.tasks()
    tasks = [t for t in args.tasks.split(',') if t] or all_tasks
    data = {t: db.curves(t, with_seconds=True) for t in all_tasks}
    results = {}
    for task in tasks:
        rankers = {}
        wanted = {'lstm' if 'LSTM' in m else 'additive' for m in args.methods if m.startswith('LCRankNet')}
        if args.sweep_thresholds:
            wanted.add('additive')
        for arch_model in sorted(wanted):
            t0 = time.perf_counter()
            rankers[arch_model] = ranker = LCRankNetRanker.fit(
                {t: data[t][:2] for t in all_tasks if t != task}, steps=args.steps, seed=args.seed,
                arch_model=arch_model)
            print(f'[{task}] LCRankNet ({arch_model}) trained on {[t for t in all_tasks if t != task]} in '
                  f'{time.perf_counter() - t0:.0f} s (loss {np.mean(ranker.history[:50]):.3f} -> '
                  f'{np.mean(ranker.history[-200:]):.3f})', flush=True)
        results[task] = run_task(task, *data[task], rankers, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_save_model:
        model = LCRankNetRanker.fit({t: data[t][:2] for t in all_tasks}, steps=args.steps, seed=args.seed)
        model.save(out / 'lcranknet_model.pt')
        print(f'[model] LCRankNet on all tasks saved to {out / "lcranknet_model.pt"}', flush=True)
    cmd = 'python experiments/bench_early_termination.py' + ''.join(
        ' ' + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        database = str(Path(args.database).resolve().relative_to(REPO))
    except ValueError:
        database = args.database
    result = {
        'what': 'Early termination in random search over the lifelong learning-curve database, leave one task out',
        'command': cmd, 'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'runtime_s': time.time() - start, 'machine': machine_info(), 'database': database, 'records': len(db),
        'protocol': {'seeds': args.seeds, 'trials': args.trials or 'all', 'steps': args.steps,
                     'start_step': args.start_step, 'threshold': args.threshold, 'seed': args.seed,
                     'methods': args.methods, 'successive_halving_eta': 3, 'curve_extrapolation_threshold': 0.05,
                     'sweep_thresholds': args.sweep_thresholds, 'sweep_etas': args.sweep_etas},
        'tasks': results,
    }
    (out / 'early_termination.json').write_text(json.dumps(result, indent=1))
    report = render(result)
    (out / 'early_termination.md').write_text(report)
    plot(result, out / 'early_termination.png')
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
