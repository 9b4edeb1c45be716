"""Zero-shot and proxy-assisted searches on NAS-Bench-201, beside REA and the optimal cell.

Every method picks one cell; the table reports that cell's 200-epoch validation accuracy on
the three NB201 datasets (mean ± std over seeds) and what the search cost: seconds of proxy
computation on this CPU (one thread) and *simulated* seconds of 12-epoch training (NB201's
recorded training time) where cells are trained.

Two groups of methods:

*Cached scores* (``--cached-seeds`` seeds, default 100): the per-cell proxy scores of
``results/proxies_nb201.json`` (1,000 uniformly drawn cells, scored once by
``bench_proxies_nb201.py``; deterministic functions of the cell) stand in for live scoring;
each seed draws ``--n`` of those cells. The proxy time is ``--n`` x the measured seconds per
network.

- NASWOT-style (Mellor et al., ICML 2021, Section 5): the best-scored of the N cells, no
  training, for each proxy; the *combined* proxy is the ridge combination
  (:class:`~nni_nasext.evaluators.proxy_combination.ProxyCombination`) fitted on the other
  1,000 - N cells' cifar10-valid accuracies (never on the drawn ones).
- Warm start, few trained: train (look up at 12 epochs) the top ``--top-k`` of the N cells by
  a proxy, keep the best at 12 epochs.
- Warm start + REA (:class:`~nni_nasext.strategies.zero_shot.zen_nas.ProxyWarmStart`): the top ``--top-k``
  by a proxy are trained first, then regularized evolution (the NB201 paper's settings)
  continues until 12,000 simulated seconds are spent; beside it, plain REA in the same loop and
  seeds. The answer is the best 12-epoch reward, as in the sample-based table.

*Live scoring* (``--seeds`` seeds, default 5; networks built and scored during the search):

- Zen-NAS (:class:`~nni_nasext.strategies.zero_shot.zen_nas.ZenNAS`, Lin et al., ICCV 2021): evolution
  maximising the Zen-score for ``--evals`` evaluations under a parameter budget
  (``--max-params`` M, the NB201 table's parameter count; 84 % of the cells fit 0.6 M).
- REA with a proxy as its reward: regularized evolution maximising synflow for ``--evals``
  evaluations (any sample-based strategy can use a proxy as its reward this way).
- TE-NAS (:class:`~nni_nasext.strategies.zero_shot.te_nas.TENAS`, Chen et al., ICLR 2021): pruning of
  the NB201 supernet by NTK condition number and linear regions, down to one op per edge.

Inputs of the data-dependent proxies: 64 Fashion-MNIST images resized to 3x32x32 (CIFAR is
not on these machines).

    NASEXT_DATA=../shared/data python experiments/bench_zero_shot_search.py --jobs 2

Writes ``zero_shot_search.{md,json}`` under ``--out`` (default experiments/results).
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings('ignore', category=RuntimeWarning)

from nni_nasext.benchmarks import NB201_DATASETS, NasBench201Table  # noqa: E402
from nni_nasext.benchmarking import run_tasks  # noqa: E402
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS  # noqa: E402

HERE = EXPERIMENTS
BUDGET_S = 12_000.0
SEARCH = 'cifar10-valid'
NASWOT_PROXIES = ['naswot', 'synflow', 'jacob_cov', 'zen', 'te_nas_ntk', 'params', 'combined']
WARM_PROXIES = ['synflow', 'combined']


def cell_of(cellstr: str) -> dict:
    """The sample dict of an NB201 cell string."""
    ops = [tok.split('~')[0] for part in cellstr.split('+') for tok in part.strip('|').split('|') if tok]
    return dict(zip(EDGE_LABELS, ops))  # the string lists the edges in the order of EDGE_LABELS


def accs_of(table, cell) -> dict:
    return {ds: table.query(cell, ds, 200).accuracy for ds in NB201_DATASETS}


# ----------------------------------------------------------------------------- cached group

class Cache:
    def __init__(self, path: Path):
        from nni_nasext.evaluators.proxy_combination import features
        from nni_nasext.benchmarking.proxy_combination import CANDIDATES, load_raw
        data, raw, accs = load_raw(path)
        self.data, self.accs, self.candidates = data, accs, CANDIDATES
        self.F = features(raw, CANDIDATES)
        self.cellstr = data['cellstr']
        self.seconds = {p: e['seconds_per_network'] for p, e in data['proxies'].items()}
        self.seconds['combined'] = sum(self.seconds[p] for p in CANDIDATES)
        self.n = len(self.cellstr)

    def scores(self, proxy: str, idx: np.ndarray) -> np.ndarray:
        """Larger-is-better scores of the cells ``idx`` (non-finite -> -inf)."""
        from nni_nasext.evaluators.proxy_combination import ProxyCombination
        if proxy == 'combined':
            rest = np.setdiff1d(np.arange(self.n), idx)
            model = ProxyCombination(self.candidates).fit(self.F[rest], self.accs[SEARCH][rest])
            s = model.predict(self.F[idx])
        else:
            s = self.F[idx, self.candidates.index(proxy)]
        return np.where(np.isfinite(s), s, -np.inf)


def run_cached(cache: Cache, seed: int, n: int, top_k: int) -> dict:
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    from nni_nasext.strategies.searchers.regularized_evolution import RegularizedEvolution
    from nni_nasext.strategies.zero_shot.zen_nas import ProxyWarmStart
    table = NasBench201Table()
    idx = np.random.default_rng(seed).choice(cache.n, size=n, replace=False)
    out = {}
    scores = {p: cache.scores(p, idx) for p in set(NASWOT_PROXIES) | set(WARM_PROXIES)}
    for p in NASWOT_PROXIES:
        best = cache.cellstr[idx[int(np.argmax(scores[p]))]]
        out[f'best of {n} by {p}'] = {'cell': best, 'val_acc_200': accs_of(table, best),
                                      'proxy_s': n * cache.seconds[p], 'train_s': 0.0}
    for p in WARM_PROXIES:
        top = [cache.cellstr[idx[j]] for j in np.argsort(-scores[p], kind='stable')[:top_k]]
        recs = [table.query(c, SEARCH, 12) for c in top]
        best = max(recs, key=lambda r: r.accuracy).cellstr
        out[f'top {top_k} of {n} by {p}, trained 12 epochs'] = {
            'cell': best, 'val_acc_200': accs_of(table, best), 'proxy_s': n * cache.seconds[p],
            'train_s': float(sum(r.cost for r in recs))}
    spec = SpaceSpec.from_space(NasBench201Space())
    for p in ['none'] + WARM_PROXIES:
        if p == 'none':
            searcher, name, proxy_s = RegularizedEvolution.nb201_preset(seed=seed), 'REA (same loop and seeds)', 0.0
        else:
            lookup = {cache.cellstr[j]: float(s) for j, s in zip(idx, scores[p])}
            cands = [cell_of(cache.cellstr[j]) for j in idx]
            searcher = ProxyWarmStart(scorer=lambda c: lookup[table.query(c, SEARCH, 200).cellstr], candidates=cands,
                                      top_k=top_k, then='regularized_evolution',
                                      then_args={'population_size': 10, 'sample_size': 3}, verbose=False, seed=seed)
            name, proxy_s = f'top {top_k} of {n} by {p} first, then REA', n * cache.seconds[p]
        searcher.configure(spec)
        spent, best = proxy_s, None
        while spent < BUDGET_S:
            cell = searcher.ask()
            rec = table.query(cell, SEARCH, 12)
            spent += rec.cost
            searcher.tell(cell, rec.accuracy)
            if best is None or rec.accuracy > best.accuracy:
                best = rec
        out[name] = {'cell': best.cellstr, 'val_acc_200': accs_of(table, best.cellstr), 'proxy_s': proxy_s,
                     'train_s': spent - proxy_s, 'queries': len(searcher.history)}
    return out


# ----------------------------------------------------------------------------- live group

def _proxy(name: str, seed: int):
    from nni_nasext.evaluators.proxies import ZeroCostProxy
    return ZeroCostProxy(name, dataset='fashion-mnist', input_size=(3, 32, 32), seed=seed)


def run_live(method: str, seed: int, evals: int, max_params: float) -> dict:
    import torch
    torch.set_num_threads(1)
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    table = NasBench201Table()
    space = NasBench201Space()
    # the evaluators' batches (dataset loading) are prepared before the clock starts
    evaluator = _proxy({'Zen-NAS': 'zen', 'REA+synflow': 'synflow'}.get(method, 'naswot'), seed)
    x, _ = evaluator.batch()
    start = time.perf_counter()
    if method.startswith('TE-NAS'):
        # TE-NAS over the generic supernet (nni_nasext.strategies.zero_shot.te_nas): the NTK of the N=1, C=16
        # NB201 supernet on 16 real training images at 32x32x3, the linear regions of a thin (N=1, C=1)
        # supernet over 1,000 Gaussian 1x3x3 inputs, as the authors' NB201 setting
        from nni_nasext.evaluators.classification import ImageClassification
        from nni_nasext.strategies.oneshot import search as oneshot_search
        data = ImageClassification('fashion-mnist', batch_size=16, image_size=32, in_channels=3, limit=2000, seed=seed)
        result = oneshot_search(NasBench201Space(num_cells=1, channels=16), data, 'te_nas', verbose=False,
                                ntk_batch=16, lr_samples=1000, lr_input_size=(1, 3, 3),
                                lr_space=NasBench201Space(num_cells=1, channels=1, in_channels=1),
                                exclude_none=(method == 'TE-NAS-no-none'))
        cell, queries = result.sample, None
    else:
        from nni_nasext.strategies.searchers.regularized_evolution import RegularizedEvolution
        from nni_nasext.strategies.zero_shot.zen_nas import ZenNAS
        if method == 'Zen-NAS':
            searcher = ZenNAS(population_size=16, seed=seed,
                              constraint=lambda c: table.query(c, SEARCH, 200).params <= max_params)
        else:  # REA with synflow as its reward
            searcher = RegularizedEvolution.nb201_preset(seed=seed)
        searcher.configure(SpaceSpec.from_space(space))
        for _ in range(evals):
            cell = searcher.ask()
            searcher.tell(cell, evaluator.score(space.freeze(cell)))
        cell, queries = searcher.best()['sample'], evals
    rec = table.query(cell, SEARCH, 200)
    return {'seed': seed, 'cell': rec.cellstr, 'params': rec.params, 'val_acc_200': accs_of(table, cell),
            'proxy_s': time.perf_counter() - start, 'train_s': 0.0, 'queries': queries}


LIVE = {'Zen-NAS': 'Zen-NAS: evolution maximising the Zen-score, params <= {max_params} M, {evals} networks scored',
        'REA+synflow': 'REA with synflow as its reward, {evals} networks scored',
        'TE-NAS': 'TE-NAS: supernet pruning by NTK condition number + linear regions (N=1 supernet, 5 ops)',
        'TE-NAS-no-none': 'TE-NAS as in the authors\' code: none excluded from the start (4 ops, 3 rounds)'}


def _task(task):
    kind, args = task
    import torch
    torch.set_num_threads(1)
    if kind == 'cached':
        return kind, args, run_cached(*args)
    return kind, args, run_live(*args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scores', type=Path, default=HERE / 'results' / 'proxies_nb201.json')
    parser.add_argument('--cached-seeds', type=int, default=100)
    parser.add_argument('--n', type=int, default=100, help='cells scored per seed (cached group)')
    parser.add_argument('--top-k', type=int, default=5)
    parser.add_argument('--seeds', type=int, default=5, help='seeds of the live searches')
    parser.add_argument('--evals', type=int, default=100, help='networks scored by Zen-NAS and REA+synflow')
    parser.add_argument('--max-params', type=float, default=0.6)
    parser.add_argument('--live', nargs='*', default=list(LIVE), choices=list(LIVE))
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    args = parser.parse_args(argv)
    start = time.time()
    table = NasBench201Table()
    cache = Cache(args.scores)
    tasks = [('live', (m, s, args.evals, args.max_params)) for m in args.live for s in range(args.seeds)]
    tasks += [('cached', (cache, s, args.n, args.top_k)) for s in range(args.cached_seeds)]
    runs: dict = {}
    descriptions = {}

    def collect(kind, targs, res):
        if kind == 'cached':
            for name, r in res.items():
                runs.setdefault(name, []).append({'seed': targs[1], **r})
        else:
            name = LIVE[targs[0]].format(max_params=args.max_params, evals=args.evals)
            descriptions[targs[0]] = name
            runs.setdefault(name, []).append(res)
            print(f'{targs[0]} seed {targs[1]}: {res["val_acc_200"][SEARCH]:.2f} in {res["proxy_s"]:.0f} s',
                  file=sys.stderr, flush=True)

    run_tasks(_task, tasks, args.jobs, on_result=lambda r: collect(*r))
    summary = {}
    for name, rs in runs.items():
        accs = {ds: np.array([r['val_acc_200'][ds] for r in rs]) for ds in NB201_DATASETS}
        summary[name] = {ds: {'mean': float(a.mean()), 'std': float(a.std(ddof=1)) if len(a) > 1 else 0.}
                         for ds, a in accs.items()}
        summary[name].update(seeds=len(rs), proxy_s=float(np.mean([r['proxy_s'] for r in rs])),
                             train_s=float(np.mean([r['train_s'] for r in rs])))
    sample_based = HERE / 'results' / 'nb201_search.json'
    ref = json.loads(sample_based.read_text()) if sample_based.exists() else None
    optimal = {ds: table.best(ds, 200).accuracy for ds in NB201_DATASETS}
    budget_best = None
    lines = ['## Zero-shot and proxy-assisted search on NAS-Bench-201', '',
             '200-epoch validation accuracy (%) of the chosen cell, mean ± std over seeds; cost = proxy seconds on '
             'this CPU (one thread; cached group: N x the measured seconds per network) + simulated seconds of '
             '12-epoch training (NB201 times). Proxies see 64 Fashion-MNIST images resized to 3x32x32.', '',
             '| method | cifar10-valid | cifar100 | ImageNet16-120 | proxy s | simulated training s | seeds |',
             '|---|---|---|---|---|---|---|']
    for name, s in summary.items():
        lines.append(f'| {name} | ' + ' | '.join(f'{s[ds]["mean"]:.2f} ± {s[ds]["std"]:.2f}' for ds in NB201_DATASETS)
                     + f' | {s["proxy_s"]:.0f} | {s["train_s"]:.0f} | {s["seeds"]} |')
    if ref:
        s = ref['summary']['ours-REA']['val_acc_200']
        lines.append('| ours REA, sample-based table (12,000 simulated s) | ' + ' | '.join(
            f'{s[ds]["mean"]:.2f} ± {s[ds]["std"]:.2f}' for ds in NB201_DATASETS) + ' | 0 | 12,000 | '
            f'{len(ref["runs"]["ours-REA"])} |')
    lines.append('| optimal | ' + ' | '.join(f'{optimal[ds]:.2f}' for ds in NB201_DATASETS) + ' | | | |')
    if 'Zen-NAS' in args.live:
        import itertools
        feasible = [dict(zip(EDGE_LABELS, ops)) for ops in itertools.product(OPS, repeat=6)]
        feasible = [c for c in feasible if table.query(c, SEARCH, 200).params <= args.max_params]
        best = max(feasible, key=lambda c: table.query(c, SEARCH, 200).accuracy)
        budget_best = accs_of(table, best)
        lines.append(f'| best cell with params <= {args.max_params} M (by cifar10-valid) | '
                     + ' | '.join(f'{budget_best[ds]:.2f}' for ds in NB201_DATASETS) + ' | | | |')
    command = 'NASEXT_DATA=../shared/data python experiments/bench_zero_shot_search.py' + ''.join(
        ' ' + a for a in (sys.argv[1:] if argv is None else argv))
    runtime = time.time() - start
    lines += ['', f'Command: `{command}`; runtime {runtime:.0f} s on a 2-core CPU ({args.jobs} worker(s)); '
              f'{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}.', '']
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'zero_shot_search.md').write_text(md)
    # Per run: the chosen cell and its cost; its NB201 accuracies are looked up from the tables
    # (NASEXT_DATA), not redistributed here. The summary keeps the means and stds.
    runs_out = {label: [{k: v for k, v in r.items() if k != 'val_acc_200'} for r in rs] for label, rs in runs.items()}
    (args.out / 'zero_shot_search.json').write_text(json.dumps(
        {'n': args.n, 'top_k': args.top_k, 'seeds': args.seeds, 'cached_seeds': args.cached_seeds,
         'evals': args.evals, 'max_params': args.max_params, 'summary': summary, 'runs': runs_out,
         'optimal': optimal, 'best_under_budget': budget_best, 'command': command, 'runtime_s': runtime},
        indent=1) + '\n')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
