"""Rank correlation of the zero-cost proxies with NAS-Bench-201 accuracy, and their cost.

For ``--cells`` NB201 cells drawn uniformly without repetition (seeded), each proxy of
:mod:`nni_nasext.evaluators.proxies` scores the cell's network at initialisation; the scores
are rank-correlated (Spearman, Kendall) with the cell's 200-epoch validation accuracy on
cifar10-valid, cifar100 and ImageNet16-120 (the NB201 tables). Published reference
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, NB201 CIFAR-10,
Spearman): synflow 0.74, jacob_cov 0.73, grad_norm 0.58, snip 0.58.

What each proxy sees (CIFAR images are not on these machines):

* ``naswot``, ``snip``, ``grad_norm``, ``jacob_cov``: the NB201 network (N=5, C=16, 10 classes)
  on 64 real Fashion-MNIST training images (``NASEXT_DATA``), resized to 32x32 and repeated
  over the 3 channels, with their labels.
* ``synflow``, ``zen``, ``params``, ``flops``: the same network; data-free (all-ones / Gaussian).
* ``te_nas_ntk``: the same network on the first 16 of those images (the per-example NTK costs
  O(batch²) backward work on a CPU: 2.5 s per network at 16, 7.9 s at 32); condition number,
  smaller is better, so it is negated before ranking.
* ``te_nas_linear_regions``: as in the TE-NAS code, a *thin* copy of the cell (N=1 cell per
  stage, C=1 channel, 1 input channel) on 1,000 Gaussian 1x3x3 inputs, averaged over 3 seeds
  (on the full network every input falls in its own region: the count saturates).

A non-finite score (a network that breaks the proxy, e.g. a cell whose output does not depend
on its input) ranks last, tied; the count of finite scores is in the table. Per-cell scores go
to the JSON for ``bench_proxy_combination.py`` (cell strings and scores; no accuracies: they
are looked up in the NB201 tables under ``NASEXT_DATA``).

    NASEXT_DATA=../shared/data python experiments/bench_proxies_nb201.py --cells 1000 --jobs 2

Writes ``proxies_nb201.{md,json}`` (``proxies_nb201_<n>cells`` below 1,000 cells) under ``--out``.
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import datetime
import json
import math
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore', category=RuntimeWarning)

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table  # noqa: E402
from nni_nasext.evaluators.proxies import PROXIES, ZeroCostProxy  # noqa: E402
from nni_nasext.search_spaces.nasbench201 import NasBench201Space  # noqa: E402

PUBLISHED = {'synflow': 0.74, 'jacob_cov': 0.73, 'grad_norm': 0.58, 'snip': 0.58}
DEFAULT = ['params', 'flops', 'synflow', 'snip', 'grad_norm', 'jacob_cov', 'naswot', 'zen',
           'te_nas_ntk', 'te_nas_linear_regions']
#: higher score = better network, except the NTK condition number (smaller is better)
SIGN = {'te_nas_ntk': -1}
NTK_BATCH = 16
INPUTS = {
    'data': 'NB201 network (N=5, C=16) on 64 Fashion-MNIST images resized to 3x32x32',
    'free': 'NB201 network (N=5, C=16), data-free (all-ones or Gaussian inputs)',
    'te_nas_ntk': f'NB201 network (N=5, C=16) on the first {NTK_BATCH} of the 64 Fashion-MNIST images',
    'te_nas_linear_regions': 'thin cell network (N=1, C=1, 1 input channel), 1,000 Gaussian 1x3x3 inputs, '
                             'mean of 3 seeds',
}


def draw_cells(n: int, seed: int) -> list:
    """``n`` distinct NB201 cells drawn uniformly (seeded)."""
    from nni_nasext.search_spaces.nasbench201 import distinct_random_samples
    return distinct_random_samples(n, random.Random(seed))


def inputs_of(proxy: str) -> str:
    if proxy in ('te_nas_ntk', 'te_nas_linear_regions'):
        return INPUTS[proxy]
    return INPUTS['free'] if proxy in ('synflow', 'zen', 'params', 'flops') else INPUTS['data']


class Scorer:
    """Scores one NB201 cell with every requested proxy, in the settings of the module docstring."""

    def __init__(self, proxies, seed: int = 0):
        import torch
        self.proxies, self.seed = list(proxies), seed
        self.space = NasBench201Space()
        self.thin = NasBench201Space(num_cells=1, channels=1, in_channels=1)
        self.evaluators = {p: ZeroCostProxy(p, dataset='fashion-mnist', input_size=(3, 32, 32), seed=seed)
                           for p in self.proxies if p != 'te_nas_linear_regions'}
        if 'te_nas_ntk' in self.evaluators:
            ev = self.evaluators['te_nas_ntk']
            x, y = ev.batch()
            ev._batch = (x[:NTK_BATCH], y[:NTK_BATCH])
        self.lr_inputs = torch.zeros(1000, 1, 3, 3)  # shape only: the proxy draws Gaussian inputs

    def __call__(self, cell: dict):
        """``(scores, seconds)``: proxy -> signed score, proxy -> seconds for this network (building
        the network is not charged; ``snip`` and ``grad_norm`` share one forward/backward pass, whose
        time is charged to each, as each would need it alone)."""
        from nni_nasext.evaluators.proxies import loss_grads
        scores, seconds = {}, {}
        model = self.space.freeze(cell) if set(self.proxies) - {'te_nas_linear_regions'} else None
        shared = {}
        for p in self.proxies:
            t = time.perf_counter()
            if p == 'te_nas_linear_regions':
                thin = self.thin.freeze(cell)
                value = float(np.mean([PROXIES[p](thin, self.lr_inputs, seed=self.seed + r) for r in range(3)]))
            elif p in ('snip', 'grad_norm'):
                if 'grads' not in shared:
                    x, y = self.evaluators[p].batch()
                    shared['grads'] = loss_grads(model, x, y, self.seed, True)
                    shared['seconds'] = time.perf_counter() - t
                weights, grads = shared['grads']
                value = (sum(float((w * g).abs().sum()) for w, g in zip(weights, grads)) if p == 'snip'
                         else sum(float(g.norm()) for g in grads))
                value = value if math.isfinite(value) else float('nan')
                seconds[p] = shared['seconds'] + time.perf_counter() - t
                scores[p] = value
                continue
            else:
                value = self.evaluators[p].score(model)
            seconds[p] = time.perf_counter() - t
            scores[p] = SIGN.get(p, 1) * value
        return scores, seconds


def _worker(args):
    import torch
    torch.set_num_threads(1)
    proxies, seed, cells = args
    scorer = Scorer(proxies, seed)
    return [scorer(c) for c in cells]


def rank_scores(values) -> np.ndarray:
    """Scores with every non-finite value replaced by ``-inf`` (ranks last, tied)."""
    s = np.asarray(values, dtype=float)
    return np.where(np.isfinite(s), s, -np.inf)


def correlations(scores, accs) -> dict:
    from scipy import stats
    s = rank_scores(scores)
    return {'spearman': float(stats.spearmanr(s, accs).statistic),
            'kendall': float(stats.kendalltau(s, accs).statistic)}


def main(argv=None) -> int:
    import multiprocessing

    import torch
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cells', type=int, default=1000)
    parser.add_argument('--proxies', nargs='+', default=DEFAULT, choices=sorted(PROXIES))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=1, help='worker processes (one thread each)')
    parser.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    parser.add_argument('--merge', action='store_true',
                        help='re-score only --proxies and merge them into the existing results of the same cells '
                             '(the other proxies keep their scores, cost and the command that measured them)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cells = draw_cells(args.cells, args.seed)
    table = NasBench201Table()
    accs = {ds: [table.query(c, ds, 200).accuracy for c in cells] for ds in NB201_DATASETS}
    start = time.time()
    chunk = 10
    tasks = [(args.proxies, args.seed, cells[i:i + chunk]) for i in range(0, len(cells), chunk)]
    results = []
    if args.jobs > 1:
        with multiprocessing.get_context('fork').Pool(args.jobs) as pool:
            for part in pool.imap(_worker, tasks):
                results.extend(part)
                print(f'{len(results)}/{len(cells)} cells, {time.time() - start:.0f} s', file=sys.stderr, flush=True)
    else:
        for task in tasks:
            results.extend(_worker(task))
            print(f'{len(results)}/{len(cells)} cells, {time.time() - start:.0f} s', file=sys.stderr, flush=True)
    scores = {p: [r[0][p] for r in results] for p in args.proxies}
    seconds = {p: float(np.mean([r[1][p] for r in results])) for p in args.proxies}
    result = {'cells': len(cells), 'seed': args.seed, 'published_spearman_cifar10': PUBLISHED, 'proxies': {},
              # cells and scores only: the accuracies are looked up in the NB201 tables (NASEXT_DATA)
              # by the scripts that need them, never copied into the results
              'cellstr': [table.query(c, 'cifar10-valid', 200).cellstr for c in cells],
              'scores': {p: [v if math.isfinite(v) else None for v in scores[p]] for p in args.proxies}}
    command = 'NASEXT_DATA=../shared/data python experiments/bench_proxies_nb201.py' + ''.join(
        ' ' + a for a in (sys.argv[1:] if argv is None else argv))
    stem = 'proxies_nb201' if args.cells >= 1000 else f'proxies_nb201_{args.cells}cells'
    if args.merge:
        old = json.loads((args.out / f'{stem}.json').read_text())
        if old['cellstr'] != result['cellstr'] or old['seed'] != args.seed:
            raise SystemExit(f'--merge: {stem}.json holds other cells; rerun without --merge')
        for p, entry in old['proxies'].items():
            if p not in args.proxies:
                result['proxies'][p] = dict(entry, command=entry.get('command', old['command']))
                result['scores'][p] = old['scores'][p]
    for p in args.proxies:
        s = np.asarray(scores[p], dtype=float)
        entry = {'finite': int(np.isfinite(s).sum()), 'seconds_per_network': seconds[p],
                 'evals_per_second': 1.0 / seconds[p] if seconds[p] > 0 else float('inf'), 'inputs': inputs_of(p)}
        for ds in NB201_DATASETS:
            entry[ds] = correlations(s, accs[ds])
        entry['command'] = command
        result['proxies'][p] = entry
    order = [p for p in DEFAULT if p in result['proxies']] + [p for p in result['proxies'] if p not in DEFAULT]
    result['proxies'] = {p: result['proxies'][p] for p in order}
    result['scores'] = {p: result['scores'][p] for p in order}
    result['runtime_s'] = time.time() - start
    result['jobs'] = args.jobs
    result['date'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    result['command'] = command
    lines = ['## Zero-cost proxies on NAS-Bench-201: rank correlation with 200-epoch validation accuracy', '',
             f'{len(cells)} distinct cells drawn uniformly (seed {args.seed}); Spearman / Kendall per dataset; '
             'published: Abdelfattah et al. 2021, NB201 CIFAR-10 Spearman. Non-finite scores rank last. '
             'Cost: one thread of this CPU per network (evaluations per second).', '',
             '| proxy | cifar10-valid | cifar100 | ImageNet16-120 | published (C10) | evals / s | finite scores | inputs |',
             '|---|---|---|---|---|---|---|---|']
    for p, e in result['proxies'].items():
        cols = ' | '.join(f'{e[ds]["spearman"]:.3f} / {e[ds]["kendall"]:.3f}' for ds in NB201_DATASETS)
        lines.append(f'| {p} | {cols} | {PUBLISHED.get(p, "")} | {e["evals_per_second"]:.2f} | '
                     f'{e["finite"]} | {e["inputs"]} |')
    lines += ['', f'Command: `{result["command"]}`; runtime {result["runtime_s"]:.0f} s on a 2-core CPU '
              f'({args.jobs} worker(s)); {result["date"]}.']
    earlier = sorted({e['command'] for e in result['proxies'].values()} - {command})
    if earlier:
        lines.append('Proxies kept from earlier runs of the same cells (merged): '
                     + '; '.join(f'`{c}` ({", ".join(p for p, e in result["proxies"].items() if e["command"] == c)})'
                                 for c in earlier) + '.')
    lines.append('')
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f'{stem}.md').write_text(md)
    (args.out / f'{stem}.json').write_text(json.dumps(result) + '\n')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
