"""Zero-shot NAS under a latency budget on NAS-Bench-201 (no network trained).

The searchers are told a training-free score instead of an accuracy: synflow (Tanaka et al. 2020;
Abdelfattah et al. 2021), computed by our ``zero_cost`` evaluator for every one of the 15,625
cells by :mod:`nni_nasext.benchmarking.synflow_all` and read from ``experiments/results/synflow_all.json``
(run ``experiments/bench_synflow_all.py`` first to recompute it). Latency is the measured table of each device
(:mod:`nni_nasext.hardware.latency`). For each device and two budgets (the 25th percentile and the
median of the device's latencies over all cells), ``--seeds`` seeds each, every method scores
``--queries`` cells and picks the one with the best synflow within the budget:

* ``rea_synflow``: :class:`ConstrainedEvolution` (population 10, tournament 3) told synflow:
  cells over the budget are never scored;
* ``random_synflow``: uniform random feasible cells (rejection sampling), best synflow;
* ``zen_nas_synflow``: Zen-NAS's evolution (:class:`~nni_nasext.strategies.zero_shot.zen_nas.ZenNAS`,
  population 10: a random parent, one decision mutated, over-budget children discarded before
  scoring, the lowest score removed) under the device's latency (``cost='nb201_latency:<device>'``,
  ``limit``), told synflow;
* ``random``: one uniform random feasible cell (what no search gives).

Reported: the CIFAR-10 200-epoch validation accuracy of the picked cell (mean ± s.e. over seeds)
against the best feasible cell's, and, as a reference that trains, the best accuracy that
constrained REA told accuracies finds in the same number of queries.

Second table, **the tutorial's proxies themselves under the budget**: Zen-NAS's Zen-score, TE-NAS's
two indicators (NTK condition number and linear regions, combined by the sum of their ranks as
TE-NAS does), NASWOT and synflow were computed by :mod:`nni_nasext.benchmarking.proxies_nb201` for the
same 1,000 random cells (``experiments/results/proxies_nb201.json``); within each budget, each
proxy picks its best-scored feasible cell of that pool, against the pool's best feasible cell.
(Scoring Zen or TE-NAS inside the searches above would cost 1-2 s per cell on this CPU.)

    python experiments/bench_zero_shot_latency.py --seeds 30 --queries 100
"""
from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, mean_se, write_results

DEVICES = ['titanx_256', 'gold_6226', 'raspi4', 'pixel3', 'fpga']
METHODS = ['rea_synflow', 'zen_nas_synflow', 'random_synflow', 'random', 'rea_accuracy']
POOL_PROXIES = ['zen', 'te_nas', 'naswot', 'synflow']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=30)
    ap.add_argument('--queries', type=int, default=100)
    ap.add_argument('--devices', default=','.join(DEVICES))
    ap.add_argument('--scores', type=Path, default=EXPERIMENTS / 'results' / 'synflow_all.json')
    ap.add_argument('--pool', type=Path, default=EXPERIMENTS / 'results' / 'proxies_nb201.json')
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    from nni_nasext.hardware import latency as hw_latency
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.nb201_cells import EDGE_LABELS, OPS, all_samples, sample_to_ops
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.nb201_cells import cellstr_to_sample
    from nni_nasext.strategies.searchers.multi_objective import ConstrainedEvolution
    from nni_nasext.strategies.zero_shot.zen_nas import ZenNAS

    t0 = time.time()
    scores = json.loads(args.scores.read_text())['scores']
    space = SpaceSpec.from_json({e: {'_type': 'choice', '_value': list(OPS)} for e in EDGE_LABELS})
    table = NasBench201Table()
    cells = list(all_samples())
    key = {id(c): ''.join(str(o) for o in sample_to_ops(c)) for c in cells}
    acc = {key[id(c)]: table.query(c, 'cifar10-valid', 200).accuracy for c in cells}

    def k(sample):
        return ''.join(str(o) for o in sample_to_ops(sample))

    def best_told(searcher, told):
        """Run ``searcher`` for ``--queries`` cells, telling it ``told``; the best cell it was told of."""
        searcher.configure(space)
        seen = []
        for _ in range(args.queries):
            s = searcher.ask()
            searcher.tell(s, float(told[k(s)]))
            seen.append(k(s))
        return max(seen, key=lambda c: told[c])

    # the 1,000-cell pool scored by every proxy (non-finite scores rank last)
    pool_data = json.loads(args.pool.read_text())
    pool_cells = [k(cellstr_to_sample(c)) for c in pool_data['cellstr']]

    def finite(v):
        return float(v) if v is not None and np.isfinite(float(v)) else -np.inf

    raw = {name: [finite(v) for v in pool_data['scores'][name]] for name in ('zen', 'naswot', 'synflow')}
    # TE-NAS: a small NTK condition number and many linear regions are good; sum of the two ranks
    ntk = [v if v is not None and np.isfinite(float(v)) else np.inf for v in pool_data['scores']['te_nas_ntk']]
    regions = [finite(v) for v in pool_data['scores']['te_nas_linear_regions']]
    ntk_rank = {i: r for r, i in enumerate(sorted(range(len(pool_cells)), key=lambda i: ntk[i]))}          # 0: best
    reg_rank = {i: r for r, i in enumerate(sorted(range(len(pool_cells)), key=lambda i: -regions[i]))}     # 0: best
    raw['te_nas'] = [-(ntk_rank[i] + reg_rank[i]) for i in range(len(pool_cells))]
    pool_scores = {name: dict(zip(pool_cells, vals)) for name, vals in raw.items()}

    results = {}
    for device in args.devices.split(','):
        lat = {key[id(c)]: hw_latency.latency_ms(c, device) for c in cells}
        lats = np.array(list(lat.values()))
        for q in (25, 50):
            budget = float(np.percentile(lats, q))
            best_feasible = max(a for c, a in acc.items() if lat[c] <= budget)
            feasible = [c for c in cells if lat[key[id(c)]] <= budget]
            row = {}
            for method in METHODS:
                picked = []
                for seed in range(args.seeds):
                    if method == 'zen_nas_synflow':
                        se = ZenNAS(population_size=10, cost=f'nb201_latency:{device}', limit=budget, seed=seed)
                        best = best_told(se, scores)
                    elif method in ('rea_synflow', 'rea_accuracy'):
                        se = ConstrainedEvolution(lambda s: lat[k(s)], budget, population_size=10, sample_size=3,
                                                  seed=seed)
                        best = best_told(se, scores if method == 'rea_synflow' else acc)
                    else:
                        rng = random.Random(seed)
                        pool = [k(rng.choice(feasible)) for _ in range(args.queries if method == 'random_synflow' else 1)]
                        best = max(pool, key=lambda c: scores[c])
                    picked.append(acc[best])
                stats = mean_se(picked)
                row[method] = {'mean': stats['mean'], 'se': stats['se']}
            pool_row = {}
            in_pool = [c for c in pool_cells if lat[c] <= budget]
            if in_pool:
                pool_row['best_feasible'] = max(acc[c] for c in in_pool)
                pool_row['cells'] = len(in_pool)
                for proxy in POOL_PROXIES:
                    pool_row[proxy] = acc[max(in_pool, key=lambda c: pool_scores[proxy][c])]
            results[f'{device}@p{q}'] = {'device': device, 'kind': hw_latency.device_kind(device), 'percentile': q,
                                         'budget_ms': budget, 'best_feasible': best_feasible, 'methods': row,
                                         'pool': pool_row}
            print(f'[zs] {device} p{q} {budget:.3g} ms: best feasible {best_feasible:.2f}; '
                  + ', '.join(f'{m} {r["mean"]:.2f}' for m, r in row.items()), flush=True)
    machine = machine_info()
    res = {'command': command_line('experiments/bench_zero_shot_latency.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'), 'runtime_s': time.time() - t0,
           'machine': machine, 'scores': str(args.scores.name), 'rows': results}
    lines = [f'CIFAR-10 200-epoch validation accuracy (%) of the cell picked within the latency budget, mean ± s.e. over '
             f'{args.seeds} seeds, {args.queries} cells scored each (synflow from `synflow_all.json`; rea_accuracy is told '
             'the accuracies, i.e. trains, as a reference):', '',
             *markdown_table(['device', 'budget', 'best feasible', *METHODS], [
                 [f'{r["device"]} ({r["kind"]})', f'p{r["percentile"]}: {r["budget_ms"]:.3g} ms', f'{r["best_feasible"]:.2f}',
                  *(f'{r["methods"][m]["mean"]:.2f} ± {r["methods"][m]["se"]:.2f}' for m in METHODS)]
                 for r in results.values()])]
    lines += ['', f'The proxies of the tutorial under the same budgets, each picking its best-scored feasible cell among '
              f'the {len(pool_cells)} cells of `{args.pool.name}` (CIFAR-10 200-epoch validation accuracy of the pick, %; '
              'te_nas: rank sum of the NTK condition number and the linear regions):', '',
              *markdown_table(['device', 'budget', 'feasible cells', 'best feasible', *POOL_PROXIES], [
                  [r['device'], f'p{r["percentile"]}: {r["budget_ms"]:.3g} ms', r['pool']['cells'],
                   f'{r["pool"]["best_feasible"]:.2f}', *(f'{r["pool"][p]:.2f}' for p in POOL_PROXIES)]
                  for r in results.values() if r['pool']])]
    lines += ['', f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
              f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(args.out, 'zero_shot_latency', res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
