"""NAS-Bench-Macro lookup as an NNI evaluator.

NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monto-Carlo [sic] Tree Search",
CVPR 2021; GitHub ``xiusu/NAS-Bench-Macro``) lists, for each of the 6,561 architectures of
:class:`~nni_nasext.search_spaces.nasbench_macro.NasBenchMacroSpace`, the CIFAR-10 test
accuracy of 3 independent trainings, their mean and (population) standard deviation, the
parameter count and the FLOPs (multiply-accumulates of convolutions and linear layers). The
repository's ``train/train.py`` trains 50 epochs (SGD, cosine schedule) and keeps, per run, the
best test-set accuracy over the epochs, so the accuracies are a slightly optimistic
estimate (the test set also picks the epoch).

The table is the file ``nas_bench_macro/nas-bench-macro_cifar10.json`` under ``NASEXT_DATA``
(or ``~/.cache/nasext``); it is read on the first query and cached for the process. Without it
a query raises :class:`~nni_nasext.data_paths.DataNotFoundError` naming where it looked.

The table carries no training time, so a query costs 1: ``total_cost`` counts queries and
``SimulatedBudgetEngine(evaluator, budget=N)`` stops a search after N queries.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import nni
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace

from nni_nasext.data_paths import find_data
from nni_nasext.evaluators.nb201_lookup import SimulatedBudgetEngine
from nni_nasext.search_spaces.nasbench_macro import (
    LABELS, NUM_LAYERS, OPS, canonical_key, key_to_sample, sample_to_key,
)

__all__ = ['MACRO_FILE', 'MacroRecord', 'NasBenchMacroTable', 'NasBenchMacroLookup', 'simulate_macro_search',
           'to_key', 'clear_cache']

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


class NasBenchMacroLookup(BenchmarkEvaluator):
    """Look up a sample of :class:`~nni_nasext.search_spaces.nasbench_macro.NasBenchMacroSpace`
    in NAS-Bench-Macro (Su et al., CVPR 2021).

    Reports through NNI's trial API the final result ``{"default": accuracy, "params": millions,
    "flops": millions}`` (FLOPs as multiply-accumulates) and returns the accuracy.

    Parameters
    ----------
    seed
        ``None`` (default): the mean test accuracy over the 3 trainings; ``0``, ``1`` or ``2``:
        the accuracy of that single training run (a noisy reward, as one real training gives).
    """

    def __init__(self, seed: Optional[int] = None):
        super().__init__()
        if seed is not None and seed not in (0, 1, 2):
            raise ValueError(f'NAS-Bench-Macro has 3 trainings per architecture: seed must be None, 0, 1 or 2, '
                             f'got {seed!r}')
        self.seed = seed
        self.table = NasBenchMacroTable()
        self.total_cost = 0.
        self.num_queries = 0

    def extra_repr(self) -> str:
        return f'seed={self.seed!r}'

    @classmethod
    def default_space(cls) -> SlimBenchmarkSpace:
        return SlimBenchmarkSpace({label: Categorical(OPS, label=label) for label in LABELS})

    def validate_space(self, space) -> Dict[str, Any]:
        simplified = space.simplify()
        if SlimBenchmarkSpace(simplified) != self.default_space():
            raise ValueError(f'NasBenchMacroLookup needs the NAS-Bench-Macro space (labels {LABELS} over {OPS}), '
                             f'got {list(simplified)}')
        return simplified

    def query(self, arch: MacroArch) -> MacroRecord:
        """One table query; counts 1 towards ``total_cost`` and ``num_queries``."""
        record = self.table.query(arch)
        self.total_cost += 1
        self.num_queries += 1
        return record

    def accuracy(self, record: MacroRecord) -> float:
        return record.mean_acc if self.seed is None else record.test_accs[self.seed]

    def evaluate(self, sample: Dict[str, Any]) -> float:
        record = self.query(sample)
        acc = self.accuracy(record)
        nni.report_final_result({'default': acc, 'params': record.params / 1e6, 'flops': record.flops / 1e6})
        return acc

    def _execute(self, model) -> Any:
        if model.sample is None:
            raise ValueError('NasBenchMacroLookup needs a sampled model (model.sample is None)')
        return self.evaluate(model.sample)


def simulate_macro_search(strategy, evaluator: NasBenchMacroLookup, budget: int, space=None) -> SimulatedBudgetEngine:
    """Run any NNI strategy on NAS-Bench-Macro until ``budget`` queries (``simulate_search`` of
    :mod:`~nni_nasext.evaluators.nb201_lookup` with this space as the default)."""
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.search_spaces.nasbench_macro import NasBenchMacroSpace
    engine = SimulatedBudgetEngine(evaluator, budget)
    strategy(RawFormatModelSpace.from_model(space if space is not None else NasBenchMacroSpace(), evaluator), engine)
    return engine
