"""The prepared GPU check: the same work on the CPU and on CUDA, time per step side by side.

1. The Lightning evaluator (``ImageClassification``) training one NAS-Bench-201 network
   (N=5, C=16, CIFAR-sized 32x32x3 inputs from Fashion-MNIST, batch 256): seconds per epoch.
2. DARTS (our generic one-shot, first order) on ``darts_cells`` (N=1, C=8, 16x16x3, batch 32: the
   setting of the cost benchmark): ms per search step (architecture + weight step).
3. Zero-cost proxies (synflow, naswot, te_nas_ntk) on 20 random NB201 cells: ms per cell.

CPU figures use all cores of the machine. Prints one table (also written to ``$OUT`` or
``--out`` as JSON and markdown) with the device names. Needs ``NASEXT_DATA`` (Fashion-MNIST).

    bash experiments/gpu_check.sh            # on the GPU machine (see that script)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings('ignore')


def _sync(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def time_evaluator(device: str, epochs: int, limit: int = 10000, cells: int = 5) -> float:
    import pytorch_lightning as pl
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces import NasBench201Space

    class Timer(pl.Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, *a):
            _sync(device)
            self.t = time.perf_counter()

        def on_train_epoch_end(self, *a):
            _sync(device)
            self.times.append(time.perf_counter() - self.t)

    ev = ImageClassification('fashion-mnist', max_epochs=epochs, batch_size=256, limit=limit, image_size=32,
                             in_channels=3, accelerator='gpu' if device == 'cuda' else 'cpu', limit_val_batches=2)
    timer = Timer()
    net = NasBench201Space(num_cells=cells).freeze({'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_3x3', '1_2': 'nor_conv_3x3',
                                     '0_3': 'skip_connect', '1_3': 'nor_conv_1x1', '2_3': 'nor_conv_3x3'})
    orig = pl.Trainer.__init__

    def init(self, *a, **kw):
        kw['callbacks'] = list(kw.get('callbacks') or []) + [timer]
        orig(self, *a, **kw)

    pl.Trainer.__init__ = init
    try:
        ev.evaluate(net)
    finally:
        pl.Trainer.__init__ = orig
    return min(timer.times[1:] or timer.times)


def time_darts(device: str, steps: int) -> float:
    import pytorch_lightning as pl
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces.cells import CellSpace
    from nni_nasext.strategies.oneshot import search
    times = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, *a):
            _sync(device)
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            _sync(device)
            times.append(time.perf_counter() - self.t)

    ev = ImageClassification('fashion-mnist', max_epochs=1, batch_size=32, limit=32 * 2 * steps, image_size=16,
                             in_channels=3, accelerator='gpu' if device == 'cuda' else 'cpu', limit_val_batches=1)
    search(CellSpace('darts', channels=8, num_cells=1, in_channels=3), ev, 'darts', verbose=False,
           callbacks=[Timer()])
    return 1e3 * sorted(times[2:] or times)[len(times[2:] or times) // 2]


def time_proxies(device: str, cells: int) -> dict:
    import random
    from nni_nasext.evaluators.proxies import ZeroCostProxy
    from nni_nasext.search_spaces import NasBench201Space
    from nni_nasext.space_spec import SpaceSpec
    space = NasBench201Space()
    spec = SpaceSpec.from_space(space)
    rng = random.Random(0)
    samples = [spec.random(rng) for _ in range(cells)]
    out = {}
    for name in ('synflow', 'naswot', 'te_nas_ntk'):
        proxy = ZeroCostProxy(name, dataset='fashion-mnist', input_size=(3, 32, 32), seed=0, device=device)
        proxy.score(space.freeze(samples[0]))  # warm-up
        _sync(device)
        t = time.perf_counter()
        for s in samples:
            proxy.score(space.freeze(s))
        _sync(device)
        out[name] = 1e3 * (time.perf_counter() - t) / cells
    return out


def main(argv=None) -> int:
    import torch
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--steps', type=int, default=8)
    p.add_argument('--cells', type=int, default=20)
    p.add_argument('--out', type=Path, default=Path(os.environ.get('OUT', '.')))
    p.add_argument('--quick', action='store_true', help='a smoke-sized run (checks the script, times nothing useful)')
    args = p.parse_args(argv)
    small = dict(limit=512, cells=1) if args.quick else {}
    if args.quick:
        args.epochs, args.steps, args.cells = 1, 2, 2
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    rows = {}
    for device in devices:
        start = time.time()
        rows[device] = {'evaluator_s_per_epoch': time_evaluator(device, args.epochs, **small),
                        'darts_ms_per_step': time_darts(device, args.steps),
                        'proxy_ms_per_cell': time_proxies(device, args.cells), 'seconds': time.time() - start}
        print(device, json.dumps(rows[device]), flush=True)
    names = {'cpu': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} '
                    'threads'}
    if 'cuda' in rows:
        names['cuda'] = torch.cuda.get_device_name(0)
    lines = ['| device | evaluator s/epoch (NB201 N=5 C=16, 10k images 32px, batch 256) | DARTS ms/step (darts_cells '
             'N=1 C=8, 16px, batch 32) | synflow ms/cell | naswot ms/cell | te_nas_ntk ms/cell |', '|---|---|---|---|---|---|']
    for d, r in rows.items():
        px = r['proxy_ms_per_cell']
        lines.append(f'| {d}: {names[d]} | {r["evaluator_s_per_epoch"]:.2f} | {r["darts_ms_per_step"]:.0f} | '
                     f'{px["synflow"]:.0f} | {px["naswot"]:.0f} | {px["te_nas_ntk"]:.0f} |')
    if 'cuda' in rows:
        c, g = rows['cpu'], rows['cuda']
        lines.append(f'\nSpeed-up on the GPU: evaluator x{c["evaluator_s_per_epoch"] / g["evaluator_s_per_epoch"]:.1f}, '
                     f'DARTS x{c["darts_ms_per_step"] / g["darts_ms_per_step"]:.1f}.')
    md = '\n'.join(lines) + f'\n\ntorch {torch.__version__}; {time.strftime("%Y-%m-%d")}; command: `{" ".join(sys.argv)}`\n'
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'gpu_check.md').write_text(md)
    (args.out / 'gpu_check.json').write_text(json.dumps({'rows': rows, 'devices': names}, indent=1))
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
