"""Every NAS-Bench-201 cell scored end to end by synflow (or NASWOT): build the network, score it.

Zero-cost proxies are meant to rank a whole space quickly, but NNI's ``freeze`` (a recursive copy
of every candidate of every edge) took 0.37 s per NB201 network on this CPU, more than the proxy
itself: 15,625 cells took about 2.8 h. ``NasBench201Space.freeze`` now copies only the chosen
candidates (the same network, weights included). This benchmark

1. times both builders and synflow on ``--compare`` cells (same cells, alternating) and checks
   that the two networks have identical weights and identical synflow scores;
2. scores all 15,625 cells (``--cells`` fewer for a try) with ``--jobs`` worker processes, one
   torch thread each, and reports the wall time (goal: at most 30 minutes on this 2-core CPU) and
   the Spearman correlation of the scores with NB201's 200-epoch accuracy (cifar10-valid,
   cifar100, ImageNet16-120). ``--proxy naswot`` does the same for NASWOT (goal: at most 2 h),
   on 64 Fashion-MNIST images at 3x32x32 (``NASEXT_DATA``).

Setup: ``NasBench201Space()`` (N=5, C=16, 10 classes), weights from ``torch.manual_seed(--seed)``
(the same in every worker), synflow as :func:`nni_nasext.evaluators.proxies.score_synflow`
(double precision, BN removed, all-ones 3x32x32 input).

    NASEXT_DATA=../shared/data python experiments/bench_synflow_all.py --jobs 2
"""
from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, run_tasks, write_results

warnings.filterwarnings('ignore')


def _space(seed: int):
    import torch
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    torch.manual_seed(seed)
    return NasBench201Space()


_INPUTS = {}


def _score(model, proxy: str = 'synflow') -> float:
    """synflow: data-free (all-ones input inside); naswot: 64 Fashion-MNIST training images at
    3x32x32, the inputs of :mod:`nni_nasext.benchmarking.proxies_nb201`."""
    import torch
    from nni_nasext.evaluators.proxies import PROXIES, ZeroCostProxy
    if proxy == 'synflow':
        return PROXIES['synflow'](model, torch.zeros(1, 3, 32, 32), seed=0)
    if proxy not in _INPUTS:
        _INPUTS[proxy] = ZeroCostProxy(proxy, dataset='fashion-mnist', input_size=(3, 32, 32), seed=0).batch()[0]
    return PROXIES[proxy](model, _INPUTS[proxy], seed=0)


_STATE = {}


def _init(seed: int, proxy: str) -> None:
    import torch
    torch.set_num_threads(1)
    _STATE['space'], _STATE['proxy'] = _space(seed), proxy
    _STATE['key'] = (seed, proxy)


def _work(task):
    """One chunk of cells ``(seed, proxy, codes)``: per cell ``(code, score, build s, score s)``;
    the worker's space is built (``_init``) on its first chunk."""
    seed, proxy, chunk = task
    if _STATE.get('key') != (seed, proxy):
        _init(seed, proxy)
    out = []
    for code in chunk:
        from nni_nasext.nb201_cells import ops_to_sample
        cell = ops_to_sample([int(c) for c in code])
        t = time.perf_counter()
        model = _STATE['space'].freeze(cell)
        t_build = time.perf_counter() - t
        value = _score(model, _STATE['proxy'])
        out.append((code, value, t_build, time.perf_counter() - t - t_build))
    return out


def compare(n: int, seed: int, proxy: str = 'synflow') -> dict:
    """Both builders on the same ``n`` cells: seconds and identical weights and scores."""
    import random

    import torch
    from nni.nas.nn.pytorch.base import recursive_freeze

    from nni_nasext.nb201_cells import distinct_random_samples
    torch.set_num_threads(1)
    space = _space(seed)
    times = {'nni_freeze': [], 'fast_freeze': [], proxy: []}
    for i, cell in enumerate(distinct_random_samples(n, random.Random(seed + 1))):
        built = {}
        for name in (('nni_freeze', 'fast_freeze') if i % 2 == 0 else ('fast_freeze', 'nni_freeze')):
            t = time.perf_counter()
            built[name] = recursive_freeze(space, cell, include_root=False)[0] if name == 'nni_freeze' \
                else space.freeze(cell)
            times[name].append(time.perf_counter() - t)
        a, b = built['nni_freeze'].state_dict(), built['fast_freeze'].state_dict()
        if list(a) != list(b) or not all(torch.equal(a[k], b[k]) for k in a):
            raise AssertionError(f'{cell}: the two builders give different networks')
        t = time.perf_counter()
        s_fast = _score(built['fast_freeze'], proxy)
        times[proxy].append(time.perf_counter() - t)
        s_nni = _score(built['nni_freeze'], proxy)
        if not (s_fast == s_nni or (math.isnan(s_fast) and math.isnan(s_nni))):
            raise AssertionError(f'{cell}: {proxy} {s_fast} != {s_nni}')
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cells', type=int, default=15625)
    ap.add_argument('--compare', type=int, default=40)
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--proxy', default='synflow', choices=['synflow', 'naswot'])
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    from scipy.stats import spearmanr

    from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table
    from nni_nasext.nb201_cells import all_samples, sample_to_ops
    t0 = time.time()
    per_cell = compare(args.compare, args.seed, args.proxy)
    P = args.proxy
    print(f'compare: {per_cell}', file=sys.stderr, flush=True)
    codes = [''.join(map(str, sample_to_ops(s))) for s in all_samples()][:args.cells]
    chunks = [(args.seed, args.proxy, codes[i:i + 50]) for i in range(0, len(codes), 50)]
    start = time.time()
    results = []

    def collect(part):
        results.extend(part)
        if len(results) % 1000 < 50:
            print(f'{len(results)}/{len(codes)} cells, {time.time() - start:.0f} s', file=sys.stderr, flush=True)

    run_tasks(_work, chunks, args.jobs, on_result=collect)
    wall = time.time() - start
    position = {code: i for i, code in enumerate(codes)}
    results.sort(key=lambda r: position[r[0]])   # the cells' order (the workers end in any order)
    table = NasBench201Table()
    from nni_nasext.nb201_cells import ops_to_sample
    scores = np.array([r[1] for r in results], dtype=float)
    rho = {}
    for ds in NB201_DATASETS:
        acc = np.array([table.query(ops_to_sample([int(c) for c in r[0]]), ds, 200).accuracy for r in results])
        ok = np.isfinite(scores)
        rho[ds] = float(spearmanr(scores[ok], acc[ok]).correlation)
    machine = machine_info()
    res = {'command': command_line('experiments/bench_synflow_all.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine, 'cells': len(results), 'jobs': args.jobs,
           'wall_s': wall, 'runtime_s': time.time() - t0, 'compare_median_s': per_cell,
           'median_build_s': statistics.median(r[2] for r in results),
           'median_score_s': statistics.median(r[3] for r in results),
           'finite': int(np.isfinite(scores).sum()), 'spearman': rho,
           'scores': {r[0]: (r[1] if math.isfinite(r[1]) else None) for r in results}}
    before = per_cell['nni_freeze'] + per_cell[P]
    after = per_cell['fast_freeze'] + per_cell[P]
    goal = 1800 if P == 'synflow' else 7200
    lines = [f'## {P} on every NAS-Bench-201 cell, end to end (build + score)', '',
             f'Per cell, median of {args.compare} cells, one thread, same cells and weights:', '',
             *markdown_table(['step', 'before (NNI freeze) s', 'now s'], [
                 ['build the network', f'{per_cell["nni_freeze"]:.3f}', f'{per_cell["fast_freeze"]:.3f}'],
                 [P, f'{per_cell[P]:.3f}', f'{per_cell[P]:.3f}'],
                 ['total', f'{before:.3f}', f'{after:.3f} ({before / after:.1f}x)']]), '',
             f'Both builders give identical weights and identical {P} scores on every compared cell.', '',
             f'All {len(results)} cells with {args.jobs} worker(s): **{wall / 60:.1f} min** wall '
             f'(goal: at most {goal // 60} min -> **{"met" if wall <= goal or len(results) < 15625 else "missed"}**'
             f'{"" if len(results) == 15625 else "; a partial run, the goal is for all 15,625"}); the same at '
             f'the former per-cell cost would be about {before * len(results) / args.jobs / 60:.0f} min. '
             f'Finite scores: {res["finite"]}.', '',
             'Spearman with the 200-epoch accuracy: ' + ', '.join(f'{k} {v:.3f}' for k, v in rho.items())
             + (' (published, NB201 CIFAR-10, Abdelfattah et al. 2021: 0.74).' if P == 'synflow' else '.'), '',
             f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
             f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(args.out, f'{P}_all', res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
