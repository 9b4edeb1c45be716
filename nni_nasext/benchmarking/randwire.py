"""Randomly wired networks against NB201 cells found by REA, at equal parameters, on Fashion-MNIST.

Xie et al. (ICCV 2019) find networks drawn by a random-graph generator (WS(4, 0.75) best) within
about 1 % of NAS cells on ImageNet, and the spread over graph seeds small. This benchmark asks the
same question at toy scale:

* **REA cells**: regularized evolution (NB201 preset, the NB201 paper protocol: 12-epoch CIFAR-10
  reward, 12,000 simulated seconds) on the NAS-Bench-201 table, one run per seed; the best-rewarded
  cell of each run, in the NB201 skeleton with one cell per stage and ``--nb201-channels`` channels;
* **random NB201 cells** in the same skeleton (the search's own baseline);
* **RandWire** (:mod:`nni_nasext.search_spaces.randwire`) with the paper's best generator of each
  family, WS(4, 0.75), ER(0.2) and BA(5), ``--nodes`` nodes per stage, for several graph seeds;
  the width ``C`` of each network is the one whose parameter count is closest to the NB201
  network's (the comparison is at equal parameters).

Every network is trained with the same recipe (:class:`~nni_nasext.evaluators.ImageClassification`
on Fashion-MNIST from ``NASEXT_DATA``: ``--limit`` training images, ``--epochs`` epochs, SGD with
Nesterov momentum, cosine schedule, the same seed and data order) and scored by its validation
accuracy. The table gives mean ± sd per family and the spread (max - min) over graph seeds.

    NASEXT_DATA=../shared/data python experiments/bench_randwire.py --jobs 2

Writes ``randwire.{md,json,png}`` under ``--out`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from nni_nasext.benchmarking import (EXPERIMENTS, command_line, describe_machine, machine_info, markdown_table,
                                     mean_se, run_tasks, write_results)

GENERATORS = ('randwire_ws', 'randwire_er', 'randwire_ba')
FAMILIES = ('NB201 cell found by REA', 'random NB201 cell', *GENERATORS)
LABELS = {'randwire_ws': 'RandWire WS(4, 0.75)', 'randwire_er': 'RandWire ER(0.2)', 'randwire_ba': 'RandWire BA(5)'}


def rea_cells(seeds, budget: float = 12000.0):
    """The best-rewarded cell of one REA run (NB201 protocol) per seed."""
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
    from nni_nasext.strategies.searchers.regularized_evolution import RegularizedEvolution
    cells = []
    for seed in seeds:
        rea = RegularizedEvolution.nb201_preset(seed=seed)
        simulate_search(SearcherStrategy(rea), NasBench201Lookup('cifar10-valid', epochs=12), budget=budget)
        cells.append(dict(rea.best()['sample']))
    return cells


def random_cells(seeds):
    import random
    from nni_nasext.search_spaces import NasBench201Space
    from nni_nasext.space_spec import SpaceSpec
    spec = SpaceSpec.from_space(NasBench201Space(num_cells=1, channels=4, in_channels=1))
    return [spec.random(random.Random(1000 + s)) for s in seeds]


def count(net) -> int:
    return sum(p.numel() for p in net.parameters())


def randwire_net(sample, nodes: int, channels: int):
    from nni_nasext.search_spaces.randwire import RandWireSpace
    return RandWireSpace(channels=channels, nodes=nodes, num_classes=10, in_channels=1, stem_strides=(1, 1),
                         head_channels=4 * channels).freeze(sample)


def matched_channels(sample, nodes: int, target: int) -> int:
    """The even width whose network's parameter count is closest to ``target``."""
    return min(range(4, 65, 2), key=lambda c: abs(count(randwire_net(sample, nodes, c)) - target))


def train(job):
    """One network, trained in a worker process with one torch thread: returns the job with its results."""
    import torch
    torch.set_num_threads(1)
    from nni_nasext.evaluators import ImageClassification
    from nni_nasext.search_spaces import NasBench201Space
    if job['family'].startswith('randwire'):
        net = randwire_net(job['sample'], job['nodes'], job['channels'])
    else:
        net = NasBench201Space(num_cells=1, channels=job['channels'], in_channels=1).freeze(job['sample'])
    ev = ImageClassification('fashion-mnist', max_epochs=job['epochs'], limit=job['limit'], accelerator='cpu', seed=0)
    start = time.perf_counter()
    acc = ev.evaluate(net)
    return {**job, 'params': count(net), 'val_acc': acc, 'seconds': time.perf_counter() - start}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rea-seeds', type=int, default=3)
    ap.add_argument('--random-cells', type=int, default=3)
    ap.add_argument('--graph-seeds', type=int, default=4)
    ap.add_argument('--nodes', type=int, default=16)
    ap.add_argument('--nb201-channels', type=int, default=8)
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--limit', type=int, default=5000)
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    if not os.environ.get('NASEXT_DATA'):
        print('NASEXT_DATA is not set: Fashion-MNIST and the NB201 tables are needed', file=sys.stderr)
        return 2
    import logging
    logging.getLogger('nni').setLevel(logging.WARNING)
    from nni_nasext.search_spaces import NasBench201Space
    from nni_nasext.search_spaces.randwire import published
    t0 = time.time()
    common = {'epochs': args.epochs, 'limit': args.limit}
    jobs = []
    rea = rea_cells(range(args.rea_seeds))
    for i, cell in enumerate(rea):
        jobs.append({'family': 'NB201 cell found by REA', 'seed': i, 'sample': cell, 'channels': args.nb201_channels,
                     **common})
    for i, cell in enumerate(random_cells(range(args.random_cells))):
        jobs.append({'family': 'random NB201 cell', 'seed': i, 'sample': cell, 'channels': args.nb201_channels,
                     **common})
    target = count(NasBench201Space(num_cells=1, channels=args.nb201_channels, in_channels=1).freeze(rea[0]))
    for gen in GENERATORS:
        for s in range(args.graph_seeds):
            sample = published(gen, graph_seed=s)
            jobs.append({'family': gen, 'seed': s, 'sample': sample, 'nodes': args.nodes,
                         'channels': matched_channels(sample, args.nodes, target), **common})
    print(f'[randwire] {len(jobs)} networks; NB201 network {target} parameters', flush=True)
    results = run_tasks(train, jobs, args.jobs, context='spawn', on_result=lambda r: print(
        f'[randwire] {r["family"]} seed {r["seed"]}: {r["params"]} params, val acc {r["val_acc"]:.4f}, '
        f'{r["seconds"]:.0f} s', flush=True))
    rows = []
    for fam in FAMILIES:
        rs = sorted((r for r in results if r['family'] == fam), key=lambda r: r['seed'])
        accs = [100 * r['val_acc'] for r in rs]
        stats = mean_se(accs)
        rows.append({'family': fam, 'n': len(rs), 'mean': stats['mean'], 'sd': stats['std'], 'min': min(accs),
                     'max': max(accs), 'params': [r['params'] for r in rs], 'channels': [r['channels'] for r in rs],
                     'accs': accs})
    res = {'command': command_line('experiments/bench_randwire.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine_info(),
           'runtime_s': time.time() - t0, 'args': {k: str(v) for k, v in vars(args).items()}, 'rows': rows,
           'rea_cells': rea, 'results': results}
    text = render_markdown(res)
    write_results(args.out, 'randwire', res, text)
    plot(rows, target, args.out / 'randwire.png')
    print(text)
    return 0


def target_params(res: dict) -> int:
    """The parameter count that the RandWire widths were matched to: the network of the first REA cell."""
    return next(r['params'] for r in res['results'] if r['family'] == FAMILIES[0] and r['seed'] == 0)


def render_markdown(res: dict) -> str:
    """The report (``randwire.md``) from the results (``randwire.json``)."""
    a, target = res['args'], target_params(res)
    command = res['command']
    if not command.startswith('NASEXT_DATA='):  # results written before the harness: the data path was implied
        command = 'NASEXT_DATA=../shared/data ' + command
    lines = markdown_table(['networks', 'n', 'val acc % (mean ± sd)', 'min - max (spread)', 'parameters', 'width C'], (
        [LABELS.get(r['family'], r['family']), r['n'], f'{r["mean"]:.2f} ± {r["sd"]:.2f}',
         f'{r["min"]:.2f} - {r["max"]:.2f} ({r["max"] - r["min"]:.2f})', f'{min(r["params"]):,} - {max(r["params"]):,}',
         sorted(set(r['channels']))] for r in res['rows']))
    lines += ['', f'Fashion-MNIST, {a["limit"]} training images (the evaluator\'s split), {a["epochs"]} epochs, '
              f'batch 64, SGD lr 0.05 cosine, seed 0 for every network; NB201 skeleton with 1 cell per stage and '
              f'{a["nb201_channels"]} channels; RandWire with {a["nodes"]} nodes per stage, width chosen to match the '
              f'NB201 network\'s {target:,} parameters. REA cells: best-rewarded cell of {a["rea_seeds"]} REA runs '
              '(NB201 preset, CIFAR-10 12-epoch reward, 12,000 simulated s).', '',
              f'Command: `{command}`; {res["runtime_s"]:.0f} s on {describe_machine(res["machine"], ("torch",))}; '
              f'{res["date"]}.', '']
    return '\n'.join(lines)


def plot(rows, target: int, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r['accs']), r['accs'], s=30)
        ax.errorbar([i + 0.15], [r['mean']], yerr=[r['sd']], fmt='o', color='k', capsize=3)
    ax.set_xticks(range(len(rows)), [LABELS.get(r['family'], r['family']) for r in rows], rotation=15, fontsize=8)
    ax.set_ylabel('validation accuracy (%)')
    ax.set_title(f'Fashion-MNIST at ~{target / 1e3:.0f}k parameters')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
