"""The NAS-Bench-Macro table without torch: query an architecture's CIFAR-10 record.

NAS-Bench-Macro (Su et al., CVPR 2021): see :mod:`nni_nasext.evaluators.macro_lookup`, the NNI
evaluator over this table, which re-exports everything here. Kept free of torch, Lightning and
NNI's NAS modules so that a lookup trial (``python3 -m nni_nasext.trial_code --space nasbench_macro
--evaluator nasbench_macro``) answers in about a second.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from nni_nasext.data_paths import find_data
from nni_nasext.nasbench_macro_arch import NUM_LAYERS, OPS, canonical_key, key_to_sample, sample_to_key

__all__ = ['MACRO_FILE', 'MacroRecord', 'NasBenchMacroTable', 'to_key', 'clear_cache', 'check_seed', 'record_metrics']

MACRO_FILE = 'nas_bench_macro/nas-bench-macro_cifar10.json'
_HINT = ('NAS-Bench-Macro is data/nas-bench-macro_cifar10.json of GitHub xiusu/NAS-Bench-Macro '
         '(Apache-2.0); put it at <NASEXT_DATA>/' + MACRO_FILE + '.')

MacroArch = Union[Mapping[str, str], str, Sequence[int]]


@dataclasses.dataclass(frozen=True)
class MacroRecord:
    """One NAS-Bench-Macro row. Accuracies in percent (CIFAR-10 test set, best epoch of each of
    3 seeds); ``params`` a plain count (not millions); ``flops`` multiply-accumulates for one
    32x32 image (a plain count)."""
    key: str
    mean_acc: float
    std: float
    test_accs: Tuple[float, ...]
    params: int
    flops: int


@functools.lru_cache(maxsize=None)
def _load_table() -> Dict[str, MacroRecord]:
    path = find_data(MACRO_FILE, 'NAS-Bench-Macro table (nas-bench-macro_cifar10.json)', _HINT)
    with open(path) as fh:
        raw = json.load(fh)
    return {key: MacroRecord(key, float(v['mean_acc']), float(v['std']), tuple(float(a) for a in v['test_acc']),
                             int(v['params']), int(v['flops']))
            for key, v in raw.items()}


def clear_cache() -> None:
    """Forget the loaded table (for example after changing ``NASEXT_DATA``)."""
    _load_table.cache_clear()


def to_key(arch: MacroArch) -> str:
    """Any NAS-Bench-Macro architecture form -> its 8-digit key: a sample dict
    (``{"layer0": "identity", ...}``), a key (``"02012100"``) or 8 op indices."""
    if isinstance(arch, Mapping):
        return sample_to_key(arch)
    if isinstance(arch, str):
        key_to_sample(arch)  # validates
        return arch
    if isinstance(arch, Sequence):
        if len(arch) != NUM_LAYERS or any(int(o) != o or not 0 <= int(o) < len(OPS) for o in arch):
            raise ValueError(f'NAS-Bench-Macro needs {NUM_LAYERS} op indices in 0..{len(OPS) - 1}, got {arch}')
        return ''.join(str(int(o)) for o in arch)
    raise TypeError(f'Cannot read a NAS-Bench-Macro architecture from {type(arch).__name__}: {arch!r}')


class NasBenchMacroTable:
    """Query NAS-Bench-Macro: ``query(arch) -> MacroRecord``; ``best()`` is the top row."""

    def query(self, arch: MacroArch) -> MacroRecord:
        key = to_key(arch)
        table = _load_table()
        if key not in table:
            raise KeyError(f'NAS-Bench-Macro table has no record for {key}')
        return table[key]

    def best(self) -> MacroRecord:
        """The architecture with the highest mean test accuracy. Keys that differ only in where
        a stage's non-first identities sit share one record; the canonical one (identities at
        the stage's end, the network that was trained) is returned."""
        table = _load_table()
        return max((r for k, r in sorted(table.items()) if k == canonical_key(k)), key=lambda r: r.mean_acc)

    def __len__(self) -> int:
        return len(_load_table())

    def keys(self):
        return _load_table().keys()


def check_seed(seed: Optional[int]) -> Optional[int]:
    """``None`` (the mean of the 3 trainings) or one training run, 0, 1 or 2."""
    if seed is not None and seed not in (0, 1, 2):
        raise ValueError(f'NAS-Bench-Macro has 3 trainings per architecture: seed must be None, 0, 1 or 2, '
                         f'got {seed!r}')
    return seed


def record_metrics(record: MacroRecord, seed: Optional[int] = None) -> Tuple[float, Dict[str, float]]:
    """``(accuracy, final result)`` of a record as a trial reports it: the accuracy is the mean over
    the 3 trainings (``seed=None``) or that of one; the final result ``{"default": accuracy,
    "params": millions, "flops": millions}`` (FLOPs as multiply-accumulates)."""
    acc = record.mean_acc if check_seed(seed) is None else record.test_accs[seed]
    return acc, {'default': acc, 'params': record.params / 1e6, 'flops': record.flops / 1e6}
