"""NAS-Bench-Macro black-box search: every sample-based strategy, ours and NNI's, at a query budget.

NAS-Bench-Macro (Su et al., CVPR 2021) lists the CIFAR-10 test accuracy of all 3^8 = 6,561
architectures of an 8-layer MobileNetV2-style macro space
(:class:`nni_nasext.search_spaces.NasBenchMacroSpace`). The table carries no training time, so
the budget is a number of queries (default 100, about 1.5 % of the space). The reward of an
architecture is its mean test accuracy over the 3 runs
(:class:`nni_nasext.evaluators.macro_lookup.NasBenchMacroLookup`), which is also the figure
reported for the best-rewarded architecture of each run; so the table shows how close each
method gets to the best architecture (93.13 %) with the same number of queries, and how often
it finds it. Every method runs through NNI's machinery (``RawFormatModelSpace``, sequential
engine, ``strategy(space, engine)``), as in ``bench_nb201_search.py``, whose method list it
reuses minus the multi-fidelity methods (the table has one fidelity).

The table lists 6,561 keys but only 3,969 distinct networks (a non-first identity layer of a
stage is a true identity, so equivalent keys share one row): a repeated network is a repeated
query here, as it would be for a user.

Run from the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_macro_search.py            # 100 seeds
    NASEXT_DATA=../shared/data python experiments/bench_macro_search.py --quick    # 5 seeds

Writes ``macro_search.md`` (also printed), ``.json`` and ``.png`` under ``--out`` (default
``experiments/results``; ``--quick`` writes ``macro_search_quick.*``).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from nni_nasext.benchmarking import nb201_search as nb  # noqa: E402

from nni_nasext.data_paths import DataNotFoundError  # noqa: E402
from nni_nasext.benchmarking import run_tasks  # noqa: E402
from nni_nasext.evaluators.macro_lookup import NasBenchMacroLookup, NasBenchMacroTable  # noqa: E402
from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine  # noqa: E402
from nni_nasext.search_spaces.nasbench_macro import canonical_key  # noqa: E402

DEFAULT_QUERIES = 100
DEFAULT_SEEDS = 100
QUICK_SEEDS = 5
MULTI_FIDELITY = ('ours-SH', 'ours-HB', 'ours-BOHB', 'ours-SH-REA', 'ours-SH-TPE', 'ours-PDH', 'ours-PDH-m40')


def _generic(module: str, attr: str, **kwargs):
    """Our searcher with its default settings (the NB201 presets are for that space)."""
    def factory(seed: int):
        import importlib
        from nni_nasext.adapters.strategy import SearcherStrategy
        return SearcherStrategy(getattr(importlib.import_module(module), attr)(seed=seed, **kwargs))
    return factory


def _nni_rea(seed: int):
    import nni.nas.strategy as nni_strategy
    return nni_strategy.RegularizedEvolution(population_size=10, sample_size=3, mutation_prob=1 / 8, seed=seed)


#: key -> (label, configuration text, factory seed -> strategy)
METHODS: Dict[str, tuple] = {}
for _key, (_label, _family, _config, _factory) in nb.METHODS.items():
    if _key not in MULTI_FIDELITY:
        METHODS[_key] = (_label, _config, _factory)
# settings that name the NB201 space are replaced by their generic forms here
METHODS['nni-REA'] = ('NNI RegularizedEvolution',
                      'nni.nas.strategy.RegularizedEvolution(population_size=10, sample_size=3, mutation_prob=1/8, '
                      'seed=s): one of the 8 decisions resampled per child on average', _nni_rea)
METHODS['ours-PNAS'] = ('nni_nasext PNAS', 'SearcherStrategy(PNAS.macro_preset(seed=s))',
                        nb._lazy('nni_nasext.strategies.searchers.pnas', 'PNAS', preset='macro_preset'))
METHODS['ours-NP'] = ('nni_nasext NeuralPredictor',
                      'SearcherStrategy(NeuralPredictor(num_initial=10, pool_size=6561, seed=s)): the whole space '
                      'scored every query, as the NB201 preset does',
                      _generic('nni_nasext.strategies.searchers.neural_predictor', 'NeuralPredictor', num_initial=10,
                               pool_size=6561))
METHODS['ours-MetaQNN'] = ('nni_nasext MetaQNN', 'SearcherStrategy(MetaQNN(reward_scale=0.01, schedule_scale=0.05, '
                           'seed=s)): the epsilon schedule compressed to ~100 models',
                           _generic('nni_nasext.strategies.searchers.metaqnn', 'MetaQNN', reward_scale=0.01,
                                    schedule_scale=0.05))
PAIRS = [p for p in nb.PAIRS if p[0] in METHODS and p[1] in METHODS]


@functools.lru_cache(maxsize=None)
def _space():
    from nni_nasext.search_spaces import NasBenchMacroSpace
    return NasBenchMacroSpace()


class TimedMacroLookup(nb.TimedQueries, NasBenchMacroLookup):
    """The NAS-Bench-Macro lookup evaluator, timing its table lookups."""


def run_one(method: str, seed: int, queries: int = DEFAULT_QUERIES) -> dict:
    from nni.nas.space import RawFormatModelSpace
    nb.torch_threads(1)
    evaluator = TimedMacroLookup()
    strategy = METHODS[method][2](seed)
    engine = SimulatedBudgetEngine(evaluator, queries)
    start = time.perf_counter()
    strategy(RawFormatModelSpace.from_model(_space(), evaluator), engine)
    wall = time.perf_counter() - start
    table = NasBenchMacroTable()
    rewards, keys = [], []
    for model in engine.list_models():
        if model.metric is None:
            continue
        rewards.append(float(model.metric))
        keys.append(canonical_key(table.query(model.sample).key))
    if not rewards:
        raise RuntimeError(f'{method} seed {seed}: no model reported a metric')
    best = int(np.argmax(rewards))
    optimum = table.best()
    return {
        'seed': seed, 'num_queries': len(rewards), 'num_unique_networks': len(set(keys)),
        'best_acc': rewards[best], 'best_key': keys[best], 'best_query': best + 1,
        'found_optimum': bool(keys[best] == canonical_key(optimum.key)),
        'wall_s': wall, 'lookup_s': evaluator.lookup_s,
        'us_per_query': 1e6 * wall / len(rewards),
        'us_per_query_excl_lookup': 1e6 * (wall - evaluator.lookup_s) / len(rewards),
        '_best_so_far': np.maximum.accumulate(np.asarray(rewards)),
    }


def _task(task):
    method, seed, queries = task
    nb.quiet_nni()
    return task, run_one(method, seed, queries)


def run_benchmark(seeds: Sequence[int], methods: Sequence[str], queries: int = DEFAULT_QUERIES,
                  progress: Optional[Callable[[str], None]] = None, jobs: int = 1) -> Dict[str, List[dict]]:
    nb.quiet_nni()
    for m in methods:
        if m not in METHODS:
            raise ValueError(f'Unknown method {m!r}; expected one of {list(METHODS)}')
    tasks = [(m, s, queries) for m in methods for s in seeds]
    done = {}

    def report(task, res):
        done[task] = res
        if progress:
            progress(f'macro {task[0]:<16} seed {task[1]}: {res["num_queries"]} queries, best {res["best_acc"]:.2f} '
                     f'(query {res["best_query"]}), {res["wall_s"]:.2f} s')

    run_tasks(_task, tasks, jobs, on_result=lambda r: report(*r))
    return {m: [done[(m, s, queries)] for s in seeds] for m in methods}


def summarize(runs: Dict[str, List[dict]]) -> dict:
    from scipy import stats
    out = {}
    for m, rs in runs.items():
        accs = np.array([r['best_acc'] for r in rs])
        out[m] = {
            'num_seeds': len(rs), 'best_acc_mean': float(accs.mean()),
            'best_acc_std': float(accs.std(ddof=1)) if len(rs) > 1 else 0.,
            'best_acc_se': float(accs.std(ddof=1) / np.sqrt(len(rs))) if len(rs) > 1 else 0.,
            'found_optimum_share': float(np.mean([r['found_optimum'] for r in rs])),
            'num_unique_networks_mean': float(np.mean([r['num_unique_networks'] for r in rs])),
            'ms_per_query_excl_lookup_median': float(np.median([r['us_per_query_excl_lookup'] for r in rs])) / 1e3,
            'ms_per_query_median': float(np.median([r['us_per_query'] for r in rs])) / 1e3,
        }
    comparisons = {}
    for ours, theirs in PAIRS:
        if ours in runs and theirs in runs:
            a = [r['best_acc'] for r in runs[ours]]
            b = [r['best_acc'] for r in runs[theirs]]
            p = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 else float('nan')
            comparisons[f'{ours} vs {theirs}'] = {
                'decision_ratio': out[ours]['ms_per_query_excl_lookup_median'] / out[theirs]['ms_per_query_excl_lookup_median'],
                'welch_p': None if p != p else float(p)}
    return {'methods': out, 'comparisons': comparisons}


def render_markdown(result: dict) -> str:
    s, proto = result['summary'], result['protocol']
    lines = [
        '## NAS-Bench-Macro black-box search (Su et al., CVPR 2021 table)',
        '',
        f'Each run queries at most {proto["queries"]} architectures of the 6,561 (3,969 distinct networks); reward '
        f'= mean CIFAR-10 test accuracy of the 3 runs in the table, which is also the reported figure for the '
        f'best-rewarded architecture. Mean ± std over {proto["seeds"]} seeds; best in the table '
        f'{result["optimum"]["mean_acc"]:.2f} % ({result["optimum"]["key"]}); the mean over all 6,561 keys is '
        f'{result["table_mean"]:.2f} %.',
        '',
        '| method | best accuracy (%) | found the optimum | distinct networks queried | decision ms/query (median) |',
        '|---|---|---|---|---|',
    ]
    for m, v in s['methods'].items():
        lines.append(f'| {METHODS[m][0]} | {v["best_acc_mean"]:.3f} ± {v["best_acc_std"]:.3f} | '
                     f'{100 * v["found_optimum_share"]:.0f} % | {v["num_unique_networks_mean"]:.1f} | '
                     f'{v["ms_per_query_excl_lookup_median"]:.2f} |')
    lines.append('')
    for pair, c in s['comparisons'].items():
        ours, theirs = pair.split(' vs ')
        p = 'n/a' if c['welch_p'] is None else f'{c["welch_p"]:.2g}'
        lines.append(f'- {METHODS[ours][0]} vs {METHODS[theirs][0]}: decision time ratio {c["decision_ratio"]:.2f}x, '
                     f'accuracy Welch p = {p}.')
    lines += [
        '- Decision time: median over seeds of (wall time of `strategy(space, engine)` minus the table lookups) / '
        'queries.',
        '- Multi-fidelity methods are left out: the table has one training length.',
        '',
        f'Command: `{result["command"]}`  ',
        f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s; machine: {result["machine"]["platform"]}, '
        f'{result["machine"]["cpu_count"]} CPUs, Python {result["machine"]["python"]}, NNI {result["machine"]["nni"]}.',
        '',
    ]
    return '\n'.join(lines)


def plot(result: dict, runs: Dict[str, List[dict]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for m, rs in runs.items():
        n = min(len(r['_best_so_far']) for r in rs)
        mat = np.array([r['_best_so_far'][:n] for r in rs])
        mean = mat.mean(axis=0)
        se = mat.std(axis=0, ddof=1) / np.sqrt(len(rs)) if len(rs) > 1 else np.zeros(n)
        color, ls = nb.plot_style(m)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, ls, color=color, label=METHODS[m][0])
        ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
    ax.axhline(result['optimum']['mean_acc'], color='k', lw=0.8, ls='-.', label='best in table')
    ax.set_ylim(result['optimum']['mean_acc'] - 1.5, result['optimum']['mean_acc'] + 0.1)
    ax.set_xlabel('queries')
    ax.set_ylabel('best-so-far CIFAR-10 test accuracy (%)')
    ax.set_title(f'NAS-Bench-Macro search, mean ± s.e. over {result["protocol"]["seeds"]} seeds', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right', ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None, default_out: Optional[Path] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=None)
    parser.add_argument('--quick', action='store_true', help=f'{QUICK_SEEDS} seeds, outputs macro_search_quick.*')
    parser.add_argument('--queries', type=int, default=DEFAULT_QUERIES)
    parser.add_argument('--methods', nargs='+', default=[m for m in METHODS], choices=list(METHODS))
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--out', type=Path, default=None, help='output directory (default experiments/results)')
    parser.add_argument('--stem', default=None, help='output file stem (default macro_search, or macro_search_quick)')
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = default_out or Path('experiments') / 'results'
    seeds = list(range(args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)))
    if not seeds or args.queries < 1:
        parser.error('--seeds and --queries must be positive')
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    try:
        table = NasBenchMacroTable()
        optimum = table.best()
        table_mean = float(np.mean([table.query(k).mean_acc for k in table.keys()]))
        runs = run_benchmark(seeds, args.methods, args.queries, progress=log, jobs=args.jobs)
    except DataNotFoundError as err:
        log(f'error: {err}')
        return 2
    import os
    import shlex
    env = f'NASEXT_DATA={shlex.quote(os.environ["NASEXT_DATA"])} ' if 'NASEXT_DATA' in os.environ else ''
    command = env + 'python experiments/bench_macro_search.py' + ''.join(
        ' ' + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    result = {
        'benchmark': 'NAS-Bench-Macro black-box search',
        'protocol': {'queries': args.queries, 'seeds': len(seeds), 'reward': 'mean CIFAR-10 test accuracy (%)'},
        'optimum': {'key': optimum.key, 'mean_acc': optimum.mean_acc}, 'table_mean': table_mean,
        'methods': {m: {'label': METHODS[m][0], 'config': METHODS[m][1]} for m in runs},
        'summary': summarize(runs),
        'runs': {m: [{k: v for k, v in r.items() if not k.startswith('_')} for r in rs] for m, rs in runs.items()},
        'machine': nb.machine_info(),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': time.perf_counter() - start, 'command': command,
    }
    stem = args.stem or ('macro_search_quick' if args.quick else 'macro_search')
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f'{stem}.md').write_text(render_markdown(result))
    (args.out / f'{stem}.json').write_text(json.dumps(result, indent=1) + '\n')
    plot(result, runs, args.out / f'{stem}.png')
    print(render_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
