"""The NAS-Bench-Graph architecture without torch: operations, datasets, decision labels, and the
bijection between a sample and the benchmark's ``(link, ops)``.

Qin et al., "NAS-Bench-Graph: Benchmarking Graph Neural Architecture Search", NeurIPS 2022
Datasets and Benchmarks. Kept free of torch and NNI's NAS modules so that a table-lookup trial
starts fast (:mod:`nni_nasext.evaluators.nas_bench_graph_table`);
:mod:`nni_nasext.search_spaces.nas_bench_graph` (the space, its docstring explains the
decisions) re-exports everything here.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = ['OPS', 'OPS_PROTEINS', 'DATASETS', 'DATASET_SHAPES', 'NUM_NODES', 'LABELS', 'ops_for', 'sample_to_arch',
           'arch_to_sample', 'all_samples']

#: The benchmark's 9 operations, in its order.
OPS: Tuple[str, ...] = ('gat', 'gcn', 'gin', 'cheb', 'sage', 'arma', 'graph', 'fc', 'skip')
#: The 5 operations trained on ogbn-proteins.
OPS_PROTEINS: Tuple[str, ...] = ('gcn', 'sage', 'arma', 'fc', 'skip')
#: The 9 datasets of the benchmark.
DATASETS: Tuple[str, ...] = ('cora', 'citeseer', 'pubmed', 'cs', 'physics', 'photo', 'computers', 'arxiv', 'proteins')
#: (node feature size, classes) of each dataset (Planetoid, Coauthor, Amazon, OGB); ogbn-proteins
#: is 112 binary tasks on 8 features. Defaults of :class:`NasBenchGraphSpace`.
DATASET_SHAPES: Dict[str, Tuple[int, int]] = {
    'cora': (1433, 7), 'citeseer': (3703, 6), 'pubmed': (500, 3), 'cs': (6805, 15), 'physics': (8415, 5),
    'photo': (745, 8), 'computers': (767, 10), 'arxiv': (128, 40), 'proteins': (8, 112),
}
NUM_NODES = 4
LABELS: List[str] = [f'input_{i}' for i in range(2, NUM_NODES + 1)] + [f'op_{i}' for i in range(1, NUM_NODES + 1)]


def ops_for(dataset: Optional[str]) -> Tuple[str, ...]:
    """The operations of ``dataset`` (``None``: all 9)."""
    if dataset is None:
        return OPS
    if dataset not in DATASETS:
        raise ValueError(f'Unknown NAS-Bench-Graph dataset {dataset!r}; expected one of {list(DATASETS)}')
    return OPS_PROTEINS if dataset == 'proteins' else OPS


def sample_to_arch(sample: Mapping[str, Any], ops: Sequence[str] = OPS) -> Tuple[List[int], List[str]]:
    """A sample -> ``(link, ops)`` as the benchmark writes an architecture (``link[0] = 0``).
    Refuses missing or unknown labels, inputs that are not earlier nodes and unknown operations."""
    if not isinstance(sample, Mapping):
        raise TypeError(f'A NAS-Bench-Graph sample is a dict label -> value, got {type(sample).__name__}')
    missing = [label for label in LABELS if label not in sample]
    extra = [k for k in sample if k not in LABELS]
    if missing or extra:
        raise ValueError(f'NAS-Bench-Graph sample needs labels {LABELS}: missing {missing}, unknown {extra}')
    link = [0]
    for i in range(2, NUM_NODES + 1):
        src = sample[f'input_{i}']
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < i:
            raise ValueError(f'input_{i}={src!r} must be an earlier node, an int in 0..{i - 1}')
        link.append(src)
    chosen = [sample[f'op_{i}'] for i in range(1, NUM_NODES + 1)]
    bad = {f'op_{i + 1}': o for i, o in enumerate(chosen) if o not in ops}
    if bad:
        raise ValueError(f'NAS-Bench-Graph sample has operations {bad} outside {list(ops)}')
    return link, [str(o) for o in chosen]


def arch_to_sample(link: Sequence[int], ops: Sequence[str]) -> Dict[str, Any]:
    """``(link, ops)`` -> the space's sample (inverse of :func:`sample_to_arch`)."""
    if len(link) != NUM_NODES or len(ops) != NUM_NODES or link[0] != 0:
        raise ValueError(f'A NAS-Bench-Graph architecture is 4 links (the first 0) and 4 ops, got {link}, {ops}')
    sample: Dict[str, Any] = {f'input_{i}': int(link[i - 1]) for i in range(2, NUM_NODES + 1)}
    sample.update({f'op_{i}': str(ops[i - 1]) for i in range(1, NUM_NODES + 1)})
    sample_to_arch(sample)  # validates
    return sample


def all_samples(ops: Sequence[str] = OPS) -> Iterator[Dict[str, Any]]:
    """Every sample of the space (``24 * len(ops)**4``), all-skip included."""
    for links in itertools.product(range(2), range(3), range(4)):
        for chosen in itertools.product(ops, repeat=NUM_NODES):
            yield arch_to_sample((0,) + links, chosen)
