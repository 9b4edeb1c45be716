"""Ranking discrepancy of weight-sharing supernets on NAS-Bench-201 (Yu et al., ICLR 2020).

Yu et al., "Evaluating the search phase of neural architecture search", measure how well the
accuracy that a trained weight-sharing supernet gives an architecture ranks the architectures'
stand-alone accuracy; their Kendall tau falls from 0.441 at 4 nodes through 0.314 and 0.214 to
0.195 at 7 nodes. Here, for each method (``spos``, ``rsps``) and seed:

1. :func:`nni_nasext.strategies.oneshot.search` trains the supernet of
   ``NasBench201Space(num_cells=1, channels=C, in_channels=1)`` by uniform single-path sampling
   on Fashion-MNIST at 16x16 (``--limit`` training examples, ``--epochs``, batch 64, SGD lr
   0.025, weight decay 3e-4; ``num_candidates=1``: the method's own search afterwards is skipped
   in effect). Both methods train identically; each runs under its own name and its own seeds
   (spos 0, 1, ...; rsps 100, 101, ...), so their rows are independent replicates.
   ``arch_data='val'``: single-path methods take no architecture step, so the whole training
   set trains the weights (``'split'`` would hold half of it back unused).
2. Every evaluated cell gets the supernet's weights (``inherit``), its batch-norm running
   statistics re-estimated on ``--bn-images`` training images (reset, forward in train mode
   under ``no_grad``, cumulative average) and its accuracy on the first ``--val-images`` images
   of the validation split in eval mode. Second column: ``OneShotModule.score`` (batch norm on
   each batch's statistics, the scoring RSPS / SPOS use in their search) on the same images.
3. Kendall tau and Spearman rho between those accuracies and NB201's 200-epoch cifar10-valid
   validation accuracy of the same cells, per method and seed; mean ± std over seeds.

Fewer searchable nodes: NB201's cell has three computed nodes (edges into nodes 1, 2, 3). For
k = 1, 2, 3 only the edges into nodes 1..k vary (k=1: 0_1, 5 cells; k=2: 0_1, 0_2, 1_2, 125
cells; k=3: all six edges, ``--cells`` random cells); the other edges are fixed to
``nor_conv_3x3``. By default this restricts the *evaluated cells* only: one supernet, trained on
the full space, ranks every k. ``--train-restricted`` trains one supernet per k on the
restricted space (NB201 with the fixed edges made plain ``nor_conv_3x3`` modules).

What differs from the paper: their supernets were trained on CIFAR-10 on cell spaces of 4 to 7
nodes with other operations, and ranked against networks trained stand-alone on CIFAR-10. Ours
is a small NB201 supernet (N=1) trained briefly on 16x16 Fashion-MNIST, ranked against NB201's
CIFAR-10 accuracies: the proxy task differs from the ground truth's task, which lowers tau on
its own. Nodes do not map one to one (NB201's full cell has 4 nodes counting input and output).

    NASEXT_DATA=../shared/data python experiments/bench_oneshot_ranking.py --seeds 3 --jobs 2

``--quick`` is a smoke test (tiny supernet, 20 cells); outputs go to ``--out`` (default
experiments/results): ``oneshot_ranking.md``, ``.json`` and ``.png``.
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import copy
import datetime
import itertools
import json
import logging
import math
import os
import platform
import random
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore', category=RuntimeWarning)
HERE = EXPERIMENTS
from nni_nasext.benchmarking.oneshot_cost import fork_map  # noqa: E402

from nni_nasext.benchmarks import NasBench201Table  # noqa: E402
from nni_nasext.search_spaces.nasbench201 import (  # noqa: E402
    EDGE_LABELS, OPS, NasBench201Space, make_op, sample_to_cellstr,
)

METHODS = ('spos', 'rsps')
#: training seeds of a method: SEED_BASE[method] + 0, 1, ... (the two methods train alike: distinct seeds
#: make their rows independent replicates instead of one supernet trained twice)
SEED_BASE = {'spos': 0, 'rsps': 100}
FIXED_OP = 'nor_conv_3x3'
KS = (1, 2, 3)
#: k -> the edges that vary (those into nodes 1..k)
FREE = {k: [lb for lb in EDGE_LABELS if int(lb.split('_')[1]) <= k] for k in KS}
#: Yu et al. 2020: Kendall tau of the weight-sharing supernet's ranking, by number of nodes
PAPER_TAU = {4: 0.441, 5: 0.314, 6: 0.214, 7: 0.195}
QUICK = dict(epochs=2, limit=512, channels=8, cells=20, bn_images=128, val_images=256)


class RestrictedNB201Space(NasBench201Space):
    """NB201 whose edges into nodes after ``k`` are a plain ``FIXED_OP`` (no choice)."""

    def __init__(self, k: int, num_cells: int = 1, channels: int = 16, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_cells=num_cells, channels=channels, num_classes=num_classes, in_channels=in_channels)
        for cell in self.cells:
            if hasattr(cell, 'edges'):
                for label in EDGE_LABELS:
                    if label not in FREE[k]:
                        width = cell.edges[label][FIXED_OP][1].in_channels
                        cell.edges[label] = make_op(FIXED_OP, width)


def cells_for(k: int, n: int, seed: int) -> list:
    """Distinct cells whose edges outside ``FREE[k]`` are ``FIXED_OP``: all of them when there are
    at most ``n``, else ``n`` drawn at random (seeded), in draw order."""
    free = FREE[k]
    base = {lb: FIXED_OP for lb in EDGE_LABELS}
    if len(OPS) ** len(free) <= n:
        return [{**base, **dict(zip(free, ops))} for ops in itertools.product(OPS, repeat=len(free))]
    rng, seen, out = random.Random(seed * 10 + k), set(), []
    while len(out) < n:
        ops = tuple(rng.choice(OPS) for _ in free)
        if ops not in seen:
            seen.add(ops)
            out.append({**base, **dict(zip(free, ops))})
    return out


def recalibrated_accuracy(supernet, sample, bn_batches, val_batches) -> float:
    """Accuracy of ``sample``'s inherited network after re-estimating its BN statistics."""
    import torch
    from torch import nn
    from nni_nasext.strategies.oneshot import inherit
    net = copy.deepcopy(inherit(supernet, sample))  # inherit shares the chosen ops with the supernet
    dev = next(net.parameters()).device
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
    with torch.no_grad():
        net.train()
        for x, _ in bn_batches:
            net(x.to(dev))
        net.eval()
        correct = sum(int((net(x.to(dev)).argmax(1) == y.to(dev)).sum()) for x, y in val_batches)
    return correct / sum(len(y) for _, y in val_batches)


def run_one(task) -> dict:
    """Train one supernet (in a worker) and score the cells of every k it serves."""
    method, seed, ks, cfg = task
    import torch
    torch.set_num_threads(1)
    logging.getLogger('nni').setLevel(logging.ERROR)
    from nni_nasext.datasets import batches_of
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.strategies.oneshot import search

    space = (RestrictedNB201Space(ks[0], num_cells=1, channels=cfg['channels']) if cfg['train_restricted']
             else NasBench201Space(num_cells=1, channels=cfg['channels'], in_channels=1))
    evaluator = ImageClassification('fashion-mnist', image_size=16, limit=cfg['limit'], max_epochs=cfg['epochs'],
                                    batch_size=64, learning_rate=0.025, weight_decay=3e-4, seed=seed,
                                    limit_val_batches=max(1, math.ceil(cfg['val_images'] / 256)))  # progress only
    t0 = time.time()
    result = search(space, evaluator, method, num_candidates=1, seed=seed, verbose=False, arch_data='val')
    train_s = time.time() - t0
    train_loader, val_loader = evaluator.dataloaders()
    bn_batches = batches_of(train_loader.dataset, cfg['bn_images'], 128)
    val_batches = batches_of(val_loader.dataset, cfg['val_images'], 256)
    labels = list(result.supernet.space_mutables)
    cache, per_k, t1 = {}, {}, time.time()
    for k in ks:
        rows = []
        for cell in cells_for(k, cfg['cells'], cfg['cell_seed']):
            key = sample_to_cellstr(cell)
            if key not in cache:
                sample = {lb: cell[lb] for lb in labels}
                cache[key] = (recalibrated_accuracy(result.supernet, sample, bn_batches, val_batches),
                              result.module.score(sample, val_batches))
            rows.append([key, *cache[key]])
        per_k[str(k)] = rows
    print(f'{method} seed {seed} k={ks}: trained {train_s:.0f} s, scored {len(cache)} cells in '
          f'{time.time() - t1:.0f} s', file=sys.stderr, flush=True)
    return {'method': method, 'seed': seed, 'cells': per_k, 'train_s': train_s, 'score_s': time.time() - t1,
            'scored': len(cache), 'supernet_val': result.history.get('val', [])}


def correlations(rows, table) -> dict:
    from scipy.stats import kendalltau, spearmanr
    truth = [table.query(r[0], 'cifar10-valid', 200).accuracy for r in rows]
    out = {'n': len(rows)}
    for name, col in (('recal', 1), ('bnstat', 2)):
        pred = [r[col] for r in rows]
        ok = len(rows) > 2 and len(set(pred)) > 1
        out[f'tau_{name}'] = float(kendalltau(pred, truth)[0]) if ok else float('nan')
        out[f'rho_{name}'] = float(spearmanr(pred, truth)[0]) if ok else float('nan')
    return out


def summarize(runs, table) -> dict:
    summary = {}
    for method in METHODS:
        for k in KS:
            per_seed = [correlations(r['cells'][str(k)], table) for r in runs
                        if r['method'] == method and str(k) in r['cells']]
            if not per_seed:
                continue
            entry = {'n': per_seed[0]['n'], 'seeds': len(per_seed)}
            for key in ('tau_recal', 'rho_recal', 'tau_bnstat', 'rho_bnstat'):
                v = np.array([c[key] for c in per_seed])
                entry[key] = {'mean': float(np.mean(v)), 'std': float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                              'per_seed': v.tolist()}
            summary[f'{method}/k={k}'] = entry
    return summary


def plot(runs, table, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METHODS), figsize=(5.5 * len(METHODS), 4.5), squeeze=False)
    for ax, method in zip(axes[0], METHODS):
        rs = sorted((r for r in runs if r['method'] == method and '3' in r['cells']), key=lambda r: r['seed'])
        if rs:
            rows = rs[0]['cells']['3']
            truth = [table.query(r[0], 'cifar10-valid', 200).accuracy for r in rows]
            c = correlations(rows, table)
            ax.scatter(truth, [100 * r[1] for r in rows], s=12, label=f'BN recalibrated (tau {c["tau_recal"]:.3f})')
            ax.scatter(truth, [100 * r[2] for r in rows], s=8, marker='x', alpha=0.6,
                       label=f'BN batch statistics (tau {c["tau_bnstat"]:.3f})')
            ax.set_title(f'{method}, seed {rs[0]["seed"]}, k=3 ({len(rows)} cells)')
            ax.legend(fontsize=8)
        ax.set_xlabel('NB201 cifar10-valid accuracy, 200 epochs (%)')
        ax.set_ylabel('supernet accuracy, Fashion-MNIST val (%)')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(runs, meta, out: Path, table) -> str:
    summary = summarize(runs, table)
    cfg = meta['config']

    def pm(d):
        if math.isnan(d['mean']):
            return '–'
        return f'{d["mean"]:.3f}' + (f' ± {d["std"]:.3f}' if len(d['per_seed']) > 1 else '')

    how = ('one supernet per k, trained on the restricted space (--train-restricted)' if cfg['train_restricted'] else
           'a restriction of the *evaluated cells*; one supernet trained on the full NB201 space ranks every k '
           '(not a supernet trained on a smaller space)')
    lines = ['## Ranking discrepancy of weight-sharing supernets on NAS-Bench-201', '',
             f'Supernet: NB201 N=1, C={cfg["channels"]}, Fashion-MNIST 16x16, {cfg["limit"]} training examples, '
             f'{cfg["epochs"]} epochs, batch 64, uniform single-path training; {meta["seeds"]} seed(s) per method '
             f'(spos seeds from {SEED_BASE["spos"]}, rsps from {SEED_BASE["rsps"]}: the same training, independent '
             'replicates; the seed also draws the training subset and the validation split). Ground truth: '
             'NB201 200-epoch cifar10-valid validation accuracy. Supernet accuracy: BN statistics re-estimated on '
             f'{cfg["bn_images"]} training images, then {cfg["val_images"]} validation images in eval mode; '
             '"BN batch stats": `OneShotModule.score` on the same images (batch norm on batch statistics).', '',
             f'k = searchable nodes (edges into nodes 1..k vary, the others are {FIXED_OP}): {how}.', '',
             '| method | k | cells | Kendall tau | Spearman | tau, BN batch stats | Spearman, BN batch stats |',
             '|---|---|---|---|---|---|---|']
    for key, e in summary.items():
        method, k = key.split('/k=')
        lines.append(f'| {method} | {k} | {e["n"]} | {pm(e["tau_recal"])} | {pm(e["rho_recal"])} | '
                     f'{pm(e["tau_bnstat"])} | {pm(e["rho_bnstat"])} |')
    lines += ['', 'Yu et al. 2020 (Kendall tau of their weight-sharing supernet vs stand-alone training): '
              + ', '.join(f'{n} nodes {t}' for n, t in PAPER_TAU.items())
              + '. Their supernets were trained on CIFAR-10 on cell spaces of other sizes and operations, and '
              'ranked against CIFAR-10 stand-alone accuracy; ours is a small NB201 supernet on 16x16 Fashion-MNIST '
              'ranked against NB201 CIFAR-10 accuracy (a proxy-task gap on top of weight sharing). k=1 has only '
              '5 cells: its tau is very coarse.', '', '![scatter](oneshot_ranking.png)', '']
    train = np.mean([r['train_s'] for r in runs])
    score = np.mean([r['score_s'] / max(1, r['scored']) for r in runs])
    lines += [f'Training {train:.0f} s per supernet, scoring {score:.2f} s per cell (one thread per worker).',
              f'Command: `{meta["command"]}`; runtime {meta["runtime_s"]:.0f} s with {cfg["jobs"]} worker(s) on '
              f'{meta["machine"]}; {meta["date"]}.', '']
    md = '\n'.join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'oneshot_ranking.md').write_text(md)
    text = json.dumps({**meta, 'summary': summary, 'paper_tau_by_nodes': PAPER_TAU, 'fixed_op': FIXED_OP,
                       'free_edges': FREE, 'runs': runs,
                       'columns': ['cellstr', 'acc_bn_recalibrated', 'acc_bn_batch_stats']}, indent=1)
    # innermost lists on one line; no NB201 accuracies in the file (they come from the tables)
    text = re.sub(r'\[\s+([^\[\]{}]*?)\s+\]', lambda m: '[' + ' '.join(m.group(1).split()) + ']', text)
    (out / 'oneshot_ranking.json').write_text(text + '\n')
    plot(runs, table, out / 'oneshot_ranking.png')
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--limit', type=int, default=5000, help='Fashion-MNIST training examples')
    parser.add_argument('--channels', type=int, default=16, help='C of the NB201 supernet (N=1)')
    parser.add_argument('--cells', type=int, default=200, help='cells per k (at most all there are)')
    parser.add_argument('--cell-seed', type=int, default=0, help='seed of the random cells (the same for all runs)')
    parser.add_argument('--seeds', type=int, default=1)
    parser.add_argument('--bn-images', type=int, default=512, help='training images re-estimating BN statistics')
    parser.add_argument('--val-images', type=int, default=1024, help='validation images scoring each cell')
    parser.add_argument('--train-restricted', action='store_true', help='one supernet per k on the restricted space')
    parser.add_argument('--jobs', type=int, default=1, help='parallel worker processes (fork)')
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    parser.add_argument('--quick', action='store_true', help='smoke test: ' + str(QUICK))
    args = parser.parse_args(argv)
    if args.quick:  # tiny settings, except where given explicitly
        vars(args).update({k: v for k, v in QUICK.items() if getattr(args, k) == parser.get_default(k)})
    cfg = {k: getattr(args, k) for k in ('epochs', 'limit', 'channels', 'cells', 'cell_seed', 'bn_images',
                                         'val_images', 'train_restricted', 'jobs')}
    table = NasBench201Table()
    table.query({lb: 'skip_connect' for lb in EDGE_LABELS}, 'cifar10-valid', 200)  # fail now, not after training
    start = time.time()
    groups = [(k,) for k in KS] if args.train_restricted else [KS]
    tasks = [(m, SEED_BASE[m] + s, ks, cfg) for m in METHODS for s in range(args.seeds) for ks in groups]
    runs = list(fork_map(run_one, tasks, args.jobs, name=lambda t: f'{t[0]} seed {t[1]} k={t[2]}'))
    runs.sort(key=lambda r: (r['method'], r['seed'], min(int(k) for k in r['cells'])))
    meta = {'config': cfg, 'seeds': args.seeds, 'methods': list(METHODS),
            'command': 'NASEXT_DATA=../shared/data python experiments/bench_oneshot_ranking.py' + ''.join(
                ' ' + str(a) for a in (sys.argv[1:] if argv is None else argv)),
            'runtime_s': time.time() - start,
            'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores',
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    print(write_report(runs, meta, args.out, table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
