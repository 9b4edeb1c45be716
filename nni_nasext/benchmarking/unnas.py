"""UnNAS on NB201 cells with Fashion-MNIST: do pretext-task accuracies rank cells as the
supervised accuracy does, and does a pretext-task search pick as good a cell?

Reference: Liu, Dollár, He, Girshick, Yuille & Xie, "Are Labels Necessary for Neural
Architecture Search?", ECCV 2020 (:mod:`nni_nasext.evaluators.pretext`).

For K distinct random NB201 cells (seeded), each in the NB201 skeleton at N=1, C=8 on
Fashion-MNIST resized to 16x16, three evaluators train the cell with the same short recipe
(same images, epochs, optimiser, batch, seed, number of steps): supervised 10-way
classification (:class:`ImageClassification`), rotation and jigsaw
(:class:`PretextTask`, ``copies=1`` so that every task trains on as many examples as the
supervised one). The script reports

* Spearman's rho and Kendall's tau between each pretext accuracy and the supervised accuracy
  (and each score against the NB201 200-epoch CIFAR-10 accuracy);
* the search "at the same budget": among B cells drawn at random from the K (B = 10, 25, 50,
  K; 500 seeded draws each), the cell with the best score of each evaluator, and the NB201
  200-epoch ``cifar10-valid`` accuracy of that cell (mean over the draws), beside a random
  pick and the best of the B (oracle).

Colorization is not measured: Fashion-MNIST is grey (the evaluator refuses grey data).
Two worker processes of one thread each; the run stops starting cells after ``--minutes``.

    NASEXT_DATA=../shared/data python3 experiments/bench_unnas.py --cells 200 --minutes 22
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, run_tasks, write_results

RESULTS = EXPERIMENTS / 'results'

RECIPE = dict(dataset='fashion-mnist', limit=2000, image_size=16, max_epochs=3, batch_size=64, learning_rate=0.05,
              limit_val_batches=6, seed=0, accelerator='cpu')
SPACE = dict(num_cells=1, channels=8, in_channels=1)
TASKS = ('supervised', 'rotation', 'jigsaw')
BUDGETS = (10, 25, 50)
DRAWS = 500

_EVALUATORS = {}


def _evaluators():
    if not _EVALUATORS:
        from nni_nasext.evaluators.classification import ImageClassification
        from nni_nasext.evaluators.pretext import PretextTask
        _EVALUATORS['supervised'] = ImageClassification(**RECIPE)
        for task in TASKS[1:]:
            _EVALUATORS[task] = PretextTask(task, copies=1, **RECIPE)
    return _EVALUATORS


def _work(args):
    index, sample, deadline = args
    if time.time() > deadline:
        return None
    _quiet()
    import torch
    torch.set_num_threads(1)
    from nni_nasext.search_spaces import NasBench201Space
    out = {'index': index, 'sample': sample}
    for task, evaluator in _evaluators().items():
        num_outputs = 10 if task == 'supervised' else evaluator.num_outputs
        space = NasBench201Space(num_classes=num_outputs, **SPACE)
        start = time.perf_counter()
        out[task] = evaluator.evaluate(space.freeze(sample))
        out[f'{task}_seconds'] = time.perf_counter() - start
    return out


def _quiet():
    import logging
    import warnings
    warnings.filterwarnings('ignore')
    logging.getLogger('nni').setLevel(logging.WARNING)


def search_at_budget(rows, score, budget, draws=DRAWS, seed=0):
    """Mean NB201 200-epoch accuracy of the cell with the best ``score`` among ``budget`` cells
    drawn from ``rows`` (``draws`` seeded draws); ``score=None``: a random pick; ``'oracle'``:
    the best NB201 accuracy among them."""
    import numpy as np
    rng = np.random.RandomState(seed)
    picks = []
    for _ in range(draws):
        chosen = rng.choice(len(rows), size=min(budget, len(rows)), replace=False)
        if score is None:
            best = rows[chosen[rng.randint(len(chosen))]]
        elif score == 'oracle':
            best = max((rows[i] for i in chosen), key=lambda r: r['nb201_200'])
        else:
            best = max((rows[i] for i in chosen), key=lambda r: r[score])
        picks.append(best['nb201_200'])
    return float(np.mean(picks)), float(np.std(picks))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--cells', type=int, default=200)
    p.add_argument('--minutes', type=float, default=22.0, help='start no cell after this many minutes')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=str(RESULTS / 'unnas'))
    p.add_argument('--report-only', action='store_true',
                   help='recompute the statistics, table and plot from the rows of OUT.json (no training)')
    args = p.parse_args(argv)
    _quiet()
    if args.report_only:
        saved = json.loads(Path(args.out).with_suffix('.json').read_text())
        return report(saved['rows'], saved['meta'], Path(args.out))
    from nni_nasext.evaluators.nb201_query import NB201Query
    from nni_nasext.nb201_cells import distinct_random_samples

    samples = distinct_random_samples(args.cells, random.Random(args.seed))
    start = time.time()
    deadline = start + 60 * args.minutes
    jobs = [(i, s, deadline) for i, s in enumerate(samples)]
    rows = []

    def progress(row):
        if row is None:
            return
        rows.append(row)
        print(f"[{len(rows)}/{args.cells}] {time.time() - start:6.0f}s sup {row['supervised']:.3f} "
              f"rot {row['rotation']:.3f} jig {row['jigsaw']:.3f}", flush=True)

    run_tasks(_work, jobs, args.workers, on_result=progress, context='spawn')
    rows.sort(key=lambda row: row['index'])  # the cells' order (the statistics' draws index the rows)
    runtime = time.time() - start
    table = NB201Query('cifar10-valid', epochs=200)
    k = len(rows)
    machine = machine_info()
    meta = {'command': command_line('experiments/bench_unnas.py', argv),
            'date': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'machine': f'{machine["processor"]}, {machine["cpu_count"]} cores (shared with other jobs), {args.workers} '
                       f'workers x 1 torch thread, Python {machine["python"]}',
            'runtime_s': round(runtime, 1), 'cells_asked': args.cells, 'cells_done': k,
            'recipe': RECIPE, 'space': SPACE, 'copies': 1}
    for row in rows:
        row['nb201_200'] = table.query(row['sample']).accuracy
    return report(rows, meta, Path(args.out))


def report(rows, meta, out: Path) -> int:
    """The statistics of ``rows`` (one per cell: its three accuracies and NB201 200-epoch
    accuracy), written to ``out`` .json, .md and .png."""
    import numpy as np
    from scipy import stats
    k = len(rows)
    corr = {}
    for task in TASKS[1:]:
        x, y = [r[task] for r in rows], [r['supervised'] for r in rows]
        corr[task] = {'spearman': stats.spearmanr(x, y)[0], 'kendall': stats.kendalltau(x, y)[0]}
    vs_nb201 = {}
    for task in TASKS:
        x, y = [r[task] for r in rows], [r['nb201_200'] for r in rows]
        vs_nb201[task] = {'spearman': stats.spearmanr(x, y)[0], 'kendall': stats.kendalltau(x, y)[0]}
    search = {}
    for budget in [b for b in BUDGETS if b < k] + [k]:
        search[budget] = {name: search_at_budget(rows, score, budget, draws=1 if budget == k else DRAWS)
                          for name, score in (('supervised', 'supervised'), ('rotation', 'rotation'),
                                              ('jigsaw', 'jigsaw'), ('random', None), ('oracle', 'oracle'))}
        if budget == k:   # every cell: the pick is deterministic; a random pick is the mean
            search[budget]['random'] = (float(np.mean([r['nb201_200'] for r in rows])),
                                        float(np.std([r['nb201_200'] for r in rows])))
    seconds = {t: sum(r[f'{t}_seconds'] for r in rows) / max(k, 1) for t in TASKS}
    # what each score rewards: Spearman between the number of edges with each op and the score
    from nni_nasext.nb201_cells import OPS
    by_op = {op: {t: stats.spearmanr([sum(v == op for v in r['sample'].values()) for r in rows],
                                     [r[t] for r in rows])[0] for t in (*TASKS, 'nb201_200')} for op in OPS}
    result = {'meta': meta, 'correlation_with_supervised': corr, 'correlation_with_nb201_200': vs_nb201,
              'search_at_budget': {str(b): v for b, v in search.items()}, 'mean_train_seconds': seconds,
              'op_count_correlation': by_op, 'rows': rows}
    paths = write_results(out.parent, out.stem, result, _markdown(result))
    _plot(rows, corr, out.with_suffix('.png'))
    print(paths['md'].read_text())
    return 0


def _plot(rows, corr, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    sup = [r['supervised'] for r in rows]
    for ax, task in zip(axes, TASKS[1:]):
        ax.scatter([r[task] for r in rows], sup, s=10, alpha=.7)
        ax.set_xlabel(f'{task} accuracy (pretext)')
        ax.set_ylabel('supervised accuracy')
        ax.set_title(f"{task}: Spearman {corr[task]['spearman']:.2f}, Kendall {corr[task]['kendall']:.2f}")
    fig.suptitle(f'{len(rows)} NB201 cells (N=1, C=8), Fashion-MNIST 16x16, same 3-epoch recipe')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(result) -> str:
    meta, corr, nb = result['meta'], result['correlation_with_supervised'], result['correlation_with_nb201_200']
    k = meta['cells_done']
    lines = [f"# UnNAS: pretext-task evaluators on {k} NB201 cells (Fashion-MNIST)", '',
             f"Command: `{meta['command']}` (`--report-only` recomputes the tables and the plot from unnas.json)  ", f"Date: {meta['date']}; machine: {meta['machine']}; "
             f"runtime {meta['runtime_s']:.0f} s for {k} of the {meta['cells_asked']} cells asked.", '',
             f"Recipe (every evaluator): {json.dumps(meta['recipe'])}; space NB201 skeleton {json.dumps(meta['space'])}, "
             "num_classes 10 (supervised), 4 (rotation), 24 (jigsaw 2x2, every permutation); copies=1.", '',
             '## Rank correlation with the supervised accuracy (same cells, same recipe)', '',
             '| pretext task | Spearman rho | Kendall tau | vs NB201 200-ep CIFAR-10: Spearman |', '|---|---|---|---|']
    for task in TASKS[1:]:
        lines.append(f"| {task} | {corr[task]['spearman']:.3f} | {corr[task]['kendall']:.3f} | "
                     f"{nb[task]['spearman']:.3f} |")
    lines.append(f"| (supervised itself) | 1 | 1 | {nb['supervised']['spearman']:.3f} |")
    lines += ['', '## Search at the same budget: NB201 200-epoch cifar10-valid accuracy (%) of the cell each score picks',
              '', f'Best of B cells drawn from the {k} ({DRAWS} seeded draws; B = {k}: the one pick), mean ± sd.', '',
              '| B | supervised | rotation | jigsaw | random pick | oracle (best of B) |', '|---|---|---|---|---|---|']
    for b, v in result['search_at_budget'].items():
        lines.append(f'| {b} | ' + ' | '.join(f'{v[n][0]:.2f} ± {v[n][1]:.2f}' for n in
                                             ('supervised', 'rotation', 'jigsaw', 'random', 'oracle')) + ' |')
    lines += ['', '## What each score rewards', '',
              'Spearman between the number of the cell\'s 6 edges with an operation and each score:', '',
              '| operation | supervised (short) | rotation | jigsaw | NB201 200-ep CIFAR-10 |', '|---|---|---|---|---|']
    for op, v in result['op_count_correlation'].items():
        lines.append(f'| {op} | ' + ' | '.join(f'{v[t]:+.2f}' for t in (*TASKS, 'nb201_200')) + ' |')
    lines += ['', '## The paper', '',
              'Liu et al. (ECCV 2020) train 500 architectures of the DARTS space (and NAS-Bench-101 cells) on '
              'CIFAR-10 / ImageNet with each of rotation, colorization and jigsaw and with labels, for a full '
              'training each, and find the rankings with and without labels highly correlated; DARTS searched with '
              'a pretext task finds cells competitive with DARTS searched with labels. Their figures are not on NB201 '
              'and not at this scale; the comparison and the reasons for the differences are in the README section '
              '"UnNAS: search without labels". Colorization is not measured: Fashion-MNIST is grey.']
    s = result['mean_train_seconds']
    lines += ['', 'Mean training seconds per cell: ' + ', '.join(f'{t} {s[t]:.1f}' for t in TASKS), '',
              '![pretext vs supervised](unnas.png)', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
