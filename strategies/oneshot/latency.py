"""A per-candidate latency table of any supernet, and the expected latency it gives.

ProxylessNAS (Cai et al., ICLR 2019, Section 3.3.1) makes latency differentiable: with
``F(k, o)`` the latency of candidate ``o`` of decision ``k``, the network's expected latency
``E[LAT] = F_0 + Σ_k G_k Σ_o p_{k,o} F(k, o)`` is a function of the architecture probabilities
``p``. :func:`measure_latency_table` fills ``F`` by timing every candidate on this machine:

* one forward pass of the evaluator's training step through the supernet (every candidate
  mixed uniformly) records the input of every mixed module;
* every candidate of a layer choice or cell edge is timed on its own input (eval mode,
  ``no_grad``, ``threads`` torch threads, the first ``batch_size`` examples, the median of
  ``repeats`` timings of ``inner`` calls after ``warmup``); a label that occurs in several
  places (cells that share their choices) sums its occurrences;
* a choice inside a mutable layer (channels, kernel size) times each layer that depends on it
  at each value, the layer's other choices at their defaults; a depth choice ``d`` costs the
  parts of the first ``d`` blocks that are not choices themselves;
* ``F_0``, the fixed part, is the time of the default architecture (every label's first
  value) built as a plain network with the supernet's weights, minus what the table says that
  architecture's choices cost.

``G_k`` is the probability that decision ``k`` runs at all: the product, over the ``Repeat``
blocks it sits in, of the probability that the depth reaches that block. The table is
JSON-safe (``{'unit': 'ms', 'latency': {key: [ms per candidate]}, 'fixed': ms, ...}``).
"""
from __future__ import annotations

import platform
from typing import Any, Dict, List

import torch
from torch import nn

from nni_nasext.hardware.latency_predictor import measure_latency, time_ms

from .base import captured_logs
from .mixed import MixedCell, MixedLayerChoice, MixedRepeat, PartialChannels
from .mixed_layers import MixedLayer
from .supernet import Mix, Supernet, inherit

__all__ = ['default_sample', 'expected_latency', 'measure_latency_table', 'measured_latency', 'table_latency',
           'time_ms']


def _first(x, n: int):
    if torch.is_tensor(x):
        return x[:n]
    if isinstance(x, (list, tuple)):
        return type(x)(_first(v, n) for v in x)
    return x


def default_sample(supernet: Supernet) -> Dict[str, Any]:
    """Every label at its first value (``n_chosen`` first values for an input choice)."""
    out = {}
    for label, m in supernet.space_mutables.items():
        vals = list(m.values)
        n = getattr(m, 'n_chosen', 'single')
        out[label] = vals[0] if n == 'single' else (vals[:n] if n is not None else [])
    return out


@torch.no_grad()
def measure_latency_table(module, batch, *, batch_size: int = 1, repeats: int = 10, inner: int = 3,
                          warmup: int = 2, threads: int = 1, predictor=None) -> Dict[str, Any]:
    """The latency table of ``module``'s supernet (see the module docstring); ``batch`` is one
    training batch of the evaluator (its first ``batch_size`` examples are timed).

    With a ``predictor`` (a :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor` whose
    ``input_shape`` is the network input at ``batch_size``), nothing is timed whole: every part
    costs what the predictor charges for its operations (:meth:`~nni_nasext.hardware.latency_predictor.LatencyPredictor.module_cost`,
    its per-operation table and fitted correction, profiling operations it has not seen), and the
    default network costs the predictor's prediction; so the table agrees with the predictor's
    latency of every frozen network (up to what runs outside leaf modules), and one predictor,
    fitted once, serves every search on the space."""
    supernet: Supernet = module.supernet
    model = supernet.model
    inputs: Dict[int, Any] = {}
    model_input: List[Any] = []
    hooks = [model.register_forward_pre_hook(lambda m, args, kw=None: model_input.append(args) if not model_input else None)]
    watched = [m for m in model.modules() if isinstance(m, (MixedLayerChoice, PartialChannels, MixedLayer, MixedRepeat))]
    for m in watched:
        hooks.append(m.register_forward_pre_hook(lambda mod, args: inputs.setdefault(id(mod), args)))
    was = model.training
    saved = {n: b.detach().clone() for n, b in model.named_buffers()}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        supernet.set_mixes({k: Mix.soft(torch.full((d.size,), 1.0 / d.size)) for k, d in supernet.decisions.items()})
        with captured_logs(module.inner):
            module.inner_loss(batch, 0)
        for h in hooks:
            h.remove()
        model.eval()
        base = default_sample(supernet)
        example = _first(model_input[0], batch_size)
        if predictor is not None:
            shape = tuple(example[0].shape) if example and torch.is_tensor(example[0]) else None
            if shape != tuple(predictor.input_shape):
                raise ValueError(f'The latency predictor is for inputs {tuple(predictor.input_shape)}; the network '
                                 f'takes {shape} (batch_size={batch_size})')

        def cost(mod, args, tag: str = '') -> float:
            if predictor is None:
                return time_ms(lambda: mod(*args), repeats, inner, warmup)
            return predictor.module_cost(mod, args, tag=tag)
        table: Dict[str, List[float]] = {k: [0.0] * d.size for k, d in supernet.decisions.items()}
        edge_key = {}
        for cell in (m for m in model.modules() if isinstance(m, MixedCell)):
            for name, pc in cell.edges.items():
                edge_key[id(pc)] = f'{cell.cell_label}/edge_{name}'
        for m in watched:
            if id(m) not in inputs:
                continue  # not reached (a block beyond the default depth in a soft pass cannot happen; kept safe)
            args = _first(inputs[id(m)], batch_size)
            if isinstance(m, PartialChannels):
                args = args[:1]  # (x, mix): the candidates take x
            if isinstance(m, MixedLayerChoice) or (isinstance(m, PartialChannels) and id(m) in edge_key):
                key = m.label if isinstance(m, MixedLayerChoice) else edge_key[id(m)]
                cands = m.ops.candidates if isinstance(m, MixedLayerChoice) else m.candidates
                for i, c in enumerate(cands):
                    table[key][i] += cost(c, args)
            elif isinstance(m, MixedLayer):
                for label in set(m.mutable_args.values()):
                    for i, v in enumerate(supernet.decisions[label].candidates):
                        supernet.set_sample({**base, label: v})
                        table[label][i] += cost(m, args, tag=f'[{label}={v!r}]')
        # depths: the parts of the blocks that are not decisions themselves
        for rep in (m for m in model.modules() if isinstance(m, MixedRepeat)):
            supernet.set_sample(base)
            x = _first(inputs[id(rep)], batch_size)[0]
            own = []
            for b in rep.blocks:
                total = cost(b, (x,))
                inside = _cost_at(supernet, table, base, [mm for mm in b.modules()])
                own.append(max(0.0, total - inside))
                x = b(x)
            for i, depth in enumerate(rep.depths):
                table[rep.label][i] += sum(own[:depth])
        # the fixed part: the default architecture as the plain network it freezes to (the
        # supernet's own dispatch would add its overhead to every prediction), less its choices
        default_net = inherit(supernet, base).eval()
        if predictor is None:
            whole = time_ms(lambda: default_net(*example), repeats, inner, warmup)
        else:
            whole = predictor.predict(default_net)
        fixed = whole - table_latency(supernet, table, base)
    finally:
        torch.set_num_threads(before)
        model.train(was)
        for n, b in model.named_buffers():
            if n in saved and saved[n].shape == b.shape:
                b.copy_(saved[n])
    return {'unit': 'ms', 'latency': table, 'fixed': fixed, 'whole_default': whole,
            'within': {k: [list(w) for w in d.within] for k, d in supernet.decisions.items()},
            'config': {'batch_size': batch_size, 'repeats': repeats, 'inner': inner, 'warmup': warmup, 'threads': threads,
                       'device': str(next(model.parameters()).device),
                       'processor': platform.processor() or platform.machine(), 'torch': str(torch.__version__),
                       'source': 'timed' if predictor is None else 'predictor',
                       **({} if predictor is None else {'predictor_coef': list(predictor.coef)})}}


def _cost_at(supernet: Supernet, table, sample, modules) -> float:
    """What the table charges for the decisions of the given modules at ``sample``."""
    keys = set()
    for m in modules:
        if isinstance(m, MixedLayerChoice):
            keys.add(m.label)
        elif isinstance(m, MixedCell):
            keys.update(m.decision_keys())
        elif isinstance(m, MixedLayer):
            keys.update(m.mutable_args.values())
    return sum(_key_cost(supernet, table, k, sample) for k in keys)


def _key_cost(supernet: Supernet, table, key: str, sample) -> float:
    d = supernet.decisions[key]
    if d.label is not None:
        v = sample[d.label]
        if isinstance(v, list):
            return sum(table[key][d.candidates.index(x)] for x in v)
        return table[key][d.candidates.index(v)]
    return 0.0


def table_latency(supernet: Supernet, table, sample) -> float:
    """The table's latency of one architecture ``sample``, without the fixed part (add
    ``table['fixed']`` for the whole network): labelled decisions, cell edges at their slots."""
    if isinstance(table, dict) and 'latency' in table:
        table = table['latency']
    total = 0.0
    for key, d in supernet.decisions.items():
        if d.label is None:
            continue
        if all(sample[r] >= depth for r, depth in d.within):
            total += _key_cost(supernet, table, key, sample)
    for group in supernet.state.cells.values():
        for (i, k), op_label in group.op_labels.items():
            j = sample[group.input_labels[(i, k)]]
            j = j[0] if isinstance(j, list) else j
            pos = group.input_values[(i, k)].index(j)
            key = dict(group.nodes[i])[pos]
            total += table[key][group.op_names.index(sample[op_label])]
    return total


def expected_latency(supernet: Supernet, table: Dict[str, Any], probs: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``F_0 + Σ_k G_k Σ_o p_{k,o} F(k, o)`` for decision probabilities ``probs`` (differentiable).
    Cell edges count with the probability mass of their ops (an edge's share of its node is
    not modelled: every edge is charged)."""
    dev = next(iter(probs.values())).device
    total = torch.tensor(float(table['fixed']), device=dev)
    for key, p in probs.items():
        lat = torch.tensor(table['latency'][key], device=dev, dtype=p.dtype)
        gate = torch.ones((), device=dev, dtype=p.dtype)
        for rkey, depth in supernet.decisions[key].within:
            depths = torch.tensor([int(v) for v in supernet.decisions[rkey].candidates], device=dev)
            gate = gate * probs[rkey][depths >= depth].sum()
        total = total + gate * (p * lat).sum()
    return total


def measured_latency(net: nn.Module, example, *, repeats: int = 20, inner: int = 3, warmup: int = 3,
                     threads: int = 1) -> float:
    """End-to-end latency (ms) of ``net`` on ``example`` (eval, ``no_grad``;
    :func:`nni_nasext.hardware.latency_predictor.measure_latency`)."""
    return measure_latency(net, example, repeats=repeats, inner=inner, warmup=warmup, threads=threads)

