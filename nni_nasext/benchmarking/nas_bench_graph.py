"""NAS-Bench-Graph black-box search: our sample-based strategies on all 9 datasets.

NAS-Bench-Graph (Y. Qin, Z. Zhang, X. Wang, Z. Zhang and W. Zhu, "NAS-Bench-Graph: Benchmarking
Graph Neural Architecture Search", NeurIPS 2022 Datasets and Benchmarks) lists the validation
and test performance of the 26,206 GNN architectures of
:class:`nni_nasext.search_spaces.nas_bench_graph.NasBenchGraphSpace` on 9 node-classification
datasets (2,021 architectures on ogbn-proteins, whose figure is ROC-AUC). Protocol, as the
paper's: the search is rewarded with the *validation* accuracy
(:class:`nni_nasext.evaluators.nas_bench_graph_lookup.NasBenchGraphLookup`, one query = cost 1,
``SimulatedBudgetEngine`` stops after ``--queries``), the architecture with the best validation
accuracy among those queried is selected, and its *test* accuracy is reported. The reference is
the test accuracy of the table's best-validation architecture (what a search that saw every
architecture would report); the table's best test accuracy is shown too.

Methods (our searchers through ``SearcherStrategy`` and NNI's sequential engine):
random search, regularized evolution, TPE, PNAS (one block per computing node: its input and
its operation, undecided nodes a skip chain) and the neural predictor. Hyperband and BOHB are
left out: the package's tables hold one training length (the per-epoch curves are a separate
download), so there is no budget to schedule.

Run from the repository root::

    python experiments/bench_nas_bench_graph.py --seeds 5 --jobs 2

Writes ``nas_bench_graph.md`` (also printed), ``.json`` and ``.png`` under ``--out`` (default
``experiments/results``).
"""
from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

warnings.filterwarnings('ignore', message='.*is found to be not a nn.Module.*', category=RuntimeWarning)

from nni_nasext import registry  # noqa: E402
from nni_nasext.benchmarking import (EXPERIMENTS, command_line, machine_info, markdown_table, mean_se,  # noqa: E402
                                     run_tasks, write_results)
from nni_nasext.evaluators.nas_bench_graph_lookup import NasBenchGraphLookup, NasBenchGraphTable  # noqa: E402
from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine  # noqa: E402
from nni_nasext.search_spaces.nas_bench_graph import DATASETS, NUM_NODES  # noqa: E402

DEFAULT_QUERIES = 100
PNAS_BEAM = 30


def pnas_graph_preset(seed: int):
    """PNAS grown node by node: block 1 = ``op_1``, block i = (``input_i``, ``op_i``); a node not yet
    decided is a ``skip`` reading the node before it, so a partial architecture is the chain of
    the decided nodes. Beam 30: 9 + 3 x 30 = 99 queries on 9 operations."""
    blocks = [['op_1']] + [[f'input_{i}', f'op_{i}'] for i in range(2, NUM_NODES + 1)]
    fill = {f'op_{i}': 'skip' for i in range(1, NUM_NODES + 1)}
    fill.update({f'input_{i}': i - 1 for i in range(2, NUM_NODES + 1)})
    return registry.build('strategy', 'pnas', blocks=blocks, beam_size=PNAS_BEAM, fill=fill, seed=seed)


#: key -> (label, configuration, factory seed -> searcher)
METHODS: Dict[str, tuple] = {
    'random': ('random search', 'RandomSearch(seed=s) (no repeated sample)',
               lambda s: registry.build('strategy', 'random', seed=s)),
    'regularized_evolution': ('regularized evolution', 'RegularizedEvolution(population_size=20, sample_size=5, seed=s)',
                              lambda s: registry.build('strategy', 'regularized_evolution', population_size=20,
                                                       sample_size=5, seed=s)),
    'tpe': ('TPE', 'TPE(num_startup=10, seed=s)', lambda s: registry.build('strategy', 'tpe', num_startup=10, seed=s)),
    'pnas': ('PNAS', f'PNAS(blocks=node by node, fill=skip chain, beam_size={PNAS_BEAM}, seed=s)', pnas_graph_preset),
    'neural_predictor': ('neural predictor', 'NeuralPredictor(num_initial=10, pool_size=2000, refit_every=5, seed=s)',
                         lambda s: registry.build('strategy', 'neural_predictor', num_initial=10, pool_size=2000,
                                                  refit_every=5, seed=s)),
}


def quiet_nni() -> None:
    for name in ('nni', 'nni.nas', 'nni.runtime'):   # the all-skip refusals would print a traceback each
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run_one(method: str, dataset: str, seed: int, queries: int = DEFAULT_QUERIES) -> dict:
    import torch
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.adapters.strategy import SearcherStrategy
    from nni_nasext.search_spaces.nas_bench_graph import NasBenchGraphSpace
    torch.set_num_threads(1)
    evaluator = NasBenchGraphLookup(dataset)
    searcher = METHODS[method][2](seed)
    engine = SimulatedBudgetEngine(evaluator, queries)
    start = time.perf_counter()
    SearcherStrategy(searcher)(RawFormatModelSpace.from_model(NasBenchGraphSpace(dataset), evaluator), engine)
    wall = time.perf_counter() - start
    table = NasBenchGraphTable(dataset)
    records = [table.query(m.sample) for m in engine.list_models() if m.metrics.final is not None]
    if not records:
        raise RuntimeError(f'{method} {dataset} seed {seed}: no model reported a metric')
    best_so_far, best = [], None
    for r in records:
        if best is None or r.valid > best.valid:
            best = r
        best_so_far.append(best.test)
    opt = table.best('valid')
    return {'seed': seed, 'num_queries': len(records), 'num_distinct': len({r.key for r in records}),
            'best_valid': best.valid, 'test_of_best_valid': best.test, 'best_key': best.key,
            'found_optimum': bool(best.key == opt.key), 'wall_s': wall, '_curve': best_so_far}


def _task(task):
    quiet_nni()
    return task, run_one(*task)


def run_benchmark(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], queries: int,
                  jobs: int = 1, progress: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[str, List[dict]]]:
    quiet_nni()
    tasks = [(m, d, s, queries) for d in datasets for m in methods for s in seeds]
    done = {}

    def report(task, res):
        done[task] = res
        if progress:
            progress(f'{task[1]:<10} {task[0]:<22} seed {task[2]}: {res["num_queries"]} queries, test of best valid '
                     f'{res["test_of_best_valid"]:.2f}, {res["wall_s"]:.1f} s')

    run_tasks(_task, tasks, jobs, on_result=lambda r: report(*r))
    return {d: {m: [done[(m, d, s, queries)] for s in seeds] for m in methods} for d in datasets}


def reference(dataset: str) -> dict:
    table = NasBenchGraphTable(dataset)
    by_valid, by_test = table.best('valid'), table.best('test')
    tests = np.array([r.test for r in table.records()])
    return {'num_archs': len(table), 'optimum_valid': by_valid.valid, 'optimum_test': by_valid.test,
            'optimum_key': by_valid.key, 'max_test': by_test.test, 'median_test': float(np.median(tests))}


def summarize(runs: Dict[str, Dict[str, List[dict]]]) -> dict:
    out = {}
    for d, by_method in runs.items():
        out[d] = {}
        for m, rs in by_method.items():
            test = mean_se([r['test_of_best_valid'] for r in rs])
            valid = mean_se([r['best_valid'] for r in rs])
            out[d][m] = {'test_mean': test['mean'], 'test_std': test['std'],
                         'valid_mean': valid['mean'], 'valid_std': valid['std'],
                         'found_optimum_share': float(np.mean([r['found_optimum'] for r in rs])),
                         'distinct_mean': float(np.mean([r['num_distinct'] for r in rs])),
                         'wall_s_median': float(np.median([r['wall_s'] for r in rs]))}
    return out


def render_markdown(result: dict) -> str:
    s, refs, proto = result['summary'], result['reference'], result['protocol']
    methods = proto['methods']
    lines = [
        '## NAS-Bench-Graph black-box search (Qin et al., NeurIPS 2022 D&B tables)',
        '',
        f'Each run queries {proto["queries"]} architectures (reward: validation accuracy); the architecture with '
        f'the best validation accuracy among them is selected and its **test** accuracy (%, ROC-AUC x 100 on '
        f'proteins) is reported, mean ± sd over {proto["seeds"]} seeds ({proto["seed_list"]}). *optimum*: test '
        'accuracy of the table\'s best-validation architecture (what a search of every architecture would '
        'report); *max test*: the table\'s best test accuracy (chosen on the test set, not reachable by the '
        'protocol).',
        '',
    ]
    lines += markdown_table(
        ['dataset', *(METHODS[m][0] for m in methods), 'optimum', 'max test'],
        ([d, *(f'{s[d][m]["test_mean"]:.2f} ± {s[d][m]["test_std"]:.2f}' for m in methods),
          f'{refs[d]["optimum_test"]:.2f}', f'{refs[d]["max_test"]:.2f}'] for d in s))
    lines += ['', 'Validation accuracy of the selected architecture (the reward) and the share of runs that found the '
              'table\'s best-validation architecture:', '']
    lines += markdown_table(
        ['dataset', *(METHODS[m][0] for m in methods), 'best valid in table'],
        ([d, *(f'{s[d][m]["valid_mean"]:.2f} ({100 * s[d][m]["found_optimum_share"]:.0f} %)' for m in methods),
          f'{refs[d]["optimum_valid"]:.2f}'] for d in s))
    lines += ['', 'Configurations: ' + '; '.join(f'{METHODS[m][0]}: `{METHODS[m][1]}`' for m in methods) + '.', '',
              f'Command: `{result["command"]}`  ',
              f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s; machine: {result["machine"]["platform"]}, '
              f'{result["machine"]["cpu_count"]} CPUs, Python {result["machine"]["python"]}, '
              f'nas-bench-graph {result["machine"]["nas_bench_graph"]}.', '']
    return '\n'.join(lines)


def plot(result: dict, runs: Dict[str, Dict[str, List[dict]]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    datasets = list(runs)
    cols = 3
    rows = (len(datasets) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, d in zip(axes.flat, datasets):
        for m, rs in runs[d].items():
            n = min(len(r['_curve']) for r in rs)
            mean = np.array([r['_curve'][:n] for r in rs]).mean(axis=0)
            ax.plot(np.arange(1, n + 1), mean, label=METHODS[m][0], lw=1.2)
        ax.axhline(result['reference'][d]['optimum_test'], color='k', lw=0.8, ls='-.', label='optimum')
        ax.set_title(d, fontsize=10)
        ax.set_xlabel('queries', fontsize=8)
        ax.set_ylabel('test acc. of best-valid (%)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f'NAS-Bench-Graph search, mean over {result["protocol"]["seeds"]} seeds', fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--queries', type=int, default=DEFAULT_QUERIES)
    parser.add_argument('--datasets', nargs='+', default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    parser.add_argument('--stem', default='nas_bench_graph')
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.queries < 1:
        parser.error('--seeds and --queries must be positive')
    seeds = list(range(args.seeds))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    runs = run_benchmark(args.datasets, args.methods, seeds, args.queries, jobs=args.jobs, progress=log)
    command = command_line('experiments/bench_nas_bench_graph.py', argv)
    from importlib.metadata import version
    result = {
        'benchmark': 'NAS-Bench-Graph black-box search',
        'protocol': {'queries': args.queries, 'seeds': len(seeds), 'seed_list': f'{seeds[0]}..{seeds[-1]}',
                     'reward': 'validation accuracy (%)', 'reported': 'test accuracy of the best-validation architecture',
                     'methods': list(args.methods)},
        'reference': {d: reference(d) for d in args.datasets},
        'methods': {m: {'label': METHODS[m][0], 'config': METHODS[m][1]} for m in args.methods},
        'summary': summarize(runs),
        'runs': {d: {m: [{k: v for k, v in r.items() if not k.startswith('_')} for r in rs] for m, rs in bm.items()}
                 for d, bm in runs.items()},
        'machine': {**machine_info(), 'nas_bench_graph': version('nas-bench-graph')},
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': time.perf_counter() - start, 'command': command,
    }
    text = render_markdown(result)
    write_results(args.out, args.stem, result, text)
    plot(result, runs, args.out / f'{args.stem}.png')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
