"""Search quality of the one-shot methods on NAS-Bench-201: derived cells, their NB201 accuracy, collapse.

For each method (``--methods``; default: every method of ``nasext list oneshot``) and seed
(``--seeds``, default 3), :func:`nni_nasext.strategies.oneshot.search` trains the generic supernet
of ``NasBench201Space`` (the same one any space gets) with an ``ImageClassification`` evaluator
(SGD, lr 0.025, momentum 0.9, weight decay 3e-4, cosine schedule) on ``--dataset`` (Fashion-MNIST by default: CIFAR is not on these
machines) and derives one cell; the cell is looked up in the NB201 tables
(``NasBench201Table``, 200 epochs: validation accuracy on cifar10-valid, cifar100 and
ImageNet16-120). Reported per method: mean ± std over seeds of those accuracies, the share of
``skip_connect``, of ``none`` (and of ``avg_pool_3x3``) among the derived cells' edges, whether
the cells collapsed (all six edges skip/none, or a skip/none majority: 4 or more of 6; cells
without any convolution are named too), the supernet's last validation accuracy (on the first
``--val-images`` images of the dataset's validation split, set through a Lightning callback:
the supernet accuracy is a progress signal, not the result) and the search seconds (one
thread per worker).

Beside them: the NB201 paper's one-shot rows as published (Dong & Yang, ICLR 2020, Table 5;
searched on CIFAR-10 for 50 epochs (100 for RSPS), *test* accuracy of CIFAR-10 (trained on
train+valid), CIFAR-100 and ImageNet16-120: not the same metric as our validation accuracy,
but the collapsed cells stand out either way) and the optimal row (the cell with the best
cifar10-valid validation accuracy in the table, and its accuracy on the other two).

Settings of the default run, sized for at most about 30 minutes with ``--jobs 2`` on an idle
2-core CPU with the 15 methods of today (the plan, from a DARTS step timed on the spot and the
relative costs in ``STEP_FACTOR`` / ``EPOCH_EXTRA`` / ``RUN_EXTRA``, is printed first: about
50 worker-minutes, ~25 minutes; the first full run took 22 minutes; ``--plan-only`` prints the
plan alone): Fashion-MNIST, 2,560 training examples (1,280 per half: 20 steps of 64 per epoch),
10 epochs, N=1 cell per stage, C=8, images resized to 16x16 (1 channel), the search functions'
defaults otherwise (architecture learning rate 3e-4, Adam: in 200 steps ``α`` moves by at most
~0.06, so the derived cells reflect the early direction of the search, not the end state of
the NB201 paper's 50 epochs; ``--arch-lr`` scales that up, ``--epochs`` / ``--limit``
lengthen it).

Outputs (under ``--out``, default experiments/results; ``--name`` the stem): ``<name>.md`` and
``<name>.json`` (cells per seed as samples and cell strings, the supernet's per-epoch
validation accuracy and ``α`` history, summaries; no per-cell NB201 accuracies: they come from
the tables) and ``<plot-method>_alpha.png`` (``<name>_<plot-method>_alpha.png`` for another
``--name``): the architecture weights of ``--plot-method`` (default ``darts``; its first seed)
over the epochs, one subplot per edge, one line per op. ``--plot-only`` redraws that plot from
an existing JSON for any method in it (:func:`plot_alpha` takes any result's ``'alpha'``);
``--report-only`` rebuilds the markdown, the JSON and the plot from it.

    NASEXT_DATA=../shared/data python experiments/bench_oneshot_nb201.py --jobs 2
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import datetime
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore', category=RuntimeWarning)

HERE = EXPERIMENTS
from nni_nasext.benchmarking.oneshot_cost import fork_map  # noqa: E402

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table  # noqa: E402
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, sample_to_cellstr  # noqa: E402

#: NB201 paper (Dong & Yang 2020, Table 5), test accuracy mean (std): CIFAR-10, CIFAR-100, ImageNet16-120
PUBLISHED = {'darts': ('DARTS-V1', (54.30, 0.00), (15.61, 0.00), (16.32, 0.00)),
             'darts2': ('DARTS-V2', (54.30, 0.00), (15.61, 0.00), (16.32, 0.00)),
             'gdas': ('GDAS', (93.61, 0.09), (70.70, 0.30), (41.84, 0.90)),
             'enas': ('ENAS', (54.30, 0.00), (15.61, 0.00), (16.32, 0.00)),
             'rsps': ('RSPS', (87.66, 1.69), (58.33, 4.34), (31.14, 3.88))}
PUBLISHED_OPTIMAL = (94.37, 73.51, 47.31)
#: rough cost of a training step relative to first-order DARTS (from bench_oneshot_cost.py), and of the
#: extra work per epoch / per run in DARTS steps; only for the printed plan
STEP_FACTOR = {'darts': 1.0, 'darts2': 2.3, 'pcdarts': 0.45, 'gdas': 0.25, 'snas': 1.0, 'fairdarts': 1.0,
               'rsps': 0.1, 'spos': 0.1, 'proxyless': 0.3, 'enas': 0.2, 'rdarts': 1.0, 'darts_plus': 1.0,
               'pdarts': 1.0, 'asap': 1.0, 'darts_pt': 1.0, 'darts_pt_fixed': 0.5, 'bender': 0.4, 'te_nas': 0.0}
EPOCH_EXTRA = {'rdarts': 35.0}  # 20 power iterations of Hessian-vector products on 4 kept batches (measured)
RUN_EXTRA = {'darts_pt': 60.0, 'darts_pt_fixed': 60.0, 'te_nas': 150.0}  # perturbation selection: 6 edges x 5 masks x 8 batches + fine-tuning (measured)
CANDIDATE_FACTOR = 0.2          # scoring one RSPS / SPOS candidate on 1,024 images, per forward-pass unit (measured)
SKIP, NONE, POOL = 'skip_connect', 'none', 'avg_pool_3x3'
LABELS = {'darts': 'DARTS, first order (ours)', 'darts2': 'DARTS, second order (ours)',
          'pcdarts': 'PC-DARTS, K=4 (ours)', 'gdas': 'GDAS (ours)', 'snas': 'SNAS (ours)',
          'fairdarts': 'Fair DARTS (ours)', 'rsps': 'RSPS (ours)', 'spos': 'SPOS (ours)',
          'proxyless': 'ProxylessNAS (ours)', 'enas': 'ENAS (ours)', 'rdarts': 'R-DARTS / DARTS-ES (ours)',
          'darts_plus': 'DARTS+ (ours)', 'pdarts': 'P-DARTS skip regularization (ours)', 'asap': 'ASAP (ours)',
          'darts_pt': 'DARTS-PT (ours)', 'darts_pt_fixed': 'DARTS-PT, fixed alpha (ours)',
          'bender': 'Bender et al. one-shot, path dropout (ours)', 'te_nas': 'TE-NAS pruning, no training (ours)'}
#: extra method arguments of the protocol (the old NB201 modules' equivalents)
METHOD_ARGS = {'rsps': {'num_candidates': 100}, 'spos': {'num_candidates': 100}, 'bender': {'num_candidates': 100},
               'te_nas': {'exclude_none': False}}


def default_methods() -> list:
    from nni_nasext.registry import ONESHOT
    return list(ONESHOT)


def available(methods, note=print):
    from nni_nasext.registry import ONESHOT
    bad = [m for m in methods if m not in ONESHOT]
    if bad:
        raise ValueError(f'unknown one-shot methods {bad}')
    return list(methods)


# ----------------------------------------------------------------------------- one search

def _callbacks(label: str, val_batches, start: float):
    import pytorch_lightning as pl

    class ValidationSubset(pl.Callback):
        """Validate the supernet on the first ``val_batches`` batches of the validation split."""

        def setup(self, trainer, pl_module, stage):
            if val_batches is not None:
                trainer.limit_val_batches = val_batches

    class Progress(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            accs = pl_module.history.get('val') or [float('nan')]
            print(f'[{time.time() - start:6.0f} s] {label}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, '
                  f'supernet val acc {accs[-1]:.3f}', file=sys.stderr, flush=True)

    return [ValidationSubset(), Progress()]


def run_one(task) -> dict:
    """One search (in a worker process): the derived cell and the search's own record."""
    method, seed, cfg, start = task
    import torch
    torch.set_num_threads(1)
    logging.getLogger('nni').setLevel(logging.ERROR)
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    from nni_nasext.strategies.oneshot import search
    val_batches = None if cfg['val_images'] is None else max(1, math.ceil(cfg['val_images'] / 256))
    extra = dict(METHOD_ARGS.get(method, {}))
    if method in ('rsps', 'spos', 'bender'):
        extra['num_candidates'] = cfg['num_candidates']
    if cfg['arch_lr'] is not None and method not in ('rsps', 'spos', 'bender', 'te_nas', 'darts_pt_fixed'):
        extra['arch_lr'] = cfg['arch_lr']
    torch.manual_seed(seed)
    info_channels = 3 if cfg['dataset'].startswith('cifar') else 1
    space = NasBench201Space(num_cells=cfg['num_cells'], channels=cfg['channels'], num_classes=10,
                             in_channels=info_channels)
    evaluator = ImageClassification(cfg['dataset'], max_epochs=cfg['epochs'], batch_size=cfg['batch_size'],
                                    learning_rate=0.025, weight_decay=3e-4, momentum=0.9, limit=cfg['limit'],
                                    seed=seed, image_size=cfg['image_size'], accelerator='cpu')
    result = search(space, evaluator, method, verbose=False, num_score_batches=max(1, 1024 // cfg['batch_size']),
                    callbacks=_callbacks(f'{method} seed {seed}', val_batches, start), **extra)
    sample = {label: result.sample[label] for label in EDGE_LABELS}
    strengths = result.history.get('strengths', [])
    out = {'method': method, 'seed': seed, 'sample': sample, 'cellstr': sample_to_cellstr(sample),
           'val_acc': [float(a) for a in result.history.get('val', [])],
           'alpha': [[[round(float(v), 6) for v in epoch[e]] for e in EDGE_LABELS] for epoch in strengths],
           'epochs_run': len(result.history.get('val', [])),
           'seconds': float(result.seconds)}
    search_rec = result.history.get('search')
    if search_rec:
        out['supernet_score'] = float(search_rec['score'])
    print(f'[{time.time() - start:6.0f} s] {method} seed {seed}: derived {out["cellstr"]} in {out["seconds"]:.0f} s',
          file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- plan

def calibrate(cfg) -> float:
    """Seconds of one first-order DARTS step at the run's sizes, on this machine now (1 thread)."""
    from argparse import Namespace
    from nni_nasext.benchmarking.oneshot_cost import measure
    size = cfg['image_size']
    if size is None:
        from nni_nasext.datasets import load_dataset
        size = load_dataset(cfg['dataset'], limit=64)[2].image_size
    r = measure('darts', Namespace(space='nasbench201', cells=cfg['num_cells'], channels=cfg['channels'], size=size,
                                   batch=cfg['batch_size'], warmup=1, repeats=2, mem_steps=1, seed=0))
    return r['ms_median'] / 1e3


def plan(methods, seeds: int, cfg, darts_step_s: float, jobs: int) -> dict:
    """Rough seconds of the run: steps x relative step cost, validation, candidate scoring, extras."""
    steps_per_epoch = (cfg['limit'] // 2) // cfg['batch_size'] if cfg['limit'] else None
    if steps_per_epoch is None:
        raise ValueError('--limit is needed for the plan')
    images_per_step = 2 * cfg['batch_size']
    val_units = (cfg['val_images'] or 12_000) / images_per_step / 3  # a forward pass is ~1/3 of forward + backward
    per_method = {}
    for m in methods:
        f = STEP_FACTOR.get(m, 1.0)
        units = cfg['epochs'] * (steps_per_epoch * f + val_units * f + EPOCH_EXTRA.get(m, 0.0)) + RUN_EXTRA.get(m, 0.0)
        if m in ('rsps', 'spos'):
            units += cfg['num_candidates'] * 1024 / images_per_step / 3 * CANDIDATE_FACTOR
        per_method[m] = units * darts_step_s + 3.0  # + loading the data, building the module
    total = seeds * sum(per_method.values())
    return {'steps_per_epoch': steps_per_epoch, 'runs': seeds * len(methods), 'per_run_s': per_method,
            'worker_s': total, 'wall_s': total / max(1, min(jobs, seeds * len(methods))), 'darts_step_s': darts_step_s}


# ----------------------------------------------------------------------------- summaries

def collapse(samples) -> dict:
    """Skip / none statistics of derived cells."""
    ops = [s[label] for s in samples for label in EDGE_LABELS]
    counts = [sum(s[label] in (SKIP, NONE) for label in EDGE_LABELS) for s in samples]
    n = len(samples)
    free = [sum(s[label] in (SKIP, NONE, POOL) for label in EDGE_LABELS) for s in samples]
    return {'skip_share': ops.count(SKIP) / len(ops), 'none_share': ops.count(NONE) / len(ops),
            'pool_share': ops.count(POOL) / len(ops), 'all_parameter_free': sum(c == 6 for c in free),
            'all_skip_none': sum(c == 6 for c in counts), 'skip_none_majority': sum(c >= 4 for c in counts),
            'cells': n, 'mean_skip_none_edges': float(np.mean(counts))}


def collapse_line(label: str, c: dict) -> str:
    n, full, major = c['cells'], c['all_skip_none'], c['skip_none_majority']
    if full == n:
        verdict = f'collapsed: all {n} cells are all skip/none'
    elif major == n:
        verdict = f'collapsed: all {n} cells have a skip/none majority ({full} of them all skip/none)'
    elif major > 0:
        verdict = f'partly collapsed: {major} of {n} cells have a skip/none majority ({full} all skip/none)'
    else:
        verdict = 'no collapse: no cell has a skip/none majority'
    line = f'- {label}: {verdict}; {c["mean_skip_none_edges"]:.1f} of 6 edges skip/none on average'
    if c.get('all_parameter_free') and full < n:
        line += (f'; {c["all_parameter_free"]} of {n} cells have no convolution at all (skip/none/avg_pool only, '
                 'a collapse of another kind)')
    return line + '.'


def summarize(runs: dict, table) -> dict:
    summary = {}
    for method, rs in runs.items():
        entry = {}
        for ds in NB201_DATASETS:
            a = np.array([table.query(r['sample'], ds, 200).accuracy for r in rs])
            entry[ds] = {'mean': float(a.mean()), 'std': float(a.std(ddof=1)) if len(a) > 1 else 0.0}
        last = np.array([r['val_acc'][-1] if r['val_acc'] else float('nan') for r in rs])
        entry.update(collapse([r['sample'] for r in rs]), seeds=len(rs),
                     supernet_val_acc={'mean': float(np.mean(last)),
                                       'std': float(np.std(last, ddof=1)) if len(rs) > 1 else 0.0},
                     seconds=float(np.mean([r['seconds'] for r in rs])),
                     epochs_run=float(np.mean([r['epochs_run'] for r in rs])))
        summary[method] = entry
    return summary


# ----------------------------------------------------------------------------- plot

def plot_alpha(alpha, path: Path, title: str, ops=OPS, edges=EDGE_LABELS, ylabel: str = 'architecture weight') -> Path:
    """The architecture weights over the epochs: ``alpha[epoch][edge][op]`` (a search result's
    ``'alpha'``), one subplot per edge, one line per op (legend), so that a drift towards
    skip/none shows."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    a = np.asarray(alpha, dtype=float)
    if a.ndim != 3 or a.shape[1:] != (len(edges), len(ops)):
        raise ValueError(f'alpha must be epochs x {len(edges)} x {len(ops)}, got shape {a.shape}')
    epochs = np.arange(1, a.shape[0] + 1)
    styles = {'none': ('tab:red', '--'), 'skip_connect': ('tab:orange', '--'), 'nor_conv_1x1': ('tab:blue', '-'),
              'nor_conv_3x3': ('tab:green', '-'), 'avg_pool_3x3': ('tab:purple', '-')}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for e, (ax, edge) in enumerate(zip(axes.flat, edges)):
        for k, op in enumerate(ops):
            color, ls = styles.get(op, (None, '-'))
            ax.plot(epochs, a[:, e, k], color=color, linestyle=ls, marker='o', markersize=3, label=op)
        i, j = edge.split('_')
        ax.set_title(f'edge {i} -> {j}', fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel('epoch')
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=len(ops), fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


DEFAULT_NAME = 'oneshot_nb201'


def plot_run(runs: dict, method: str, out: Path, note=print, name: str = DEFAULT_NAME):
    rs = runs.get(method)
    if not rs:
        note(f'note: no runs of {method!r} to plot')
        return None
    r = min(rs, key=lambda r: r['seed'])
    if not r['alpha']:
        note(f'note: {method!r} has no architecture weights to plot (single-path method)')
        return None
    kind = 'sigmoid(α)' if method == 'fairdarts' else ('controller marginals' if method == 'enas' else 'softmax(α)')
    stem = f'{method}_alpha' if name == DEFAULT_NAME else f'{name}_{method}_alpha'
    return plot_alpha(r['alpha'], out / f'{stem}.png',
                      f'{LABELS.get(method, method)}, seed {r["seed"]}: {kind} per edge after each epoch\n'
                      f'derived {r["cellstr"]}', ylabel=kind)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--methods', nargs='+', default=None, help='default: every method present')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--dataset', default='fashion-mnist', help="a nni_nasext.datasets name ('digits' for tests)")
    parser.add_argument('--limit', type=int, default=2560, help='training examples (halved: weights / architecture)')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--cells', type=int, default=1, help='N, cells per stage')
    parser.add_argument('--channels', type=int, default=8, help='C')
    parser.add_argument('--image-size', type=int, default=16, help='resize to this (0: keep the dataset\'s size)')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--val-images', type=int, default=1024, help='supernet validation images per epoch (0: all)')
    parser.add_argument('--num-candidates', type=int, default=100, help='cells scored by RSPS / SPOS')
    parser.add_argument('--arch-lr', type=float, default=None,
                        help="architecture learning rate (default: the method's)")
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--plot-method', default='darts', help='method whose first seed\'s α history is plotted')
    parser.add_argument('--plot-only', action='store_true', help='redraw the plot from <out>/<name>.json, no search')
    parser.add_argument('--report-only', action='store_true',
                        help='rebuild <name>.md, .json and the plot from the runs in <out>/<name>.json, no search')
    parser.add_argument('--no-plan', action='store_true', help='skip the calibration step behind the printed plan')
    parser.add_argument('--plan-only', action='store_true', help='print the plan and its estimate, search nothing')
    parser.add_argument('--name', default=DEFAULT_NAME)
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    args = parser.parse_args(argv)

    def note(s):
        print(s, file=sys.stderr, flush=True)

    if args.plot_only:
        data = json.loads((args.out / f'{args.name}.json').read_text())
        path = plot_run(data['runs'], args.plot_method, args.out, note, args.name)
        print(path)
        return 0 if path else 1
    if args.report_only:
        data = json.loads((args.out / f'{args.name}.json').read_text())
        meta = {k: data[k] for k in ('setting', 'config', 'seeds', 'methods', 'command', 'runtime_s', 'jobs', 'date')}
        print(write_report(data['runs'], meta, args.out, args.name, args.plot_method, NasBench201Table(), note))
        return 0
    torch.set_num_threads(1)
    cfg = {'dataset': args.dataset, 'limit': args.limit, 'image_size': args.image_size or None, 'epochs': args.epochs,
           'batch_size': args.batch, 'num_cells': args.cells, 'channels': args.channels,
           'val_images': args.val_images or None, 'num_candidates': args.num_candidates, 'arch_lr': args.arch_lr}
    try:
        methods = available(list(dict.fromkeys(args.methods or default_methods())), note=note)
    except ValueError as err:
        parser.error(str(err))
    if 'nni-darts' in methods:
        parser.error("'nni-darts' is measured by bench_oneshot_cost.py only")
    if not methods:
        parser.error('no method to run')
    table = NasBench201Table()
    # fail now, not after the searches
    table.query({label: 'skip_connect' for label in EDGE_LABELS}, 'cifar10-valid', 200)
    start = time.time()
    if not args.no_plan:
        step_s = next(fork_map(calibrate, [cfg]))
        p = plan(methods, args.seeds, cfg, step_s, args.jobs)
        note(f'plan: {len(methods)} methods x {args.seeds} seeds = {p["runs"]} searches of {args.epochs} epochs x '
             f'{p["steps_per_epoch"]} steps ({args.dataset}, {args.limit} examples, N={args.cells}, C={args.channels}, '
             f'{args.image_size or "native"} px, batch {args.batch}); '
             f'a DARTS step takes {1e3 * step_s:.0f} ms here now; '
             f'estimate {p["worker_s"] / 60:.0f} worker-minutes, ~{p["wall_s"] / 60:.0f} min with {args.jobs} job(s)')
        note('  per search (s): ' + ', '.join(f'{m} {s:.0f}' for m, s in p['per_run_s'].items()))
        if args.plan_only:
            return 0
    tasks = [(m, s, cfg, start) for m in methods for s in range(args.seeds)]
    tasks.sort(key=lambda t: -STEP_FACTOR.get(t[0], 1.0) - EPOCH_EXTRA.get(t[0], 0.0) / 10)  # longest first
    runs: dict = {m: [] for m in methods}
    done = 0
    for r in fork_map(run_one, tasks, args.jobs, name=lambda t: f'{t[0]} seed {t[1]}'):  # a fresh process each
        runs[r['method']].append(r)
        done += 1
        note(f'[{time.time() - start:6.0f} s] {done}/{len(tasks)} searches done')
    for rs in runs.values():
        rs.sort(key=lambda r: r['seed'])
    meta = {'setting': setting_of(cfg), 'config': cfg, 'seeds': args.seeds, 'methods': methods,
            'command': 'NASEXT_DATA=../shared/data python experiments/bench_oneshot_nb201.py' + ''.join(
                ' ' + a for a in (sys.argv[1:] if argv is None else argv)),
            'runtime_s': time.time() - start, 'jobs': args.jobs,
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    print(write_report(runs, meta, args.out, args.name, args.plot_method, table, note))
    return 0


def setting_of(cfg) -> str:
    return (f'{cfg["dataset"]}, {cfg["limit"]} training examples (half for the weights, half for the architecture), '
            f'{cfg["epochs"]} epochs of {cfg["limit"] // 2 // cfg["batch_size"]} steps (batch {cfg["batch_size"]}), '
            f'NB201 supernet N={cfg["num_cells"]}, C={cfg["channels"]}, images '
            f'{str(cfg["image_size"]) + "px" if cfg["image_size"] else "at native size"}, architecture lr '
            f'{cfg["arch_lr"] or "the method default"}')


def write_report(runs: dict, meta: dict, out: Path, name: str, plot_method: str, table, note=print) -> str:
    """``<name>.md``, ``<name>.json`` and the α plot from the runs; returns the markdown."""
    summary = summarize(runs, table)
    best = table.best('cifar10-valid', 200)
    optimal = {ds: table.query(best.cellstr, ds, 200).accuracy for ds in NB201_DATASETS}
    cfg, seeds = meta['config'], meta['seeds']

    def pm(d):
        return f'{d["mean"]:.2f} ± {d["std"]:.2f}'

    lines = ['## One-shot NAS on NAS-Bench-201: the derived cells', '',
             f'Search: {meta["setting"]}. Each derived cell is looked up in NB201 (200-epoch validation accuracy, %), '
             f'mean ± std over {seeds} seeds. skip / none / pool: share of the derived cells\' edges that are '
             'skip_connect / none / avg_pool_3x3. Supernet acc.: last epoch, first '
             f'{cfg["val_images"] or "all"} validation images of {cfg["dataset"]} (%), as the module\'s '
             '`validation_step` measures it: in eval mode, so single-path and hard-sampling supernets (RSPS, SPOS, '
             'GDAS, ProxylessNAS, ENAS) are scored with batch-norm running statistics pooled over all the paths '
             'they sampled, which depresses their figure (candidates are scored in train mode). '
             'NB201 paper rows: test accuracy as published (searched on CIFAR-10, 50 epochs), a different metric '
             'and a far longer search.', '',
             '| method | cifar10-valid | cifar100 | ImageNet16-120 | skip | none | pool | supernet acc. | search s '
             '| seeds |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for m, s in summary.items():
        lines.append(f'| {LABELS.get(m, m)} | ' + ' | '.join(pm(s[ds]) for ds in NB201_DATASETS)
                     + f' | {s["skip_share"]:.2f} | {s["none_share"]:.2f} | {s["pool_share"]:.2f} | '
                     f'{100 * s["supernet_val_acc"]["mean"]:.1f} ± {100 * s["supernet_val_acc"]["std"]:.1f} | '
                     f'{s["seconds"]:.0f} | {s["seeds"]} |')
    for m, (label, *accs) in PUBLISHED.items():
        lines.append(f'| NB201 paper: {label} (test acc.) | ' + ' | '.join(f'{a:.2f} ± {sd:.2f}' for a, sd in accs)
                     + ' | | | | | | |')
    lines.append('| optimal (best cifar10-valid in the table) | '
                 + ' | '.join(f'{optimal[ds]:.2f}' for ds in NB201_DATASETS) + ' | | | | | | |')
    lines.append('| NB201 paper: optimal (test acc.) | ' + ' | '.join(f'{a:.2f}' for a in PUBLISHED_OPTIMAL)
                 + ' | | | | | | |')
    lines += ['', 'Collapse (a cell is all skip/none when its six edges are skip_connect or none; a majority is 4 or '
              'more of 6):', '']
    lines += [collapse_line(LABELS.get(m, m), s) for m, s in summary.items()]
    lines += ['', 'Derived cells per seed:', '',
              '| method | ' + ' | '.join(f'seed {s}' for s in range(seeds)) + ' |', '|---|' + '---|' * seeds]
    for m, rs in runs.items():
        lines.append(f'| {LABELS.get(m, m)} | ' + ' | '.join(f'`{r["cellstr"]}`' for r in rs) + ' |')
    out.mkdir(parents=True, exist_ok=True)
    plot_path = plot_run(runs, plot_method, out, note, name)
    if plot_path:
        lines += ['', f'![{plot_method} architecture weights]({plot_path.name})']
    lines += ['', f'Command: `{meta["command"]}`; runtime {meta["runtime_s"]:.0f} s on a 2-core CPU '
              f'({meta["jobs"]} worker(s)); {meta["date"]}.', '']
    md = '\n'.join(lines)
    (out / f'{name}.md').write_text(md)
    # cells and supernet records per run; their NB201 accuracies are looked up in the tables (NASEXT_DATA),
    # not redistributed here
    (out / f'{name}.json').write_text(_compact_json(
        {**{k: meta[k] for k in ('setting', 'config', 'seeds', 'methods')}, 'summary': summary, 'runs': runs,
         'optimal_cellstr': best.cellstr,
         'published': {m: {'name': v[0], **dict(zip(NB201_DATASETS, v[1:]))} for m, v in PUBLISHED.items()},
         'published_optimal': dict(zip(NB201_DATASETS, PUBLISHED_OPTIMAL)), 'ops': OPS, 'edges': EDGE_LABELS,
         **{k: meta[k] for k in ('command', 'runtime_s', 'jobs', 'date')}}) + '\n')
    return md


def _compact_json(obj) -> str:
    """Indented JSON with every innermost list on one line (the α histories stay readable and small)."""
    import re
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return re.sub(r'\[\s+([^\[\]{}]*?)\s+\]', lambda m: '[' + ' '.join(m.group(1).split()) + ']', text)


if __name__ == '__main__':
    sys.exit(main())
