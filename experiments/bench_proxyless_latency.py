"""ProxylessNAS to a latency budget: does the derived network meet the target on this CPU?

Protocol. ProxylessNAS (``nni_nasext.strategies.oneshot``, method ``'proxyless'``) searches the
MobileNetV2-backbone space of the paper (:class:`~nni_nasext.search_spaces.mobile.ProxylessSpace`,
NNI's hub space: ops ``k{3,5,7}e{3,6}`` per block, depth 1-4 per stage; ``--width`` 0.35) on
Fashion-MNIST resized to 32x32 with 3 channels (``--limit`` training images, halved into weight and
architecture data; ``--val-limit`` validation images), ``--epochs`` epochs, with the *hinge* latency
loss ``L = CE + lambda * max(0, E[LAT]/T - 1)`` (``--latency-weight`` lambda, ``--arch-lr``).

1. The per-op latency table (``measure_latency_table``: every candidate timed on its own input,
   batch 1, 1 thread, eval mode) is measured *once*, up front, on a supernet built as the search
   builds it, saved to ``<out>/proxyless_latency_table.json`` and passed to every search
   (``latency_table=``), so all searches share it (``--table`` reuses a saved one). The table's
   ``F_0`` is the default path timed *inside the supernet* minus its ops, so it carries the mixed
   modules' Python overhead; a second ``F_0`` from the frozen default network is reported beside it
   (``--frozen-f0`` searches with it).
2. The two extreme networks, all-smallest (every op ``k3e3``, every depth 1) and all-largest
   (``k7e6``, depth 4), are built (``space.freeze``) and timed end-to-end (``measured_latency``:
   batch 1, 1 thread, eval, median of ``--repeats`` timings of 5 calls).
3. The table is checked on ``--random`` uniformly random samples (``SpaceSpec.random``): predicted
   latency (``F_0`` + the chosen ops: :func:`expected_latency` at one-hot probabilities, depth gates
   included) against the measured one; Spearman's rho and the mean absolute relative error.
4. For each target ``T = m_min + f (m_max - m_min)`` (``--fractions``; ``m`` the *measured*
   extremes: the target is what a user asks of the real network, while the loss sees the table)
   one search runs (same seed, same table); the derived network is built fresh and timed;
   reported: T, predicted, measured, measured/T, the predictor's error (predicted - measured) /
   measured, the supernet's last validation accuracy (greedy path, shared weights).

``--latency-weight`` 1.0 was chosen on tiny runs (1,000 images, 2 epochs, T = 2.5 ms with the
uniform E[LAT] at 3.6 ms): lambda 0 / 0.3 / 1 / 3 derived networks the table puts at 3.18 / 2.78 /
2.47 / 2.31 ms; 1 was the smallest weight that met the target. ``--arch-lr`` is 1e-2 (the paper's
1e-3 is for ~100x more steps; Adam moves alpha by about lr per step whatever lambda is).

Wall-clock timings are taken on a shared machine (another job may be running): medians of many
repeats are used, and the noise shows in the Spearman rho and the predictor errors.

What differs from the paper (Cai, Zhu & Han, ICLR 2019): ImageNet 224x224, width 1.0 and a
latency model of a phone (Pixel 1) or a GPU/CPU lookup table; 200-odd search epochs with
``lambda`` in the added or multiplicative form. Here: a 10-class 32x32 task, width 0.35, a few
epochs on a few thousand images, the table measured on this machine's CPU, and the hinge form of
the loss (a budget rather than a trade-off). The tiny input makes the fixed part (stem, head,
Python overhead) a large share of the latency, which shrinks the range the search can move in.

Full run (not run by its author; estimated 20-35 min on 2 CPU cores, the upper end when shared)::

    NASEXT_DATA=/work/shared/data python experiments/bench_proxyless_latency.py

Writes ``proxyless_latency.{md,json}`` (and the table) under ``--out`` (default experiments/results).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings('ignore')

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from nni_nasext.evaluators.classification import ImageClassification  # noqa: E402
from nni_nasext.search_spaces.mobile import ProxylessSpace  # noqa: E402
from nni_nasext.space_spec import SpaceSpec  # noqa: E402
from nni_nasext.strategies.oneshot import build_supernet, method_class, search  # noqa: E402
from nni_nasext.strategies.oneshot.data import first_batch, recipe_for  # noqa: E402
from nni_nasext.strategies.oneshot.latency import default_sample, expected_latency, measure_latency_table, measured_latency  # noqa: E402

HERE = Path(__file__).resolve().parent


class SmallValClassification(ImageClassification):
    """ImageClassification with the validation set cut to ``val_limit`` images (``limit`` only cuts
    the training set; Fashion-MNIST's 12,000 validation images would dominate a tiny search)."""

    def __init__(self, *args, val_limit=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.val_limit = val_limit

    def dataloaders(self):
        fresh = self._loaders is None
        train, val = super().dataloaders()
        if fresh and self.val_limit and len(val.dataset) > self.val_limit:
            idx = torch.randperm(len(val.dataset), generator=torch.Generator().manual_seed(self.seed))[:self.val_limit]
            val = DataLoader(Subset(val.dataset, sorted(idx.tolist())), batch_size=val.batch_size, shuffle=False)
            self._loaders = (train, val)
        return self._loaders


def make_space(args):
    return ProxylessSpace(num_classes=10, width_mult=args.width, resolution=args.size)


def make_evaluator(args):
    return SmallValClassification('fashion-mnist', max_epochs=args.epochs, batch_size=args.batch_size, limit=args.limit,
                                  val_limit=args.val_limit, image_size=args.size, in_channels=3, seed=args.seed,
                                  learning_rate=args.lr, accelerator='cpu')


def build_module(space, evaluator, seed):
    """The ProxylessNAS module exactly as ``search`` builds it (without training)."""
    cls = method_class('proxyless')
    supernet = build_supernet(copy.deepcopy(space), 'proxyless', weighted=cls.weighted, partial_k=cls.partial_k)
    recipe = recipe_for(evaluator, supernet.model)
    module = cls(recipe.module, supernet, seed=seed, metric=recipe.metric, mode=recipe.mode)
    return module, first_batch(recipe.train)


def predicted(supernet, table, sample) -> float:
    """F_0 + the table's ops of ``sample`` (one-hot probabilities; depth gates included)."""
    probs = {}
    for key, d in supernet.decisions.items():
        p = torch.zeros(d.size)
        p[d.candidates.index(sample[d.label])] = 1.0
        probs[key] = p
    return float(expected_latency(supernet, table, probs))


def extreme(spec: SpaceSpec, largest: bool):
    out = {}
    for label, d in spec.dims.items():
        vals = list(d.values)
        if label.endswith('_depth'):
            out[label] = max(vals) if largest else min(vals)
        else:
            out[label] = 'k7e6' if largest else 'k3e3'
    return out


def measure(space, sample, args) -> float:
    net = space.freeze(sample)
    return measured_latency(net, torch.randn(1, 3, args.size, args.size), repeats=args.repeats, inner=5, threads=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=str(HERE / 'results'))
    p.add_argument('--quick', action='store_true', help='tiny smoke run')
    p.add_argument('--width', type=float, default=0.35)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--limit', type=int, default=8000)
    p.add_argument('--val-limit', type=int, default=2000)
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--arch-lr', type=float, default=0.01, help='Adam lr of alpha (paper 1e-3 over far more steps)')
    p.add_argument('--latency-weight', type=float, default=1.0)
    p.add_argument('--fractions', type=float, nargs='+', default=[0.15, 0.4, 0.7])
    p.add_argument('--random', type=int, default=20, help='random samples for the table check')
    p.add_argument('--repeats', type=int, default=30, help='timings per end-to-end latency (median)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--table', default=None, help='a saved latency table (JSON) to reuse')
    p.add_argument('--frozen-f0', action='store_true',
                   help="search with F0 taken from the frozen default network (default: the library's table)")
    p.add_argument('--threads', type=int, default=1, help='torch threads for training (latencies: always 1)')
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.val_limit, args.epochs, args.random, args.repeats = 256, 256, 1, 4, 8
        args.fractions = args.fractions[:2]
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    space, evaluator = make_space(args), make_evaluator(args)
    spec = SpaceSpec.from_space(space)

    module, batch = build_module(space, evaluator, args.seed)
    supernet = module.supernet
    if args.table:
        table = json.loads(Path(args.table).read_text())
    else:
        t0 = time.time()
        table = measure_latency_table(module, batch, batch_size=1, threads=1, repeats=20, inner=5)
        table['seconds'] = time.time() - t0
    (out / 'proxyless_latency_table.json').write_text(json.dumps(table, indent=1))
    # F0 is the *supernet's* default path minus its ops: it carries the mixed modules' overhead, which a
    # frozen network lacks. The corrected F0 takes the frozen default network's end-to-end time instead.
    default = default_sample(supernet)
    frozen_default = measure(space, default, args)
    fixed_frozen = table['fixed'] + frozen_default - predicted(supernet, table, default)
    corrected = {**table, 'fixed': fixed_frozen}
    print(f'latency table: F0 {table["fixed"]:.3f} ms (frozen: {fixed_frozen:.3f}), whole default '
          f'{table["whole_default"]:.3f} ms (frozen: {frozen_default:.3f})', file=sys.stderr)

    ext = {}
    for name, largest in (('smallest', False), ('largest', True)):
        s = extreme(spec, largest)
        ext[name] = {'sample': s, 'predicted_ms': predicted(supernet, table, s), 'measured_ms': measure(space, s, args),
                     'predicted_frozen_f0_ms': predicted(supernet, corrected, s)}
    print(f'extremes: {ext["smallest"]["measured_ms"]:.3f} .. {ext["largest"]["measured_ms"]:.3f} ms (measured)',
          file=sys.stderr)

    rng = random.Random(args.seed)
    rand = []
    for _ in range(args.random):
        s = spec.random(rng)
        rand.append({'sample': s, 'predicted_ms': predicted(supernet, table, s), 'measured_ms': measure(space, s, args),
                     'predicted_frozen_f0_ms': predicted(supernet, corrected, s)})
    pred, meas = [r['predicted_ms'] for r in rand], [r['measured_ms'] for r in rand]
    rho = float(spearmanr(pred, meas)[0]) if len(rand) > 2 else float('nan')
    mare = sum(abs(a - b) / b for a, b in zip(pred, meas)) / max(1, len(rand))
    mare_frozen = sum(abs(r['predicted_frozen_f0_ms'] - r['measured_ms']) / r['measured_ms'] for r in rand) / max(1, len(rand))
    used = corrected if args.frozen_f0 else table

    lo, hi = ext['smallest']['measured_ms'], ext['largest']['measured_ms']
    runs = []
    for f in args.fractions:
        target = lo + f * (hi - lo)
        res = search(space, evaluator, 'proxyless', epochs=args.epochs, seed=args.seed, verbose=False,
                     latency_table=used, latency_loss='hinge', latency_target=target,
                     latency_weight=args.latency_weight, arch_lr=args.arch_lr)
        pr, me = predicted(supernet, used, res.sample), measure(space, res.sample, args)
        runs.append({'fraction': f, 'target_ms': target, 'predicted_ms': pr, 'measured_ms': me,
                     'ratio_measured_target': me / target, 'predictor_error': (pr - me) / me,
                     'val': res.history.get('val', []), 'expected_latency': res.history.get('expected_latency', []),
                     'seconds': res.seconds, 'sample': res.sample})
        print(f'T={target:.3f} ms: predicted {pr:.3f}, measured {me:.3f} ({res.seconds:.0f} s)', file=sys.stderr)

    runtime = time.time() - start
    command = 'python ' + ' '.join([sys.argv[0]] + (sys.argv[1:] if argv is None else list(argv)))
    meta = {'command': command, 'runtime_s': runtime, 'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'machine': {'processor': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
                        'torch': torch.__version__}, 'args': vars(args)}
    result = {**meta, 'table': {'fixed_ms': table['fixed'], 'whole_default_ms': table['whole_default'],
                                'fixed_frozen_ms': fixed_frozen, 'frozen_default_ms': frozen_default,
                                'seconds': table.get('seconds'), 'config': table.get('config')},
              'extremes': ext, 'random': rand, 'spearman': rho, 'mean_abs_rel_error': mare,
              'mean_abs_rel_error_frozen_f0': mare_frozen, 'searches': runs}
    (out / 'proxyless_latency.json').write_text(json.dumps(result, indent=1))
    (out / 'proxyless_latency.md').write_text(markdown(result))
    print(markdown(result))


def markdown(r) -> str:
    a = r['args']
    lines = [
        '# ProxylessNAS to a latency target (hinge loss, per-op table measured on this CPU)', '',
        f"Command: `{r['command']}`  ", f"Date: {r['date']}; runtime {r['runtime_s'] / 60:.1f} min; machine: "
        f"{r['machine']['processor']}, {r['machine']['cores']} cores, torch {r['machine']['torch']}", '',
        f"Space: ProxylessSpace(width {a['width']}), Fashion-MNIST {a['size']}x{a['size']}x3, {a['limit']} training / "
        f"{a['val_limit']} validation images, {a['epochs']} epochs, latency_weight {a['latency_weight']}, arch_lr "
        f"{a['arch_lr']}, seed {a['seed']}. Latencies: batch 1, 1 thread, eval, median (ms).", '',
        f"Table: F0 {r['table']['fixed_ms']:.3f} ms (default path timed in the supernet: "
        f"{r['table']['whole_default_ms']:.3f} ms); F0 from the frozen default network "
        f"({r['table']['frozen_default_ms']:.3f} ms): {r['table']['fixed_frozen_ms']:.3f} ms. Searches use the "
        f"{'frozen-F0' if a['frozen_f0'] else 'library'} table.",
        '', '| network | predicted ms (table) | predicted ms (frozen F0) | measured ms |', '|---|---:|---:|---:|']
    for name, e in r['extremes'].items():
        lines.append(f"| all-{name} | {e['predicted_ms']:.3f} | {e['predicted_frozen_f0_ms']:.3f} | {e['measured_ms']:.3f} |")
    lines += ['', f"Table check on {len(r['random'])} random samples: Spearman rho {r['spearman']:.3f}; mean |predicted - "
              f"measured| / measured {100 * r['mean_abs_rel_error']:.1f} % (table), "
              f"{100 * r['mean_abs_rel_error_frozen_f0']:.1f} % (frozen F0).", '',
              '| target ms | predicted ms | measured ms | measured / target | predictor error | supernet val acc | '
              'search s |', '|---:|---:|---:|---:|---:|---:|---:|']
    for s in r['searches']:
        val = s['val'][-1] if s['val'] else float('nan')
        lines.append(f"| {s['target_ms']:.3f} | {s['predicted_ms']:.3f} | {s['measured_ms']:.3f} | "
                     f"{s['ratio_measured_target']:.2f} | {100 * s['predictor_error']:+.1f} % | {val:.3f} | "
                     f"{s['seconds']:.0f} |")
    lines += ['', 'Derived architectures (depths s2..s6; ops):', '']
    for s in r['searches']:
        d = [s['sample'][f's{k}_depth'] for k in range(2, 7)]
        ops = ' '.join(s['sample'][f's{k}_i{j}'] for k in range(2, 7) for j in range(d[k - 2])) + ' ' + s['sample']['s7_i0']
        lines.append(f"- T {s['target_ms']:.3f} ms: depths {d}; {ops}")
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()
