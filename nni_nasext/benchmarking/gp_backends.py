"""Would GPyTorch replace the hand-written GP of TransferGP? Both backends on the same posteriors.

Issue 15 asks where GPyTorch/BoTorch would replace the project's hand-written Gaussian process
and to do it where results hold. The only GP of the project is
:class:`nni_nasext.strategies.transfer.transfer_gp.SourcePriorGP` (about 20 lines of numpy: an
exponential Hamming kernel with *fixed* hyperparameters, chosen on the source datasets, and a
Bayesian linear prior mean; at most ``k`` = 10 observations). This script replays TransferGP's
leave-one-dataset-out runs on NAS-Bench-201 and, at every ask, computes the posterior over the
free pool cells twice: with ``SourcePriorGP.posterior`` (numpy) and with a GPyTorch ``ExactGP``
holding the same kernel (a ``gpytorch.kernels.Kernel`` on the op codes), the same prior mean (a
``gpytorch.means.Mean``) and the same fixed noise (``GaussianLikelihood``). It reports the largest
difference of the posterior means and standard deviations, whether expected improvement picks
the same cell, and the time of one posterior with each backend.

BoTorch's ``SingleTaskGP`` would fit the hyperparameters by marginal likelihood on the <= 10
target results, a different model from the one whose settings are chosen on the sources, so it
is not a drop-in replacement and is not measured here.

Run from the repository root (needs ``pip install gpytorch``, which is not a dependency of the
project)::

    NASEXT_DATA=../shared/data python experiments/bench_gp_backends.py

Writes ``gp_backends.md`` (also printed) and ``gp_backends.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy.stats import norm

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results
TARGETS = ('cifar10-valid', 'cifar100', 'ImageNet16-120')


def gpytorch_posterior(model, idx: Sequence[int], values: Sequence[float], at: np.ndarray):
    """Mean and std of the standardised target at ``at``: SourcePriorGP's model in GPyTorch."""
    import gpytorch
    import torch

    Z, codes = model.Z, model.codes
    y = np.asarray(values, dtype=float)
    ys = (y - y.mean()) / y.std() if len(y) > 1 and y.std() > 0 else np.zeros(len(y))
    wb = torch.as_tensor(model.prior_mean_weights(idx, ys), dtype=torch.float64)
    feats = torch.as_tensor(np.c_[np.ones(len(Z)), Z], dtype=torch.float64)

    class Hamming(gpytorch.kernels.Kernel):
        def forward(self, x1, x2, diag=False, **params):
            d = (x1[..., :, None, :6] != x2[..., None, :, :6]).sum(-1).to(torch.float64)
            k = torch.exp(-d / model.length_scale)
            return k.diagonal(dim1=-2, dim2=-1) if diag else k

    class SourceMean(gpytorch.means.Mean):
        def forward(self, x):
            return feats[x[..., 6].long()] @ wb

    class GP(gpytorch.models.ExactGP):
        def __init__(self, x, y, likelihood):
            super().__init__(x, y, likelihood)
            self.mean_module, self.covar_module = SourceMean(), Hamming()

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    def inputs(rows):
        rows = np.asarray(rows)
        return torch.as_tensor(np.c_[codes[rows], rows], dtype=torch.float64)

    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    likelihood.noise = model.noise
    gp = GP(inputs(idx), torch.as_tensor(ys, dtype=torch.float64), likelihood).double()
    gp.eval()
    likelihood.eval()
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), gpytorch.settings.max_cholesky_size(10_000):
        f = gp(inputs(at))
        mean, var = f.mean.numpy(), f.variance.clamp_min(1e-12).numpy()
    return mean, np.sqrt(var), ys


def expected_improvement(mu, sd, ys):
    g = (mu - ys.max()) / sd
    return sd * (g * norm.cdf(g) + norm.pdf(g))


def replay(target: str, k: int, repeats: int) -> dict:
    """TransferGP's run on ``target`` (settings chosen on the sources), both backends at every ask."""
    import torch
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.strategies.transfer.transfer_gp import TransferGP
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    torch.set_num_threads(1)
    table = NasBench201Table()
    searcher = TransferGP(target=target, seed=0).configure(nb201_spec())
    rows = []
    for step in range(k):
        sample = searcher.ask()
        searcher.tell(sample, table.query(sample, target, 200).accuracy)
        idx, values = searcher._observed()
        free = np.array([i for i, key in enumerate(searcher._pool_keys) if key not in searcher._asked])
        t0 = time.perf_counter()
        for _ in range(repeats):
            mu_a, sd_a, ys = searcher.model.posterior(idx, values, free)
        t_np = (time.perf_counter() - t0) / repeats
        t0 = time.perf_counter()
        for _ in range(repeats):
            mu_b, sd_b, _ = gpytorch_posterior(searcher.model, idx, values, free)
        t_gp = (time.perf_counter() - t0) / repeats
        pick_a = int(np.argmax(expected_improvement(mu_a, sd_a, ys)))
        pick_b = int(np.argmax(expected_improvement(mu_b, sd_b, ys)))
        rows.append({'observations': len(idx), 'candidates': len(free),
                     'max_abs_mean_diff': float(np.abs(mu_a - mu_b).max()),
                     'max_abs_std_diff': float(np.abs(sd_a - sd_b).max()),
                     'same_choice': pick_a == pick_b, 'numpy_ms': 1e3 * t_np, 'gpytorch_ms': 1e3 * t_gp})
    return {'target': target, 'settings': {'pool': searcher.pool, **searcher.gp_args}, 'steps': rows}


def render_markdown(result: dict) -> str:
    lines = ['## TransferGP\'s Gaussian process: numpy (ours) against GPyTorch, same model', '',
             f'TransferGP\'s leave-one-dataset-out runs on NAS-Bench-201 ({result["k"]} target evaluations, settings '
             'chosen on the sources); at every ask the posterior over the free pool cells with both backends '
             f'(times: mean of {result["repeats"]} calls, one thread).', '']
    rows = []
    for r in result['runs']:
        st = r['steps']
        t_np = float(np.mean([s['numpy_ms'] for s in st]))
        t_gp = float(np.mean([s['gpytorch_ms'] for s in st]))
        settings = ', '.join(f'{k}={v:g}' for k, v in r['settings'].items())
        rows.append([r['target'], settings, len(st), f'{max(s["max_abs_mean_diff"] for s in st):.1e}',
                     f'{max(s["max_abs_std_diff"] for s in st):.1e}', f'{sum(s["same_choice"] for s in st)}/{len(st)}',
                     f'{t_np:.2f}', f'{t_gp:.2f}', f'{t_gp / t_np:.1f}x'])
    lines += markdown_table(['target', 'settings', 'asks', 'max abs diff of the mean', 'max abs diff of the std',
                             'same EI choice', 'numpy ms / posterior', 'GPyTorch ms / posterior', 'ratio'], rows)
    lines += ['', f'**Decision:** {result["decision"]}', '',
              f'Command: `{result["command"]}`  ',
              f'Date: {result["date"]}; machine: {result["machine"]["platform"]}, {result["machine"]["cpu_count"]} CPUs, '
              f'Python {result["machine"]["python"]}, torch {result["machine"]["torch"]}, gpytorch {result["gpytorch"]}.', '']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--k', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = parser.parse_args(argv)
    import gpytorch
    runs = [replay(t, args.k, args.repeats) for t in TARGETS]
    steps = [s for r in runs for s in r['steps']]
    same = all(s['same_choice'] for s in steps)
    close = max(max(s['max_abs_mean_diff'], s['max_abs_std_diff']) for s in steps) < 1e-6
    ratio = float(np.mean([s['gpytorch_ms'] for s in steps]) / np.mean([s['numpy_ms'] for s in steps]))
    if not (close and same):
        decision = 'the backends disagree (see the table): the numpy GP stays until that is understood.'
    elif ratio > 1:
        decision = (f'the two backends give the same posterior (every difference < 1e-6) and the same choices; '
                    f'GPyTorch takes {ratio:.1f}x the time per posterior and would add gpytorch and linear_operator '
                    'to the dependencies to replace about 20 lines of numpy whose kernel and mean would still be '
                    'ours (GPyTorch has no Hamming kernel). The numpy GP stays.')
    else:
        decision = (f'the two backends give the same posterior and the same choices, and GPyTorch is as fast '
                    f'({ratio:.1f}x): replace the numpy GP.')
    result = {'k': args.k, 'repeats': args.repeats, 'runs': runs, 'decision': decision,
              'gpytorch': gpytorch.__version__, 'machine': machine_info(),
              'command': command_line('experiments/bench_gp_backends.py', argv),
              'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    text = render_markdown(result)
    write_results(args.out, 'gp_backends', result, text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
