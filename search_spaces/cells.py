"""NASNet-family cell search spaces (NASNet, DARTS, ENAS micro, AmoebaNet, PNAS) and the
published architectures of their papers as frozen samples.

References
----------
* B. Zoph, V. Vasudevan, J. Shlens and Q. V. Le, "Learning Transferable Architectures for
  Scalable Image Recognition", CVPR 2018 (NASNet; NASNet-A 6 @ 768, 3.3M params on CIFAR-10).
* H. Liu, K. Simonyan and Y. Yang, "DARTS: Differentiable Architecture Search", ICLR 2019
  (DARTS first / second order, 3.3M params each at C=36, 20 cells).
* H. Pham, M. Guan, B. Zoph, Q. V. Le and J. Dean, "Efficient Neural Architecture Search via
  Parameter Sharing", ICML 2018 (ENAS micro space, 4.6M params).
* E. Real, A. Aggarwal, Y. Huang and Q. V. Le, "Regularized Evolution for Image Classifier
  Architecture Search", AAAI 2019 (AmoebaNet-A, N=6, F=36, 3.2M params).
* C. Liu, B. Zoph, M. Neumann, J. Shlens, W. Hua, L.-J. Li, L. Fei-Fei, A. Yuille, J. Huang and
  K. Murphy, "Progressive Neural Architecture Search", ECCV 2018 (PNASNet-5, 3.2M params).

The cell
--------
A cell has two inputs (index 0: output of the cell before last, ``h_{i-1}``; index 1: output of
the last cell, ``h_i``; each mapped to ``C`` channels by ReLU-conv1x1-BN, or by a factorized
reduction where the cell before last has twice the resolution) and ``B`` blocks. Block ``j``
(state index ``j + 2``) picks two earlier states and one operation for each, and adds the two
results (the "add" combine of all five papers). In a reduction cell the operations applied to
the two cell inputs have stride 2. Decisions, with NNI's own ``Cell`` labels so that a sample of
NNI's hub ``DARTS`` space is a sample here as well::

    {cell}/input_{j}_{k}   InputChoice(j, 1): which state feeds operand k of block j  -> [index]
    {cell}/op_{j}_{k}      LayerChoice over the family's operations                   -> name

for ``cell`` in ``normal``, ``reduce`` (PNAS has one cell, ``cell``, used for both: its paper
uses the same cell with stride 2 to reduce), ``j`` in ``2 .. B+1`` and ``k`` in ``0, 1``.
:class:`~nni_nasext.space_spec.SpaceSpec` encodes ``LayerChoice`` as ``choice`` and
``InputChoice`` as ``choice_multiple`` with ``n_chosen = 1`` (values are lists of one index).

The cell's output is the concatenation along channels of

* ``all`` (DARTS, PNAS): every block;
* ``loose`` (ENAS, AmoebaNet): every state that no block reads, the two inputs included (an
  unused input of a reduction cell is factorized-reduced first) - the rule of ENAS's
  ``_fixed_combine``;
* ``nasnet`` (NASNet): the loose-end blocks, plus, in normal cells, the cell input ``h_{i-1}``:
  the rule of the official NASNet-A code (``used_hiddenstates`` of TF-slim's
  ``nasnet_utils.NasNetANormalCell``; it is what makes NASNet-A "6 @ 768": 6 x 4F = 768 at F=32).

Network (CIFAR-10 configuration of all five papers): conv3x3 stem with ``3C`` channels - BN,
then ``N`` normal cells, a reduction cell (2C), ``N`` normal cells, a reduction cell (4C), ``N``
normal cells, ReLU (ENAS only) - global average pool - linear. ``N`` is ``num_cells`` (DARTS's
"20 cells" is ``N = 6``). The optional auxiliary head (5x5 avg pool stride 3 - conv1x1 128 -
conv2x2 768 - linear) sits after the second reduction cell's stage ends (after cell ``2N + 1``,
DARTS's placement); papers' parameter counts exclude it (see :data:`PUBLISHED`).

Relation to NNI's hub
---------------------
``nni.nas.hub.pytorch`` has ``NASNet``, ``ENAS``, ``AmoebaNet``, ``PNAS`` and ``DARTS``
(``nasnet.py``, after facebookresearch/unnas). On torch 2.14 + NNI 3.0 they construct, freeze,
run forward/backward, and ``SpaceSpec.from_space`` encodes them exactly (20 or 16 ``Categorical``
``op_*`` and as many ``CategoricalMultiple`` ``input_*`` with ``n_chosen=1``; JSON round trip
holds); ``DARTS.load_searched_model('darts-v2')`` has 3,349,342 parameters, as the DARTS code.
(``space.random()`` there needs a NumPy ``RandomState``: a ``random.Random`` raises ``TypeError``.)
We do not wrap them because they cannot hold the published architectures the papers counted:

1. the hub's ``loose_end`` concatenates unused *blocks* only, never the cell inputs, so NASNet-A
   builds to 3.06M (paper 3.3M, -7%): NASNet's normal cell concatenates ``h_{i-1}`` as well;
2. ENAS's fixed cell has one more ReLU-conv1x1-BN on ``h_i`` (``layer_base`` of ENAS's
   ``micro_child.py``) and a ReLU before the pool; the hub's ENAS has neither;
3. PNAS uses one cell for normal and reduction; the hub samples two independent cells;
4. DARTS's space has 8 operations, ``none`` included; the hub's ``DARTS`` drops ``none``;
5. the hub's CIFAR networks have 10 classes, fixed.

So the cell and the network are written here with NNI's primitives (``ModelSpace``,
``LayerChoice``, ``InputChoice``, ``model_context``), and the *operations* are NNI's hub's own
(``nni.nas.hub.pytorch.nasnet.OPS``: separable convs stacked twice, dilated convs, 1x7-7x1,
pools, factorized reduce), used unchanged. With them our DARTS-V2 has exactly the hub's
parameter count (a test checks it).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from nni.nas.hub.pytorch.nasnet import OPS as HUB_OPS, FactorizedReduce, ReLUConvBN
from nni.nas.nn.pytorch import Cell, InputChoice, LayerChoice, ModelSpace, MutableModule
from nni.mutable import label_scope
from nni.nas.space import current_model, model_context

__all__ = [
    'FAMILIES', 'NASNET_OPS', 'DARTS_OPS', 'ENAS_OPS', 'AMOEBA_OPS', 'PNAS_OPS',
    'CellSpace', 'NASNetSpace', 'DARTSSpace', 'ENASMicroSpace', 'AmoebaNetSpace', 'PNASSpace',
    'genotype_to_sample', 'cell_labels', 'PUBLISHED', 'published', 'count_params', 'space_size',
]

#: Zoph et al. 2018, Sec. 3: identity, 1x3 then 3x1 conv, 1x7 then 7x1 conv, 3x3 dilated conv,
#: 3x3 avg pool, 3x3 / 5x5 / 7x7 max pool, 1x1 conv, 3x3 conv, 3x3 / 5x5 / 7x7 depthwise-separable.
NASNET_OPS: List[str] = ['skip_connect', 'conv_3x1_1x3', 'conv_7x1_1x7', 'dil_conv_3x3', 'avg_pool_3x3',
                         'max_pool_3x3', 'max_pool_5x5', 'max_pool_7x7', 'conv_1x1', 'conv_3x3',
                         'sep_conv_3x3', 'sep_conv_5x5', 'sep_conv_7x7']
#: Liu et al. 2019, Sec. 3.1 (the DARTS code's PRIMITIVES, same order).
DARTS_OPS: List[str] = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3',
                        'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']
#: Pham et al. 2018, Sec. 2.4, in the order of ENAS's op codes 0..4.
ENAS_OPS: List[str] = ['sep_conv_3x3', 'sep_conv_5x5', 'avg_pool_3x3', 'max_pool_3x3', 'skip_connect']
#: Real et al. 2019, Sec. 3 / Fig. 2 (identity, 3x3 / 5x5 / 7x7 sep. conv, 3x3 avg / max pool,
#: 3x3 dilated sep. conv, 1x7 then 7x1 conv).
AMOEBA_OPS: List[str] = ['skip_connect', 'sep_conv_3x3', 'sep_conv_5x5', 'sep_conv_7x7', 'avg_pool_3x3',
                         'max_pool_3x3', 'dil_sep_conv_3x3', 'conv_7x1_1x7']
#: Liu et al. 2018 (PNAS), Sec. 3.1: the 8 operations of its pruned set.
PNAS_OPS: List[str] = ['skip_connect', 'avg_pool_3x3', 'max_pool_3x3', 'conv_7x1_1x7', 'dil_conv_3x3',
                       'sep_conv_3x3', 'sep_conv_5x5', 'sep_conv_7x7']

#: family -> (operations, blocks per cell, concat rule, shared normal/reduction cell, ENAS extras)
FAMILIES: Dict[str, Dict[str, Any]] = {
    'nasnet': dict(ops=NASNET_OPS, num_blocks=5, concat='nasnet', shared=False, enas=False),
    'darts': dict(ops=DARTS_OPS, num_blocks=4, concat='all', shared=False, enas=False),
    'enas': dict(ops=ENAS_OPS, num_blocks=5, concat='loose', shared=False, enas=True),
    'amoebanet': dict(ops=AMOEBA_OPS, num_blocks=5, concat='loose', shared=False, enas=False),
    'pnas': dict(ops=PNAS_OPS, num_blocks=5, concat='all', shared=True, enas=False),
}


def _make_op(name: str, channels: int, stride: int) -> nn.Module:
    if name not in HUB_OPS:
        raise ValueError(f'Unknown operation {name!r}')
    return HUB_OPS[name](channels, stride, True)


def cell_labels(family: str, num_blocks: Optional[int] = None) -> List[str]:
    """All labels of a family's space (as a set: ``SpaceSpec.from_space`` may order them otherwise)."""
    cfg = FAMILIES[family]
    blocks = num_blocks or cfg['num_blocks']
    names = ['cell'] if cfg['shared'] else ['normal', 'reduce']
    out = []
    for cell in names:
        for j in range(2, blocks + 2):
            for k in range(2):
                out += [f'{cell}/input_{j}_{k}', f'{cell}/op_{j}_{k}']
    return out


class _Cell(MutableModule):
    """One cell (see the module docstring). Built inside ``model_context(sample)`` it is the
    chosen network; otherwise (the space) its blocks are NNI's ``Cell`` with an op factory, so
    that the reduction-cell ops on the cell inputs get stride 2 whatever the slot, and
    one-shot supernets (ours, NNI's DARTS) can give every (block, input) edge its own ops.
    It lists its choices block by block (``input_j_0``, ``op_j_0``, ``input_j_1``, ...), the
    space's order since before it held a ``Cell``, so seeded searches keep their samples."""

    def leaf_mutables(self, is_leaf):
        if self.cell is None:
            return
        if not isinstance(self.cell, Cell):  # another module in its place (e.g. a one-shot supernet's cell)
            yield from super().leaf_mutables(is_leaf)
            return
        for inputs, ops in zip(self.cell.inputs, self.cell.ops):
            for inp, op in zip(inputs, ops):
                yield from inp.leaf_mutables(is_leaf)
                yield from op.leaf_mutables(is_leaf)

    def __init__(self, name: str, ops: Sequence[str], num_blocks: int, concat: str, enas: bool,
                 c_pprev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction, self.concat_rule = reduction, concat
        self.pre0 = FactorizedReduce(c_pprev, channels) if reduction_prev else ReLUConvBN(c_pprev, channels, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        # ENAS's fixed layer maps h_i to C channels, then applies one more ReLU-conv1x1-BN ("layer_base").
        self.base = ReLUConvBN(channels, channels, 1, 1, 0) if enas else None
        num_states = num_blocks + 2
        if current_model() is None:  # the space: NNI's Cell, every block an output (shape only)
            factory = {op: (lambda node, slot, inp, op=op: _make_op(op, channels, 2 if reduction and (inp is None or inp < 2)
                                                                 else 1)) for op in ops}
            self.cell = Cell(factory, num_nodes=num_blocks, num_ops_per_node=2, num_predecessors=2, merge_op='all',
                             label=name)
            self.chosen: List[Optional[int]] = [None] * (2 * num_blocks)
            self.out_indices = list(range(2, num_states))
            self.calibrate = nn.ModuleDict()
            self.multiplier = num_blocks
            return
        self.cell = None
        self.inputs = nn.ModuleList()
        self.ops = nn.ModuleList()
        chosen: List[Optional[int]] = []
        scope = label_scope(name)  # labels '{name}/input_j_k': NNI refuses '/' inside a label
        for j in range(2, num_blocks + 2):
            for k in range(2):
                with scope:
                    inp = InputChoice(j, 1, label=f'input_{j}_{k}')
                src = inp.chosen[0]
                chosen.append(src)
                self.inputs.append(nn.Identity())
                stride = 2 if reduction and src < 2 else 1  # stride 2 on cell inputs of a reduction cell
                with scope:
                    self.ops.append(LayerChoice({op: _make_op(op, channels, stride) for op in ops},
                                                label=f'op_{j}_{k}'))
        self.chosen = chosen
        if concat == 'all':
            out = list(range(2, num_states))
        else:
            used = set(chosen)
            first = 2 if concat == 'nasnet' else 0
            out = [i for i in range(first, num_states) if i not in used]
            if concat == 'nasnet' and not reduction:
                out = [0] + out
        self.out_indices = out
        # unused cell inputs of a reduction cell are at twice the resolution: reduce them
        self.calibrate = nn.ModuleDict({str(i): FactorizedReduce(channels, channels)
                                        for i in out if i < 2 and reduction})
        self.multiplier = len(out)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        s0, s1 = self.pre0(s0), self.pre1(s1)
        if self.base is not None:
            s1 = self.base(s1)
        if self.cell is not None:
            return self.cell([s0, s1])
        states = [s0, s1]
        for b in range(len(self.ops) // 2):
            total = 0
            for k in range(2):
                idx = 2 * b + k
                total = total + self.ops[idx](states[self.chosen[idx]])
            states.append(total)
        outs = [self.calibrate[str(i)](states[i]) if str(i) in self.calibrate else states[i] for i in self.out_indices]
        return torch.cat(outs, dim=1)


class _AuxHead(nn.Module):
    """Auxiliary classifier of NASNet / DARTS for 8x8 CIFAR feature maps."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class CellSpace(ModelSpace):
    """A NASNet-family space: ``family`` picks operations, blocks and concat rule (:data:`FAMILIES`).

    Parameters: ``channels`` (C, or F in NASNet / AmoebaNet / PNAS papers), ``num_cells`` (N
    normal cells per stage, or three counts, one per stage), ``num_classes``, ``in_channels``, ``auxiliary`` (add the auxiliary
    head; the network then returns ``(logits, aux_logits)`` in training mode), ``num_blocks``
    (B; the family's by default). ``freeze(sample)`` rebuilds the network inside
    ``model_context(sample)``: a cell's output width depends on which states its blocks read.
    """

    def __init__(self, family: str = 'darts', channels: int = 36, num_cells: Union[int, Sequence[int]] = 6, num_classes: int = 10,
                 in_channels: int = 3, auxiliary: bool = False, num_blocks: Optional[int] = None):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f'Unknown cell family {family!r}; expected one of {sorted(FAMILIES)}')
        stages = (num_cells,) * 3 if isinstance(num_cells, int) else tuple(int(n) for n in num_cells)
        if len(stages) != 3 or min(stages) < 0 or stages[0] < 1:
            raise ValueError(f'num_cells must be a positive int or 3 normal-cell counts per stage, got {num_cells!r}')
        if min(channels, num_classes, in_channels) < 1:
            raise ValueError('channels, num_classes and in_channels must be positive')
        cfg = FAMILIES[family]
        blocks = num_blocks or cfg['num_blocks']
        self._config = dict(family=family, channels=channels, num_cells=stages, num_classes=num_classes,
                            in_channels=in_channels, auxiliary=auxiliary, num_blocks=num_blocks)
        self.family, self.auxiliary = family, auxiliary
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pprev, c_prev, c = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        reductions = (stages[0], stages[0] + 1 + stages[1])
        total = sum(stages) + 2
        self.aux_index = reductions[1]  # the second reduction cell's position
        c_aux = None
        for i in range(total):
            reduction = i in reductions
            if reduction:
                c *= 2
            name = 'cell' if cfg['shared'] else ('reduce' if reduction else 'normal')
            cell = _Cell(name, cfg['ops'], blocks, cfg['concat'], cfg['enas'], c_pprev, c_prev, c,
                         reduction, reduction_prev)
            self.cells.append(cell)
            c_pprev, c_prev = c_prev, cell.multiplier * c
            reduction_prev = reduction
            if i == self.aux_index:
                c_aux = c_prev
        self.aux_head = _AuxHead(c_aux, num_classes) if auxiliary else None
        self.final_relu = cfg['enas']  # ENAS applies ReLU before the global pool
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        if self.final_relu:
            s1 = torch.relu(s1)
        logits = self.classifier(torch.flatten(self.pool(s1), 1))
        return (logits, aux) if aux is not None else logits

    def freeze(self, sample: Mapping[str, Any]) -> 'CellSpace':
        with model_context(dict(sample)):
            return CellSpace(**self._config)


class NASNetSpace(CellSpace):
    """NASNet search space (Zoph et al., CVPR 2018): B=5 blocks, 13 operations, add combine,
    unused states (and ``h_{i-1}`` in normal cells) concatenated. CIFAR-10 NASNet-A: N=6, F=32."""

    def __init__(self, channels: int = 32, num_cells: Union[int, Sequence[int]] = 6, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False):
        super().__init__('nasnet', channels, num_cells, num_classes, in_channels, auxiliary)


class DARTSSpace(CellSpace):
    """DARTS search space (Liu et al., ICLR 2019): 4 intermediate nodes, 2 inputs each, 8 ops
    (``none`` included), all nodes concatenated. CIFAR-10 evaluation network: C=36, 20 cells."""

    def __init__(self, channels: int = 36, num_cells: Union[int, Sequence[int]] = 6, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False):
        super().__init__('darts', channels, num_cells, num_classes, in_channels, auxiliary)


class ENASMicroSpace(CellSpace):
    """ENAS micro search space (Pham et al., ICML 2018): B=5, 5 ops, loose ends concatenated;
    the fixed-architecture network of ENAS's code (F=36, ``--child_out_filters=36``).

    Depth: ENAS's final-training script passes ``--child_num_layers=15`` (N=5 normal cells per
    stage), which builds the published cells to 3.89M parameters; the paper's 4.6M is what N=6
    gives (4.59M), so the default here is N=6 (our inference: the paper does not state N)."""

    def __init__(self, channels: int = 36, num_cells: Union[int, Sequence[int]] = 6, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False):
        super().__init__('enas', channels, num_cells, num_classes, in_channels, auxiliary)


class AmoebaNetSpace(CellSpace):
    """AmoebaNet search space (Real et al., AAAI 2019): NASNet's cell with 8 ops, B=5, loose
    ends concatenated. CIFAR-10 AmoebaNet-A: N=6, F=36."""

    def __init__(self, channels: int = 36, num_cells: Union[int, Sequence[int]] = 6, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False):
        super().__init__('amoebanet', channels, num_cells, num_classes, in_channels, auxiliary)


class PNASSpace(CellSpace):
    """PNAS search space (Liu et al., ECCV 2018): one cell of B=5 blocks over 8 ops, used as
    normal cell and (stride 2) as reduction cell, all blocks concatenated. PNASNet-5: N=3, F=48.

    PNAS counts the reduction cell in its stage (TF-slim ``pnasnet.py``: ``num_cells`` cells with
    reductions at 1/3 and 2/3, e.g. 12 cells = 4, R+3, R+3 for PNASNet-5 Large, N=4), so N=3 is
    3 normal cells, R, 2 normal cells, R, 2 normal cells: ``num_cells=(3, 2, 2)``. (With
    ``(3, 3, 3)`` PNASNet-5 would have 4.27M parameters, not the paper's 3.2M.)"""

    def __init__(self, channels: int = 48, num_cells: Union[int, Sequence[int]] = (3, 2, 2), num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = False):
        super().__init__('pnas', channels, num_cells, num_classes, in_channels, auxiliary)


_FACTORIES = {'nasnet': NASNetSpace, 'darts': DARTSSpace, 'enas': ENASMicroSpace, 'amoebanet': AmoebaNetSpace,
              'pnas': PNASSpace}


def space_size(family: str) -> float:
    """log10 of the number of samples of a family's space (each cell: prod over blocks j of
    (j * |ops|)**2; two independent cells except PNAS)."""
    cfg = FAMILIES[family]
    per_cell = sum(2 * math.log10(j * len(cfg['ops'])) for j in range(2, cfg['num_blocks'] + 2))
    return per_cell * (1 if cfg['shared'] else 2)


def genotype_to_sample(normal: Sequence[Tuple[str, int]], reduce: Optional[Sequence[Tuple[str, int]]] = None,
                       ) -> Dict[str, Any]:
    """DARTS-style genotype (list of ``(op, input state)``, two per block, block order) -> sample.
    Without ``reduce`` (PNAS) the one cell is labelled ``cell``."""
    cells = [('cell', normal)] if reduce is None else [('normal', normal), ('reduce', reduce)]
    sample: Dict[str, Any] = {}
    for name, genes in cells:
        if len(genes) % 2:
            raise ValueError(f'A genotype lists two (op, input) pairs per block, got {len(genes)}')
        for i, (op, src) in enumerate(genes):
            j, k = 2 + i // 2, i % 2
            if not 0 <= src < j:
                raise ValueError(f'Block {j} cannot read state {src}')
            sample[f'{name}/input_{j}_{k}'] = [src]
            sample[f'{name}/op_{j}_{k}'] = op
    return sample


def _enas_arc(arc: str) -> List[Tuple[str, int]]:
    """ENAS micro arc (4 ints per block: x_id, x_op, y_id, y_op) -> genotype."""
    codes = [int(t) for t in arc.split()]
    return [(ENAS_OPS[codes[i + 1]], codes[i]) for i in range(0, len(codes), 2)]


# --------------------------------------------------------------------------- published cells
# Genotypes use DARTS's indexing: 0 = h_{i-1} (cell before last), 1 = h_i (last cell), j >= 2 = block j.

#: NASNet-A, Zoph et al. 2018 Fig. 4; transcribed from quark0/darts cnn/genotypes.py ``NASNet``
#: (TF-slim nasnet_utils ``NasNetANormalCell`` / ``NasNetAReductionCell`` with inputs swapped).
_NASNET_A = (
    [('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1),
     ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)],
    [('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1),
     ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)],
)
#: AmoebaNet-A, Real et al. 2019 Fig. 4; transcribed from quark0/darts cnn/genotypes.py ``AmoebaNet``.
_AMOEBANET_A = (
    [('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0),
     ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)],
    [('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), ('sep_conv_7x7', 0),
     ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
)
#: PNASNet-5, Liu et al. 2018 Fig. 1; transcribed from the PNASNet genotype of chenxi116/PNASNet.pytorch
#: as used in DARTS-family code (TF-slim pnasnet ``PNasNetNormalCell`` with inputs swapped).
_PNASNET_5 = [('sep_conv_5x5', 0), ('max_pool_3x3', 0), ('sep_conv_7x7', 1), ('max_pool_3x3', 1),
              ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 4), ('max_pool_3x3', 1),
              ('sep_conv_3x3', 0), ('skip_connect', 1)]
#: ENAS micro final cells: ``fixed_arc`` of melodyguan/enas scripts/cifar10_micro_final.sh
#: (normal arc, then reduction arc; op codes 0..4 = :data:`ENAS_OPS`).
_ENAS = (_enas_arc('0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1'),
         _enas_arc('1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1'))
#: DARTS-V1 (first order) and DARTS-V2 (second order): quark0/darts cnn/genotypes.py; V2 equals
#: the ``darts-v2`` architecture of NNI's hub (``DARTS.load_searched_model``).
_DARTS_V1 = (
    [('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0),
     ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)],
    [('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0),
     ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)],
)
_DARTS_V2 = (
    [('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1),
     ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
    [('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0),
     ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
)

#: name -> (space factory, its kwargs (the paper's CIFAR-10 network), sample, paper params (M), citation).
#: All counts are without the auxiliary head (DARTS's and ENAS's code count that way; NASNet,
#: AmoebaNet and PNAS report counts that our aux-less networks match, see tests).
PUBLISHED: Dict[str, Tuple[Any, Dict[str, Any], Dict[str, Any], float, str]] = {
    'nasnet_a': (NASNetSpace, dict(channels=32, num_cells=6), genotype_to_sample(*_NASNET_A), 3.3,
                 'Zoph et al., CVPR 2018, Table 1: NASNet-A (6 @ 768)'),
    'amoebanet_a': (AmoebaNetSpace, dict(channels=36, num_cells=6), genotype_to_sample(*_AMOEBANET_A), 3.2,
                    'Real et al., AAAI 2019, Table 2: AmoebaNet-A (N=6, F=36)'),
    'pnasnet_5': (PNASSpace, dict(channels=48, num_cells=(3, 2, 2)), genotype_to_sample(_PNASNET_5), 3.2,
                  'Liu et al., ECCV 2018, Table 1: PNASNet-5 (N=3, F=48)'),
    'enas_micro': (ENASMicroSpace, dict(channels=36, num_cells=6), genotype_to_sample(*_ENAS), 4.6,
                   'Pham et al., ICML 2018, Table 2: ENAS micro search space'),
    'darts_v1': (DARTSSpace, dict(channels=36, num_cells=6), genotype_to_sample(*_DARTS_V1), 3.3,
                 'Liu et al., ICLR 2019, Table 1: DARTS (first order)'),
    'darts_v2': (DARTSSpace, dict(channels=36, num_cells=6), genotype_to_sample(*_DARTS_V2), 3.3,
                 'Liu et al., ICLR 2019, Table 1: DARTS (second order)'),
}


def published(name: str, **overrides) -> Tuple[CellSpace, Dict[str, Any]]:
    """``(space, sample)`` of a published architecture; ``overrides`` change the space's
    kwargs (e.g. ``channels=8, num_cells=1`` for a small copy of the same cells)."""
    if name not in PUBLISHED:
        raise KeyError(f'Unknown published architecture {name!r}; known: {sorted(PUBLISHED)}')
    factory, kwargs, sample, _, _ = PUBLISHED[name]
    return factory(**{**kwargs, **overrides}), dict(sample)


def count_params(name: str, auxiliary: bool = False) -> int:
    """Parameters of the published network in its paper's CIFAR-10 configuration, auxiliary
    head excluded unless ``auxiliary``."""
    space, sample = published(name, auxiliary=auxiliary)
    net = space.freeze(sample)
    return sum(p.numel() for p in net.parameters())
