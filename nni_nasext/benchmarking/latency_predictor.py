"""The latency predictor (:mod:`nni_nasext.hardware.latency_predictor`) against measured latency, four spaces.

For each space, ``--fit`` + ``--networks`` random networks (seeded) are built and measured end to
end on this machine (inference, batch 1, one thread, median of 15 passes). The predictor profiles
the operations of every network it sees (each distinct operation once), fits its correction on
the first ``--fit`` networks, and is scored on the other ``--networks``: Spearman's rank
correlation and the mean relative error, with and without the correction. Reduced widths and
resolutions keep the ImageNet spaces quick on a CPU:

* ``nasbench201``: the NB201 network (N=5, C=16), 32x32;
* ``proxylessnas``: width 0.5, 10 classes, 96x96;
* ``mnasnet``: width 1.0, 10 classes, 128x128;
* ``ofa``: width 1.0, 10 classes, resolutions 128/160/192 (a decision: the network resizes its input).

    python experiments/bench_latency_predictor.py --networks 100 --fit 20
"""
from __future__ import annotations

import argparse
import datetime
import random
import time
from pathlib import Path

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results

SPACES = {
    'nasbench201': ({'num_cells': 5, 'channels': 16}, (1, 3, 32, 32)),
    'proxylessnas': ({'width_mult': 0.5, 'num_classes': 10}, (1, 3, 96, 96)),
    'mnasnet': ({'width_mult': 1.0, 'num_classes': 10}, (1, 3, 128, 128)),
    'ofa': ({'width_mult': 1.0, 'num_classes': 10, 'resolutions': (128, 160, 192)}, (1, 3, 192, 192)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--networks', type=int, default=100)
    ap.add_argument('--fit', type=int, default=20)
    ap.add_argument('--spaces', default=','.join(SPACES))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from nni_nasext import registry
    from nni_nasext.hardware.latency_predictor import LatencyPredictor
    from nni_nasext.space_spec import SpaceSpec
    torch.set_num_threads(1)
    t0 = time.time()
    rows = {}
    for name in args.spaces.split(','):
        kwargs, shape = SPACES[name]
        space = registry.build('space', name, **kwargs)
        spec = SpaceSpec.from_space(space)
        rng = random.Random(args.seed)
        predictor = LatencyPredictor(shape)
        models, measured, started = [], [], time.time()
        for i in range(args.fit + args.networks):
            torch.manual_seed(i)
            model = space.freeze(spec.random(rng)).eval()
            predictor.features(model)            # profile its operations first (as a search would)
            measured.append(predictor.measure(model))
            models.append(model)
        fit_models, test_models = models[:args.fit], models[args.fit:]
        raw = [predictor.features(m)[0] for m in test_models]
        predictor.fit(fit_models, measured[:args.fit])
        pred = [predictor.predict(m) for m in test_models]
        truth = np.asarray(measured[args.fit:])
        rows[name] = {
            'input': list(shape), 'space_args': {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
            'spearman': float(spearmanr(pred, truth).correlation),
            'spearman_raw_sum': float(spearmanr(raw, truth).correlation),
            'mre': float(np.mean(np.abs(np.asarray(pred) - truth) / truth)),
            'mre_raw_sum': float(np.mean(np.abs(np.asarray(raw) - truth) / truth)),
            'latency_ms_min': float(truth.min()), 'latency_ms_median': float(np.median(truth)),
            'latency_ms_max': float(truth.max()), 'operations_profiled': len(predictor.table),
            'coef': list(predictor.coef), 'seconds': time.time() - started,
            'measured': truth.tolist(), 'predicted': pred}
        r = rows[name]
        print(f'[latency] {name}: Spearman {r["spearman"]:.3f} (raw sum {r["spearman_raw_sum"]:.3f}), MRE {r["mre"]:.3f} '
              f'(raw {r["mre_raw_sum"]:.3f}), {r["operations_profiled"]} ops, latency {r["latency_ms_min"]:.2f}-'
              f'{r["latency_ms_max"]:.2f} ms, {r["seconds"]:.0f} s', flush=True)
    machine = machine_info()
    res = {'command': command_line('experiments/bench_latency_predictor.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'), 'runtime_s': time.time() - t0,
           'machine': f'{machine["processor"]}, {machine["cpu_count"]} cores, torch {machine["torch"]}, 1 thread',
           'rows': rows}
    md = render(res, args.networks, args.fit)
    write_results(args.out, 'latency_predictor', res, md)
    print(md)
    plot(rows, args.out / 'latency_predictor.png')
    return 0


def render(res, networks: int, fit: int) -> str:
    """The Markdown of a result (``networks`` test and ``fit`` fitting networks per space)."""
    lines = [f'Predicted against measured latency on {networks} random networks per space (batch 1, one thread, '
             f'this CPU); correction fitted on {fit} other networks:', '']
    lines += markdown_table(
        ['space', 'input', 'latency measured (min / median / max ms)', 'Spearman (goal ≥ 0.9)', 'mean relative error',
         'Spearman / MRE of the plain sum', 'operations profiled'],
        [[name, "x".join(str(v) for v in r["input"][1:]),
          f'{r["latency_ms_min"]:.2f} / {r["latency_ms_median"]:.2f} / {r["latency_ms_max"]:.2f}',
          f'**{r["spearman"]:.3f}**', f'{100 * r["mre"]:.1f} %',
          f'{r["spearman_raw_sum"]:.3f} / {100 * r["mre_raw_sum"]:.1f} %', r["operations_profiled"]]
         for name, r in res['rows'].items()])
    lines += ['', f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {res["machine"]}; {res["date"]}.', '']
    return '\n'.join(lines)


def plot(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(rows), figsize=(3.6 * len(rows), 3.4), squeeze=False)
    for ax, (name, r) in zip(axes.flat, rows.items()):
        ax.scatter(r['measured'], r['predicted'], s=8)
        lo, hi = min(r['measured'] + r['predicted']), max(r['measured'] + r['predicted'])
        ax.plot([lo, hi], [lo, hi], color='gray', lw=0.8)
        ax.set_title(f'{name}: Spearman {r["spearman"]:.3f}', fontsize=9)
        ax.set_xlabel('measured (ms)', fontsize=8)
        ax.set_ylabel('predicted (ms)', fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == '__main__':
    raise SystemExit(main())
