"""Rank correlation of the zero-cost proxies with NAS-Bench-201 accuracy.

For ``--cells`` NB201 cells drawn uniformly (seeded), each proxy of
:mod:`nni_nasext.evaluators.proxies` scores the cell's network (``NasBench201Space()``: N=5,
C=16, 10 classes) at initialisation on one batch of 64 inputs; the scores are rank-correlated
(Spearman, Kendall) with the cell's 200-epoch validation accuracy on cifar10-valid, cifar100
and ImageNet16-120 (the NB201 tables). Published reference (Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS", ICLR 2021, NB201 CIFAR-10, Spearman): synflow 0.74, jacob_cov
0.73, grad_norm 0.58, snip 0.58.

Inputs: CIFAR images are not on these machines. The data-dependent proxies see 64 real
Fashion-MNIST training images (``NASEXT_DATA``), resized to 32x32 and repeated over the 3
channels; the data-free ones (synflow, zen) Gaussian inputs. TE-NAS's NTK condition number
takes ~26 s per network on this CPU, and its linear-region count saturates at the batch size
with default settings; both are left out unless asked for (``--proxies``).

    NASEXT_DATA=../shared/data python experiments/bench_proxies_nb201.py --cells 100

Writes ``proxies_nb201.{md,json}`` under ``--out`` (default experiments/results).
"""
from __future__ import annotations

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
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space  # noqa: E402

PUBLISHED = {'synflow': 0.74, 'jacob_cov': 0.73, 'grad_norm': 0.58, 'snip': 0.58}
DEFAULT = ['params', 'flops', 'synflow', 'snip', 'grad_norm', 'jacob_cov', 'naswot', 'zen']
#: higher score = better network, except the NTK condition number (smaller is better)
SIGN = {'te_nas_ntk': -1}


def main(argv=None) -> int:
    import torch
    from scipy import stats
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cells', type=int, default=1000)
    parser.add_argument('--proxies', nargs='+', default=DEFAULT, choices=sorted(PROXIES))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    cells = []
    while len(cells) < args.cells:
        sample = {label: rng.choice(OPS) for label in EDGE_LABELS}
        if sample not in cells:
            cells.append(sample)
    evaluators = {p: ZeroCostProxy(p, dataset='fashion-mnist', input_size=(3, 32, 32), seed=args.seed)
                  for p in args.proxies}
    space, table = NasBench201Space(), NasBench201Table()
    scores = {p: [] for p in args.proxies}
    seconds = {p: 0. for p in args.proxies}
    accs = {ds: [table.query(c, ds, 200).accuracy for c in cells] for ds in NB201_DATASETS}
    start = time.time()
    for i, cell in enumerate(cells, 1):
        model = space.freeze(cell)
        for p, ev in evaluators.items():
            t = time.perf_counter()
            scores[p].append(SIGN.get(p, 1) * ev.score(model))
            seconds[p] += time.perf_counter() - t
        if i % 10 == 0:
            print(f'{i}/{len(cells)} cells, {time.time() - start:.0f} s', file=sys.stderr, flush=True)
    result = {'cells': len(cells), 'seed': args.seed, 'inputs': 'fashion-mnist 64 images resized to 3x32x32 '
              '(data-free proxies: Gaussian)', 'published_spearman_cifar10': PUBLISHED, 'proxies': {}}
    for p in args.proxies:
        s = np.asarray(scores[p], dtype=float)
        ok = np.isfinite(s)
        entry = {'finite': int(ok.sum()), 'seconds_per_network': seconds[p] / len(cells)}
        for ds in NB201_DATASETS:
            a = np.asarray(accs[ds])[ok]
            entry[ds] = {'spearman': float(stats.spearmanr(s[ok], a).statistic),
                         'kendall': float(stats.kendalltau(s[ok], a).statistic)}
        result['proxies'][p] = entry
    result['runtime_s'] = time.time() - start
    result['date'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    result['command'] = 'NASEXT_DATA=../shared/data python experiments/bench_proxies_nb201.py' + ''.join(
        ' ' + a for a in (sys.argv[1:] if argv is None else argv))
    lines = ['## Zero-cost proxies on NAS-Bench-201: rank correlation with 200-epoch validation accuracy', '',
             f'{len(cells)} uniformly drawn cells (seed {args.seed}); inputs: {result["inputs"]}. '
             'Spearman / Kendall per dataset; published: Abdelfattah et al. 2021, NB201 CIFAR-10 Spearman.', '',
             '| proxy | cifar10-valid | cifar100 | ImageNet16-120 | published (C10) | s / network | finite scores |',
             '|---|---|---|---|---|---|---|']
    for p, e in result['proxies'].items():
        cols = ' | '.join(f'{e[ds]["spearman"]:.3f} / {e[ds]["kendall"]:.3f}' for ds in NB201_DATASETS)
        lines.append(f'| {p} | {cols} | {PUBLISHED.get(p, "")} | {e["seconds_per_network"]:.2f} | {e["finite"]} |')
    lines += ['', f'Command: `{result["command"]}`; runtime {result["runtime_s"]:.0f} s on a 2-core CPU; {result["date"]}.', '']
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = 'proxies_nb201' if args.cells >= 1000 else f'proxies_nb201_{args.cells}cells'
    (args.out / f'{stem}.md').write_text(md)
    (args.out / f'{stem}.json').write_text(json.dumps(result, indent=1) + '\n')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
