"""The NAS-Bench-Macro architecture without torch: operations, stages, labels, and the bijections
between a benchmark key (``"02012100"``) and a sample.

Su et al., "Prioritized Architecture Sampling with Monto-Carlo [sic] Tree Search", CVPR 2021
(NAS-Bench-Macro). Kept free of torch and NNI's NAS modules so that a table-lookup trial starts fast
(:mod:`nni_nasext.evaluators.macro_table`); :mod:`nni_nasext.search_spaces.nasbench_macro` (the
space, whose docstring explains keys and canonical forms) re-exports everything here.
"""
from __future__ import annotations

import itertools
from typing import Dict, Iterator, List, Mapping, Tuple

__all__ = ['OPS', 'LABELS', 'STAGES', 'NUM_LAYERS', 'key_to_sample', 'sample_to_key', 'canonical_key', 'all_keys',
           'check_key']

#: Operation names, index = the digit of the benchmark key.
OPS: List[str] = ['identity', 'mb_k3_e3', 'mb_k5_e6']
#: Number of layers per stage; the first layer of each stage has stride 2 and doubles the width.
STAGES: Tuple[int, ...] = (2, 3, 3)
NUM_LAYERS: int = sum(STAGES)
LABELS: List[str] = [f'layer{i}' for i in range(NUM_LAYERS)]


# ----------------------------------------------------------------------------- bijections

def check_key(key: str) -> str:
    if not isinstance(key, str) or len(key) != NUM_LAYERS or any(c not in '012' for c in key):
        raise ValueError(f'A NAS-Bench-Macro key is {NUM_LAYERS} digits in 0..2 (e.g. "02012100"), got {key!r}')
    return key


def key_to_sample(key: str) -> Dict[str, str]:
    """``"02012100"`` -> ``{"layer0": "identity", "layer1": "mb_k5_e6", ...}``."""
    check_key(key)
    return {label: OPS[int(c)] for label, c in zip(LABELS, key)}


def sample_to_key(sample: Mapping[str, str]) -> str:
    """Inverse of :func:`key_to_sample`. Refuses missing, extra or unknown entries."""
    if not isinstance(sample, Mapping):
        raise TypeError(f'A NAS-Bench-Macro sample is a dict label -> op, got {type(sample).__name__}')
    missing = [label for label in LABELS if label not in sample]
    extra = [k for k in sample if k not in LABELS]
    if missing or extra:
        raise ValueError(f'NAS-Bench-Macro sample needs labels {LABELS}: missing {missing}, unknown {extra}')
    bad = {label: sample[label] for label in LABELS if sample[label] not in OPS}
    if bad:
        raise ValueError(f'NAS-Bench-Macro sample has unknown operations {bad}; expected one of {OPS}')
    return ''.join(str(OPS.index(sample[label])) for label in LABELS)


def canonical_key(key: str) -> str:
    """The key of the network the benchmark actually trained for ``key``: in every stage, the
    identities after the stage's first layer move to the stage's end (same function)."""
    check_key(key)
    out, start = [], 0
    for depth in STAGES:
        stage = key[start:start + depth]
        rest = [c for c in stage[1:] if c != '0']
        out.append(stage[0] + ''.join(rest) + '0' * (depth - 1 - len(rest)))
        start += depth
    return ''.join(out)


def all_keys() -> Iterator[str]:
    """All 6,561 keys in lexicographic order ("00000000", "00000001", ...)."""
    for codes in itertools.product('012', repeat=NUM_LAYERS):
        yield ''.join(codes)
