"""ENAS through the generic supernet on its own two spaces (macro and micro), against random architectures.

Protocol. ENAS (``nni_nasext.strategies.oneshot``, method ``'enas'``: LSTM controller, REINFORCE on
the shared weights, the greedy path derived) searches two reduced spaces on Fashion-MNIST resized
to 16x16 (1 channel; ``--limit`` training images, halved into weight and architecture data;
``--val-limit`` validation images):

* ``enas_macro``: :class:`~nni_nasext.search_spaces.enas_macro.EnasMacroSpace` (``--macro-layers``
  layers, width 16, 6 ops, skip connections to any earlier layer);
* ``enas_micro``: :class:`~nni_nasext.search_spaces.cells.ENASMicroSpace` (C=8, 1 normal cell per
  stage, B=5 blocks over 5 ops, normal and reduction cells searched).

For each space and each seed (``--seeds``): one search of ``--epochs`` epochs (seconds, the
supernet's validation accuracy of the greedy path per epoch: ``history['val']``, the controller's
mean reward per epoch: ``history['reward']``, the derived sample); the derived architecture is
then retrained from scratch (``space.freeze(sample)``, ``ImageClassification.evaluate``, SGD,
``--retrain-epochs`` epochs, weights initialised from the seed). Beside it ``--randoms`` uniformly
random architectures per seed (``SpaceSpec.from_space(space).random(random.Random(1000 * seed + i))``)
are retrained with the same protocol. Table: space, ENAS or random, retrained accuracy mean +- std
(over seeds for ENAS, over every random architecture for random), search seconds.

What differs from the paper (Pham et al., ICML 2018): CIFAR-10 32x32 (45k/5k split), 310 search
epochs (controller trained for 2,000 steps per epoch on whole phases), the macro space with 12
layers and width 36 (final: 24 layers, 96 / 512 filters), the micro space with N=6 cells of F=20
during search and F=36 (N=6, cutout, auxiliary head, 630 epochs) for the final network. Here: a
1-channel 16x16 task, a few thousand images, a few epochs, the controller and the weights
alternating every step, and a short identical retraining for ENAS and random architectures, so
the comparison is of tiny budgets, not of the paper's numbers.

Full run (not run by its author; estimated 20-40 min on 2 CPU cores, the upper end when shared)::

    NASEXT_DATA=/work/shared/data python experiments/bench_enas_spaces.py

Writes ``enas_spaces.{md,json}`` under ``--out`` (default experiments/results).
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

warnings.filterwarnings('ignore')

import torch  # noqa: E402

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, mean_se, write_results  # noqa: E402
from nni_nasext.search_spaces.cells import ENASMicroSpace  # noqa: E402
from nni_nasext.search_spaces.enas_macro import EnasMacroSpace  # noqa: E402
from nni_nasext.space_spec import SpaceSpec  # noqa: E402
from nni_nasext.strategies.oneshot import search  # noqa: E402
from nni_nasext.benchmarking.small_val import SmallValClassification  # noqa: E402


def make_space(name: str, args):
    if name == 'enas_macro':
        return EnasMacroSpace(num_layers=args.macro_layers, width=16, num_classes=10, in_channels=1)
    return ENASMicroSpace(channels=8, num_cells=1, num_classes=10, in_channels=1)


def make_evaluator(args, epochs: int, seed: int):
    return SmallValClassification('fashion-mnist', max_epochs=epochs, batch_size=args.batch_size, limit=args.limit,
                                  val_limit=args.val_limit, image_size=16, in_channels=1, seed=seed,
                                  learning_rate=args.lr, accelerator='cpu')


def mean_std(xs):
    """Mean and sample standard deviation of the values that are not NaN (NaN, NaN: none)."""
    xs = [x for x in xs if x == x]
    if not xs:
        return float('nan'), float('nan')
    stats = mean_se(xs)
    return stats['mean'], stats['std']


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=str(EXPERIMENTS / 'results'))
    p.add_argument('--quick', action='store_true', help='tiny smoke run')
    p.add_argument('--spaces', nargs='+', default=['enas_macro', 'enas_micro'], choices=['enas_macro', 'enas_micro'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--macro-layers', type=int, default=6)
    p.add_argument('--limit', type=int, default=5000)
    p.add_argument('--val-limit', type=int, default=2000)
    p.add_argument('--epochs', type=int, default=10, help='search epochs')
    p.add_argument('--retrain-epochs', type=int, default=5)
    p.add_argument('--randoms', type=int, default=3, help='random architectures per seed')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.val_limit, args.epochs, args.retrain_epochs, args.randoms = 256, 256, 1, 1, 1
        args.seeds = args.seeds[:1]
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    rows = []
    for name in args.spaces:
        spec = SpaceSpec.from_space(make_space(name, args))
        for seed in args.seeds:
            space = make_space(name, args)
            res = search(space, make_evaluator(args, args.epochs, seed), 'enas', epochs=args.epochs, seed=seed,
                         verbose=False)
            retrain = make_evaluator(args, args.retrain_epochs, seed)
            t0 = time.time()
            acc = retrain.evaluate(space.freeze(res.sample))
            rows.append({'space': name, 'kind': 'enas', 'seed': seed, 'search_s': res.seconds, 'retrain_acc': acc,
                         'retrain_s': time.time() - t0, 'val': res.history.get('val', []),
                         'reward': res.history.get('reward', []), 'sample': res.sample})
            print(f'{name} seed {seed}: ENAS {res.seconds:.0f} s, val {[round(v, 3) for v in rows[-1]["val"]]}, '
                  f'reward {[round(v, 3) for v in rows[-1]["reward"]]}, retrained {acc:.4f}', file=sys.stderr, flush=True)
            for i in range(args.randoms):
                sample = spec.random(random.Random(1000 * seed + i))
                t0 = time.time()
                acc = retrain.evaluate(space.freeze(sample))
                rows.append({'space': name, 'kind': 'random', 'seed': seed, 'index': i, 'retrain_acc': acc,
                             'retrain_s': time.time() - t0, 'sample': sample})
                print(f'{name} seed {seed}: random {i} retrained {acc:.4f}', file=sys.stderr, flush=True)

    summary = []
    for name in args.spaces:
        for kind in ('enas', 'random'):
            sel = [r for r in rows if r['space'] == name and r['kind'] == kind]
            m, s = mean_std([r['retrain_acc'] for r in sel])
            summary.append({'space': name, 'kind': kind, 'n': len(sel), 'retrain_acc_mean': m, 'retrain_acc_std': s,
                            'search_s_mean': mean_std([r['search_s'] for r in sel])[0] if kind == 'enas' else None,
                            'retrain_s_mean': mean_std([r['retrain_s'] for r in sel])[0]})
    command = command_line('experiments/bench_enas_spaces.py', argv)
    result = {'command': command, 'runtime_s': time.time() - start,
              'date': datetime.datetime.now().isoformat(timespec='seconds'),
              'machine': machine_info(),
              'args': vars(args), 'summary': summary, 'runs': rows}
    write_results(out, 'enas_spaces', result, markdown(result))
    print(markdown(result))
    return 0


def fmt(xs, nd=3):
    return '[' + ', '.join(f'{x:.{nd}f}' for x in xs) + ']'


def markdown(r) -> str:
    a = r['args']
    m = r['machine']
    cores = m.get('cpu_count', m.get('cores'))  # machine_info(); 'cores' in results written before it
    lines = [
        '# ENAS on its macro and micro spaces (generic supernet) vs random architectures', '',
        f"Command: `{r['command']}`  ", f"Date: {r['date']}; runtime {r['runtime_s'] / 60:.1f} min; machine: "
        f"{m['processor']}, {cores} cores, torch {m['torch']}", '',
        f"Fashion-MNIST 16x16x1, {a['limit']} training / {a['val_limit']} validation images; search {a['epochs']} "
        f"epochs; retraining {a['retrain_epochs']} epochs (SGD lr {a['lr']}, batch {a['batch_size']}); seeds "
        f"{a['seeds']}; {a['randoms']} random architectures per seed. Spaces: enas_macro = EnasMacroSpace("
        f"num_layers={a['macro_layers']}, width=16), enas_micro = ENASMicroSpace(channels=8, num_cells=1).", '',
        '| space | method | n | retrained val acc (mean ± std) | search s (mean) | retrain s (mean) |',
        '|---|---|---:|---:|---:|---:|']
    for s in r['summary']:
        ss = f"{s['search_s_mean']:.0f}" if s['search_s_mean'] is not None else '–'
        lines.append(f"| {s['space']} | {s['kind']} | {s['n']} | {s['retrain_acc_mean']:.4f} ± {s['retrain_acc_std']:.4f} "
                     f"| {ss} | {s['retrain_s_mean']:.0f} |")
    lines += ['', '## Searches', '', '| space | seed | search s | supernet val acc per epoch | mean reward per epoch | '
              'retrained |', '|---|---:|---:|---|---|---:|']
    for x in r['runs']:
        if x['kind'] == 'enas':
            lines.append(f"| {x['space']} | {x['seed']} | {x['search_s']:.0f} | {fmt(x['val'])} | {fmt(x['reward'])} | "
                         f"{x['retrain_acc']:.4f} |")
    lines += ['', '## Derived and random architectures', '']
    for x in r['runs']:
        tag = 'ENAS' if x['kind'] == 'enas' else f"random {x['index']}"
        lines.append(f"- {x['space']} seed {x['seed']} {tag} ({x['retrain_acc']:.4f}): `{json.dumps(x['sample'])}`")
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    sys.exit(main())
