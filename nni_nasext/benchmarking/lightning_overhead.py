"""The Lightning evaluator's overhead against a plain PyTorch training loop.

Trains the same network on the same data with the same recipe three times per repeat: through
our :class:`~nni_nasext.evaluators.classification.ImageClassification` (Lightning Fabric: the
path every trial takes), through the same ``LightningModule`` under Lightning's ``Trainer`` (the
path a one-shot search and, until this benchmark, every trial took), and through a plain PyTorch
loop written here (forward, cross-entropy, backward, SGD with Nesterov momentum and weight
decay, cosine schedule per epoch, validation accuracy after every epoch reported to NNI). Same
data loaders (the evaluator's), batch size, seed, weight initialisation and number of threads;
the order rotates between repeats. The time of a whole training (set-up included: a trial pays
it) is divided by the epochs. All must reach the same validation accuracy (same arithmetic, up
to float summation order).

Reported per epoch (the same span in both: training and validation of one epoch) and for the
whole training divided by the epochs (Trainer set-up included).

Two settings: the quickstart (NB201 cell N=1, C=8 on digits, 8x8: the tiny networks where a
fixed per-step cost shows most) and an NB201 cell N=1, C=16 on 1,000 Fashion-MNIST images at
28x28 (from ``NASEXT_DATA``; skipped without it).

    NASEXT_DATA=../shared/data python experiments/bench_lightning_overhead.py --repeats 5
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from pathlib import Path

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results
from nni_nasext.evaluators.classification import reset_all_parameters

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_1x1', '1_2': 'skip_connect', '0_3': 'avg_pool_3x3',
          '1_3': 'nor_conv_3x3', '2_3': 'skip_connect'}


def plain_loop(model, evaluator) -> tuple:
    """The same recipe as the evaluator, without Lightning: returns (seconds, per-epoch accuracies)."""
    import nni
    import torch
    import torch.nn.functional as F
    start = time.perf_counter()
    train, val = evaluator.dataloaders()
    torch.manual_seed(evaluator.seed)
    reset_all_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=evaluator.learning_rate, momentum=evaluator.momentum,
                          weight_decay=evaluator.weight_decay, nesterov=evaluator.momentum > 0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=evaluator.max_epochs)
    accs, epoch_seconds = [], []
    for epoch in range(evaluator.max_epochs):
        epoch_start = time.perf_counter()
        if hasattr(train.sampler, 'set_epoch'):   # the evaluator's order per epoch, as Lightning sets it
            train.sampler.set_epoch(epoch)
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        correct = seen = 0
        with torch.no_grad():
            for x, y in val:
                correct += (model(x).argmax(dim=1) == y).sum().item()
                seen += len(y)
        accs.append(correct / seen)
        nni.report_intermediate_result(accs[-1])
        epoch_seconds.append(time.perf_counter() - epoch_start)
    return time.perf_counter() - start, accs, epoch_seconds


def lightning(model, evaluator) -> tuple:
    """The evaluator's own path (Lightning Fabric): (seconds, final accuracy, per-epoch seconds)."""
    start = time.perf_counter()
    final = evaluator.evaluate(model)
    return time.perf_counter() - start, final, list(evaluator.epoch_seconds)


def trainer(model, evaluator) -> tuple:
    """The evaluator's ``LightningModule`` (the module of its one-shot recipe) under a fresh
    ``pytorch_lightning.Trainer``, as trials trained before (and one-shot searches still train):
    (seconds, final accuracy, per-epoch seconds)."""
    import pytorch_lightning as pl
    from nni_nasext.evaluators.classification import quiet_lightning
    start = time.perf_counter()
    train, val = evaluator.dataloaders()
    pl.seed_everything(evaluator.seed, workers=True, verbose=False)
    reset_all_parameters(model)
    module = evaluator.oneshot_recipe(model).module
    with quiet_lightning():
        pl.Trainer(max_epochs=evaluator.max_epochs, accelerator='cpu', devices=1, use_distributed_sampler=False,
                   num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_model_summary=False,
                   enable_progress_bar=False).fit(module, train, val)
    return time.perf_counter() - start, module.val_accuracies[-1], list(module.epoch_seconds)


KINDS = ('lightning', 'trainer', 'plain')


def setting(name: str, space, evaluator, repeats: int) -> dict:
    import torch
    torch.manual_seed(0)
    evaluator.dataloaders()   # load the data once, outside the timings
    times = {k: [] for k in KINDS}
    epochs = {k: [] for k in KINDS}   # per run: the median of its epochs (training + validation)
    finals = {k: [] for k in KINDS}
    for r in range(repeats + 1):   # repeat 0 warms up every path (imports, first-call costs) and is dropped
        order = KINDS[r % 3:] + KINDS[:r % 3]
        for kind in order:
            model = space.freeze(SAMPLE)
            if kind == 'plain':
                seconds, accs, per_epoch = plain_loop(model, evaluator)
                final = accs[-1]
            else:
                seconds, final, per_epoch = (lightning if kind == 'lightning' else trainer)(model, evaluator)
            if r > 0:
                times[kind].append(seconds / evaluator.max_epochs)
                epochs[kind].append(statistics.median(per_epoch))
                finals[kind].append(final)
        if r > 0:
            print(f'[overhead] {name} repeat {r}: ' + ', '.join(f'{k} {times[k][-1]:.3f} s/epoch' for k in KINDS),
                  flush=True)
    train, _ = evaluator.dataloaders()
    row = {'setting': name, 'epochs': evaluator.max_epochs, 'batch_size': evaluator.batch_size,
           'steps_per_epoch': len(train), 'threads': torch.get_num_threads(), 'epochs_s': epochs, 'times': times,
           'final_acc': {k: sorted(set(round(v, 6) for v in vs)) for k, vs in finals.items()}}
    for kind in ('lightning', 'trainer'):
        ratios = [a / b for a, b in zip(times[kind], times['plain'])]
        epoch_ratios = [a / b for a, b in zip(epochs[kind], epochs['plain'])]
        row[kind] = {'s_per_epoch': statistics.median(times[kind]), 'epoch_s': statistics.median(epochs[kind]),
                     'ratio_median': statistics.median(ratios), 'ratio_min': min(ratios), 'ratio_max': max(ratios),
                     'epoch_ratio_median': statistics.median(epoch_ratios), 'epoch_ratio_min': min(epoch_ratios),
                     'epoch_ratio_max': max(epoch_ratios)}
    row['plain'] = {'s_per_epoch': statistics.median(times['plain']), 'epoch_s': statistics.median(epochs['plain'])}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--fashion-repeats', type=int, default=None,
                    help='repeats of the Fashion-MNIST setting (default: --repeats); its epochs are 50x longer')
    ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--threads', type=int, default=1, help='torch threads for both (a trial under nnictl uses 1)')
    ap.add_argument('--only', choices=('quickstart', 'fashion'), default=None, help='run one setting')
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space, QuickstartSpace
    t0 = time.time()
    rows = []
    if args.only in (None, 'quickstart'):
        rows.append(setting('quickstart (digits 8x8, NB201 N=1 C=8)', QuickstartSpace(),
                            ImageClassification('digits', max_epochs=args.epochs, accelerator='cpu'), args.repeats))
    if args.only == 'quickstart':
        pass
    elif os.environ.get('NASEXT_DATA'):
        fm = ImageClassification('fashion-mnist', max_epochs=args.epochs, limit=1000, accelerator='cpu')
        rows.append(setting('Fashion-MNIST 28x28, 1,000 training images, NB201 N=1 C=16',
                            NasBench201Space(num_cells=1, channels=16, in_channels=1), fm, args.fashion_repeats or args.repeats))
    else:
        print('[overhead] NASEXT_DATA unset: the Fashion-MNIST setting is skipped', flush=True)
    machine = machine_info()
    res = {'command': command_line('experiments/bench_lightning_overhead.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': {**machine, 'threads': args.threads}, 'runtime_s': time.time() - t0, 'rows': rows}
    tag = 'lightning_overhead' + (f'_{args.only}' if args.only else '')
    table = []
    for r in rows:
        p = r['plain']
        for kind, label in (('lightning', '**ImageClassification (Lightning Fabric; every trial)**'),
                            ('trainer', 'the same LightningModule under `pl.Trainer` (one-shot searches)')):
            k = r[kind]
            acc = ' / '.join(', '.join(f'{v:.4f}' for v in r['final_acc'][x]) for x in (kind, 'plain'))
            ratio = f'{k["epoch_ratio_median"]:.3f}x'
            table.append([r['setting'], r['steps_per_epoch'], label, f'{k["epoch_s"]:.3f} / {p["epoch_s"]:.3f}',
                          f'{"**" + ratio + "**" if kind == "lightning" else ratio} '
                          f'({k["epoch_ratio_min"]:.3f}-{k["epoch_ratio_max"]:.3f})',
                          f'{k["s_per_epoch"]:.3f} / {p["s_per_epoch"]:.3f}',
                          f'{k["ratio_median"]:.3f}x ({k["ratio_min"]:.3f}-{k["ratio_max"]:.3f})', acc])
    lines = markdown_table(['setting', 'steps/epoch', 'path', 'epoch s (path / plain)', 'per-epoch ratio (median, min-max)',
                            'whole training / epochs, s (path / plain)', 'whole-training ratio (median, min-max)',
                            'final val acc (path / plain)'], table)
    lines += ['', f'{args.repeats} repeats (Fashion-MNIST: {args.fashion_repeats or args.repeats}) after one warm-up, order rotating, {args.epochs} epochs each, '
              f'{args.threads} torch thread(s). Per epoch: the median over a run\'s epochs of the time from the '
              'start of its training to the end of its validation (the same span in all three), the Lightning '
              'paths\' from the module\'s own epoch clock. Whole training: from the call to the end, set-up '
              'included (what a trial pays once), divided by the epochs.', '',
              f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
              f'{machine["cpu_count"]} cores, torch {machine["torch"]}; {res["date"]}.', '']
    write_results(args.out, tag, res, '\n'.join(lines))
    print('\n'.join(lines))
    return 0 if all(math.isfinite(r['lightning']['ratio_median']) for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
