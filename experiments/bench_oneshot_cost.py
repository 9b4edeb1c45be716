"""Cost of one supernet training step of the one-shot methods, side by side: time and activation memory.

Every method trains the same NAS-Bench-201 supernet (``--cells`` N cells per stage, ``--channels``
C, 10 classes, ``--size`` x ``--size`` inputs with 3 channels) on the same batches (``--batch``
examples of seeded Gaussian noise for the weight half and as many for the architecture half:
the cost of a step does not depend on the pixel values), on one CPU thread, each method in a
fresh process (``--jobs 1``, the default, runs them one after the other; ``--jobs 2`` runs two
at once and lets them share the memory bandwidth, faster but noisier). ``--rounds R`` repeats
the sweep R times, every other round in reverse order, and pools the steps of all rounds: on a
shared machine, load that comes and goes then weighs on every method alike rather than on the
ones measured while it lasted (the ratios are what the goals check).

Methods (``--methods``; default ``DEFAULT_METHODS``, a method whose module is absent is skipped
with a note): our :class:`~nni_nasext.strategies.oneshot.OneShotModule` methods -- ``darts``
(first order), ``darts2`` (second order, eq. 7-8 of Liu et al.), ``pcdarts`` (partial channels
K=4 + edge normalization), ``gdas`` (hard Gumbel, one op per edge), ``spos`` (uniform single
path) and any other method of it -- the methods of the later modules (``proxyless`` in
``strategies/proxylessnas.py``, ``enas``, the DARTS variants) where they exist, and
``nni-darts``: NNI 3.0's built-in first-order DARTS.

How a step is driven. Each module runs inside a real Lightning ``Trainer.fit`` of one epoch
limited to ``--warmup + --repeats + --mem-steps`` batches (manual optimisation needs the
trainer for ``optimizers()``, ``manual_backward`` and ``clip_gradients``); the module's
``training_step`` is wrapped (an instance attribute, the computation is untouched) to time it.
One step = everything ``training_step`` does: for the differentiable methods the architecture
step on the second half's batch and the weight step on the first half's (forward, backward,
gradient clipping, optimizer step). NNI's DARTS runs the way ``NasExperiment`` runs it:
``DARTS(gradient_clip_val=5).mutate_model(NasBench201Space(N, C))`` and
``mutate_evaluator(Classification(optimizer=SGD, learning_rate=0.025, weight_decay=3e-4,
train_dataloaders=..., val_dataloaders=...))``, then ``evaluator.evaluate(model)`` (the
strategy's ``_initialize`` and the sequential engine's call, without the experiment around
them); its step is ``DartsLightningModule.training_step`` (NNI's own arch step + weight step;
its Classification module also updates a torchmetrics accuracy and logs the loss, and its SGD
has no momentum, ours 0.9: small differences in the same direction).

What is measured.

* **ms / step**: the median over ``--repeats`` steps after ``--warmup`` steps (wall clock,
  ``time.perf_counter``, one thread).
* **activation MB**: on the ``--mem-steps`` steps that follow (timed separately, not in the
  median), every tensor autograd saves for backward passes through
  ``torch.autograd.graph.saved_tensors_hooks``; the bytes of the distinct storages held this
  way (parameters and architecture parameters excluded; a storage is counted once however many
  ops save it or a view of it) are tracked as they are packed and as the autograd graphs
  release them. *Peak* = the most held at once during the step (what a larger batch or a
  GPU must fit), *total* = everything packed over the step's forward passes. Mean over the
  memory steps (sampling methods draw other paths each step; the max is in the JSON).
* **RSS growth MB**: the process's peak resident set over all its steps (``VmHWM`` at the end
  of the last step, after a reset through ``/proc/self/clear_refs`` at the start of the first)
  minus its resident set before the first step: a second, noisier figure (allocator caching,
  optimizer state, one-time work of the first step such as ProxylessNAS' latency table).

The saved-tensor meter hands autograd a *detached* alias of each saved tensor: holding the
tensor itself would, for a tensor that is its op's own output, close a reference cycle through
its ``grad_fn`` that a partial backward (``autograd.grad`` with respect to ``α`` only, as in
second-order DARTS) never breaks, and the meter would then report memory that only it keeps.
ProxylessNAS measures its latency table during its first step (a warm-up step here).

Goal checks (reported as met or missed, never tuned): PC-DARTS (K=4) peak activation memory at
most half of DARTS'; second-order DARTS at most 2.5x first-order DARTS per step.

    python experiments/bench_oneshot_cost.py                        # N=2, C=16, 32x32, batch 64

Writes ``oneshot_cost.{md,json,png}`` under ``--out`` (default experiments/results; a run with
other sizes than the defaults writes ``oneshot_cost_<N>n<C>c<size>px<batch>b.*``).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings('ignore', category=RuntimeWarning)

HERE = Path(__file__).resolve().parent
DEFAULT_METHODS = ['darts', 'darts2', 'pcdarts', 'gdas', 'spos', 'proxyless', 'nni-darts']
LABELS = {'darts': 'DARTS, first order (ours)', 'darts2': 'DARTS, second order (ours)',
          'pcdarts': 'PC-DARTS, K=4 (ours)', 'gdas': 'GDAS (ours)', 'snas': 'SNAS (ours)',
          'fairdarts': 'Fair DARTS (ours)', 'rsps': 'RSPS (ours)', 'spos': 'SPOS (ours)',
          'proxyless': 'ProxylessNAS (ours)', 'enas': 'ENAS (ours)', 'rdarts': 'R-DARTS / DARTS-ES (ours)',
          'darts_plus': 'DARTS+ (ours)', 'pdarts': 'P-DARTS skip regularization (ours)', 'asap': 'ASAP (ours)',
          'darts_pt': 'DARTS-PT (ours)',
          'nni-darts': "NNI 3.0's DARTS (nni.nas.strategy.DARTS)"}
#: methods that live in later modules: method -> module (the class is found in it by its ``methods``)
EXTRA_MODULES = {'proxyless': 'nni_nasext.strategies.proxylessnas', 'enas': 'nni_nasext.strategies.enas',
                 **{m: 'nni_nasext.strategies.oneshot_variants'
                    for m in ('rdarts', 'darts_plus', 'pdarts', 'asap', 'darts_pt')}}
NNI_DARTS = 'nni-darts'
BASELINE = 'darts'
DEFAULTS = dict(cells=2, channels=16, size=32, batch=64)


# ----------------------------------------------------------------------------- method lookup

def module_class(method: str):
    """The :class:`OneShotModule` (sub)class that implements ``method``, or ``None`` where its
    module is absent (or holds no class for it). Unknown names raise ``ValueError``."""
    from nni_nasext.strategies.oneshot import METHODS, OneShotModule
    if method in METHODS:
        return OneShotModule
    name = EXTRA_MODULES.get(method)
    if name is None:
        raise ValueError(f'unknown one-shot method {method!r}; known: {list(METHODS) + list(EXTRA_MODULES)}')
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):  # the module itself is absent, not one of its imports
            return None
        raise
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, OneShotModule) and method in getattr(obj, 'methods', ())]
    found.sort(key=lambda c: (c.__module__ != name, -len(c.__mro__)))  # the module's own, most derived first
    return found[0] if found else None


def available(methods, note=print):
    """``methods`` less those whose module is absent, with a note for each one skipped."""
    out = []
    for m in methods:
        if m == NNI_DARTS or module_class(m) is not None:
            out.append(m)
        else:
            note(f'note: skipping {m!r}: {EXTRA_MODULES[m]} is absent or defines no module for it')
    return out


# ----------------------------------------------------------------------------- measurements

class _Saved:
    """What the pack hook hands autograd: the tensor, and a release of its count when the graph drops it."""
    __slots__ = ('meter', 'key', 'tensor')

    def __init__(self, meter, key, tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class SavedTensorMeter:
    """Bytes of the tensors autograd saves for backward, through ``saved_tensors_hooks``.

    Distinct storages are counted once (by address; a storage stays alive, so its address
    unique, while a saved tensor refers to it); storages of ``exclude`` (the parameters) are
    not counted. ``live`` is what the graphs hold now, ``peak`` the most held at once since
    :meth:`reset`, ``total`` everything packed since then.
    """

    def __init__(self, exclude=()):
        import torch
        self.exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self.refs: dict = {}
        self.live = self.peak = self.total = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def reset(self):
        self.peak, self.total = self.live, 0

    def __enter__(self):
        self.reset()
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)

    def _pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # no plain storage (sparse, nested...)
            return tensor
        key = storage.data_ptr()
        if key == 0 or key in self.exclude:
            return tensor
        ref = self.refs.get(key)
        if ref is None:
            nbytes = storage.nbytes()
            self.refs[key] = [1, nbytes]
            self.live += nbytes
            self.total += nbytes
            self.peak = max(self.peak, self.live)
        else:
            ref[0] += 1
        # detached: the same storage without its grad_fn (holding an op's own output with its grad_fn
        # would close a reference cycle that a partial backward, e.g. grads w.r.t. alpha only, never breaks)
        return _Saved(self, key, tensor.detach())

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _Saved) else packed

    def _release(self, key):
        ref = self.refs.get(key)
        if ref is None:
            return
        ref[0] -= 1
        if ref[0] == 0:
            del self.refs[key]
            self.live -= ref[1]


def _status_kb(field: str):
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def peak_rss_kb():
    hwm = _status_kb('VmHWM')
    if hwm is None:
        import resource
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return hwm


# ----------------------------------------------------------------------------- one method

def make_batches(steps: int, batch: int, size: int, seed: int = 0):
    """Two halves of ``steps * batch`` seeded Gaussian images (3 x size x size) with labels."""
    import torch
    from torch.utils.data import TensorDataset
    g = torch.Generator().manual_seed(seed)
    n = steps * batch
    halves = [TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g))
              for _ in range(2)]
    return halves


def _trainer_kwargs(steps: int) -> dict:
    return dict(max_epochs=1, limit_train_batches=steps, limit_val_batches=0, num_sanity_val_steps=0,
                accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,
                enable_model_summary=False, enable_progress_bar=False)


def _build_ours(method, args, first, second, steps):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader
    from nni_nasext.strategies.oneshot import PairedHalves
    cls = module_class(method)
    module = cls(method, num_cells=args.cells, channels=args.channels, num_classes=10, in_channels=3, epochs=1,
                 seed=args.seed)
    loader = DataLoader(PairedHalves(first, second), batch_size=args.batch, shuffle=False)
    trainer = pl.Trainer(**_trainer_kwargs(steps))
    return module, module, lambda: trainer.fit(module, loader), cls.__module__ + '.' + cls.__qualname__


def _build_nni_darts(args, first, second, steps):
    import torch
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.strategy import DARTS
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    torch.manual_seed(args.seed)
    space = NasBench201Space(num_cells=args.cells, channels=args.channels, num_classes=10, in_channels=3)
    evaluator = Classification(learning_rate=0.025, weight_decay=3e-4, optimizer=torch.optim.SGD, num_classes=10,
                               train_dataloaders=DataLoader(first, batch_size=args.batch, shuffle=False),
                               val_dataloaders=DataLoader(second, batch_size=args.batch, shuffle=False),
                               **_trainer_kwargs(steps))
    strategy = DARTS(gradient_clip_val=5.0)
    model = strategy.mutate_model(space)
    evaluator = strategy.mutate_evaluator(evaluator)
    module = evaluator.module  # DartsLightningModule around the Classification module
    impl = 'nni.nas.oneshot.pytorch.differentiable.DartsLightningModule'
    return module, model, lambda: evaluator.evaluate(model), impl


def measure(method: str, args) -> dict:
    """Build ``method``'s module in this process, run its steps, return the figures."""
    import torch
    from nni_nasext.evaluators.classification import _quiet_lightning
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    logging.getLogger('nni').setLevel(logging.ERROR)
    steps = args.warmup + args.repeats + args.mem_steps
    first, second = make_batches(steps, args.batch, args.size, args.seed)
    with _quiet_lightning():
        warnings.filterwarnings('ignore', message='.*but have no `val_dataloader`.*')
        if method == NNI_DARTS:
            module, net, fit, impl = _build_nni_darts(args, first, second, steps)
        else:
            module, net, fit, impl = _build_ours(method, args, first, second, steps)
        params = list({id(p): p for p in list(module.parameters()) + list(net.parameters())}.values())
        arch = [p for m in net.modules() if m is not net and hasattr(m, 'arch_parameters') for p in m.arch_parameters()]
        if method != NNI_DARTS:
            arch = module.arch_parameters()
        arch_ids = {id(p) for p in arch}
        weight_params = sum(p.numel() for p in params if id(p) not in arch_ids)
        meter = SavedTensorMeter(exclude=params)
        record = {'ms': [], 'mem_ms': [], 'peak_bytes': [], 'total_bytes': [], 'live_before': []}
        state = {'k': 0, 'rss0': None}
        inner = module.training_step

        def timed_step(*a, **kw):
            k = state['k']
            state['k'] += 1
            if k == 0:
                state['rss0'] = _status_kb('VmRSS')
                state['hwm_reset'] = reset_peak_rss()
            if k < args.warmup + args.repeats:
                t = time.perf_counter()
                out = inner(*a, **kw)
                dt = time.perf_counter() - t
                if k >= args.warmup:
                    record['ms'].append(1e3 * dt)
                return out
            record['live_before'].append(meter.live)  # 0 unless a graph of an earlier step is still alive
            with meter:
                t = time.perf_counter()
                out = inner(*a, **kw)
                dt = time.perf_counter() - t
            record['mem_ms'].append(1e3 * dt)
            record['peak_bytes'].append(meter.peak)
            record['total_bytes'].append(meter.total)
            if state['k'] == steps:  # the last step: the epoch-end hooks (e.g. R-DARTS' Hessian) are no step
                state['hwm'] = peak_rss_kb()
            return out

        module.training_step = timed_step
        fit()
    if state['k'] != steps:
        raise RuntimeError(f'{method}: the trainer ran {state["k"]} of {steps} steps')
    rss_growth = None
    if state['rss0'] is not None and state.get('hwm_reset') and state.get('hwm') is not None:
        rss_growth = (state['hwm'] - state['rss0']) * 1024
    ms = record['ms']
    return {'method': method, 'label': LABELS.get(method, method), 'implementation': impl,
            'ms_median': statistics.median(ms), 'ms': ms,
            'ms_iqr': (statistics.quantiles(ms, n=4)[2] - statistics.quantiles(ms, n=4)[0]) if len(ms) > 1 else 0.0,
            'mem_steps_ms': record['mem_ms'],
            'activation_peak_bytes': statistics.mean(record['peak_bytes']),
            'activation_peak_bytes_max': max(record['peak_bytes']),
            'activation_total_bytes': statistics.mean(record['total_bytes']),
            'activation_total_bytes_per_step': record['total_bytes'],
            'activation_peak_bytes_per_step': record['peak_bytes'],
            'saved_bytes_held_before_step': record['live_before'],
            'rss_growth_bytes': rss_growth, 'weight_params': weight_params}


def pool_rounds(old, new: dict) -> dict:
    """``new`` with the steps of ``old`` (an earlier round of the same method) pooled in."""
    if old is None:
        new['rounds'] = 1
        new['rss_growth_bytes_per_round'] = [new['rss_growth_bytes']]
        return new
    out = dict(new)
    for key in ('ms', 'mem_steps_ms', 'activation_peak_bytes_per_step', 'activation_total_bytes_per_step',
                'saved_bytes_held_before_step'):
        out[key] = old[key] + new[key]
    ms = out['ms']
    q = statistics.quantiles(ms, n=4)
    rss = old['rss_growth_bytes_per_round'] + [new['rss_growth_bytes']]
    known = [v for v in rss if v is not None]
    out.update(ms_median=statistics.median(ms), ms_iqr=q[2] - q[0],
               activation_peak_bytes=statistics.mean(out['activation_peak_bytes_per_step']),
               activation_peak_bytes_max=max(out['activation_peak_bytes_per_step']),
               activation_total_bytes=statistics.mean(out['activation_total_bytes_per_step']),
               rss_growth_bytes=statistics.median(known) if known else None, rss_growth_bytes_per_round=rss,
               rounds=old['rounds'] + 1)
    return out


def _task(task):
    method, args = task
    return measure(method, args)


def _child(fn, item, conn):
    import traceback
    try:
        conn.send(('ok', fn(item)))
    except BaseException:  # noqa: B036 -- report anything to the parent, which raises it
        conn.send(('error', traceback.format_exc()))
    finally:
        conn.close()


def fork_map(fn, items, jobs: int = 1, name=repr):
    """``fn(item)`` for every item, each in a fresh forked process, at most ``jobs`` at once;
    yields the results as they come. ``fn`` is not pickled (the child inherits it), so it may
    live in a script loaded by path; the results are. A failed item raises ``RuntimeError``
    with the child's traceback."""
    import multiprocessing
    from multiprocessing.connection import wait
    ctx = multiprocessing.get_context('fork')
    pending, running = list(items), {}
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                item = pending.pop(0)
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(fn, item, send), daemon=True)
                proc.start()
                send.close()
                running[recv] = (proc, item)
            for conn in wait(list(running)):
                proc, item = running.pop(conn)
                try:
                    status, payload = conn.recv()
                except EOFError:
                    proc.join()
                    status, payload = 'error', f'the worker process died (exit code {proc.exitcode})'
                conn.close()
                proc.join()
                if status != 'ok':
                    raise RuntimeError(f'{name(item)} failed:\n{payload}')
                yield payload
    finally:
        for proc, _ in running.values():
            proc.terminate()
            proc.join()


# ----------------------------------------------------------------------------- report

MB = 2 ** 20


def goal_checks(results: dict) -> list:
    """The two goals, each ``{'goal', 'value', 'limit', 'met'}`` (absent where a method did not run)."""
    checks = []
    base = results.get(BASELINE)
    if base and 'pcdarts' in results:
        r = results['pcdarts']['activation_peak_bytes'] / base['activation_peak_bytes']
        checks.append({'goal': 'PC-DARTS (K=4) peak activation memory <= 0.5 x DARTS first order',
                       'value': r, 'limit': 0.5, 'met': r <= 0.5})
    if base and 'darts2' in results:
        r = results['darts2']['ms_median'] / base['ms_median']
        checks.append({'goal': 'DARTS second order <= 2.5 x first order, time per step',
                       'value': r, 'limit': 2.5, 'met': r <= 2.5})
    return checks


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results)
    labels = [results[m]['label'] for m in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 1.8), sharey=True)
    panels = ((axes[0], 'ms_median', 1.0, 'ms per training step (median, 1 thread)'),
              (axes[1], 'activation_peak_bytes', 1 / MB, 'peak activation MB (saved for backward)'))
    for ax, key, scale, xlabel in panels:
        vals = [results[m][key] * scale for m in names]
        colors = ['tab:gray' if m == NNI_DARTS else 'tab:blue' for m in names]
        ax.barh(range(len(names)), vals, color=colors)
        for i, v in enumerate(vals):
            ax.text(v, i, f' {v:.0f}' if v >= 10 else f' {v:.1f}', va='center', fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_xlim(0, max(vals) * 1.2)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loadavg():
    import os
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv=None) -> int:
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--methods', nargs='+', default=DEFAULT_METHODS,
                        help=f'one-shot methods, or {NNI_DARTS!r} for NNI 3.0\'s DARTS (default: %(default)s)')
    parser.add_argument('--cells', type=int, default=DEFAULTS['cells'], help='N, cells per stage')
    parser.add_argument('--channels', type=int, default=DEFAULTS['channels'], help='C, width of the first stage')
    parser.add_argument('--size', type=int, default=DEFAULTS['size'], help='input height = width (3 channels)')
    parser.add_argument('--batch', type=int, default=DEFAULTS['batch'], help='batch of each half (weights, arch)')
    parser.add_argument('--warmup', type=int, default=2, help='steps before timing')
    parser.add_argument('--repeats', type=int, default=7, help='timed steps (the median is reported)')
    parser.add_argument('--mem-steps', type=int, default=3, help='steps with the saved-tensor meter on')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=1, help='methods measured at once (1: one after the other)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='sweeps over the methods, alternately forward and reversed; their steps are pooled')
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.mem_steps < 1 or args.warmup < 0:
        parser.error('--repeats and --mem-steps must be >= 1, --warmup >= 0')
    torch.set_num_threads(1)
    try:
        methods = available(list(dict.fromkeys(args.methods)), note=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as err:
        parser.error(str(err))
    if not methods:
        parser.error('no method to measure')
    start = time.time()
    load_start = _loadavg()
    print(f'measuring {len(methods)} methods: {args.warmup} + {args.repeats} timed + {args.mem_steps} memory steps '
          f'each, N={args.cells} C={args.channels} {args.size}x{args.size} batch {args.batch}',
          file=sys.stderr, flush=True)
    results = {}
    order = [m for r in range(max(1, args.rounds)) for m in (methods if r % 2 == 0 else methods[::-1])]
    for res in fork_map(_task, [(m, args) for m in order], args.jobs, name=lambda t: t[0]):  # a fresh process each
        res = pool_rounds(results.get(res['method']), res)
        results[res['method']] = res
        print(f'{res["method"]}: {res["ms_median"]:.0f} ms/step, peak activations '
              f'{res["activation_peak_bytes"] / MB:.1f} MB ({time.time() - start:.0f} s)', file=sys.stderr, flush=True)
    results = {m: results[m] for m in methods}
    base = results.get(BASELINE)
    for r in results.values():
        r['ms_ratio'] = r['ms_median'] / base['ms_median'] if base else None
        r['activation_ratio'] = r['activation_peak_bytes'] / base['activation_peak_bytes'] if base else None
    checks = goal_checks(results)
    runtime = time.time() - start
    load = {'start': load_start, 'end': _loadavg()}
    command = 'python experiments/bench_oneshot_cost.py' + ''.join(
        ' ' + a for a in (sys.argv[1:] if argv is None else argv))
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    setting = (f'NB201 supernet N={args.cells}, C={args.channels}, 10 classes, {args.size}x{args.size}x3 inputs, '
               f'batch {args.batch} per half')
    default = all(getattr(args, k) == v for k, v in DEFAULTS.items())
    stem = 'oneshot_cost' if default else f'oneshot_cost_{args.cells}n{args.channels}c{args.size}px{args.batch}b'

    def fmt_ratio(v):
        return '' if v is None else f'{v:.2f}'

    lines = ['## One-shot NAS: cost of one supernet training step', '',
             f'{setting}; the same batches for every method; one CPU thread, each method in a fresh process '
             f'({args.jobs} at a time{f", {args.rounds} rounds pooled" if args.rounds > 1 else ""}). '
             f'ms/step: median of {args.repeats} steps after {args.warmup} warm-up steps'
             f'{" (per round)" if args.rounds > 1 else ""}. '
             'Activation MB: peak bytes of the distinct storages autograd holds for backward during a step '
             f'(parameters excluded; `saved_tensors_hooks`), mean of {args.mem_steps} steps; total = all packed '
             'over the step. RSS growth: peak resident set minus the resident set before the first step (noisier). '
             'Ratios to our first-order DARTS. One step = the architecture step (differentiable methods) + the '
             'weight step, as `training_step` runs them inside a Lightning Trainer.', '',
             '| method | ms / step | x DARTS | activation MB (peak) | x DARTS | activation MB (total) | '
             'RSS growth MB | weights (M) |',
             '|---|---|---|---|---|---|---|---|']
    for m, r in results.items():
        rss = '' if r['rss_growth_bytes'] is None else f'{r["rss_growth_bytes"] / MB:.0f}'
        lines.append(f'| {r["label"]} | {r["ms_median"]:.0f} | {fmt_ratio(r["ms_ratio"])} | '
                     f'{r["activation_peak_bytes"] / MB:.1f} | {fmt_ratio(r["activation_ratio"])} | '
                     f'{r["activation_total_bytes"] / MB:.1f} | {rss} | {r["weight_params"] / 1e6:.3f} |')
    lines += ['', 'Goals:', '']
    for c in checks:
        lines.append(f'- {c["goal"]}: {c["value"]:.2f} -> **{"met" if c["met"] else "missed"}**')
    if not checks:
        lines.append('- (not checked: DARTS, PC-DARTS or second-order DARTS did not run)')
    lines += ['', "NNI's DARTS is built the way `NasExperiment` builds it "
              '(`DARTS(gradient_clip_val=5).mutate_model` on `NasBench201Space(N, C)` and `mutate_evaluator` of '
              'an NNI `Classification` evaluator with SGD, lr 0.025, weight decay 3e-4) and fitted by '
              '`evaluator.evaluate(model)`; its `training_step` is timed the same way.',
              '', f'Command: `{command}`; runtime {runtime:.0f} s on a 2-core CPU; load average (1 min) '
              f'{load["start"]} at the start, {load["end"]} at the end (this run itself adds '
              f'{min(args.jobs, len(methods))}); '
              f'{date}.', '']
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f'{stem}.md').write_text(md)
    (args.out / f'{stem}.json').write_text(json.dumps(
        {'setting': setting, 'cells': args.cells, 'channels': args.channels, 'size': args.size, 'batch': args.batch,
         'warmup': args.warmup, 'repeats': args.repeats, 'mem_steps': args.mem_steps, 'jobs': args.jobs,
         'rounds': args.rounds,
         'seed': args.seed, 'results': results, 'goals': checks, 'command': command, 'runtime_s': runtime,
         'load_average_1min': load,
         'date': date}, indent=1) + '\n')
    plot(results, args.out / f'{stem}.png', f'One-shot step cost, {setting}')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
