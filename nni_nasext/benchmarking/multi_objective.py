"""Accuracy against latency on NAS-Bench-201, for six devices of different kinds.

For each device (a GPU at batch 256, a server CPU, the Raspberry Pi 4, a phone, the FPGA and
Eyeriss; latency measured by HW-NAS-Bench / BRP-NAS, as HELP collected it) every searcher asks
``--queries`` NB201 cells and is told their CIFAR-10 validation accuracy after 200 epochs (the
table's mean over seeds); ``--seeds`` seeds each:

* ``pareto``: :class:`ParetoEvolution` (NSGA-II style, population 10);
* ``mnasnet``: :class:`MnasNetEvolution`, soft reward, target = the device's median latency;
* ``rea_constrained``: :class:`ConstrainedEvolution` with the budget = the median latency;
* ``random``: uniform random search.

The evolutions use the NB201 paper's REA setting, population 10 (tournament 3). A quick sweep of
the Pareto search's population on three devices (10 seeds) gave 8: 0.980-0.986, 10: 0.966-0.991,
12: 0.953-0.979, 20: 0.945-0.968 of the true hypervolume: with 100 queries, more generations of
a small population beat a large one.

Reported per device and searcher: the hypervolume of the points it evaluated, as a fraction of the
hypervolume of the true front (all 15,625 cells; reference point = the worst accuracy and the
worst latency of the table), mean ± standard error over seeds; and, at the budget (the median
latency), the best accuracy it found within the budget against the best feasible cell. One plot
per device: the true front and the fronts found by seed 0.

    python experiments/bench_multi_objective.py --seeds 30 --queries 100

Writes ``multi_objective.{md,json,png}`` under ``--out`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

from nni_nasext.benchmarking import (EXPERIMENTS, command_line, describe_machine, machine_info, markdown_table,
                                     mean_se, write_results)

DEVICES = ['titanx_256', 'gold_6226', 'raspi4', 'pixel3', 'fpga', 'eyeriss']
METHODS = ['pareto', 'mnasnet', 'rea_constrained', 'random']


def make(method: str, device: str, budget: float, seed: int):
    from nni_nasext.strategies.searchers.multi_objective import ConstrainedEvolution, MnasNetEvolution, ParetoEvolution
    from nni_nasext.strategies.searchers.random_search import RandomSearch
    cost = f'nb201_latency:{device}'
    if method == 'pareto':
        return ParetoEvolution(cost, population_size=10, seed=seed)
    if method == 'mnasnet':
        return MnasNetEvolution(cost, target=budget, mode='soft', population_size=10, sample_size=3, seed=seed)
    if method == 'rea_constrained':
        return ConstrainedEvolution(cost, budget, population_size=10, sample_size=3, seed=seed)
    return RandomSearch(seed=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=30)
    ap.add_argument('--queries', type=int, default=100)
    ap.add_argument('--devices', default=','.join(DEVICES))
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    from nni_nasext.hardware import latency as hw_latency
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.nb201_cells import EDGE_LABELS, OPS, all_samples, sample_to_cellstr
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.strategies.searchers.multi_objective import hypervolume, pareto_front

    t0 = time.time()
    space = SpaceSpec.from_json({e: {'_type': 'choice', '_value': list(OPS)} for e in EDGE_LABELS})
    table = NasBench201Table()
    cells = list(all_samples())
    acc = {sample_to_cellstr(c): table.query(c, 'cifar10-valid', 200).accuracy for c in cells}
    results, fronts = {}, {}
    for device in args.devices.split(','):
        lat = {sample_to_cellstr(c): hw_latency.latency_ms(c, device) for c in cells}
        points = [(acc[k], lat[k]) for k in acc]
        reference = (min(p[0] for p in points), max(p[1] for p in points))
        true_front = [points[i] for i in pareto_front(points)]
        hv_true = hypervolume(true_front, reference)
        budget = float(np.median([p[1] for p in points]))
        best_feasible = max(a for a, latency in points if latency <= budget)
        per = {}
        for method in METHODS:
            ratios, bests, found0 = [], [], None
            for seed in range(args.seeds):
                searcher = make(method, device, budget, seed).configure(space)
                seen = []
                for _ in range(args.queries):
                    s = searcher.ask()
                    k = sample_to_cellstr(s)
                    searcher.tell(s, acc[k])
                    seen.append((acc[k], lat[k]))
                ratios.append(hypervolume(seen, reference) / hv_true)
                feasible = [a for a, latency in seen if latency <= budget]
                bests.append(max(feasible) if feasible else float('nan'))
                if seed == 0:
                    found0 = [seen[i] for i in pareto_front(seen)]
            finite = [b for b in bests if b == b]
            hv = mean_se(ratios)
            per[method] = {'hv_ratio_mean': hv['mean'], 'hv_ratio_se': hv['se'],
                           'best_within_budget_mean': mean_se(finite)['mean'] if finite else None,
                           'runs_with_a_feasible_cell': len(finite), 'hv_ratios': ratios, 'front_seed0': found0}
            print(f'[mo] {device:12s} {method:16s} HV {per[method]["hv_ratio_mean"]:.4f} ± {per[method]["hv_ratio_se"]:.4f}, '
                  f'best within {budget:.3g} ms: {per[method]["best_within_budget_mean"]}', flush=True)
        results[device] = {'kind': hw_latency.device_kind(device), 'budget_ms': budget, 'best_feasible': best_feasible,
                           'hv_true': hv_true, 'reference': reference, 'methods': per}
        fronts[device] = true_front

    res = {'command': command_line('experiments/bench_multi_objective.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'), 'runtime_s': time.time() - t0,
           'machine': machine_info(), 'seeds': args.seeds, 'queries': args.queries,
           'accuracy': 'NB201 cifar10-valid, 200 epochs, validation accuracy (%), mean over seeds', 'devices': results}
    text = render_markdown(res)
    write_results(args.out, 'multi_objective', res, text)
    print(text)
    plot(results, fronts, args.out / 'multi_objective.png')
    return 0


def render_markdown(res: dict) -> str:
    """The report (``multi_objective.md``) from the results (``multi_objective.json``)."""
    results = res['devices']
    lines = [f'Hypervolume of the evaluated points / hypervolume of the true front, mean ± s.e. over {res["seeds"]} '
             f'seeds, {res["queries"]} queries each (NB201 CIFAR-10 200-epoch validation accuracy against measured '
             'latency):', '']
    lines += markdown_table(['device', 'kind', *METHODS], (
        [d, r['kind']] + [f'{r["methods"][m]["hv_ratio_mean"]:.4f} ± {r["methods"][m]["hv_ratio_se"]:.4f}'
                          for m in METHODS]
        for d, r in results.items()))
    lines += ['', 'At a latency budget (the device\'s median latency over all cells): best accuracy within the budget, '
              'mean over seeds, against the best feasible cell:', '']
    rows = []
    for d, r in results.items():
        cells_ = []
        for m in METHODS:
            b = r['methods'][m]['best_within_budget_mean']
            cells_.append('-' if b is None else f'{b:.2f}')
        rows.append([d, f'{r["budget_ms"]:.3g}', f'{r["best_feasible"]:.2f}', *cells_])
    lines += markdown_table(['device', 'budget ms', 'best feasible', *METHODS], rows)
    lines += ['', f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {describe_machine(res["machine"])}; '
              f'{res["date"]}.', '']
    return '\n'.join(lines)


def plot(results, fronts, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(results)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(4.2 * ((n + 1) // 2), 7.5), squeeze=False)
    styles = {'pareto': ('tab:red', 'o'), 'mnasnet': ('tab:green', 's'), 'rea_constrained': ('tab:blue', '^'),
              'random': ('tab:gray', 'x')}
    for ax, (d, r) in zip(axes.flat, results.items()):
        tf = sorted(fronts[d], key=lambda p: p[1])
        ax.step([p[1] for p in tf], [p[0] for p in tf], where='post', color='black', lw=1.5, label='true front')
        for m, (color, marker) in styles.items():
            f = sorted(r['methods'][m]['front_seed0'], key=lambda p: p[1])
            ax.plot([p[1] for p in f], [p[0] for p in f], marker=marker, ls='--', color=color, ms=4, lw=0.8, label=m)
        ax.axvline(r['budget_ms'], color='tab:blue', lw=0.6, ls=':')
        ax.set_title(f'{d} ({r["kind"]})', fontsize=9)
        ax.set_xlabel('latency (ms)', fontsize=8)
        ax.set_ylabel('CIFAR-10 val acc (%)', fontsize=8)
        ax.set_ylim(80, 92)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7, loc='lower right')
    fig.suptitle('NB201: fronts found in 100 queries (seed 0) against the true front', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
