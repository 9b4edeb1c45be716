"""The NAS-Bench-101 search space, declared with plain NNI mutables.

Reference: C. Ying, A. Klein, E. Real, E. Christiansen, K. Murphy and F. Hutter, "NAS-Bench-101:
Towards Reproducible Neural Architecture Search", ICML 2019 (code and data: GitHub
``google-research/nasbench``).

The cell ("module") is a DAG on at most 7 vertices: vertex 0 is the input, vertex 6 the output,
vertices 1..5 each run one of ``conv3x3-bn-relu``, ``conv1x1-bn-relu``, ``maxpool3x3``. Edges only go
from a lower to a higher vertex (upper-triangular adjacency matrix, so every graph is a DAG by
construction). A cell is *valid* when, after pruning the vertices that are not on a path from the
input to the output, the input still reaches the output and at most 9 edges remain (the benchmark
API counts the edges of the pruned matrix; NNI's hub counts them before pruning).

Channels follow the paper (Section 2.1 and Figure 1c; ``model_builder.py`` of the release): the
output vertex concatenates the vertices that feed it, the output channels being split evenly
among them (the first ones get one more when it does not divide); every other interior vertex
takes the largest channel count of its successors; a vertex sums its inputs, the cell input being
projected by a 1x1 conv-BN-ReLU to the vertex's channel count and the other inputs truncated to it;
an input->output edge adds a projection of the input to the concatenation. The network: conv3x3-BN-
ReLU stem (128 channels) -> 3 stacks of 3 cells, a 2x2 max-pool (stride 2) between stacks that is
followed by a doubling of the channels (done by the next cell) -> global average pool -> linear.

Encoding (one NNI ``Categorical`` per decision, all in :data:`LABELS`): ``op1`` .. ``op5`` over
:data:`OPS`, and ``edge_i_j`` in ``{0, 1}`` for every ``0 <= i < j <= 6`` (21 edges). That is
2**21 * 3**5 = 509,607,936 encodings of which 423,624 are distinct valid cells (the benchmark's
count, up to graph isomorphism); every cell of the network shares the same decisions. Invalid
encodings are *refused at freeze time* with :class:`InvalidCellError` (not silently repaired: a
repair would hide the fact that the searcher proposed a graph outside the benchmark); samplers use
:func:`random_valid_sample` or reject with :func:`is_valid`. :func:`graph_hash` is NB101's
iterative neighbourhood hash (Weisfeiler-Lehman style, MD5), equal for isomorphic cells and equal to
the key of the benchmark table for the same cell.

Why not NNI's hub ``nni.nas.hub.pytorch.NasBench101``: it builds, and a valid sample freezes and
runs on torch 2.14, but (1) it holds a ``NasBench101CellConstraint`` (an NNI ``Constraint``), which
:meth:`nni_nasext.space_spec.SpaceSpec.from_space` refuses, so no sample-based searcher of this
project can use it; (2) its ``random()`` raises ``ConstraintViolation`` on an invalid draw instead of resampling
(and at most 9 edges is checked *before* pruning, unlike the benchmark), and it writes a
non-decision entry ``cell/final`` into the sample; (3) its encoding (a vertex count plus a free
subset of predecessors per vertex) is not the benchmark's matrix/ops form. The network here
follows the same paper as the hub's ``_NasBench101CellFixed`` and the tests check that both give
the same count of *used* parameters for the same cell (the hub also creates input projections
for vertices the input does not feed, which get no gradient).
"""
from __future__ import annotations

import hashlib
import random as _random
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nni.mutable import Categorical
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = [
    'INPUT', 'OUTPUT', 'CONV3X3', 'CONV1X1', 'MAXPOOL3X3', 'OPS', 'NUM_VERTICES', 'MAX_EDGES', 'EDGES',
    'OP_LABELS', 'EDGE_LABELS', 'LABELS', 'InvalidCellError', 'NasBench101Space', 'NasBench101Network', 'Cell',
    'sample_to_spec', 'spec_to_sample', 'prune', 'check_spec', 'is_valid', 'graph_hash', 'sample_hash',
    'compute_vertex_channels', 'random_valid_sample', 'to_nni_benchmark_arch', 'INCEPTION_LIKE', 'RESNET_LIKE',
]

INPUT, OUTPUT = 'input', 'output'
CONV3X3, CONV1X1, MAXPOOL3X3 = 'conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3'
#: Operations in the benchmark's order (``available_ops``; the index is the hash label).
OPS: List[str] = [CONV3X3, CONV1X1, MAXPOOL3X3]
NUM_VERTICES = 7
MAX_EDGES = 9
EDGES: List[Tuple[int, int]] = [(i, j) for j in range(1, NUM_VERTICES) for i in range(j)]
OP_LABELS: List[str] = [f'op{v}' for v in range(1, NUM_VERTICES - 1)]
EDGE_LABELS: List[str] = [f'edge_{i}_{j}' for i, j in EDGES]
LABELS: List[str] = OP_LABELS + EDGE_LABELS

#: The Inception-like cell of the benchmark's README / colab (5x5 conv as two 3x3 convs).
#: The colab (``NASBench.ipynb`` of google-research/nasbench) lists 2,694,282 trainable parameters
#: for it in the default network (128-channel stem, 3 stacks x 3 cells, 10 classes).
INCEPTION_LIKE = (
    [[0, 1, 1, 1, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT],
)
#: A ResNet-like cell (two 3x3 convs plus an input->output projection shortcut); our transcription
#: of the idea, not a cell copied from the paper's figures.
RESNET_LIKE = (
    [[0, 1, 0, 1],
     [0, 0, 1, 0],
     [0, 0, 0, 1],
     [0, 0, 0, 0]],
    [INPUT, CONV3X3, CONV3X3, OUTPUT],
)


class InvalidCellError(ValueError):
    """A NAS-Bench-101 cell outside the space (disconnected, too many edges, bad ops/matrix)."""


# ----------------------------------------------------------------------------- graph helpers

def _as_matrix(matrix) -> np.ndarray:
    m = np.asarray(matrix, dtype=int)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise InvalidCellError(f'Adjacency matrix must be square with at least 2 vertices, got shape {m.shape}')
    if not np.isin(m, (0, 1)).all():
        raise InvalidCellError('Adjacency matrix entries must be 0 or 1')
    if np.tril(m).any():
        raise InvalidCellError('Adjacency matrix must be strictly upper-triangular (edges go from lower to '
                               'higher vertices, which makes every cell a DAG)')
    return m


def _check_ops(ops: Sequence[str], n: int) -> List[str]:
    ops = list(ops)
    if len(ops) != n:
        raise InvalidCellError(f'{n} vertices need {n} ops, got {len(ops)}')
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise InvalidCellError(f'First op must be {INPUT!r} and last {OUTPUT!r}, got {ops}')
    bad = [o for o in ops[1:-1] if o not in OPS]
    if bad:
        raise InvalidCellError(f'Unknown NAS-Bench-101 ops {bad}; expected {OPS}')
    return ops


def prune(matrix, ops: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
    """Drop the vertices that are not on an input->output path; returns ``(matrix, ops)`` of
    the remaining vertices in their original order. Raises :class:`InvalidCellError` when the
    input does not reach the output (the benchmark's ``valid_spec = False``)."""
    m = _as_matrix(matrix)
    ops = _check_ops(ops, len(m))
    n = len(m)
    from_input = {0}
    for v in range(1, n):  # topological order = index order
        if any(m[u, v] for u in from_input):
            from_input.add(v)
    to_output = {n - 1}
    for v in range(n - 2, -1, -1):
        if any(m[v, w] for w in to_output):
            to_output.add(v)
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        raise InvalidCellError('Cell input is not connected to its output')
    return m[np.ix_(keep, keep)].copy(), [ops[v] for v in keep]


def check_spec(matrix, ops: Sequence[str], max_edges: int = MAX_EDGES,
               max_vertices: int = NUM_VERTICES) -> Tuple[np.ndarray, List[str]]:
    """Validate a cell like the benchmark API; returns its pruned form or raises
    :class:`InvalidCellError` with the reason."""
    m = _as_matrix(matrix)
    if len(m) > max_vertices:
        raise InvalidCellError(f'Too many vertices: {len(m)} > {max_vertices}')
    pm, pops = prune(m, ops)
    edges = int(pm.sum())
    if edges > max_edges:
        raise InvalidCellError(f'Too many edges after pruning: {edges} > {max_edges}')
    return pm, pops


def graph_hash(matrix, ops: Sequence[str]) -> str:
    """NB101's graph-invariant hash of a cell (pruned first): each vertex starts from the MD5 of
    (out-degree, in-degree, op label) and is re-hashed ``V`` times with the sorted hashes of its
    in- and out-neighbours; the fingerprint is the MD5 of the sorted final vertex hashes. Labels
    are -1 (input), -2 (output) and the index into :data:`OPS`. Isomorphic cells hash equal; this
    is the key of the benchmark's tables (and of NNI's ``nni.nas.benchmark.nasbench101``)."""
    m, ops = prune(matrix, ops)
    n = len(m)
    labels = [-1] + [OPS.index(o) for o in ops[1:-1]] + [-2]
    ins, outs = m.sum(axis=0).tolist(), m.sum(axis=1).tolist()
    hashes = [hashlib.md5(str((outs[v], ins[v], labels[v])).encode('utf-8')).hexdigest() for v in range(n)]
    for _ in range(n):
        new = []
        for v in range(n):
            pred = ''.join(sorted(hashes[u] for u in range(n) if m[u, v]))
            succ = ''.join(sorted(hashes[w] for w in range(n) if m[v, w]))
            new.append(hashlib.md5(f'{pred}|{succ}|{hashes[v]}'.encode('utf-8')).hexdigest())
        hashes = new
    return hashlib.md5(str(sorted(hashes)).encode('utf-8')).hexdigest()


# ----------------------------------------------------------------------------- sample <-> spec

def sample_to_spec(sample: Mapping[str, Any]) -> Tuple[np.ndarray, List[str]]:
    """NNI sample -> (7x7 adjacency matrix, 7 ops with input/output), unpruned."""
    if not isinstance(sample, Mapping):
        raise TypeError(f'A NAS-Bench-101 sample is a dict label -> value, got {type(sample).__name__}')
    missing = [k for k in LABELS if k not in sample]
    if missing:
        raise InvalidCellError(f'NAS-Bench-101 sample misses labels {missing}')
    m = np.zeros((NUM_VERTICES, NUM_VERTICES), dtype=int)
    for (i, j), label in zip(EDGES, EDGE_LABELS):
        if sample[label] not in (0, 1):
            raise InvalidCellError(f'{label} must be 0 or 1, got {sample[label]!r}')
        m[i, j] = int(sample[label])
    ops = [INPUT] + [sample[k] for k in OP_LABELS] + [OUTPUT]
    _check_ops(ops, NUM_VERTICES)
    return m, ops


def spec_to_sample(matrix, ops: Sequence[str]) -> Dict[str, Any]:
    """(matrix, ops) with 2..7 vertices -> NNI sample. A smaller cell keeps its interior vertices
    as vertices 1.., its output becomes vertex 6; unused vertices get :data:`CONV3X3` and no edges."""
    m = _as_matrix(matrix)
    n = len(m)
    if n > NUM_VERTICES:
        raise InvalidCellError(f'Too many vertices: {n} > {NUM_VERTICES}')
    ops = _check_ops(ops, n)
    where = list(range(n - 1)) + [NUM_VERTICES - 1]
    sample: Dict[str, Any] = {label: CONV3X3 for label in OP_LABELS}
    for v in range(1, n - 1):
        sample[f'op{v}'] = ops[v]
    for label in EDGE_LABELS:
        sample[label] = 0
    for i in range(n):
        for j in range(i + 1, n):
            if m[i, j]:
                sample[f'edge_{where[i]}_{where[j]}'] = 1
    return {label: sample[label] for label in LABELS}


def is_valid(sample: Mapping[str, Any]) -> bool:
    """True when the sample is a cell of the benchmark (connected, <= 9 edges after pruning)."""
    try:
        check_spec(*sample_to_spec(sample))
    except InvalidCellError:
        return False
    return True


def sample_hash(sample: Mapping[str, Any]) -> str:
    """:func:`graph_hash` of a sample; raises :class:`InvalidCellError` when it is invalid."""
    return graph_hash(*check_spec(*sample_to_spec(sample)))


def random_valid_sample(rng: Optional[_random.Random] = None) -> Dict[str, Any]:
    """Uniform over encodings, rejecting invalid ones (the benchmark's ``random_spec``)."""
    rng = rng or _random.Random()
    while True:
        sample = {label: rng.choice(OPS) for label in OP_LABELS}
        sample.update({label: rng.randint(0, 1) for label in EDGE_LABELS})
        if is_valid(sample):
            return sample


def to_nni_benchmark_arch(sample: Mapping[str, Any]) -> Tuple[int, Dict[str, Any]]:
    """``(num_vertices, arch)`` of the pruned cell in the format of NNI's
    ``nni.nas.benchmark.nasbench101.query_nb101_trial_stats`` (``op1``.., ``input1``..)."""
    m, ops = check_spec(*sample_to_spec(sample))
    arch: Dict[str, Any] = {f'op{v}': ops[v] for v in range(1, len(m) - 1)}
    arch.update({f'input{v}': [u for u in range(v) if m[u, v]] for v in range(1, len(m))})
    return len(m), arch


# ----------------------------------------------------------------------------- network

def compute_vertex_channels(in_channels: int, out_channels: int, matrix: np.ndarray) -> List[int]:
    """Channels of every vertex of a *pruned* cell (paper, Figure 1c)."""
    n = len(matrix)
    ch = [0] * n
    ch[0], ch[-1] = in_channels, out_channels
    if n == 2:
        return ch
    feeding = [v for v in range(1, n - 1) if matrix[v, n - 1]]
    base, extra = divmod(out_channels, len(feeding))
    for k, v in enumerate(feeding):
        ch[v] = base + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            ch[v] = max(ch[w] for w in range(v + 1, n - 1) if matrix[v, w])
    return ch


def _bn(c: int) -> nn.BatchNorm2d:
    # TF's decay 0.997 of the release = PyTorch momentum 0.003; epsilon 1e-5.
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.003)


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), _bn(c_out), nn.ReLU())


def _make_op(name: str, channels: int) -> nn.Module:
    if name == CONV3X3:
        return ConvBNReLU(channels, channels, 3)
    if name == CONV1X1:
        return ConvBNReLU(channels, channels, 1)
    if name == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise InvalidCellError(f'Unknown NAS-Bench-101 op {name!r}')


class Cell(nn.Module):
    """One fixed NB101 cell for a pruned ``(matrix, ops)`` (see module docstring)."""

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], in_channels: int, out_channels: int):
        super().__init__()
        self.matrix = np.asarray(matrix, dtype=int)
        self.num_vertices = n = len(self.matrix)
        self.channels = compute_vertex_channels(in_channels, out_channels, self.matrix)
        self.ops = nn.ModuleDict({str(v): _make_op(ops[v], self.channels[v]) for v in range(1, n - 1)})
        self.proj = nn.ModuleDict({str(v): ConvBNReLU(in_channels, self.channels[v], 1)
                                   for v in range(1, n) if self.matrix[0, v]})
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, ch = self.num_vertices, self.matrix, self.channels
        states = [x]
        for v in range(1, n - 1):
            terms = [states[u][:, :ch[v]] for u in range(1, v) if m[u, v]]
            if m[0, v]:
                terms.append(self.proj[str(v)](x))
            states.append(self.ops[str(v)](sum(terms[1:], terms[0])))
        feeding = [states[v] for v in range(1, n - 1) if m[v, n - 1]]
        if not feeding:
            return self.proj[str(n - 1)](x)
        out = feeding[0] if len(feeding) == 1 else torch.cat(feeding, dim=1)
        if m[0, n - 1]:
            out = out + self.proj[str(n - 1)](x)
        return out


class NasBench101Network(nn.Module):
    """The fixed NB101 network of one valid cell (every cell of the network is that cell)."""

    def __init__(self, matrix, ops: Sequence[str], stem_channels: int = 128, num_stacks: int = 3,
                 cells_per_stack: int = 3, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        pm, pops = check_spec(matrix, ops)
        self.matrix, self.ops = pm, pops
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        layers: List[nn.Module] = []
        c_in = c_out = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c_out *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(pm, pops, c_in, c_out))
                c_in = c_out
        self.cells = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.cells(self.stem(x))), 1))


class _NB101Searchable(MutableModule):
    """The whole network as one mutable module: 26 ``Categorical`` decisions, frozen by
    building :class:`NasBench101Network` (which validates the cell)."""

    def __init__(self, **kwargs):
        super().__init__()
        for label in OP_LABELS:
            self.add_mutable(Categorical(list(OPS), label=label))
        for label in EDGE_LABELS:
            self.add_mutable(Categorical([0, 1], label=label))
        self._kwargs = kwargs

    @classmethod
    def create_fixed_module(cls, sample: dict, **kwargs) -> nn.Module:
        matrix, ops = sample_to_spec(sample)
        try:
            return NasBench101Network(matrix, ops, **kwargs)
        except InvalidCellError as err:
            raise InvalidCellError(f'Invalid NAS-Bench-101 cell: {err}. Sample: '
                                   f'{ {k: sample[k] for k in LABELS} }') from None

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        return self.create_fixed_module(sample, **self._kwargs)

    def forward(self, x):
        raise NotImplementedError('Freeze the NAS-Bench-101 space with a sample before running it')


class NasBench101Space(ModelSpace):
    """NAS-Bench-101 (Ying et al., ICML 2019). Defaults are the benchmark's network (128-channel
    stem, 3 stacks x 3 cells, 32x32 RGB, 10 classes). ``space.freeze(sample)`` returns a module
    holding a :class:`NasBench101Network`; an invalid sample raises :class:`InvalidCellError`."""

    def __init__(self, stem_channels: int = 128, num_stacks: int = 3, cells_per_stack: int = 3,
                 num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if min(stem_channels, num_stacks, cells_per_stack, num_classes, in_channels) < 1:
            raise ValueError('stem_channels, num_stacks, cells_per_stack, num_classes, in_channels must be positive')
        self.net = _NB101Searchable(stem_channels=stem_channels, num_stacks=num_stacks,
                                    cells_per_stack=cells_per_stack, num_classes=num_classes,
                                    in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
