"""T-NAS against MAML (4-conv) on few-shot episodes of real images, in one run.

Split (classes are ``(dataset, label)``; labels are re-assigned 0..N-1 per episode):
  meta-train: mnist10k digits 0-9 + fashion-mnist classes 0-4 (t-shirt, trouser, pullover,
              dress, coat): 15 classes;
  meta-test:  fashion-mnist classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), never seen
              in meta-training (so every 5-way meta-test episode uses these five classes, in a
              random label order, with fresh images).
Both methods are meta-trained with the same meta-iterations, meta-batch, inner steps, learning
rates and the very same episodes (each meta-batch mixes 5-way 1-shot and 5-way 5-shot tasks),
first-order for both, and evaluated on the same meta-test episodes (5-way 1-shot and 5-shot).
After T-NAS, the cell derived from its meta-architecture (``TNAS.meta_cell()``) is built as a
discrete network (only the chosen ops) and meta-trained from scratch with first-order MAML on
the same meta-training batches (``--derived-iterations``, default ``--iterations``; batches are
reused cyclically if more are asked for), then evaluated on the same meta-test episodes
("T-NAS derived cell, MAML-retrained"). A degenerate cell (no path from the cell input to its
output through non-``none`` edges) is reported as such and not trained.

    OMP_NUM_THREADS=1 python experiments/bench_tnas.py --iterations 200 --episodes 200 --seed 0

Writes experiments/results/<name>.{json,md}.
"""
from __future__ import annotations

import argparse
import collections
import platform
import sys
import time

import torch

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, write_results
from nni_nasext.search_spaces.nasbench201 import sample_to_cellstr
from nni_nasext.strategies.transfer.tnas import MAML, TNAS, DerivedCellMAML, cell_is_connected, few_shot_split, mean_ci95

RESULTS = EXPERIMENTS / 'results'
TRAIN_SPEC = {'mnist10k': range(10), 'fashion-mnist': range(5)}
TEST_SPEC = {'fashion-mnist': range(5, 10)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--iterations', type=int, default=200, help='meta-iterations (outer updates)')
    ap.add_argument('--episodes', type=int, default=200, help='meta-test episodes per setting')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--name', default='tnas')
    ap.add_argument('--meta-batch', type=int, default=4)
    ap.add_argument('--inner-steps', type=int, default=3)
    ap.add_argument('--test-steps', type=int, default=6)
    ap.add_argument('--inner-lr', type=float, default=0.1)
    ap.add_argument('--meta-lr', type=float, default=1e-3)
    ap.add_argument('--arch-inner-lr', type=float, default=0.1)
    ap.add_argument('--arch-meta-lr', type=float, default=3e-3)
    ap.add_argument('--image-size', type=int, default=16)
    ap.add_argument('--per-class', type=int, default=400)
    ap.add_argument('--query', type=int, default=10, help='query images per class in meta-training')
    ap.add_argument('--test-query', type=int, default=15, help='query images per class in meta-test')
    ap.add_argument('--maml-channels', type=int, default=32)
    ap.add_argument('--tnas-channels', type=int, default=8)
    ap.add_argument('--derived-iterations', type=int, default=None,
                    help='meta-iterations of the derived cell\'s MAML retraining (default: --iterations; 0 skips it)')
    args = ap.parse_args(argv)
    if args.derived_iterations is None:
        args.derived_iterations = args.iterations
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    split = few_shot_split(TRAIN_SPEC, TEST_SPEC, n_way=5, k_shot=5, query=args.query, test_query=args.test_query,
                           iterations=args.iterations, meta_batch=args.meta_batch, episodes=args.episodes,
                           image_size=args.image_size, per_class=args.per_class, seed=args.seed)
    batches, test_eps = split.batches, split.test_episodes
    train_classes, test_classes = split.train_classes, split.test_classes

    common = dict(inner_lr=args.inner_lr, inner_steps=args.inner_steps, test_steps=args.test_steps,
                  meta_lr=args.meta_lr, first_order=True, seed=args.seed)
    learners = {'MAML (4-conv)': MAML(5, args.maml_channels, args.image_size, **common),
                'T-NAS (NB201 cell)': TNAS(5, args.tnas_channels, 1, arch_inner_lr=args.arch_inner_lr,
                                           arch_meta_lr=args.arch_meta_lr, **common)}
    machine = machine_info()
    out = {'command': 'OMP_NUM_THREADS=1 ' + command_line('experiments/bench_tnas.py', argv),
           'machine': f'{machine["processor"]}, {platform.system()}, torch {machine["torch"]}, 1 thread',
           'args': vars(args), 'split': {'meta_train': [f'{d}:{c}' for d, c in train_classes],
                                         'meta_test': [f'{d}:{c}' for d, c in test_classes]},
           'methods': {}}
    for name, learner in learners.items():
        print(f'{name}: meta-training {args.iterations} iterations', flush=True)
        learner.meta_train(batches, log_every=max(1, args.iterations // 5))
        res = {'params': sum(p.numel() for p in learner.model.parameters()),
               'meta_train_seconds': learner.train_seconds,
               'query_loss_first_last10': [sum(learner.history[:10]) / min(10, len(learner.history)),
                                           sum(learner.history[-10:]) / min(10, len(learner.history))]}
        for k, eps in test_eps.items():
            t = time.perf_counter()
            rows = [learner.evaluate(ep) for ep in eps]
            acc, ci = mean_ci95([r['acc'] for r in rows])
            entry = {'acc': acc, 'ci95': ci, 'eval_seconds': time.perf_counter() - t}
            if isinstance(learner, TNAS):
                entry['acc_derived'], entry['ci95_derived'] = mean_ci95([r['acc_derived'] for r in rows])
                cells = collections.Counter(sample_to_cellstr(r['cell']) for r in rows)
                entry['top_cells'] = cells.most_common(3)
                entry['distinct_cells'] = len(cells)
                entry['mean_alpha_change'] = sum(r['alpha_change'] for r in rows) / len(rows)
            res[f'5way{k}shot'] = entry
            print(f'  {name} 5-way {k}-shot: {100 * acc:.2f} +- {100 * ci:.2f} %', flush=True)
        if isinstance(learner, TNAS):
            res['meta_cell'] = sample_to_cellstr(learner.meta_cell())
            res['meta_alpha_softmax'] = torch.softmax(learner.model.alpha.detach(), -1).round(decimals=3).tolist()
        out['methods'][name] = res
    if args.derived_iterations > 0:
        tnas = learners['T-NAS (NB201 cell)']
        out['methods'][DERIVED] = derived(tnas.meta_cell(), batches, test_eps, args, common)
    out['total_seconds'] = time.perf_counter() - t_start
    print(f'total time {out["total_seconds"]:.0f} s', flush=True)
    write_results(RESULTS, args.name, out, markdown(out))
    print(markdown(out))
    return 0


DERIVED = 'T-NAS derived cell, MAML-retrained'


def derived(cell, batches, test_eps, args, common) -> dict:
    """Meta-train the discrete network of ``cell`` with first-order MAML on ``batches`` and
    evaluate it on ``test_eps``; a degenerate cell gives only a note."""
    res = {'cell': sample_to_cellstr(cell), 'meta_iterations': args.derived_iterations}
    if not cell_is_connected(cell):
        res['degenerate'] = 'no path of non-none edges from the cell input to its output; not trained'
        print(f'{DERIVED}: {res["cell"]} is degenerate, skipped', flush=True)
        return res
    learner = DerivedCellMAML(cell, 5, args.tnas_channels, 1, **common)
    print(f'{DERIVED}: meta-training {res["cell"]} for {args.derived_iterations} iterations', flush=True)
    learner.meta_train([batches[i % len(batches)] for i in range(args.derived_iterations)],
                       log_every=max(1, args.derived_iterations // 5))
    res.update({'params': sum(p.numel() for p in learner.model.parameters()),
                'built_cell': sample_to_cellstr(learner.model.built),
                'meta_train_seconds': learner.train_seconds,
                'query_loss_first_last10': [sum(learner.history[:10]) / min(10, len(learner.history)),
                                            sum(learner.history[-10:]) / min(10, len(learner.history))]})
    for k, eps in test_eps.items():
        t = time.perf_counter()
        acc, ci = mean_ci95([learner.evaluate(ep)['acc'] for ep in eps])
        res[f'5way{k}shot'] = {'acc': acc, 'ci95': ci, 'eval_seconds': time.perf_counter() - t}
        print(f'  {DERIVED} 5-way {k}-shot: {100 * acc:.2f} +- {100 * ci:.2f} %', flush=True)
    return res


def markdown(out) -> str:
    a = out['args']
    lines = ['# T-NAS vs MAML, 5-way few-shot on held-out Fashion-MNIST classes', '',
             f'Command: `{out["command"]}`  ',
             f'Machine: {out["machine"]}; whole run {out["total_seconds"]:.0f} s.', '',
             f'Meta-train classes: mnist10k 0-9 + fashion-mnist 0-4; meta-test classes: fashion-mnist 5-9 '
             f'(held out). Images {a["image_size"]}x{a["image_size"]}, 1 channel. Both first-order, '
             f'{a["iterations"]} meta-iterations x meta-batch {a["meta_batch"]} (1-shot and 5-shot tasks mixed), '
             f'{a["inner_steps"]} inner steps (lr {a["inner_lr"]}) in training, {a["test_steps"]} at test, '
             f'Adam meta-lr {a["meta_lr"]} (T-NAS alpha: inner lr {a["arch_inner_lr"]}, meta-lr {a["arch_meta_lr"]}); '
             f'the same meta-training episodes and the same {a["episodes"]} meta-test episodes per setting '
             f'({a["test_query"]} query images per class). Accuracy: mean +- 95 % CI over episodes.', '',
             '| method | params | 5-way 1-shot (%) | 5-way 5-shot (%) | meta-train s |', '|---|---:|---:|---:|---:|']
    for name, r in out['methods'].items():
        if 'degenerate' in r:
            lines.append(f'| {name} | | degenerate cell (see below) | degenerate cell | |')
            continue
        one, five = r['5way1shot'], r['5way5shot']
        lines.append(f'| {name} | {r["params"]:,} | {100 * one["acc"]:.2f} +- {100 * one["ci95"]:.2f} | '
                     f'{100 * five["acc"]:.2f} +- {100 * five["ci95"]:.2f} | {r["meta_train_seconds"]:.0f} |')
        if 'acc_derived' in one:
            lines.append(f'| {name}, derived cell (adapted path weights, no retraining) | | '
                         f'{100 * one["acc_derived"]:.2f} +- {100 * one["ci95_derived"]:.2f} | '
                         f'{100 * five["acc_derived"]:.2f} +- {100 * five["ci95_derived"]:.2f} | |')
    for name, r in out['methods'].items():
        if 'meta_cell' in r:
            lines += ['', f'{name}: cell of the meta-architecture `{r["meta_cell"]}`.']
            for k in ('5way1shot', '5way5shot'):
                e = r[k]
                top = ', '.join(f'`{c}` ({n})' for c, n in e['top_cells'])
                lines.append(f'- {k}: {e["distinct_cells"]} distinct adapted cells over the episodes; most common '
                             f'{top}; mean max |alpha\' - alpha| {e["mean_alpha_change"]:.3f}.')
    r = out['methods'].get(DERIVED)
    if r is not None and 'degenerate' in r:
        lines += ['', f'{DERIVED}: the meta-architecture\'s cell `{r["cell"]}` is degenerate: {r["degenerate"]}.']
    if r is not None and 'degenerate' not in r:
        lines += ['', f'{DERIVED}: the meta-architecture\'s cell `{r["cell"]}` built as a discrete network '
                      f'(only the chosen op per edge' + (f'; dead edges pruned: `{r["built_cell"]}`'
                                                          if r['built_cell'] != r['cell'] else '') +
                  f'), fresh weights, first-order MAML for {r["meta_iterations"]} meta-iterations on the same '
                  f'meta-training batches with the same inner/outer settings as MAML, same meta-test episodes; '
                  f'query loss {r["query_loss_first_last10"][0]:.3f} -> {r["query_loss_first_last10"][1]:.3f} '
                  f'(mean of first/last 10 meta-iterations).']
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    sys.exit(main())
