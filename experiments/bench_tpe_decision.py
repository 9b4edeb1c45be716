"""Our TPE against Optuna's, on NAS-Bench-201 (the paper's protocol) and NAS-Bench-Macro, in one run.

Issue 15 asks whether to keep our hand-written TPE (``strategies/searchers/tpe.py``) or make
Optuna's ``TPESampler`` (through :class:`nni_nasext.strategies.searchers.optuna_sampler.OptunaTPE`)
the default ``tpe``. The rule: keep ours only if it is better than Optuna's by more than the
standard error of the difference of the means, on both benchmarks' headline figures, against
each Optuna configuration measured (its defaults, whose Parzen estimator is multivariate in
optuna 5, and the univariate estimator of the original TPE, as ours):

* NAS-Bench-201: the search runs on cifar10-valid with 12-epoch rewards for 12,000 simulated
  seconds; the figure is the 200-epoch validation accuracy of the chosen cell on cifar10-valid
  (the NB201 paper's Table 5 protocol, ``bench_nb201_search.py``); cifar100 and ImageNet16-120
  are shown too;
* NAS-Bench-Macro: 100 queries; the figure is the best test accuracy found
  (``bench_macro_search.py``).

Random search is run beside them as the floor. Every method runs through NNI's machinery, as in
those two scripts, whose run functions this one calls.

Run from the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_tpe_decision.py              # 100 seeds
    NASEXT_DATA=../shared/data python experiments/bench_tpe_decision.py --seeds 5    # a quick look

Writes ``tpe_decision.md`` (also printed) and ``tpe_decision.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # worker processes find its functions by name (--jobs)
    spec.loader.exec_module(module)
    return module


nb = _load('bench_nb201_search')
macro = _load('bench_macro_search')

from nni_nasext.benchmarking import command_line, compare_means, machine_info, mean_se  # noqa: E402

OURS = 'ours-TPE'
OPTUNA = ('optuna-TPE', 'optuna-TPE-uni')
METHODS = (OURS,) + OPTUNA + ('ours-RS',)
NB201_SETS = ('cifar10-valid', 'cifar100', 'ImageNet16-120')


def figures(nb_runs: Dict[str, List[dict]], macro_runs: Dict[str, List[dict]]) -> Dict[str, Dict[str, List[float]]]:
    """benchmark figure -> method -> one value per seed."""
    out = {f'NB201 {ds} (200-epoch val. acc. %)': {m: [r['val_acc_200'][ds] for r in rs] for m, rs in nb_runs.items()}
           for ds in NB201_SETS}
    out['NAS-Bench-Macro (best test acc. %)'] = {m: [r['best_acc'] for r in rs] for m, rs in macro_runs.items()}
    return out


HEADLINE = ('NB201 cifar10-valid (200-epoch val. acc. %)', 'NAS-Bench-Macro (best test acc. %)')


def decide(figs: Dict[str, Dict[str, List[float]]]) -> dict:
    """The comparisons and the verdict of the rule in the module docstring."""
    comparisons = {}
    for fig, by_method in figs.items():
        for other in OPTUNA:
            if OURS in by_method and other in by_method:
                comparisons[f'{fig}: {OURS} vs {other}'] = compare_means(by_method[OURS], by_method[other])
    keep = all(comparisons[f'{fig}: {OURS} vs {other}']['a_better_by_more_than_se']
               for fig in HEADLINE for other in OPTUNA if f'{fig}: {OURS} vs {other}' in comparisons)
    return {'comparisons': comparisons, 'keep_ours': keep,
            'verdict': ('keep our TPE as `tpe`: better than every Optuna configuration by more than the standard '
                        'error on both headline figures') if keep else
                       ("make Optuna's TPE the default `tpe`: ours is not better by more than the standard error on "
                        'both headline figures against every Optuna configuration')}


def render_markdown(result: dict) -> str:
    figs, n = result['figures'], result['seeds']
    lines = ['## Our TPE against Optuna\'s TPESampler: NAS-Bench-201 and NAS-Bench-Macro in one run', '',
             f'Mean ± standard error over {n} seeds (NB201: the paper\'s protocol, 12,000 simulated seconds on '
             'cifar10-valid with 12-epoch rewards, the chosen cell\'s 200-epoch accuracy; Macro: 100 queries, the '
             'best accuracy found).', '',
             '| method | ' + ' | '.join(figs) + ' |', '|---|' + '---|' * len(figs)]
    for m in METHODS:
        cells = []
        for fig in figs:
            s = mean_se(figs[fig][m])
            cells.append(f'{s["mean"]:.2f} ± {s["se"]:.2f}')
        lines.append(f'| {result["labels"][m]} | ' + ' | '.join(cells) + ' |')
    lines += ['', '| comparison | difference | its standard error | Welch p | ours better by > SE |', '|---|---|---|---|---|']
    for name, c in result['decision']['comparisons'].items():
        p = '-' if c['welch_p'] is None else f'{c["welch_p"]:.3g}'
        lines.append(f'| {name} | {c["diff"]:+.3f} | {c["se_diff"]:.3f} | {p} | '
                     f'{"yes" if c["a_better_by_more_than_se"] else "no"} |')
    lines += ['', f'**Verdict:** {result["decision"]["verdict"]}.', '',
              'Decision time per query (median, ms, excluding table lookups): ' + ', '.join(
                  f'{result["labels"][m]} {result["ms_per_query"][m]:.2f}' for m in METHODS) + ' (NB201 runs).', '',
              f'Command: `{result["command"]}`  ',
              f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s; machine: {result["machine"]["platform"]}, '
              f'{result["machine"]["cpu_count"]} CPUs, Python {result["machine"]["python"]}, NNI {result["machine"]["nni"]}, '
              f'torch {result["machine"]["torch"]}.', '']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=100)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error('--seeds must be at least 2 (a standard error needs two runs)')
    seeds = list(range(args.seeds))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    nb_runs = nb.run_benchmark(seeds, METHODS, progress=log, jobs=args.jobs)
    macro_runs = macro.run_benchmark(seeds, METHODS, progress=log, jobs=args.jobs)
    figs = figures(nb_runs, macro_runs)
    summary = nb.summarize(nb_runs)
    result = {
        'seeds': len(seeds), 'figures': figs, 'decision': decide(figs),
        'labels': {m: nb.METHODS[m][0] for m in METHODS}, 'configs': {m: nb.METHODS[m][2] for m in METHODS},
        'ms_per_query': {m: summary[m]['us_per_query_excl_lookup_median'] / 1e3 for m in METHODS},
        'machine': machine_info(), 'command': command_line('experiments/bench_tpe_decision.py', argv),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': time.perf_counter() - start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = render_markdown(result)
    (args.out / 'tpe_decision.md').write_text(text)
    (args.out / 'tpe_decision.json').write_text(json.dumps(result, indent=1) + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
