"""Cost of one supernet training step of the one-shot methods, ours beside NNI 3.0's: time and activation memory.

Every method trains the supernet of the same space (``--space``: ``darts_cells``, DARTS' cell space
reduced to ``--cells`` normal cells per stage and ``--channels`` C; or ``nasbench201``, the NB201
cell in its skeleton) with the same NNI evaluator (``nni.nas.evaluator.pytorch.Classification``,
SGD, lr 0.025, weight decay 3e-4, gradient clipping 5) on the same batches (``--batch`` examples of
seeded Gaussian noise, ``--size`` x ``--size`` x 3, for the weights and as many for the
architecture: the cost of a step does not depend on the pixel values), on one CPU thread, each
method in a fresh process (``--jobs 1`` one after the other). ``--rounds R`` repeats the sweep R
times, every other round reversed, and pools the steps: load that comes and goes weighs on every
method alike.

Methods (``--methods``): any of ours (``nasext list oneshot``: the generic supernet of
:mod:`nni_nasext.strategies.oneshot`, wrapping the evaluator's module) and NNI 3.0's own
strategies on the same space and evaluator: ``nni-darts`` (``DARTS``), ``nni-gumbel``
(``GumbelDARTS``), ``nni-proxyless`` (``Proxyless``; NNI's supports no ``Cell``: it is reported as
not supported on ``darts_cells``), ``nni-random`` (``RandomOneShot``, i.e. SPOS's uniform single
path). NNI's run the way ``NasExperiment`` runs them: ``strategy.mutate_model(space)``,
``strategy.mutate_evaluator(evaluator)``, ``evaluator.evaluate(model)``.

How a step is driven. Each module runs inside a real Lightning ``Trainer.fit`` of one epoch
limited to ``--warmup + --repeats + --mem-steps`` batches; the module's ``training_step`` is
wrapped (an instance attribute, the computation is untouched) to time it. One step = everything
``training_step`` does: for the differentiable methods the architecture step and the weight step
(forward, backward, gradient clipping, optimizer step). A module on Lightning's automatic
optimisation (NNI's ``RandomOneShot``) runs backward and the optimiser step after
``training_step`` returns, inside ``optimizer_step``'s closure: there ``optimizer_step`` is the
wrapped hook, so that its step counts the same work (an earlier version timed only its forward).

What is measured.

* **ms / step**: the median over ``--repeats`` steps after ``--warmup`` steps (wall clock,
  ``time.perf_counter``, one thread).
* **activation MB**: on the ``--mem-steps`` steps that follow (timed separately), every tensor
  autograd saves for backward passes through ``torch.autograd.graph.saved_tensors_hooks``; the
  bytes of the distinct storages held (parameters excluded; a storage counted once however many
  ops save it or a view of it) are tracked as they are packed and released. *Peak* = the most
  held at once during the step, *total* = everything packed over the step. Mean over the steps.
* **RSS growth MB**: peak resident set over the steps minus the resident set before the first
  (noisier: allocator caching, optimizer state, one-time work such as ProxylessNAS' latency table).

The meter hands autograd a *detached* alias of each saved tensor: holding the tensor itself would,
for a tensor that is its op's own output, close a reference cycle through its ``grad_fn`` that a
partial backward (second-order DARTS' ``autograd.grad`` w.r.t. ``α``) never breaks.

Goal checks (met or missed, never tuned): ours <= 1.0 x NNI's on time and on peak activation
memory for each pair that ran (DARTS / nni-darts, ProxylessNAS / nni-proxyless, SPOS / nni-random,
GDAS / nni-gumbel); PC-DARTS (K=4) peak activation memory <= 0.5 x DARTS'; second-order DARTS
<= 2.5 x first-order per step.

    python experiments/bench_oneshot_cost.py --space darts_cells --rounds 2
    python experiments/bench_oneshot_cost.py --space nasbench201 --methods darts proxyless spos nni-darts nni-proxyless nni-random

Writes ``oneshot_cost_<space>.{md,json,png}`` under ``--out`` (default experiments/results).
"""
from __future__ import annotations

from nni_nasext.benchmarking import EXPERIMENTS  # experiments/: the inputs and results/ of the benchmarks

import argparse
import datetime
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

warnings.filterwarnings('ignore', category=RuntimeWarning)

HERE = EXPERIMENTS
DEFAULT_METHODS = ['darts', 'nni-darts', 'darts2', 'pcdarts', 'gdas', 'nni-gumbel', 'spos', 'nni-random', 'proxyless',
                   'nni-proxyless']
#: NNI 3.0's strategies: name -> (class in nni.nas.strategy, the method of ours it matches)
NNI = {'nni-darts': ('DARTS', 'darts'), 'nni-gumbel': ('GumbelDARTS', 'gdas'), 'nni-proxyless': ('Proxyless', 'proxyless'),
       'nni-random': ('RandomOneShot', 'spos')}
BASELINE = 'darts'
DEFAULTS = dict(space='darts_cells', cells=1, channels=8, size=16, batch=32)


def label(method: str) -> str:
    if method in NNI:
        return f"NNI 3.0's {NNI[method][0]} (nni.nas.strategy)"
    from nni_nasext.registry import lookup
    return f'{lookup("oneshot", method).summary.split(",")[0]} [{method}] (ours)'


def check_methods(methods):
    from nni_nasext.registry import ONESHOT
    bad = [m for m in methods if m not in NNI and m not in ONESHOT]
    if bad:
        raise ValueError(f'unknown methods {bad}; ours: {", ".join(ONESHOT)}; NNI: {", ".join(NNI)}')
    return list(methods)


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
    return [TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g))
            for _ in range(2)]


def _trainer_kwargs(steps: int) -> dict:
    return dict(max_epochs=1, limit_train_batches=steps, limit_val_batches=0, num_sanity_val_steps=0,
                accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,
                enable_model_summary=False, enable_progress_bar=False)


def make_space(args):
    from nni_nasext.search_spaces.cells import CellSpace
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    if args.space == 'darts_cells':
        return CellSpace('darts', channels=args.channels, num_cells=args.cells, num_classes=10, in_channels=3)
    return NasBench201Space(num_cells=args.cells, channels=args.channels, num_classes=10, in_channels=3)


def _evaluator(first, second, args, steps):
    import torch
    import nni
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    return Classification(learning_rate=0.025, weight_decay=3e-4, optimizer=torch.optim.SGD, num_classes=10,
                          train_dataloaders=nni.trace(DataLoader)(first, batch_size=args.batch, shuffle=False),
                          val_dataloaders=nni.trace(DataLoader)(second, batch_size=args.batch, shuffle=False),
                          export_onnx=False, **_trainer_kwargs(steps))


def _build_ours(method, args, first, second, steps):
    """Our module of ``method`` on the space, wrapping the NNI evaluator's module, as
    :func:`nni_nasext.strategies.oneshot.search` builds it."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader
    from nni_nasext.strategies.oneshot import build_supernet, method_class
    from nni_nasext.strategies.oneshot.data import PairedBatches, recipe_for
    torch.manual_seed(args.seed)
    cls = method_class(method)
    supernet = build_supernet(make_space(args), method, weighted=cls.weighted, partial_k=cls.partial_k)
    recipe = recipe_for(_evaluator(first, second, args, steps), supernet.model)
    module = cls(recipe.module, supernet, seed=args.seed, metric=recipe.metric, mode=recipe.mode)
    loader = PairedBatches(DataLoader(first, batch_size=args.batch), DataLoader(second, batch_size=args.batch), [])
    module.probe(next(iter(loader))['train'])
    trainer = pl.Trainer(**_trainer_kwargs(steps))
    return module, supernet.model, lambda: trainer.fit(module, loader), f'{cls.__module__}.{cls.__qualname__}'


def _build_nni(method, args, first, second, steps):
    import torch
    from nni.nas import strategy as nni_strategy
    torch.manual_seed(args.seed)
    name = NNI[method][0]
    strategy = getattr(nni_strategy, name)(**({'gradient_clip_val': 5.0} if name in ('DARTS', 'GumbelDARTS') else {}))
    evaluator = _evaluator(first, second, args, steps)
    model = strategy.mutate_model(make_space(args))
    evaluator = strategy.mutate_evaluator(evaluator)
    module = evaluator.module
    return module, model, lambda: evaluator.evaluate(model), f'{type(module).__module__}.{type(module).__qualname__}'


def measure(method: str, args) -> dict:
    """Build ``method``'s module in this process, run its steps, return the figures."""
    import torch
    from nni_nasext.evaluators.classification import quiet_lightning
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    logging.getLogger('nni').setLevel(logging.ERROR)
    steps = args.warmup + args.repeats + args.mem_steps
    first, second = make_batches(steps, args.batch, args.size, args.seed)
    with quiet_lightning():
        warnings.filterwarnings('ignore', message='.*but have no `val_dataloader`.*')
        if method in NNI:
            try:
                module, net, fit, impl = _build_nni(method, args, first, second, steps)
            except TypeError as err:  # NNI's strategy cannot search this space
                return {'method': method, 'label': label(method), 'unsupported': str(err).splitlines()[0][:200]}
        else:
            module, net, fit, impl = _build_ours(method, args, first, second, steps)
        params = list({id(p): p for p in list(module.parameters()) + list(net.parameters())}.values())
        arch = [p for m in net.modules() if m is not net and hasattr(m, 'arch_parameters') for p in m.arch_parameters()]
        if method not in NNI:
            arch = module.arch_parameters()
        arch_ids = {id(p) for p in arch}
        weight_params = sum(p.numel() for p in params if id(p) not in arch_ids)
        meter = SavedTensorMeter(exclude=params)
        record = {'ms': [], 'mem_ms': [], 'peak_bytes': [], 'total_bytes': [], 'live_before': []}
        state = {'k': 0, 'rss0': None}
        # Lightning's automatic optimisation (NNI's RandomOneShot) runs backward and the optimiser
        # step in a closure *after* ``training_step`` returns: time ``optimizer_step`` there, which
        # runs the closure (forward, backward) and the step, as our manual ``training_step`` does.
        hook = 'optimizer_step' if module.automatic_optimization else 'training_step'
        inner = getattr(module, hook)

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

        setattr(module, hook, timed_step)
        fit()
    if state['k'] != steps:
        raise RuntimeError(f'{method}: the trainer ran {state["k"]} of {steps} steps')
    rss_growth = None
    if state['rss0'] is not None and state.get('hwm_reset') and state.get('hwm') is not None:
        rss_growth = (state['hwm'] - state['rss0']) * 1024
    ms = record['ms']
    return {'method': method, 'label': label(method), 'implementation': impl,
            'ms_median': statistics.median(ms), 'ms': ms,
            'ms_iqr': (statistics.quantiles(ms, n=4)[2] - statistics.quantiles(ms, n=4)[0]) if len(ms) > 1 else 0.0,
            'mem_steps_ms': record['mem_ms'],
            'activation_peak_bytes': statistics.mean(record['peak_bytes']),
            'activation_peak_bytes_max': max(record['peak_bytes']),
            'activation_total_bytes': statistics.mean(record['total_bytes']),
            'activation_total_bytes_per_step': record['total_bytes'],
            'activation_peak_bytes_per_step': record['peak_bytes'],
            'saved_bytes_held_before_step': record['live_before'],
            'rss_growth_bytes': rss_growth, 'weight_params': weight_params, 'timed_hook': hook}


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
    try:
        return measure(method, args)
    except Exception as err:  # noqa: BLE001 -- NNI's strategy fails on this space: report it as such
        if method not in NNI:
            raise
        return {'method': method, 'label': label(method),
                'unsupported': f'{type(err).__name__}: {str(err).splitlines()[0][:160]}'}


def _child(fn, item, conn):
    import traceback
    try:
        conn.send(('ok', fn(item)))
    except BaseException:  # noqa: B036 -- report anything to the parent, which raises it
        conn.send(('error', traceback.format_exc()))
    finally:
        conn.close()


#: imported once by ``fork_map``'s fork server (the heavy imports of the one-shot benchmarks' children)
FORKSERVER_PRELOAD = ('torch', 'pytorch_lightning', 'nni_nasext.strategies.oneshot', 'nni_nasext.evaluators.classification')


def fork_map(fn, items, jobs: int = 1, name=repr, context: Optional[str] = None):
    """``fn(item)`` for every item, each in a fresh process, at most ``jobs`` at once; yields
    the results as they come. A failed item raises ``RuntimeError`` with the child's traceback.

    ``context`` is the ``multiprocessing`` start method: by default ``fork`` (the measured
    figures were taken so: a child starts from the parent's memory), or what the environment
    variable ``NASEXT_FORK_CONTEXT`` names. A process that has already run autograd on several
    threads cannot fork (PyTorch refuses in the child), so a long-lived process that runs many
    things before a benchmark, such as a pytest worker, sets ``NASEXT_FORK_CONTEXT=forkserver``
    (``fn`` and the items are then pickled: ``fn`` must be a module-level function; the server
    imports its module once)."""
    import multiprocessing
    from multiprocessing.connection import wait
    ctx = multiprocessing.get_context(context or os.environ.get('NASEXT_FORK_CONTEXT', 'fork'))
    if ctx.get_start_method() == 'forkserver':
        # the server imports fn's module and what every one-shot child needs (torch, Lightning, NNI's
        # one-shot) once, before it forks any child; it has run no autograd, so its children may.
        # (No effect once this process's server runs.) A child then starts in ~0.05 s, not ~5 s.
        ctx.set_forkserver_preload([fn.__module__, *FORKSERVER_PRELOAD])
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
    for nni_name, (cls, ours) in NNI.items():
        if nni_name in results and ours in results:
            a, b = results[ours], results[nni_name]
            for key, what in (('ms_median', 'time per step'), ('activation_peak_bytes', 'peak activation memory')):
                r = a[key] / b[key]
                checks.append({'goal': f'our {ours} <= 1.0 x NNI\'s {cls}, {what}', 'value': r, 'limit': 1.0,
                               'met': r <= 1.0})
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
        colors = ['tab:gray' if m in NNI else 'tab:blue' for m in names]
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
                        help=f'our one-shot methods and NNI\'s ({", ".join(NNI)}) (default: %(default)s)')
    parser.add_argument('--space', choices=['darts_cells', 'nasbench201'], default=DEFAULTS['space'])
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
        methods = check_methods(list(dict.fromkeys(args.methods)))
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
    unsupported = {}
    for res in fork_map(_task, [(m, args) for m in order], args.jobs, name=lambda t: t[0]):  # a fresh process each
        if 'unsupported' in res:
            unsupported[res['method']] = res
            print(f'{res["method"]}: not supported on {args.space}: {res["unsupported"]}', file=sys.stderr, flush=True)
            continue
        res = pool_rounds(results.get(res['method']), res)
        results[res['method']] = res
        print(f'{res["method"]}: {res["ms_median"]:.0f} ms/step, peak activations '
              f'{res["activation_peak_bytes"] / MB:.1f} MB ({time.time() - start:.0f} s)', file=sys.stderr, flush=True)
    results = {m: results[m] for m in methods if m in results}
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
    space_name = {'darts_cells': "DARTS' cell space (8 ops, 4 nodes)", 'nasbench201': 'NB201 cell'}[args.space]
    setting = (f'{space_name} supernet, N={args.cells} cell(s) per stage, C={args.channels}, 10 classes, '
               f'{args.size}x{args.size}x3 inputs, '
               f'batch {args.batch} per half')
    default = all(getattr(args, k) == v for k, v in DEFAULTS.items())
    stem = f'oneshot_cost_{args.space}' + ('' if default else f'_{args.cells}n{args.channels}c{args.size}px{args.batch}b')

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
             'weight step with its backward and optimiser step, as `training_step` runs them inside a Lightning '
             "Trainer (for a module on automatic optimisation, NNI's RandomOneShot: `optimizer_step`, whose "
             'closure runs `training_step` and backward).', '',
             '| method | ms / step | x DARTS | activation MB (peak) | x DARTS | activation MB (total) | '
             'RSS growth MB | weights (M) |',
             '|---|---|---|---|---|---|---|---|']
    for m, r in results.items():
        rss = '' if r['rss_growth_bytes'] is None else f'{r["rss_growth_bytes"] / MB:.0f}'
        lines.append(f'| {r["label"]} | {r["ms_median"]:.0f} | {fmt_ratio(r["ms_ratio"])} | '
                     f'{r["activation_peak_bytes"] / MB:.1f} | {fmt_ratio(r["activation_ratio"])} | '
                     f'{r["activation_total_bytes"] / MB:.1f} | {rss} | {r["weight_params"] / 1e6:.3f} |')
    for m, r in unsupported.items():
        lines.append(f'| {r["label"]} | not supported on this space: {r["unsupported"]} | | | | | | |')
    lines += ['', 'Goals:', '']
    for c in checks:
        lines.append(f'- {c["goal"]}: {c["value"]:.2f} -> **{"met" if c["met"] else "missed"}**')
    if not checks:
        lines.append('- (not checked: DARTS, PC-DARTS or second-order DARTS did not run)')
    lines += ['', "NNI's strategies are built the way `NasExperiment` builds them "
              '(`strategy.mutate_model(space)`, `strategy.mutate_evaluator(evaluator)`, fitted by '
              '`evaluator.evaluate(model)`); ours wrap the same NNI `Classification` evaluator (SGD, lr 0.025, '
              'weight decay 3e-4).',
              '', f'Command: `{command}`; runtime {runtime:.0f} s on a 2-core CPU; load average (1 min) '
              f'{load["start"]} at the start, {load["end"]} at the end (this run itself adds '
              f'{min(args.jobs, len(methods))}); '
              f'{date}.', '']
    md = '\n'.join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f'{stem}.md').write_text(md)
    (args.out / f'{stem}.json').write_text(json.dumps(
        {'setting': setting, 'space': args.space, 'cells': args.cells, 'channels': args.channels, 'size': args.size, 'batch': args.batch,
         'warmup': args.warmup, 'repeats': args.repeats, 'mem_steps': args.mem_steps, 'jobs': args.jobs,
         'rounds': args.rounds,
         'seed': args.seed, 'results': results, 'unsupported': unsupported, 'goals': checks, 'command': command, 'runtime_s': runtime,
         'load_average_1min': load,
         'date': date}, indent=1) + '\n')
    plot(results, args.out / f'{stem}.png', f'One-shot step cost, {setting}')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
