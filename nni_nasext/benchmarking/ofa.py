"""Once-for-All measured: progressive shrinking vs. no shrinking vs. training from scratch, and
the constrained sub-network search without retraining.

Per seed, on one dataset (default Fashion-MNIST from ``NASEXT_DATA``):

1. two OFA supernets with the same schedule and number of steps: progressive shrinking
   (``ps``, the paper's) and all dimensions elastic at once after the full phase (``no_ps``,
   the paper's ablation, Fig. 7);
2. the same sub-networks -- the largest, the smallest and ``--subnets`` random ones -- are
   evaluated with inherited weights (BN re-estimated on 4 training batches) on the validation
   split, for both supernets;
3. the smallest, the largest and two random sub-networks are also trained from scratch as
   standalone networks, for as many epochs as the full phase (same optimiser);
4. under three MACs budgets (quartiles of random sub-networks' MACs) the evolutionary search
   of :func:`~nni_nasext.strategies.oneshot.ofa.evolve_subnet` on the ``ps`` supernet is compared with
   random search given the same number of sub-network evaluations; both are scored on a
   held-out tenth of the training data and reported on the validation split.

    NASEXT_DATA=../shared/data python experiments/bench_ofa.py --seeds 0 1 --jobs 2

Writes ``experiments/results/ofa.{json,md,png}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, run_tasks, write_results

RESULTS = EXPERIMENTS / 'results'


def quiet():
    """Silences warnings and Lightning's logs (in every worker)."""
    import logging
    import warnings
    warnings.filterwarnings('ignore')
    logging.getLogger('pytorch_lightning').setLevel(logging.ERROR)
    logging.getLogger('lightning').setLevel(logging.ERROR)


def train_supernet(args, loader, val_loader, info, seed: int, progressive: bool):
    import pytorch_lightning as pl
    from nni_nasext.evaluators.classification import quiet_lightning
    from nni_nasext.strategies.oneshot.ofa import OFAModule
    pl.seed_everything(seed, workers=True, verbose=False)
    module = OFAModule(num_classes=info.num_classes, in_channels=info.in_channels, resolutions=args.resolutions,
                       width_mult=args.width_mult, schedule=args.schedule, progressive=progressive, seed=seed)
    start = time.time()
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=module.epochs, accelerator='cpu', devices=1, num_sanity_val_steps=0,
                             logger=False, enable_checkpointing=False, enable_model_summary=False,
                             enable_progress_bar=False, limit_val_batches=4)
        trainer.fit(module, loader, val_loader)
    return module, time.time() - start


def train_standalone(net, loader, epochs: int, lr: float, seed: int) -> float:
    """Plain PyTorch training of a frozen sub-network (SGD, Nesterov, cosine), seconds spent."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.time()
    net.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
    return time.time() - start


@torch.no_grad()
def accuracy(net, batches) -> float:
    net.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((net(x).argmax(-1) == y).sum())
        total += len(y)
    return correct / total


def run_seed(args, seed: int) -> Dict[str, Any]:
    quiet()
    torch.set_num_threads(1)
    from nni_nasext.search_spaces.mobile import ofa_max_sample
    from nni_nasext.strategies.oneshot.ofa import evaluate_subnet, evolve_subnet, ofa_loaders, random_subnets
    from nni_nasext.strategies.oneshot.ofa_supernet import ofa_min_sample
    loader, held, val_loader, info = ofa_loaders(args.dataset, limit=args.limit, batch_size=64, seed=seed)
    val = []
    for x, y in val_loader:
        val.append((x, y))
        if sum(len(b[1]) for b in val) >= args.val_images:
            break
    out: Dict[str, Any] = {'seed': seed, 'steps_per_epoch': len(loader)}
    supernets = {}
    for name, progressive in (('ps', True), ('no_ps', False)):
        module, secs = train_supernet(args, loader, val_loader, info, seed, progressive)
        supernets[name] = module
        out[f'{name}_train_s'] = secs
        out[f'{name}_history'] = {k: v for k, v in module.history.items()}
        print(f'seed {seed}: {name} supernet trained in {secs:.0f} s', file=sys.stderr, flush=True)
    net = supernets['ps'].supernet
    r = net.resolutions
    subnets = [ofa_max_sample(r[-1]), ofa_min_sample(r[0])] + random_subnets(net, args.subnets, seed=1000 + seed)
    out['subnets'] = subnets
    out['macs'] = [net.macs(s) for s in subnets]
    for name, module in supernets.items():
        calib = module._calib
        out[f'{name}_acc'] = [evaluate_subnet(module.supernet, s, calib, val) for s in subnets]
    # from scratch: smallest, largest, two random
    scratch = []
    for i in (1, 0, 2, 3):
        standalone = net.space.freeze(subnets[i]).net
        secs = train_standalone(standalone, loader, args.schedule['full'], 0.05, seed)
        scratch.append({'index': i, 'acc': accuracy(standalone, val), 'seconds': secs})
    out['scratch'] = scratch
    print(f'seed {seed}: scratch trained', file=sys.stderr, flush=True)
    # constrained search on the PS supernet
    pool = random_subnets(net, 200, seed=2000 + seed)
    budgets = [float(np.quantile([net.macs(s) for s in pool], q)) for q in (0.25, 0.5, 0.75)]
    calib = supernets['ps']._calib
    searches = []
    for b in budgets:
        t = time.time()
        evo = evolve_subnet(net, calib, held, max_macs=b, population=args.population, generations=args.generations,
                            seed=seed)
        evo_s = time.time() - t
        t = time.time()
        rand = random_subnets(net, evo['evaluated'], max_macs=b, seed=3000 + seed)
        scored = [(evaluate_subnet(net, s, calib, held), s) for s in rand]
        best_acc, best = max(scored, key=lambda p: p[0])
        rand_s = time.time() - t
        searches.append({'max_macs': b, 'evaluated': evo['evaluated'],
                         'evolution': {'held_acc': evo['accuracy'], 'macs': evo['macs'], 'seconds': evo_s,
                                       'val_acc': evaluate_subnet(net, evo['sample'], calib, val),
                                       'sample': evo['sample'], 'curve': evo['curve']},
                         'random': {'held_acc': best_acc, 'macs': net.macs(best), 'seconds': rand_s,
                                    'val_acc': evaluate_subnet(net, best, calib, val), 'sample': best}})
        print(f'seed {seed}: search under {b / 1e6:.2f} M MACs done', file=sys.stderr, flush=True)
    out['searches'] = searches
    return out


def _ms(values) -> str:
    v = np.asarray(values, dtype=float) * 100
    return f'{v.mean():.2f} ± {v.std():.2f}' if len(v) > 1 else f'{v.mean():.2f}'


def render(result: Dict[str, Any]) -> str:
    runs = result['runs']
    lines = [f'# Once-for-All on {result["dataset"]} (CPU)', '',
             f'Command: `{result["command"]}`  ', f'Machine: {result["machine"]}; {result["runtime_s"]:.0f} s in all.  ',
             f'Supernet: OFASpace width {result["width_mult"]}, resolutions {result["resolutions"]}, schedule '
             f'{result["schedule"]} epochs of {result["steps_per_epoch"]} steps; {len(runs)} seeds.', '',
             '## Sub-networks with inherited weights vs. trained from scratch (validation accuracy %)', '',
             '| sub-network | MACs (M) | progressive shrinking | no shrinking (all elastic at once) | from scratch |',
             '|---|---|---|---|---|']
    names = {0: 'largest', 1: 'smallest'}
    n = len(runs[0]['subnets'])
    for i in range(n):
        if i >= 4 and i < n:
            continue
        sc = [s['acc'] for r in runs for s in r['scratch'] if s['index'] == i]
        lines.append(f'| {names.get(i, f"random #{i - 1}")} | {runs[0]["macs"][i] / 1e6:.2f} | '
                     f'{_ms([r["ps_acc"][i] for r in runs])} | {_ms([r["no_ps_acc"][i] for r in runs])} | '
                     f'{_ms(sc) if sc else "-"} |')
    ps_all = [np.mean(r['ps_acc'][2:]) for r in runs]
    nops_all = [np.mean(r['no_ps_acc'][2:]) for r in runs]
    wins = sum(a > b for r in runs for a, b in zip(r['ps_acc'], r['no_ps_acc']))
    total = sum(len(r['ps_acc']) for r in runs)
    lines += [f'| mean of {n - 2} random | | {_ms(ps_all)} | {_ms(nops_all)} | |', '',
              f'Progressive shrinking is better than no shrinking on {wins} of {total} (sub-network, seed) pairs. '
              f'Supernet training time: PS {np.mean([r["ps_train_s"] for r in runs]):.0f} s, no PS '
              f'{np.mean([r["no_ps_train_s"] for r in runs]):.0f} s; one standalone training '
              f'{np.mean([s["seconds"] for r in runs for s in r["scratch"]]):.0f} s.', '',
              '## Constrained search without retraining (PS supernet)', '',
              'Evolution vs. random search with the same number of sub-network evaluations, '
              'scored on a held-out tenth of the training data; validation accuracy % of the chosen sub-network.', '',
              '| MACs budget (M) | evaluations | evolution: val acc | MACs (M) | random search: val acc | MACs (M) | '
              'evolution s | random s |', '|---|---|---|---|---|---|---|---|']
    for j in range(len(runs[0]['searches'])):
        ss = [r['searches'][j] for r in runs]
        lines.append(f'| {np.mean([s["max_macs"] for s in ss]) / 1e6:.2f} | {np.mean([s["evaluated"] for s in ss]):.0f} | '
                     f'{_ms([s["evolution"]["val_acc"] for s in ss])} | '
                     f'{np.mean([s["evolution"]["macs"] for s in ss]) / 1e6:.2f} | '
                     f'{_ms([s["random"]["val_acc"] for s in ss])} | {np.mean([s["random"]["macs"] for s in ss]) / 1e6:.2f} | '
                     f'{np.mean([s["evolution"]["seconds"] for s in ss]):.0f} | '
                     f'{np.mean([s["random"]["seconds"] for s in ss]):.0f} |')
    lines += ['', f'Plot: `experiments/results/{result.get("name", "ofa")}.png` (MACs vs. accuracy of every sub-network).', '']
    return '\n'.join(lines)


def plot(result: Dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, r in enumerate(result['runs']):
        macs = np.asarray(r['macs']) / 1e6
        lab = k == 0
        ax.scatter(macs, np.asarray(r['ps_acc']) * 100, c='tab:blue', s=18, label='progressive shrinking' if lab else None)
        ax.scatter(macs, np.asarray(r['no_ps_acc']) * 100, c='tab:orange', s=18, marker='x',
                   label='no shrinking' if lab else None)
        ax.scatter([macs[s['index']] for s in r['scratch']], [s['acc'] * 100 for s in r['scratch']], c='k', s=30,
                   marker='s', facecolors='none', label='trained from scratch' if lab else None)
        ax.scatter([s['evolution']['macs'] / 1e6 for s in r['searches']],
                   [s['evolution']['val_acc'] * 100 for s in r['searches']], c='tab:green', s=70, marker='*',
                   label='searched (evolution, budgets)' if lab else None)
    ax.set_xlabel('MACs (millions)')
    ax.set_ylabel('validation accuracy (%)')
    ax.set_title(f'Once-for-All sub-networks on {result["dataset"]}, inherited weights')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _worker(payload):
    args, seed = payload
    return run_seed(args, seed)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', default='fashion-mnist')
    p.add_argument('--limit', type=int, default=3000, help='training examples')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--jobs', type=int, default=1)
    p.add_argument('--width-mult', type=float, default=0.25)
    p.add_argument('--resolutions', type=int, nargs='+', default=[16, 20, 24])
    p.add_argument('--full', type=int, default=6, help='epochs of the full phase')
    p.add_argument('--shrink', type=int, default=2, help='epochs of each shrinking phase')
    p.add_argument('--subnets', type=int, default=20, help='random sub-networks compared')
    p.add_argument('--val-images', type=int, default=3072)
    p.add_argument('--population', type=int, default=16)
    p.add_argument('--generations', type=int, default=6)
    p.add_argument('--name', default='ofa')
    p.add_argument('--report-only', action='store_true')
    args = p.parse_args(argv)
    args.schedule = {'full': args.full, 'kernel': args.shrink, 'depth': args.shrink, 'expand': args.shrink}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f'{args.name}.json'
    if args.report_only:
        result = json.loads(js.read_text())
        (RESULTS / f'{args.name}.md').write_text(render(result))
    else:
        start = time.time()
        payloads = [(args, s) for s in args.seeds]
        runs = run_tasks(_worker, payloads, min(args.jobs, len(payloads)), context='spawn')
        order = {s: i for i, s in reversed(list(enumerate(args.seeds)))}
        runs.sort(key=lambda r: order[r['seed']])  # the seeds' order (workers end in any order)
        steps = runs[0]['steps_per_epoch']
        m = machine_info()
        result = {'name': args.name, 'dataset': args.dataset, 'runs': runs, 'schedule': args.schedule, 'width_mult': args.width_mult,
                  'resolutions': args.resolutions, 'steps_per_epoch': steps, 'runtime_s': time.time() - start,
                  'command': command_line('experiments/bench_ofa.py', argv),
                  'machine': f'{m["processor"]}, {m["cpu_count"]} CPUs, torch {m["torch"]}, 1 thread per job'}
        write_results(RESULTS, args.name, result, render(result))
    plot(result, RESULTS / f'{args.name}.png')
    print(render(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
