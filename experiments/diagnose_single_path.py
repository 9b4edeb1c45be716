"""Why single-path training of ``ProxylessSpace`` does not learn at small budgets: which sampled
decisions stop it.

The supernet of ProxylessNAS / SPOS (``build_supernet``) is trained in plain PyTorch (SGD,
momentum 0.9, ``--lr``, gradient clipping 5, batch 64) on ``--limit`` Fashion-MNIST images at
32x32x3 for ``--epochs`` epochs, one path per step, with the ops sampled in one of four ways:

* ``fixed``: one random architecture throughout (the stand-alone network with shared weights);
* ``residual``: a random op in the blocks with a residual connection, the rest fixed;
* ``first``: a random op in the first block of each stage (no residual: it sets the stage's
  feature basis), the rest fixed;
* ``all``: every op random (depths fixed).

Reported: the mean training loss of the last 20 steps of each epoch.

    NASEXT_DATA=../shared/data python experiments/diagnose_single_path.py

Writes ``experiments/results/single_path.md``. Under a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import random
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings('ignore')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nni_nasext.evaluators.classification import ImageClassification  # noqa: E402
from nni_nasext.search_spaces.mobile import ProxylessSpace  # noqa: E402
from nni_nasext.space_spec import SpaceSpec  # noqa: E402
from nni_nasext.strategies.oneshot import build_supernet  # noqa: E402

HERE = Path(__file__).resolve().parent
MODES = ('fixed', 'residual', 'first', 'all')


def sampler(mode: str, spec: SpaceSpec, fixed: dict, rng: random.Random):
    def draw() -> dict:
        s = spec.random(rng)
        out = {}
        for k, v in s.items():
            if k.endswith('_depth') or mode == 'fixed':
                out[k] = fixed[k]
            elif mode == 'residual':
                out[k] = fixed[k] if k.endswith('_i0') else v
            elif mode == 'first':
                out[k] = v if k.endswith('_i0') else fixed[k]
            else:
                out[k] = v
        return out
    return draw


def run(mode: str, args) -> list:
    torch.manual_seed(args.seed)
    space = ProxylessSpace(num_classes=10, width_mult=args.width, resolution=32)
    spec = SpaceSpec.from_space(space)
    supernet = build_supernet(copy.deepcopy(space), 'spos')
    model = supernet.model
    train, _ = ImageClassification('fashion-mnist', batch_size=64, limit=args.limit, image_size=32, in_channels=3,
                                   seed=args.seed).dataloaders()
    rng = random.Random(args.seed)
    fixed = spec.random(random.Random(args.seed + 5))
    draw = sampler(mode, spec, fixed, rng)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    model.train()
    losses, per_epoch = [], []
    for _ in range(args.epochs):
        for x, y in train:
            supernet.set_sample(draw())
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(float(loss))
        per_epoch.append(sum(losses[-20:]) / len(losses[-20:]))
    return per_epoch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--limit', type=int, default=4000)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--width', type=float, default=0.35)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=str(HERE / 'results'))
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    rows = {}
    for mode in MODES:
        rows[mode] = run(mode, args)
        print(f'{mode}: {rows[mode]}', file=sys.stderr, flush=True)
    command = 'python experiments/diagnose_single_path.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    lines = ['# Single-path training of ProxylessSpace: which sampled ops stop it', '',
             f'Command: `{command.strip()}`; {time.time() - start:.0f} s; ProxylessSpace width {args.width}, '
             f'Fashion-MNIST 32x32x3, {args.limit} images, SGD lr {args.lr}, seed {args.seed}. Mean training loss of '
             'the last 20 steps of each epoch (chance: 2.30).', '',
             '| ops sampled | ' + ' | '.join(f'epoch {i + 1}' for i in range(args.epochs)) + ' |',
             '|---|' + '---|' * args.epochs]
    for mode, vals in rows.items():
        lines.append(f'| {mode} | ' + ' | '.join(f'{v:.2f}' for v in vals) + ' |')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'single_path.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
