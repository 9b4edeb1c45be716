"""Hardware cost of NAS-Bench-201 cells: measured latency on 26 devices, and FLOPs.

Latency: the tables that HELP (Lee, Lee & Hwang, "HELP: Hardware-adaptive efficient latency
prediction for NAS via meta-learning", NeurIPS 2021) collected from HW-NAS-Bench (Li et al.,
ICLR 2021) and BRP-NAS (Dudziak et al., NeurIPS 2020): the inference latency in milliseconds of
every one of the 15,625 NB201 networks (CIFAR-10 configuration) on GPUs at batch sizes 1, 32 and
256, server CPUs, a Raspberry Pi 4, phones, an FPGA and the Eyeriss accelerator. They live under
``NASEXT_DATA`` in ``nb201_latency/`` (``<device>.pt``: a torch zip holding a plain pickled list
in NB201 index order, read here without torch; ``str_arch2idx.pt``: cell string -> index).

FLOPs: counted, not tabulated. An NB201 network is a fixed skeleton (stem, two residual
reduction blocks, head) plus 15 copies of the searched cell in three stages, and each edge's
operation costs the same wherever the cell sits in its stage; so the multiply-accumulates of a
cell are the skeleton's plus, per edge, what its operation adds. :func:`nb201_flops` measures
each operation once per input size by counting the multiply-accumulates of convolutions and
linear layers in networks built from the space (forward hooks) and sums them per cell; a test
checks the sum against a direct count on random cells.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List

import numpy as np

from nni_nasext.benchmarks import read_torch_pickle
from nni_nasext.data_paths import DataNotFoundError, find_data

__all__ = ['DEVICE_KINDS', 'LATENCY_DIR', 'cost_model', 'device_kind', 'latency_devices', 'latency_ms',
           'latency_table', 'nb201_flops']

LATENCY_DIR = 'nb201_latency'
_INDEX = 'str_arch2idx'

#: what each device file is, for listings and plots
DEVICE_KINDS = {
    '1080ti': 'GPU', '2080ti': 'GPU', 'titan_rtx': 'GPU', 'titanx': 'GPU', 'titanxp': 'GPU',
    'gold_6226': 'server CPU', 'gold_6240': 'server CPU', 'silver_4114': 'server CPU', 'silver_4210r': 'server CPU',
    'raspi4': 'Raspberry Pi 4', 'pixel2': 'phone', 'pixel3': 'phone', 'samsung_a50': 'phone', 'samsung_s7': 'phone',
    'essential_ph': 'phone', 'fpga': 'FPGA', 'eyeriss': 'ASIC (Eyeriss)'}


def _directory() -> Path:
    return find_data(LATENCY_DIR, 'NB201 latency tables (HELP: nb201_latency/)')


def latency_devices() -> List[str]:
    """The device names with a latency table (file stems: ``'raspi4'``, ``'titanx_256'``, ...)."""
    return sorted(p.stem for p in _directory().glob('*.pt') if p.stem != _INDEX)


def device_kind(device: str) -> str:
    """``'GPU'``, ``'server CPU'``, ``'phone'``, ... of a device name (batch size suffix ignored)."""
    if device in DEVICE_KINDS:
        return DEVICE_KINDS[device]
    base = device.rsplit('_', 1)[0] if device.rsplit('_', 1)[-1].isdigit() else device
    return DEVICE_KINDS.get(base, 'device')


@functools.lru_cache(maxsize=None)
def _index() -> Dict[str, int]:
    path = _directory() / f'{_INDEX}.pt'
    if not path.exists():
        raise DataNotFoundError('NB201 cell index of the latency tables', [str(path)])
    return {str(k): int(v) for k, v in read_torch_pickle(path).items()}


@functools.lru_cache(maxsize=None)
def latency_table(device: str) -> np.ndarray:
    """Latency in milliseconds of every NB201 cell on ``device``, in NB201 index order. An unknown
    device is a ``ValueError`` that lists the known ones."""
    known = latency_devices()
    if device not in known:
        raise ValueError(f'No NB201 latency table for device {device!r}; known devices: {", ".join(known)}')
    values = np.asarray(read_torch_pickle(_directory() / f'{device}.pt'), dtype=np.float64)
    if values.shape != (15625,):
        raise ValueError(f'{device}.pt holds {values.shape} values, not one per NB201 cell (15625)')
    return values


def latency_ms(arch, device: str) -> float:
    """Measured latency (ms) of an NB201 cell (sample dict, cell string) on ``device``."""
    from nni_nasext.benchmarks import to_cellstr
    table = latency_table(device)
    cellstr = to_cellstr(arch)
    index = _index()
    if cellstr not in index:
        raise KeyError(f'{cellstr} is not in the latency tables\' index')
    return float(table[index[cellstr]])


# ----------------------------------------------------------------------------- FLOPs

#: NB201 datasets -> (input size, classes)
_INPUT = {'cifar10-valid': (32, 10), 'cifar10': (32, 10), 'cifar100': (32, 100), 'ImageNet16-120': (16, 120)}


def _count_macs(model, size: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers of one ``size`` x ``size`` RGB
    image (NAS-Bench-Macro's convention, :func:`~nni_nasext.search_spaces.nasbench_macro.count_flops`)."""
    from nni_nasext.search_spaces.nasbench_macro import count_flops
    return int(count_flops(model, (1, 3, size, size)))


def _count_per_edge(dataset: str):
    """[MACs of the skeleton with every edge ``none``, {op: MACs one edge of that op adds}], counted
    on networks built from the space (torch)."""
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
    size, classes = _INPUT[dataset]
    space = NasBench201Space(num_cells=5, channels=16, num_classes=classes)
    base = _count_macs(space.freeze({e: 'none' for e in EDGE_LABELS}), size)
    per = {op: (_count_macs(space.freeze({e: op for e in EDGE_LABELS}), size) - base) / len(EDGE_LABELS)
           for op in OPS}
    return [base, per]


@functools.lru_cache(maxsize=None)
def _per_edge(dataset: str):
    """(MACs of the skeleton with every edge ``none``, {op: MACs one edge of that op adds}): counted
    once per machine and cached (:func:`~nni_nasext.benchmarks.cached_json`) while the code that
    builds and counts the networks is unchanged, so that a lookup trial reporting FLOPs needs no torch."""
    import importlib.util
    from nni_nasext.benchmarks import cached_json
    sources = [__file__] + [importlib.util.find_spec(f'nni_nasext.search_spaces.{m}').origin
                            for m in ('nasbench201', 'nasbench_macro')]
    base, per = cached_json(f'nb201_macs_{dataset}', sources, lambda: _count_per_edge(dataset))
    return base, per


def nb201_flops(arch, dataset: str = 'cifar10-valid') -> float:
    """Multiply-accumulates (millions, the unit NB201 reports FLOPs in) of an NB201 network
    (N=5, C=16) with this cell, at the dataset's input size and classes."""
    from nni_nasext.benchmarks import to_sample
    if dataset not in _INPUT:
        raise ValueError(f'Unknown NB201 dataset {dataset!r}; expected one of {sorted(_INPUT)}')
    base, per = _per_edge(dataset)
    return (base + sum(per[op] for op in to_sample(arch).values())) / 1e6


# ----------------------------------------------------------------------------- cost models by name

def cost_model(spec: str, **args):
    """A function ``sample -> cost`` known before training, by name (what multi-objective and
    constrained searchers take from a config; ``args`` are the searcher's ``cost_args``):

    * ``'nb201_latency:<device>'``: measured latency in ms on a device of :func:`latency_devices`;
    * ``'nb201_flops'`` or ``'nb201_flops:<dataset>'``: multiply-accumulates in millions;
    * ``'nb201_params'``: parameters in millions (the NB201 200-epoch table, CIFAR-10);
    * ``'predicted_latency:<space>'``: latency in ms on *this* machine of a registered space's
      network, predicted by :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor` (any space).
      ``args``: ``input_shape`` (default ``[1, 3, 32, 32]``), ``space_args``, ``fit`` (networks
      measured end to end for the correction, default 10; 0: the plain sum), ``repeats``, ``seed``.
    """
    if not isinstance(spec, str):
        raise TypeError(f'A cost model is a name such as "nb201_latency:raspi4", got {spec!r}')
    kind, _, arg = spec.partition(':')
    if kind == 'predicted_latency':
        fn = _predicted_latency(arg, **args)
        fn.__name__ = spec
        return fn
    if args:
        raise ValueError(f'The cost model {spec!r} takes no arguments, got {sorted(args)}')
    if kind == 'nb201_latency':
        if not arg:
            raise ValueError('nb201_latency needs a device: "nb201_latency:<device>"; devices: '
                             + ', '.join(latency_devices()))
        latency_table(arg)   # an unknown device fails here, listing the known ones
        fn = functools.partial(latency_ms, device=arg)
    elif kind == 'nb201_flops':
        fn = functools.partial(nb201_flops, dataset=arg or 'cifar10-valid')
    elif kind == 'nb201_params':
        from nni_nasext.benchmarks import NasBench201Table
        table = NasBench201Table()
        fn = lambda sample: table.query(sample, 'cifar10-valid', 200).params   # noqa: E731
    else:
        raise ValueError(f'Unknown cost model {spec!r}; known: nb201_latency:<device>, nb201_flops[:<dataset>], '
                         'nb201_params, predicted_latency:<space>')
    fn.__name__ = spec
    return fn


def _predicted_latency(space_name: str, *, input_shape=(1, 3, 32, 32), space_args=None, fit: int = 10,
                       repeats: int = 15, seed: int = 0):
    """``sample -> predicted latency (ms)`` of ``space_name``'s networks on this machine."""
    import random

    from nni_nasext import registry
    from nni_nasext.hardware.latency_predictor import LatencyPredictor
    from nni_nasext.space_spec import SpaceSpec
    if not space_name:
        raise ValueError('predicted_latency needs a registered space: "predicted_latency:<space>"')
    space = registry.build('space', space_name, **(space_args or {}))
    predictor = LatencyPredictor(input_shape, repeats=repeats)
    if fit:
        spec, rng = SpaceSpec.from_space(space), random.Random(seed)
        models = [space.freeze(spec.random(rng)) for _ in range(int(fit))]
        predictor.fit(models, [predictor.measure(m) for m in models])

    def cost(sample):
        return predictor.predict(space.freeze(dict(sample)))

    cost.predictor = predictor
    return cost
