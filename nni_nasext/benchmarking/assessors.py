"""Early-stopping assessors side by side: ours against NNI 3.0's built-ins, on real curves.

Run from the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_assessors.py            # replay (records once if absent)
    NASEXT_DATA=../shared/data python experiments/bench_assessors.py --record   # re-record the curves, then replay

(a) Recording. ``--trials`` (24) architectures of :class:`~nni_nasext.search_spaces.QuickstartSpace`
(the NB201 cell at N=1, C=8, 1 input channel) are drawn uniformly with ``--seed`` (0) and each
is trained with :class:`~nni_nasext.evaluators.ImageClassification` on Fashion-MNIST for
``--epochs`` (10) epochs: 2,000 training images (``limit=2000``), SGD/Nesterov lr 0.05 with a
cosine schedule, batch 64, seed 0, one CPU thread. The datasets module does not resize, so the
images stay 28x28 (the NB201 skeleton ends in global average pooling, so the space accepts
them). To keep the recording short, the validation loader is replaced by a fixed, seeded subset
of 1,000 of the 12,000 held-out training images (the same subset for every model): about 3 s
per epoch on a free core, so some 12 minutes for 24 x 10 epochs (the recording of the committed
curves took longer, on a 2-core machine shared with other jobs; its wall time is in the file). Every curve (per-epoch validation accuracy, as the trials report it through
``nni.report_intermediate_result``) is saved with the command and settings to
``experiments/results/learning_curves_fmnist.json``, our own generated data; later runs reuse
the file (``--record`` records again).

(b) Replay. The recorded curves are fed through :func:`nni_nasext.assessors.replay` (trials
arrive one after another, each trial's epochs are assessed as they come, trials that ran to
the end become references, stopped ones do not) in ``--orders`` (200) random arrival orders,
through four assessors built fresh for every order:

* ``NasextMedianStop`` -- :class:`nni_nasext.assessors.MedianStop` (Golovin et al., KDD 2017);
* ``NasextCurveExtrapolation`` -- :class:`nni_nasext.assessors.CurveExtrapolation`
  (Domhan, Springenberg & Hutter, IJCAI 2015);
* NNI's ``MedianstopAssessor`` and ``CurvefittingAssessor`` with the same start step (and, for
  curve fitting, ``epoch_num``; NNI's own default ``threshold=0.95``).

Measured per assessor, averaged over orders: the share of all epochs saved, whether the trial
with the best final accuracy survives (runs to the end), the regret (best final accuracy among
non-stopped trials vs the overall best final accuracy), the false-stop rate (share of stopped
trials whose final accuracy would have been in the top quarter of all trials), and the mean
assessment time. Writes ``assessors.md`` (also printed), ``assessors.json`` and
``assessors.png`` under ``--out`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from nni_nasext.benchmarking import EXPERIMENTS, markdown_table, write_results


# ----------------------------------------------------------------------------- (a) recording

#: curve sets: dataset, training images (None: all), validation subset (None: all), learning rate
CURVE_SETS = {
    'fmnist': dict(dataset='fashion-mnist', limit=2000, val_size=1000, learning_rate=0.05, image_size=28),
    'digits': dict(dataset='digits', limit=None, val_size=None, learning_rate=0.01, image_size=8),
}


def record(args, name: str) -> dict:
    import warnings
    warnings.filterwarnings('ignore')
    import torch
    from torch.utils.data import DataLoader, Subset

    from nni_nasext.evaluators import ImageClassification
    from nni_nasext.search_spaces import QuickstartSpace
    from nni_nasext.space_spec import SpaceSpec

    torch.set_num_threads(1)
    logging.getLogger('nni').setLevel(logging.WARNING)
    space = QuickstartSpace()
    spec = SpaceSpec.from_space(space)
    rng = random.Random(args.seed)
    preset = CURVE_SETS[name]
    settings = dict(dataset=preset['dataset'], max_epochs=args.epochs, limit=preset['limit'], batch_size=64,
                    learning_rate=preset['learning_rate'], optimizer='sgd', seed=0, accelerator='cpu')
    evaluator = ImageClassification(**settings)
    train, val = evaluator.dataloaders()
    if preset['val_size'] is not None:
        pick = torch.randperm(len(val.dataset), generator=torch.Generator().manual_seed(0))[:preset['val_size']]
        evaluator._loaders = (train, DataLoader(Subset(val.dataset, sorted(pick.tolist())), batch_size=256))
    curves = []
    start = time.time()
    for i in range(args.trials):
        sample = {label: rng.choice(list(dim.values)) for label, dim in spec.dims.items()}
        t0 = time.time()
        model = space.freeze(sample)
        _REPORTED.clear()
        evaluator.evaluate(model)
        acc = list(_REPORTED)  # what the trial reported through nni.report_intermediate_result
        curves.append({'sample': sample, 'curve': acc, 'seconds': round(time.time() - t0, 2)})
        print(f'[record] {i + 1}/{args.trials} {time.time() - start:6.0f}s final {acc[-1]:.4f} '
              f'curve {" ".join(f"{a:.3f}" for a in acc)}', flush=True)
    return {
        'what': 'Per-epoch validation accuracy of uniformly sampled QuickstartSpace architectures '
                '(nni-nasext generated data)',
        'command': f'NASEXT_DATA=../shared/data python experiments/bench_assessors.py --record --sets {name} '
                   f'--trials {args.trials} --epochs {args.epochs} --seed {args.seed}',
        'settings': {**settings, 'space': 'quickstart', 'sample_seed': args.seed, 'val_subset': preset['val_size'],
                     'val_subset_seed': 0, 'image_size': preset['image_size'], 'torch_threads': 1},
        'seconds': round(time.time() - start, 1),
        'trials': curves,
    }


_REPORTED: List[float] = []


def _capture_curves():
    """Record every value the evaluator passes to ``nni.report_intermediate_result``
    (outside a trial NNI only logs them)."""
    import nni
    original = nni.report_intermediate_result

    def report(value):
        _REPORTED.append(float(value))
        return original(value)
    nni.report_intermediate_result = report


# ----------------------------------------------------------------------------- (b) replay

def _memoise_nni_curve_model() -> None:
    """NNI's ``CurveModel.predict`` runs a fresh MCMC (~1 s) at every assessment; over hundreds of
    arrival orders that would take hours. Its prediction depends only on the curve prefix (and
    numpy's global RNG), so it is computed once per (epoch_num, prefix), with numpy seeded 0,
    and reused in every order (our CurveExtrapolation caches its fits per prefix the same way)."""
    from nni.algorithms.hpo.curvefitting_assessor import curvefitting_assessor as mod
    if getattr(mod.CurveModel, '_nasext_memo', False):
        return
    base, cache = mod.CurveModel, {}

    class MemoCurveModel(base):
        _nasext_memo = True

        def predict(self, trial_history):
            key = (self.target_pos, tuple(trial_history))
            if key not in cache:
                state = np.random.get_state()
                np.random.seed(0)
                try:
                    cache[key] = base.predict(self, trial_history)
                finally:
                    np.random.set_state(state)
            return cache[key]
    mod.CurveModel = MemoCurveModel


def make_assessors(epochs: int, start_step: int) -> Dict[str, callable]:
    from nni.algorithms.hpo.curvefitting_assessor import CurvefittingAssessor
    from nni.algorithms.hpo.medianstop_assessor import MedianstopAssessor

    from nni_nasext.assessors import CurveExtrapolation, MedianStop
    return {
        'NasextMedianStop': lambda: MedianStop(start_step=start_step),
        'NasextCurveExtrapolation': lambda: CurveExtrapolation(epoch_num=epochs, start_step=start_step),
        'NNI MedianstopAssessor': lambda: MedianstopAssessor(start_step=start_step),
        'NNI CurvefittingAssessor': lambda: CurvefittingAssessor(epoch_num=epochs, start_step=start_step),
    }


def evaluate(curves: List[List[float]], stops: Dict[int, int], top_quarter: set) -> dict:
    finals = [c[-1] for c in curves]
    total = sum(len(c) for c in curves)
    used = sum(stops.get(i, len(c)) for i, c in enumerate(curves))
    kept = [finals[i] for i in range(len(curves)) if i not in stops]
    best = int(np.argmax(finals))
    return {'saved': 1 - used / total,
            'best_survives': best not in stops,
            'regret': max(finals) - (max(kept) if kept else 0.0),
            'stopped': len(stops),
            'false_stop': (sum(i in top_quarter for i in stops) / len(stops)) if stops else 0.0}


def run_replay(data: dict, orders: int, start_step: int, seed: int) -> dict:
    from nni_nasext.assessors import replay
    curves = [t['curve'] for t in data['trials']]
    epochs = len(curves[0])
    finals = np.array([c[-1] for c in curves])
    top_quarter = set(np.argsort(-finals)[:max(1, len(curves) // 4)].tolist())
    factories = make_assessors(epochs, start_step)
    _memoise_nni_curve_model()
    rng = random.Random(seed)
    order_list = [rng.sample(range(len(curves)), len(curves)) for _ in range(orders)]
    per: Dict[str, List[dict]] = {name: [] for name in factories}
    stop_counts: Dict[str, List[int]] = {name: [0] * len(curves) for name in factories}
    seconds: Dict[str, float] = {name: 0. for name in factories}
    assessments: Dict[str, int] = {name: 0 for name in factories}
    logging.getLogger('curvefitting_Assessor').setLevel(logging.ERROR)
    logging.getLogger('nni.algorithms.hpo.curvefitting_assessor.model_factory').setLevel(logging.ERROR)
    for name, factory in factories.items():
        for k, order in enumerate(order_list):
            t0 = time.perf_counter()
            stops = replay(factory(), curves, order)
            seconds[name] += time.perf_counter() - t0
            assessments[name] += sum(stops.get(i, len(c)) for i, c in enumerate(curves))
            per[name].append(evaluate(curves, stops, top_quarter))
            for i in stops:
                stop_counts[name][i] += 1
        print(f'[replay] {name}: {orders} orders in {seconds[name]:.1f}s', flush=True)
    summary = {}
    for name, rows in per.items():
        summary[name] = {
            'epochs_saved': statistics.mean(r['saved'] for r in rows),
            'best_survives': statistics.mean(float(r['best_survives']) for r in rows),
            'regret_mean': statistics.mean(r['regret'] for r in rows),
            'regret_max': max(r['regret'] for r in rows),
            'trials_stopped': statistics.mean(r['stopped'] for r in rows),
            'false_stop_rate': statistics.mean(r['false_stop'] for r in rows),
            'ms_per_assessment': 1000 * seconds[name] / max(assessments[name], 1),
            'stop_frequency': [c / orders for c in stop_counts[name]],
        }
    return {'orders': orders, 'start_step': start_step, 'seed': seed, 'epochs': epochs, 'trials': len(curves),
            'top_quarter': sorted(top_quarter), 'summary': summary}


def write_report(sets: Dict[str, dict], results: Dict[str, dict], name: str) -> str:
    any_result = next(iter(results.values()))
    lines = [
        '# Early-stopping assessors on recorded learning curves',
        '',
        'Command: `NASEXT_DATA=../shared/data python experiments/bench_assessors.py` (replays the cached curves; '
        '`--record` records them again, the command of each set is below).',
        '',
        f'Each assessor replays each set of curves in the same {any_result["orders"]} random arrival orders '
        '(sequential: one trial at a time; a trial that runs to the end becomes a reference, a stopped one does not), '
        f'start step {any_result["start_step"]}; the curve methods predict the last epoch.',
    ]
    for set_name, result in results.items():
        data, s = sets[set_name], sets[set_name]['settings']
        finals = sorted(t['curve'][-1] for t in data['trials'])
        lines += [
            '',
            f'## {set_name}: {s["dataset"]}',
            '',
            f'{result["trials"]} uniformly sampled QuickstartSpace architectures trained on {s["dataset"]} '
            f'({s["limit"] or "all"} training images, {s["image_size"]}x{s["image_size"]}, '
            f'{s["val_subset"] or "all"} validation images, lr {s["learning_rate"]}) for {result["epochs"]} epochs; '
            f'final validation accuracies {finals[0]:.3f} .. {finals[-1]:.3f} (median {statistics.median(finals):.3f}). '
            f'Recorded with `{data["command"]}` in {data["seconds"]:.0f} s (`{result["curves_file"]}`).',
            '',
        ]
        lines += markdown_table(
            ['assessor', 'epochs saved', 'best trial survives', 'regret mean', 'regret max', 'trials stopped',
             'false-stop rate', 'ms / assessment'],
            ([aname, f'{100 * r["epochs_saved"]:.1f} %', f'{100 * r["best_survives"]:.1f} %', f'{r["regret_mean"]:.4f}',
              f'{r["regret_max"]:.4f}', f'{r["trials_stopped"]:.1f} / {result["trials"]}',
              f'{100 * r["false_stop_rate"]:.1f} %', f'{r["ms_per_assessment"]:.2f}']
             for aname, r in result['summary'].items()))
    lines += [
        '',
        'Epochs saved: share of all trial-epochs not trained because of a stop. Regret: best final accuracy of '
        'the trials that were not stopped minus the best final accuracy overall (0 when the best trial survives). '
        'False-stop rate: share of the stopped trials whose final accuracy is in the top quarter of all trials. '
        'Settings: ours `MedianStop(start_step)`, `CurveExtrapolation(epoch_num, start_step, threshold=0.05, gap=1)`; '
        'NNI `MedianstopAssessor(start_step)`, `CurvefittingAssessor(epoch_num, start_step, threshold=0.95, gap=1)`. '
        "NNI's curve model (MCMC, about 1 s per call) is computed once per curve prefix with numpy seeded 0 and "
        'reused in every order; ours is deterministic and caches its fits per prefix too. '
        'ms / assessment is therefore the amortised time over all orders, not the cost of one fresh prediction.',
        '',
        f'![curves and savings]({name}.png)',
    ]
    return '\n'.join(lines) + '\n'


def plot(sets: Dict[str, dict], results: Dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = list(results)
    names = list(results[rows[0]]['summary'])
    fig, axes = plt.subplots(len(rows), len(names) + 1, figsize=(4.0 * (len(names) + 1), 3.6 * len(rows)),
                             squeeze=False)
    for row, set_name in zip(axes, rows):
        result, data = results[set_name], sets[set_name]
        curves = [t['curve'] for t in data['trials']]
        x = np.arange(1, result['epochs'] + 1)
        for ax, name in zip(row, names):
            freq = result['summary'][name]['stop_frequency']
            for c, f in sorted(zip(curves, freq), key=lambda cf: cf[1]):
                ax.plot(x, c, color=plt.cm.coolwarm(f), lw=1.1)
            ax.set_title(f'{set_name}: {name}', fontsize=9)
            ax.set_xlabel('epoch')
        row[0].set_ylabel('val. accuracy (red: stopped in most orders)', fontsize=8)
        ax = row[-1]
        saved = [100 * result['summary'][n]['epochs_saved'] for n in names]
        regret = [100 * result['summary'][n]['regret_mean'] for n in names]
        pos = np.arange(len(names))
        ax.bar(pos - 0.2, saved, 0.4, label='epochs saved (%)')
        ax.bar(pos + 0.2, regret, 0.4, label='mean regret (acc. points)')
        ax.set_xticks(pos)
        ax.set_xticklabels([n.replace('Nasext', 'ours\n').replace('NNI ', 'NNI\n').replace('Assessor', '')
                            for n in names], fontsize=7)
        ax.legend(fontsize=7)
        ax.set_title(f'{set_name}: savings vs regret', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--record', action='store_true', help='record the learning curves again')
    p.add_argument('--sets', default='fmnist,digits', help=f'comma-separated curve sets of {sorted(CURVE_SETS)}')
    p.add_argument('--trials', type=int, default=24)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--orders', type=int, default=200)
    p.add_argument('--start-step', type=int, default=3)
    p.add_argument('--record-only', action='store_true')
    p.add_argument('--out', default=str(EXPERIMENTS / 'results'))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets, results = {}, {}
    for name in args.sets.split(','):
        if name not in CURVE_SETS:
            p.error(f'unknown curve set {name!r}; known: {sorted(CURVE_SETS)}')
        curves_path = out / f'learning_curves_{name}.json'
        if args.record or not curves_path.exists():
            _capture_curves()
            data = record(args, name)
            curves_path.write_text(json.dumps(data, indent=1))
            print(f'[record] wrote {curves_path}')
        if args.record_only:
            continue
        sets[name] = json.loads(curves_path.read_text())
        print(f'[replay] {name}', flush=True)
        results[name] = run_replay(sets[name], args.orders, args.start_step, args.seed)
        results[name]['curves_file'] = curves_path.name
    if args.record_only:
        return 0
    report = write_report(sets, results, 'assessors')
    write_results(out, 'assessors', results, report)
    plot(sets, results, out / 'assessors.png')
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
