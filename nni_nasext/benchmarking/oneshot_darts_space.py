"""One-shot search on DARTS' cell space, the canonical setting, sized for this CPU: search, then retrain.

Search (``--methods``, ``--seeds``): :func:`nni_nasext.strategies.oneshot.search` on
``CellSpace('darts', channels=C, num_cells=N, in_channels=1)`` (DARTS' space: 4 nodes x 2
inputs, 8 ops with ``none``; N=1 normal cell per stage and the two reduction cells: 5 cells)
with an ``ImageClassification`` evaluator on Fashion-MNIST resized to ``--size`` (16) pixels,
``--limit`` training images halved into weight and architecture data (DARTS' protocol), SGD
lr 0.025, momentum 0.9, weight decay 3e-4, cosine schedule, ``--epochs`` epochs, batch
``--batch``; each method with its defaults (DARTS' architecture Adam 3e-4, ...).

Retraining (one fixed protocol for every architecture): ``CellSpace('darts', channels=Cr,
num_cells=Nr, in_channels=1).freeze(sample)`` trained from scratch by ``ImageClassification``
(Fashion-MNIST at ``--size`` px, ``--train-limit`` images, ``--train-epochs`` epochs, SGD lr 0.05,
seed 0, validated on 5,120 held-out images): the derived architecture of every method and seed, and ``--random`` random
architectures of the same space (seeded). Reported: validation accuracy (%) mean ± std over
search seeds (random: over the architectures), parameters, search seconds.

Beside: the seed tutorials' CIFAR-10 table (DARTS first order 3.00 ± 0.14 % test error,
second order 2.76 ± 0.09, random search in the DARTS space 3.29 ± 0.15, Li & Talwalkar 2019).
What differs: CIFAR-10 (32 px colour) vs Fashion-MNIST at 16 px grey; 8 vs 5 cells and
C=16 vs C=8 in the search; 50 epochs on 25,000 + 25,000 images vs a few epochs on about a
thousand; retraining 20 cells at C=36 for 600 epochs with cutout, drop-path and an auxiliary
head vs a small network for a few epochs. The comparison is of the *ordering* (one-shot vs
random) and of the collapse, not of the numbers.

Every finished search and retraining is written at once to ``<out>/<name>.json`` (``--resume``
skips what is there), so a killed run loses nothing. ``--quick`` is a smoke-sized run.

    NASEXT_DATA=../shared/data python experiments/bench_oneshot_darts_space.py --jobs 2
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore')
from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, mean_se  # noqa: E402
from nni_nasext.benchmarking.oneshot_cost import fork_map  # noqa: E402

VAL_BATCHES = 20  # retraining: validation on the first 20 x 256 = 5,120 held-out images
METHODS = ['darts', 'darts2', 'pcdarts', 'gdas', 'fairdarts', 'spos', 'darts_pt']
LABELS = {'darts': 'DARTS, first order', 'darts2': 'DARTS, second order', 'pcdarts': 'PC-DARTS (K=4)',
          'gdas': 'GDAS', 'fairdarts': 'Fair DARTS', 'spos': 'SPOS', 'darts_pt': 'DARTS-PT', 'random': 'random'}
#: the seed tutorials' CIFAR-10 test error (%), mean ± std (DARTS paper Table 1; Li & Talwalkar 2019 for random)
PUBLISHED = {'darts': (3.00, 0.14), 'darts2': (2.76, 0.09), 'random': (3.29, 0.15)}


def _space(channels, cells):
    from nni_nasext.search_spaces.cells import CellSpace
    return CellSpace('darts', channels=channels, num_cells=cells, num_classes=10, in_channels=1)


def run_search(task):
    method, seed, cfg = task
    import torch
    torch.set_num_threads(1)
    logging.getLogger('nni').setLevel(logging.ERROR)
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.strategies.oneshot import search
    evaluator = ImageClassification('fashion-mnist', max_epochs=cfg['epochs'], batch_size=cfg['batch'],
                                    learning_rate=0.025, weight_decay=3e-4, momentum=0.9, limit=cfg['limit'],
                                    seed=seed, image_size=cfg['size'], accelerator='cpu', limit_val_batches=4)
    extra = {'num_candidates': 50} if method == 'spos' else {}
    if method == 'darts_pt':
        extra = {'tune_steps': 2, 'kept_batches': 2}  # 28 edges x 8 ops measured: 2 batches each
    torch.manual_seed(seed)
    result = search(_space(cfg['channels'], cfg['cells']), evaluator, method, verbose=False, **extra)
    return {'kind': 'search', 'method': method, 'seed': seed, 'sample': result.sample,
            'val': result.history.get('val', []), 'seconds': result.seconds}


def run_retrain(task):
    key, sample, cfg = task
    import torch
    torch.set_num_threads(1)
    logging.getLogger('nni').setLevel(logging.ERROR)
    from nni_nasext.evaluators.classification import ImageClassification
    net = _space(cfg['train_channels'], cfg['train_cells']).freeze(sample)
    evaluator = ImageClassification('fashion-mnist', max_epochs=cfg['train_epochs'], batch_size=64,
                                    learning_rate=0.05, limit=cfg['train_limit'], seed=0, image_size=cfg['size'],
                                    accelerator='cpu', limit_val_batches=VAL_BATCHES)
    t = time.time()
    acc = evaluator.evaluate(net)
    return {'kind': 'retrain', 'key': key, 'sample': sample, 'val_acc': float(acc),
            'params': sum(p.numel() for p in net.parameters()), 'seconds': time.time() - t}


def random_samples(n: int, seed: int = 0):
    from nni_nasext.space_spec import SpaceSpec
    spec = SpaceSpec.from_space(_space(4, 1))
    rng = random.Random(seed)
    return [spec.random(rng) for _ in range(n)]


def skip_share(sample) -> float:
    ops = [v for k, v in sample.items() if '/op_' in k and k.startswith('normal')]
    return sum(v == 'skip_connect' for v in ops) / max(1, len(ops))


def report(data, cfg, command, runtime) -> str:
    searches, retrains = data['searches'], data['retrains']
    lines = ['## One-shot search on DARTS\' cell space (reduced, Fashion-MNIST, this CPU)', '',
             f'Search: DARTS\' space, N={cfg["cells"]} normal cell per stage + 2 reduction cells, C={cfg["channels"]}, '
             f'Fashion-MNIST at {cfg["size"]}x{cfg["size"]}, {cfg["limit"]} training images halved (weights / '
             f'architecture), {cfg["epochs"]} epochs, batch {cfg["batch"]}, SGD lr 0.025 (cosine), each method\'s '
             f'defaults. Retraining (one protocol for all): N={cfg["train_cells"]}, C={cfg["train_channels"]}, '
             f'{cfg["train_limit"]} images, {cfg["train_epochs"]} epochs, SGD lr 0.05; validation accuracy (%) on '
             f'{VAL_BATCHES * 256:,} held-out Fashion-MNIST training images (the search validates on 1,024); mean ± std over {cfg["seeds"]} search seeds '
             f'(random: over {cfg["random"]} architectures).', '']
    table = []
    rows = {}
    for s in searches.values():
        r = retrains.get(f'{s["method"]}/{s["seed"]}')
        if r:
            rows.setdefault(s['method'], []).append((r, s))
    rand = [r for k, r in retrains.items() if k.startswith('random/')]
    order = [m for m in METHODS if m in rows] + (['random'] if rand else [])
    for m in order:
        pairs = rows.get(m, [(r, None) for r in rand])
        acc = mean_se([100 * r['val_acc'] for r, _ in pairs])
        params = np.mean([r['params'] for r, _ in pairs]) / 1e3
        skip = np.mean([skip_share(r['sample']) for r, _ in pairs])
        secs = np.mean([s['seconds'] for _, s in pairs]) if m != 'random' else 0.0
        pub = PUBLISHED.get(m)
        table.append([LABELS[m], f'{acc["mean"]:.2f} ± {acc["std"]:.2f}', f'{100 - acc["mean"]:.2f}', f'{params:.0f}',
                      f'{skip:.2f}', f'{secs:.0f}', f'{pub[0]:.2f} ± {pub[1]:.2f}' if pub else ''])
    lines += markdown_table(['method', 'retrained val. acc. (%)', 'error (%)', 'params (k)', 'skip share (normal cell)',
                             'search s', 'published CIFAR-10 test error (%)'], table)
    lines += ['', 'Derived normal cells (op <- input per node):', '']
    for s in sorted(searches.values(), key=lambda s: (METHODS.index(s['method']), s['seed'])):
        cell = ', '.join(f'{s["sample"][f"normal/op_{j}_{k}"]}<-{s["sample"][f"normal/input_{j}_{k}"][0]}'
                         for j in range(2, 6) for k in range(2))
        lines.append(f'- {LABELS[s["method"]]}, seed {s["seed"]}: {cell}')
    machine = machine_info()
    lines += ['', f'Command: `{command}`; runtime {runtime:.0f} s on {machine["cpu_count"]} cores '
              f'({machine["processor"]}); '
              f'{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}.', '']
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--methods', nargs='+', default=METHODS)
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--limit', type=int, default=1280)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=16)
    p.add_argument('--channels', type=int, default=8)
    p.add_argument('--cells', type=int, default=1)
    p.add_argument('--random', type=int, default=10, help='random architectures retrained')
    p.add_argument('--train-epochs', type=int, default=10)
    p.add_argument('--train-limit', type=int, default=5000)
    p.add_argument('--train-channels', type=int, default=8)
    p.add_argument('--train-cells', type=int, default=1)
    p.add_argument('--jobs', type=int, default=1)
    p.add_argument('--resume', action='store_true', help='keep the searches and retrainings already in the JSON')
    p.add_argument('--quick', action='store_true', help='a smoke-sized run')
    p.add_argument('--name', default='oneshot_darts_space')
    p.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.limit, args.random, args.channels = 1, 1, 128, 2, 4
        args.train_epochs, args.train_limit, args.train_channels = 1, 256, 4
        args.methods = args.methods if args.methods != METHODS else ['darts', 'spos']
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f'methods must be among {METHODS}, got {unknown}')
    cfg = {k: getattr(args, k) for k in ('seeds', 'epochs', 'limit', 'batch', 'size', 'channels', 'cells', 'random',
                                         'train_epochs', 'train_limit', 'train_channels', 'train_cells')}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f'{args.name}.json'
    data = json.loads(path.read_text()) if args.resume and path.exists() else {'searches': {}, 'retrains': {}}
    data['config'] = cfg
    start = time.time()

    def save():
        path.write_text(json.dumps(data, indent=1) + '\n')

    tasks = [(m, s, cfg) for s in range(args.seeds) for m in args.methods if f'{m}/{s}' not in data['searches']]
    for res in fork_map(run_search, tasks, args.jobs, name=lambda t: f'{t[0]} seed {t[1]}'):
        data['searches'][f'{res["method"]}/{res["seed"]}'] = res
        save()
        print(f'[{time.time() - start:6.0f} s] searched {res["method"]} seed {res["seed"]} in {res["seconds"]:.0f} s',
              file=sys.stderr, flush=True)
    todo = [(k, s['sample'], cfg) for k, s in data['searches'].items()]
    todo += [(f'random/{i}', smp, cfg) for i, smp in enumerate(random_samples(args.random))]
    todo = [t for t in todo if t[0] not in data['retrains']]
    for res in fork_map(run_retrain, todo, args.jobs, name=lambda t: t[0]):
        data['retrains'][res['key']] = res
        save()
        print(f'[{time.time() - start:6.0f} s] retrained {res["key"]}: {res["val_acc"]:.4f} ({res["seconds"]:.0f} s)',
              file=sys.stderr, flush=True)
    command = command_line('experiments/bench_oneshot_darts_space.py', argv)
    runtime = time.time() - start + data.get('runtime_s', 0.0) * bool(args.resume)
    data.update(command=command, runtime_s=runtime)
    save()
    md = report(data, cfg, command, runtime)
    (args.out / f'{args.name}.md').write_text(md)
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
