"""Mixed modules for NNI's ``LayerChoice``, ``InputChoice``, ``Repeat`` and ``Cell``.

Each class has a ``mutate(module, path, context)`` hook (``None`` for a module it does not
handle), a ``forward`` that reads the shared :class:`~.supernet.SupernetState` (a
:class:`~.supernet.Mix` per decision, or a sample in path mode) and a ``freeze(sample)`` that
returns the chosen network with the supernet's weights (what :func:`~.supernet.inherit` uses).

**Cells** follow DARTS' parametrisation (Liu et al., ICLR 2019, Section 2.1), as NNI's
``DifferentiableMixedCell`` does: node ``i`` of the cell is ``Σ_{j<i} ē_{ij}(x_j)``, where every
edge ``(j, i)`` holds its own copy of the candidate ops (built with the cell's op factory for
input ``j`` when it has one, so that, e.g., reduction-cell ops on cell inputs get stride 2) and
its own decision ``{cell}/edge_{i}_{j}``. The cell's output is the concatenation of all its
nodes (``merge_op='loose_end'`` included: which ends are loose is only known for a sample).
In path mode node ``i`` is ``Σ_k op_{ik}(x_{j_k})`` with the sample's ``op_i_k`` and
``input_i_k`` (NNI's labels), i.e. exactly the frozen cell.

**Partial channels** (Xu et al., PC-DARTS, ICLR 2020, Section 3.1): with ``partial_k = K > 1``
a layer choice or cell edge whose candidates keep the channel count runs its candidates on
the first ``C/K`` channels (the candidates are rebuilt at ``1/K`` of their width by
:func:`~.mixed_layers.shrink_channels`), passes the other channels through (max-pooled 2x2
where the candidates halve the resolution, as the authors' reduction edges), concatenates and
shuffles the channels in ``K`` groups. Which candidates keep the channel count is found on
the first (probe) forward pass; the others stay full width (PC-DARTS then is DARTS there).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from nni.nas.nn.pytorch import Cell, InputChoice, LayerChoice, Repeat
from nni.nas.nn.pytorch.cell import create_cell_op_candidates, preprocess_cell_inputs
from nni.nas.nn.pytorch.choice import ChosenInputs

from .supernet import (BuildContext, CellGroup, Decision, MixedModule, OneShotUnsupported, freeze_module, is_none_op,
                       is_skip_op, leaf_label)

__all__ = ['MixedCell', 'MixedInputChoice', 'MixedLayerChoice', 'MixedRepeat', 'PartialChannels', 'channel_shuffle']


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle)."""
    n, c = x.shape[:2]
    return x.view(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class PartialChannels(nn.Module):
    """The candidates of one decision, run on all channels or (PC-DARTS) on ``1/K`` of them.

    ``forward(x, mix)`` combines the candidates by ``mix``. ``partial_k`` is requested at
    build time and settled on the first forward pass (``settled``): the candidates must map
    ``C`` channels to ``C`` channels (checked on that pass) and shrink to ``C/K``.
    """

    def __init__(self, candidates: List[nn.Module], partial_k: int = 1, where: str = '', key: str = ''):
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.requested_k, self.partial_k, self.where, self.key = int(partial_k), 1, where, key
        self.settled = self.requested_k <= 1
        self.note = ''

    def _settle(self, x: torch.Tensor, outputs: Dict[int, torch.Tensor]) -> None:
        from .mixed_layers import shrink_channels
        self.settled = True
        k = self.requested_k
        if x.dim() != 4 or any(o.dim() != 4 or o.shape[1] != x.shape[1] for o in outputs.values() if o is not None):
            self.note = 'candidates change the channel count: full width'
            return
        if x.shape[1] % k:
            self.note = f'{x.shape[1]} channels are not divisible by K={k}: full width'
            return
        try:
            small = [shrink_channels(c, x.shape[1], k) for c in self.candidates]
        except ValueError as err:
            self.note = f'{err}: full width'
            return
        with torch.no_grad():
            xa = x[:, :x.shape[1] // k]
            for m in small:
                out = m(xa)
                if out.shape[1] != xa.shape[1]:
                    self.note = 'a shrunk candidate changes the channel count: full width'
                    return
        self.candidates = nn.ModuleList(small).to(x.device)
        self.partial_k = k
        self.note = f'partial channels K={k}'

    def forward(self, x: torch.Tensor, mix) -> torch.Tensor:
        n = len(self.candidates)
        active = mix.active(n)
        k = self.partial_k
        if not self.settled:  # the probe pass: run every candidate full width, then decide
            outputs = {i: self.candidates[i](x) for i in range(n)}
            self._settle(x, outputs)
            return mix.combine(outputs, n)
        xa = x[:, :x.shape[1] // k] if k > 1 else x
        outputs = {i: self.candidates[i](xa) for i in active}
        out = mix.combine(outputs, n)
        if k == 1:
            return out
        if out is None or not torch.is_tensor(out) or out.dim() == 0:
            shape = next(iter(outputs.values())).shape if outputs else None
            out = torch.zeros(shape, device=x.device, dtype=x.dtype) if shape is not None else None
            if out is None:
                return None
        rest = x[:, x.shape[1] // k:]
        if rest.shape[-2:] != out.shape[-2:]:
            rest = F.adaptive_max_pool2d(rest, out.shape[-2:])
        return channel_shuffle(torch.cat([out, rest], dim=1), k)


def _candidate_flags(names, modules):
    skip = tuple(i for i, (n, m) in enumerate(zip(names, modules)) if is_skip_op(n, m))
    none = tuple(i for i, (n, m) in enumerate(zip(names, modules)) if is_none_op(n, m))
    learnable = tuple(i for i, m in enumerate(modules) if any(True for _ in m.parameters()))
    return dict(skip=skip, none=none, learnable=learnable)


# ----------------------------------------------------------------------------- LayerChoice

class MixedLayerChoice(MixedModule):
    """A ``LayerChoice``: decision ``label`` over the candidate names."""

    @classmethod
    def mutate(cls, module: nn.Module, path: str, ctx: BuildContext):
        if isinstance(module, LayerChoice):
            return cls(module, path, ctx)
        return None

    def __init__(self, choice: LayerChoice, path: str, ctx: BuildContext):
        super().__init__(ctx.state, [choice.choice])
        self.label = str(choice.label)
        self.names = list(choice.names)
        originals = [choice[n] for n in self.names]
        ctx.register(Decision(self.label, 'layer', list(self.names), label=self.label,
                              **_candidate_flags(self.names, originals)), path)
        cands = [ctx.mutate(m, f'{path}.{n}') for n, m in zip(self.names, originals)]
        self.ops = PartialChannels(cands, ctx.partial_k if ctx.weighted else 1, path, key=self.label)

    def decision_keys(self) -> List[str]:
        return [self.label]

    def forward(self, *args, **kwargs):
        state = self.state
        if state.path_mode:
            return self.ops.candidates[self.names.index(state.value(self.label))](*args, **kwargs)
        mix = state.mix(self.label)
        if args and torch.is_tensor(args[0]) and len(args) == 1 and not kwargs:
            return self.ops(args[0], mix)
        outputs = {i: self.ops.candidates[i](*args, **kwargs) for i in mix.active(len(self.names))}
        return mix.combine(outputs, len(self.names))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        if self.ops.partial_k > 1:
            raise OneShotUnsupported(f'{self.label}: a partial-channel supernet holds candidates at 1/{self.ops.partial_k} '
                                     'width; it cannot give the full network its weights (not supported)')
        return freeze_module(self.ops.candidates[self.names.index(sample[self.label])], sample)


# ----------------------------------------------------------------------------- InputChoice

def _reduce(reduction: str, tensors: List[torch.Tensor]):
    return ChosenInputs._tensor_reduction(reduction, tensors)


class MixedInputChoice(MixedModule):
    """An ``InputChoice``: decision ``label`` over the candidate inputs (its values)."""

    @classmethod
    def mutate(cls, module: nn.Module, path: str, ctx: BuildContext):
        if isinstance(module, InputChoice):
            return cls(module, path, ctx)
        return None

    def __init__(self, choice: InputChoice, path: str, ctx: BuildContext):
        super().__init__(ctx.state, [choice.choice])
        self.label, self.reduction, self.n_chosen = str(choice.label), choice.reduction, choice.n_chosen
        self.values = list(choice.choice.values)
        if ctx.weighted and (choice.reduction == 'none' or (choice.reduction == 'concat' and choice.n_chosen != 1)):
            raise OneShotUnsupported(f'InputChoice {self.label!r} (reduction={choice.reduction!r}, '
                                     f'n_chosen={choice.n_chosen}) cannot be mixed by weights: one-shot method '
                                     f'{ctx.method!r} needs a sum, a mean or one chosen input (not supported)')
        ctx.register(Decision(self.label, 'input', list(self.values), label=self.label, n_chosen=choice.n_chosen), path)

    def decision_keys(self) -> List[str]:
        return [self.label]

    def forward(self, candidate_inputs: List[torch.Tensor]):
        state = self.state
        if state.path_mode:
            chosen = state.value(self.label)
            chosen = chosen if isinstance(chosen, (list, tuple)) else [chosen]
            return _reduce(self.reduction, [candidate_inputs[self.values.index(v)] for v in chosen])
        mix = state.mix(self.label)
        if mix.is_path:
            return _reduce(self.reduction, [candidate_inputs[i] for i in mix.active(len(self.values))])
        return mix.combine(dict(enumerate(candidate_inputs)), len(self.values))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        chosen = sample[self.label]
        chosen = chosen if isinstance(chosen, (list, tuple)) else [chosen]
        return ChosenInputs([self.values.index(v) for v in chosen], self.reduction)


# ----------------------------------------------------------------------------- Repeat

class MixedRepeat(MixedModule):
    """A ``Repeat`` whose depth is a choice: decision over the depth label's values; the
    output of every candidate depth is mixed (or the sampled depth is run)."""

    @classmethod
    def mutate(cls, module: nn.Module, path: str, ctx: BuildContext):
        if isinstance(module, Repeat) and not isinstance(module.depth_choice, int):
            return cls(module, path, ctx)
        return None

    def __init__(self, repeat: Repeat, path: str, ctx: BuildContext):
        super().__init__(ctx.state, [repeat.depth_choice])
        self.depth_choice = repeat.depth_choice
        self.label = str(leaf_label(repeat.depth_choice, f'Repeat {path!r} depth'))
        values = list(repeat.depth_choice.simplify()[self.label].values)
        self.depths = [int(repeat.depth_choice.freeze({self.label: v})) for v in values]
        ctx.register(Decision(self.label, 'repeat', values, label=self.label), path)
        blocks = []
        for i, b in enumerate(repeat.blocks):
            before = set(ctx.state.decisions)
            blocks.append(ctx.mutate(b, f'{path}.blocks.{i}'))
            if i + 1 > min(self.depths):  # the block runs only at depths >= i + 1
                for key in set(ctx.state.decisions) - before:
                    ctx.state.decisions[key].within.insert(0, (self.label, i + 1))
        self.blocks = nn.ModuleList(blocks)

    def decision_keys(self) -> List[str]:
        return [self.label]

    def forward(self, x):
        state = self.state
        if state.path_mode:
            for block in self.blocks[:int(self.depth_choice.freeze(state.sample))]:
                x = block(x)
            return x
        mix = state.mix(self.label)
        active = mix.active(len(self.depths))
        wanted = {self.depths[i] for i in active}
        outputs: Dict[int, Any] = {}
        if 0 in wanted:
            outputs[0] = x
        for d, block in enumerate(self.blocks[:max(wanted)], start=1):
            x = block(x)
            if d in wanted:
                outputs[d] = x
        return mix.combine({i: outputs[self.depths[i]] for i in active}, len(self.depths))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        depth = int(self.depth_choice.freeze(sample))
        return nn.Sequential(*[freeze_module(b, sample) for b in self.blocks[:depth]])


# ----------------------------------------------------------------------------- Cell

class FrozenCell(nn.Module):
    """What NNI's ``Cell`` computes once every choice is fixed, laid out as NNI's frozen
    ``Cell`` (``preprocessor``, ``ops[node][slot]``, ``inputs[node][slot]``, ``postprocessor``),
    so that its ``state_dict`` loads into ``space.freeze(sample)``."""

    def __init__(self, preprocessor, ops, inputs, postprocessor, num_predecessors, output_node_indices, concat_dim):
        super().__init__()
        self.preprocessor, self.postprocessor = preprocessor, postprocessor
        self.ops = nn.ModuleList(nn.ModuleList(row) for row in ops)
        self.inputs = nn.ModuleList(nn.ModuleList(row) for row in inputs)
        self.num_predecessors, self.output_node_indices, self.concat_dim = num_predecessors, output_node_indices, concat_dim

    def forward(self, *inputs):
        processed = preprocess_cell_inputs(self.num_predecessors, *inputs)
        states = self.preprocessor(processed)
        for ops, inps in zip(self.ops, self.inputs):
            states.append(sum(op(inp(states)) for op, inp in zip(ops, inps)))
        out = torch.cat([states[k] for k in self.output_node_indices], self.concat_dim)
        return self.postprocessor(out, processed)


class MixedCell(MixedModule):
    """NNI's ``Cell`` as DARTS' mixed cell (see the module docstring)."""

    @classmethod
    def mutate(cls, module: nn.Module, path: str, ctx: BuildContext):
        if isinstance(module, Cell):
            return cls(module, path, ctx)
        return None

    def __init__(self, cell: Cell, path: str, ctx: BuildContext):
        slots = [(i, k) for i in range(cell.num_predecessors, cell.num_predecessors + cell.num_nodes)
                 for k in range(cell.num_ops_per_node)]
        op_choice = {s: cell.ops[s[0] - cell.num_predecessors][s[1]] for s in slots}
        in_choice = {s: cell.inputs[s[0] - cell.num_predecessors][s[1]] for s in slots}
        super().__init__(ctx.state, [op_choice[s].choice for s in slots] + [in_choice[s].choice for s in slots])
        self.np, self.num_nodes, self.per_node = cell.num_predecessors, cell.num_nodes, cell.num_ops_per_node
        self.merge_op, self.concat_dim = cell.merge_op, cell.concat_dim
        self.cell_label = str(cell.label)
        first = op_choice[slots[0]]
        self.names = list(first.names)
        self.op_labels = {s: str(op_choice[s].label) for s in slots}
        self.input_labels = {s: str(in_choice[s].label) for s in slots}
        self.input_values = {s: list(in_choice[s].choice.values) for s in slots}
        self.preprocessor = ctx.mutate(cell.preprocessor, f'{path}.preprocessor')
        self.postprocessor = ctx.mutate(cell.postprocessor, f'{path}.postprocessor')
        self.factory = cell.op_candidates_factory
        self.edges = nn.ModuleDict()
        group = CellGroup(self.cell_label, self.np, {}, dict(self.op_labels), dict(self.input_labels),
                          dict(self.input_values), list(self.names))
        for i in range(self.np, self.np + self.num_nodes):
            group.nodes[i] = []
            for j in range(i):
                if self.factory is not None:
                    cands, _ = create_cell_op_candidates(self.factory, i, 0, j)
                    modules = [cands[str(n)] if str(n) in cands else cands[n] for n in self.names]
                else:
                    modules = [copy.deepcopy(first[n]) for n in self.names]
                where = f'{path}.edges.{i}_{j}'
                key = f'{self.cell_label}/edge_{i}_{j}'
                ctx.register(Decision(key, 'edge', list(self.names), **_candidate_flags(self.names, modules)), where)
                group.nodes[i].append((j, key))
                modules = [ctx.mutate(m, f'{where}.{n}') for n, m in zip(self.names, modules)]
                self.edges[f'{i}_{j}'] = PartialChannels(modules, ctx.partial_k if ctx.weighted else 1, where, key=key)
        old = ctx.state.cells.get(self.cell_label)
        if old is not None and (old.nodes != group.nodes or old.op_names != group.op_names):
            raise OneShotUnsupported(f'Cells labelled {self.cell_label!r} differ in structure (not supported)')
        ctx.state.cells[self.cell_label] = group

    def decision_keys(self) -> List[str]:
        return [f'{self.cell_label}/edge_{i}_{j}' for i in range(self.np, self.np + self.num_nodes) for j in range(i)]

    def _slot_choice(self, sample, slot):
        j = sample[self.input_labels[slot]]
        j = j[0] if isinstance(j, (list, tuple)) else j
        return self.input_values[slot].index(j), self.names.index(sample[self.op_labels[slot]])

    def forward(self, *inputs):
        processed = preprocess_cell_inputs(self.np, *inputs)
        states = list(self.preprocessor(processed))
        state = self.state
        for i in range(self.np, self.np + self.num_nodes):
            if state.path_mode:
                terms = []
                for k in range(self.per_node):
                    j, op = self._slot_choice(state.sample, (i, k))
                    terms.append(self.edges[f'{i}_{j}'].candidates[op](states[j]))
                states.append(sum(terms))
                continue
            scale = state.scales.get(f'{self.cell_label}/node_{i}')
            total = None
            for j in range(i):
                out = self.edges[f'{i}_{j}'](states[j], state.mix(f'{self.cell_label}/edge_{i}_{j}'))
                if out is None or (torch.is_tensor(out) and out.dim() == 0):
                    continue  # an unused edge, or one whose computed candidates all carry zero
                out = out * scale[j] if scale is not None else out
                total = out if total is None else total + out
            if total is None:
                total = torch.zeros_like(states[-1])
            states.append(total)
        out = torch.cat(states[self.np:], self.concat_dim)
        return self.postprocessor(out, processed)

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        ops, inputs, used = [], [], set()
        for i in range(self.np, self.np + self.num_nodes):
            row_ops, row_in = [], []
            for k in range(self.per_node):
                j, op = self._slot_choice(sample, (i, k))
                edge = self.edges[f'{i}_{j}']
                if edge.partial_k > 1:
                    raise OneShotUnsupported(f'{self.cell_label}: a partial-channel cell holds ops at 1/{edge.partial_k} '
                                             'width; it cannot give the full network its weights (not supported)')
                row_ops.append(freeze_module(edge.candidates[op], sample))
                row_in.append(ChosenInputs([j], 'sum'))
                used.add(j)
            ops.append(row_ops)
            inputs.append(row_in)
        nodes = list(range(self.np, self.np + self.num_nodes))
        outputs = [n for n in nodes if n not in used] if self.merge_op == 'loose_end' else nodes
        return FrozenCell(freeze_module(self.preprocessor, sample), ops, inputs,
                          freeze_module(self.postprocessor, sample), self.np, outputs, self.concat_dim)
