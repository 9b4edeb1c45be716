"""Once-for-All specialised to a latency budget on this CPU: the evolutionary sub-network search
constrained by the latency predictor, against random search and against a search constrained by
MACs instead.

Protocol (one seed, ``--seed``):

1. One OFA supernet is trained by progressive shrinking as in :mod:`nni_nasext.benchmarking.ofa` (OFASpace width
   ``--width-mult``, resolutions ``--resolutions``, ``--full`` + 3 x ``--shrink`` epochs, on
   ``--limit`` Fashion-MNIST training images).
2. The latency predictor (:class:`nni_nasext.hardware.latency_predictor.LatencyPredictor`, input
   1 x 1 x R x R at the largest resolution R, batch 1, one thread) profiles the operations of the
   exported sub-networks and fits its correction on ``--fit`` random sub-networks measured end
   to end. On ``--check`` other random sub-networks, its prediction and the sub-network's MACs
   are each compared with the measured latency (Spearman's rho): is MACs a stand-in for latency?
3. Budgets: the 25/50/75 % quantiles of the predicted latency of 200 random sub-networks. Per
   budget, three searches, each scoring sub-networks by their accuracy on a held-out tenth of
   the training data (inherited weights, BN re-estimated):

   * ``evolution (latency)``: :func:`~nni_nasext.strategies.oneshot.ofa.evolve_subnet` with
     ``cost=latency_cost(supernet, predictor)``, ``max_cost`` = the budget (OFA Sec. 3.4);
   * ``random (latency)``: as many random sub-networks within the budget, the best kept;
   * ``evolution (MACs)``: the same search under the MACs quantile of the same rank (what a
     user without a latency model would do).

   The chosen sub-network is exported and timed end to end (median of ``--repeats``); reported:
   predicted and measured latency, measured / budget, MACs, held-out and validation accuracy.

Devices: only this machine's CPU. The NB201 device tables (``../shared/data/nb201_latency``)
price NB201 cells, not OFA's sub-networks, so they cannot specialise OFA to the 26 devices; a
GPU predictor would be fitted the same way on a machine with a GPU.

    NASEXT_DATA=../shared/data python experiments/bench_ofa_latency.py

Writes ``experiments/results/ofa_latency.{json,md,png}`` (``--out``). About 15 min on 2 cores.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, write_results


def main(argv=None) -> int:
    run(argv)
    return 0


def run(argv=None) -> Dict[str, Any]:
    """The benchmark; returns the result it writes."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='fashion-mnist')
    p.add_argument('--limit', type=int, default=3000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--width-mult', type=float, default=0.25)
    p.add_argument('--resolutions', type=int, nargs='+', default=[16, 20, 24])
    p.add_argument('--full', type=int, default=6)
    p.add_argument('--shrink', type=int, default=2)
    p.add_argument('--fit', type=int, default=20)
    p.add_argument('--check', type=int, default=30)
    p.add_argument('--repeats', type=int, default=30)
    p.add_argument('--val-images', type=int, default=3072)
    p.add_argument('--population', type=int, default=16)
    p.add_argument('--generations', type=int, default=6)
    p.add_argument('--quick', action='store_true', help='tiny smoke run')
    p.add_argument('--out', default=str(EXPERIMENTS / 'results'))
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.full, args.shrink, args.fit, args.check, args.repeats = 300, 1, 0, 4, 5, 5
        args.val_images, args.population, args.generations, args.resolutions = 256, 4, 2, [8, 12]
    args.schedule = {'full': args.full, 'kernel': args.shrink, 'depth': args.shrink, 'expand': args.shrink}
    from nni_nasext.benchmarking.ofa import quiet, train_supernet
    from scipy.stats import spearmanr

    from nni_nasext.hardware.latency_predictor import LatencyPredictor, measure_latency
    from nni_nasext.strategies.oneshot.ofa import evaluate_subnet, evolve_subnet, latency_cost, ofa_loaders, random_subnets
    quiet()
    torch.set_num_threads(1)
    start = time.time()
    loader, held, val_loader, info = ofa_loaders(args.dataset, limit=args.limit, batch_size=64, seed=args.seed)
    val = []
    for x, y in val_loader:
        val.append((x, y))
        if sum(len(b[1]) for b in val) >= args.val_images:
            break
    module, train_s = train_supernet(args, loader, val_loader, info, args.seed, True)
    net, calib = module.supernet, module._calib
    print(f'supernet trained in {train_s:.0f} s', file=sys.stderr, flush=True)

    r = max(args.resolutions)
    shape = (1, info.in_channels, r, r)
    pred = LatencyPredictor(shape, repeats=args.repeats, threads=1)

    def measured(s) -> float:
        return measure_latency(net.export(s), shape, repeats=args.repeats, threads=1)

    t0 = time.time()
    fit = random_subnets(net, args.fit, seed=10_000 + args.seed)
    pred.fit([net.export(s) for s in fit], [measured(s) for s in fit])
    check = random_subnets(net, args.check, seed=20_000 + args.seed)
    check_ms = [measured(s) for s in check]
    check_pred = [pred.predict(net.export(s)) for s in check]
    check_macs = [net.macs(s) for s in check]
    predictor = {'coef': list(pred.coef), 'operations': len(pred.table), 'seconds': time.time() - t0,
                 'spearman': float(spearmanr(check_pred, check_ms)[0]),
                 'spearman_macs': float(spearmanr(check_macs, check_ms)[0]),
                 'mre': float(np.mean([abs(a - b) / b for a, b in zip(check_pred, check_ms)])),
                 'measured_range': [min(check_ms), float(np.median(check_ms)), max(check_ms)]}
    print(f'predictor: Spearman {predictor["spearman"]:.3f} (MACs {predictor["spearman_macs"]:.3f})', file=sys.stderr,
          flush=True)

    cost = latency_cost(net, pred)
    pool = random_subnets(net, 200, seed=30_000 + args.seed)
    lat_pool, macs_pool = [cost(s) for s in pool], [net.macs(s) for s in pool]
    rows = []
    for q in (0.25, 0.5, 0.75):
        budget, macs_budget = float(np.quantile(lat_pool, q)), float(np.quantile(macs_pool, q))
        found = {}
        t = time.time()
        evo = evolve_subnet(net, calib, held, population=args.population, generations=args.generations,
                            seed=args.seed, cost=cost, max_cost=budget)
        found['evolution (latency)'] = (evo['sample'], evo['accuracy'], time.time() - t)
        t = time.time()
        rand = random_subnets(net, evo['evaluated'], seed=40_000 + args.seed, cost=cost, max_cost=budget)
        scored = [(evaluate_subnet(net, s, calib, held), i) for i, s in enumerate(rand)]
        acc, i = max(scored)
        found['random (latency)'] = (rand[i], acc, time.time() - t)
        t = time.time()
        evo_m = evolve_subnet(net, calib, held, max_macs=macs_budget, population=args.population,
                              generations=args.generations, seed=args.seed)
        found['evolution (MACs)'] = (evo_m['sample'], evo_m['accuracy'], time.time() - t)
        for name, (s, held_acc, secs) in found.items():
            me = measured(s)
            rows.append({'quantile': q, 'budget_ms': budget, 'macs_budget': macs_budget, 'search': name, 'sample': s,
                         'predicted_ms': cost(s), 'measured_ms': me, 'ratio': me / budget, 'macs': net.macs(s),
                         'held_acc': held_acc, 'val_acc': evaluate_subnet(net, s, calib, val), 'seconds': secs,
                         'evaluated': evo['evaluated']})
            print(f'q {q}: {name}: predicted {cost(s):.3f} ms, measured {me:.3f} ms (budget {budget:.3f}); '
                  f'val {rows[-1]["val_acc"]:.4f}', file=sys.stderr, flush=True)

    runtime = time.time() - start
    command = command_line('experiments/bench_ofa_latency.py', argv)
    result = {'command': command, 'runtime_s': runtime, 'date': datetime.datetime.now().isoformat(timespec='seconds'),
              'machine': machine_info(),
              'args': {k: v for k, v in vars(args).items()}, 'train_s': train_s, 'predictor': predictor, 'rows': rows}
    out = Path(args.out)
    write_results(out, 'ofa_latency', result, render(result))
    plot(result, out / 'ofa_latency.png')
    print(render(result))
    return result


def render(r: Dict[str, Any]) -> str:
    a, pr = r['args'], r['predictor']
    lo, med, hi = pr['measured_range']
    m = r['machine']
    cores = m.get('cpu_count', m.get('cores'))  # machine_info(); 'cores' in results written before it
    lines = [
        '# Once-for-All under a latency budget on this CPU (latency predictor)', '',
        f"Command: `{r['command']}`  ", f"Date: {r['date']}; runtime {r['runtime_s'] / 60:.1f} min (supernet "
        f"{r['train_s'] / 60:.1f} min); machine: {m['processor']}, {cores} cores, torch "
        f"{m['torch']}, one thread", '',
        f"Supernet: OFASpace width {a['width_mult']}, resolutions {a['resolutions']}, schedule {a['schedule']}, "
        f"{a['dataset']} ({a['limit']} training images), seed {a['seed']}. Latency: batch 1, one thread, eval, median "
        f"of {a['repeats']}.", '',
        f"Predictor: {pr['operations']} operations profiled, correction fitted on {a['fit']} sub-networks "
        f"({pr['seconds']:.0f} s). On {a['check']} other random sub-networks (measured {lo:.2f} / {med:.2f} / "
        f"{hi:.2f} ms min / median / max): Spearman **{pr['spearman']:.3f}**, mean relative error "
        f"{100 * pr['mre']:.1f} %; MACs against measured latency: Spearman {pr['spearman_macs']:.3f}.", '',
        f"Searches: population {a['population']}, {a['generations']} generations; random search gets as many "
        f"sub-network evaluations. Budgets: quantiles of 200 random sub-networks' predicted latency (and MACs, for "
        f"the MACs-constrained search).", '',
        '| quantile | budget ms | search | predicted ms | measured ms | measured / budget | MACs (M) | held-out acc | '
        'val acc |', '|---:|---:|---|---:|---:|---:|---:|---:|---:|']
    for w in r['rows']:
        lines.append(f"| {w['quantile']:.2f} | {w['budget_ms']:.3f} | {w['search']} | {w['predicted_ms']:.3f} | "
                     f"{w['measured_ms']:.3f} | {w['ratio']:.2f} | {w['macs'] / 1e6:.3f} | {100 * w['held_acc']:.1f} | "
                     f"{100 * w['val_acc']:.1f} |")
    lines += ['', 'Only this CPU: the NB201 device tables price NB201 cells, not OFA sub-networks.']
    return '\n'.join(lines) + '\n'


def plot(r: Dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    marks = {'evolution (latency)': 'o', 'random (latency)': 's', 'evolution (MACs)': '^'}
    for name, m in marks.items():
        pts = [w for w in r['rows'] if w['search'] == name]
        ax.scatter([w['measured_ms'] for w in pts], [100 * w['val_acc'] for w in pts], marker=m, label=name)
    for b in sorted({w['budget_ms'] for w in r['rows']}):
        ax.axvline(b, color='grey', lw=0.8, ls='--')
    ax.set_xlabel('measured latency (ms, this CPU; dashed: budgets)')
    ax.set_ylabel('validation accuracy (%)')
    ax.set_title('OFA sub-networks under a latency budget')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
