"""NASWOT-style zero-shot search on NAS-Bench-201: score N random cells at initialisation, keep the best.

Mellor et al., "Neural Architecture Search without Training", ICML 2021, Section 5: sample N
architectures, score each with a training-free proxy on one mini-batch, return the
best-scored one without training anything. Each seed draws ``--n`` distinct cells uniformly;
every proxy in ``--proxies`` scores the same cells (``ZeroCostProxy`` on ``NasBench201Space()``,
Fashion-MNIST images resized to 3x32x32 standing in for CIFAR, which is not on these
machines); the chosen cell is looked up in the NB201 tables (200-epoch validation accuracy on
the three datasets). Beside it: REA and the optimal row from ``nb201_search.json`` (the
sample-based table). Compare with the NASWOT rows of Mellor et al.'s NB201 table (their
searches used CIFAR images; not transcribed here).

    NASEXT_DATA=../shared/data python experiments/bench_zero_shot_search.py --seeds 5 --n 100

Writes ``zero_shot_search.{md,json}`` under ``--out`` (default experiments/results).
"""
from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore', category=RuntimeWarning)

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table  # noqa: E402
from nni_nasext.evaluators.proxies import PROXIES, ZeroCostProxy  # noqa: E402
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space  # noqa: E402



def main(argv=None) -> int:
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--n', type=int, default=100)
    parser.add_argument('--proxies', nargs='+', default=['naswot', 'synflow', 'params'],
                        choices=sorted(PROXIES))
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    space, table = NasBench201Space(), NasBench201Table()
    runs = {p: [] for p in args.proxies}
    start = time.time()
    for seed in range(args.seeds):
        rng = random.Random(seed)
        cells = []
        while len(cells) < args.n:
            cell = {label: rng.choice(OPS) for label in EDGE_LABELS}
            if cell not in cells:
                cells.append(cell)
        evaluators = {p: ZeroCostProxy(p, dataset='fashion-mnist', input_size=(3, 32, 32), seed=seed)
                      for p in args.proxies}
        scores = {p: [] for p in args.proxies}
        seconds = {p: 0. for p in args.proxies}
        for cell in cells:
            model = space.freeze(cell)
            for p, ev in evaluators.items():
                t = time.perf_counter()
                v = ev.score(model)
                seconds[p] += time.perf_counter() - t
                scores[p].append(v if np.isfinite(v) else -np.inf)
        for p in args.proxies:
            best = cells[int(np.argmax(scores[p]))]
            runs[p].append({'seed': seed, 'cell': table.query(best, 'cifar10-valid', 200).cellstr,
                            'search_s': seconds[p],
                            'val_acc_200': {ds: table.query(best, ds, 200).accuracy for ds in NB201_DATASETS}})
        print(f'seed {seed}: ' + ', '.join(f'{p} {runs[p][-1]["val_acc_200"]["cifar10-valid"]:.2f}'
                                           for p in args.proxies), file=sys.stderr, flush=True)
    sample_based = Path(__file__).resolve().parent / 'results' / 'nb201_search.json'
    ref = json.loads(sample_based.read_text()) if sample_based.exists() else None
    lines = ['## Zero-shot search on NAS-Bench-201 (NASWOT-style: best of N scored at initialisation)', '',
             f'N = {args.n} random cells per seed, {args.seeds} seeds; 200-epoch validation accuracy (%) of the '
             'chosen cell, mean ± std; search time = proxy time for the N cells on this CPU (no training).', '',
             '| method | cifar10-valid | cifar100 | ImageNet16-120 | search time |', '|---|---|---|---|---|']
    summary = {}
    for p, rs in runs.items():
        accs = {ds: np.array([r['val_acc_200'][ds] for r in rs]) for ds in NB201_DATASETS}
        summary[p] = {ds: {'mean': float(a.mean()), 'std': float(a.std(ddof=1)) if len(a) > 1 else 0.}
                      for ds, a in accs.items()}
        summary[p]['search_s_mean'] = float(np.mean([r['search_s'] for r in rs]))
        lines.append(f'| best of {args.n} by {p} | ' + ' | '.join(
            f'{summary[p][ds]["mean"]:.2f} ± {summary[p][ds]["std"]:.2f}' for ds in NB201_DATASETS)
            + f' | {summary[p]["search_s_mean"]:.0f} s |')
    if ref:
        s = ref['summary']['ours-REA']['val_acc_200']
        lines.append('| ours REA, 12,000 simulated s of training (sample-based table) | ' + ' | '.join(
            f'{s[ds]["mean"]:.2f} ± {s[ds]["std"]:.2f}' for ds in NB201_DATASETS) + ' | 12,000 s (simulated) |')
        lines.append('| optimal | ' + ' | '.join(f'{ref["optimal_table"][ds]:.2f}' for ds in NB201_DATASETS) + ' | |')
    command = 'NASEXT_DATA=../shared/data python experiments/bench_zero_shot_search.py' + ''.join(
        ' ' + a for a in (sys.argv[1:] if argv is None else argv))
    lines += ['', f'Command: `{command}`; runtime {time.time() - start:.0f} s on a 2-core CPU; '
              f'{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}.', '']
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'zero_shot_search.md').write_text(md)
    (args.out / 'zero_shot_search.json').write_text(json.dumps(
        {'n': args.n, 'seeds': args.seeds, 'summary': summary, 'runs': runs,
         'command': command, 'runtime_s': time.time() - start}, indent=1) + '\n')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
