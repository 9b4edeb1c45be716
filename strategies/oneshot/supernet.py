"""A weight-sharing supernet made from any NNI ``ModelSpace``.

One-shot NAS trains one network that holds every architecture of a space (Bender et al.,
ICML 2018; Liu et al., DARTS, ICLR 2019). As NNI's own one-shot strategies do
(``nni/nas/oneshot/pytorch``), :func:`build_supernet` walks the module tree of a model space
and replaces every mutable module by a *mixed module* that can run any of its choices, or a
weighted mixture of them:

================================  =============================================================
NNI primitive                     mixed module (:mod:`.mixed`, :mod:`.mixed_layers`)
================================  =============================================================
``LayerChoice``                   :class:`~.mixed.MixedLayerChoice`: candidates, mixed by output
``InputChoice``                   :class:`~.mixed.MixedInputChoice`: inputs, mixed by weight
``Repeat`` (depth a choice)       :class:`~.mixed.MixedRepeat`: the outputs of every depth
``Cell``                          :class:`~.mixed.MixedCell`: one mixed edge per (node, input)
``MutableConv2d``, ``Linear``,    :mod:`.mixed_layers`: the largest layer, sliced per value
``BatchNorm*``, ``LayerNorm``,    (channels, features, kernel size, heads), or mixed by weight
``MultiheadAttention``            as NNI's ``MixedOperation`` does
================================  =============================================================

Every mixed module stands for one or more **decisions** (:class:`Decision`): one per mutable
label (modules that share a label share the decision and its architecture parameters, as in
NNI), and for a ``Cell`` one per edge (``{cell}/edge_{i}_{j}``, DARTS' parametrisation). A
decision has a list of candidates; the method gives it a :class:`Mix` per forward pass:

* ``Mix.soft(w)``: ``Σ_k w_k f_k`` over every candidate (DARTS, SNAS, FairDARTS);
* ``Mix.weighted(w, index, carry)``: only the candidates in ``index`` are computed
  (GDAS' straight-through one-hot, ProxylessNAS' two gated paths); ``carry`` adds the weights
  of the others as zero-valued terms so that their gradients flow (GDAS);
* ``Mix.path(index)``: ``Σ_{k ∈ index} f_k`` without weights (one path: SPOS, RSPS, ENAS;
  several: Bender et al.'s path dropout; none: an unused cell edge).

Instead of mixes, a method may put a **sample** of the space (label -> value, NNI's freeze
format) into the state: every mixed module then runs exactly that architecture (*path mode*),
and ``supernet.freeze(sample)`` through :func:`nni.nas.nn.pytorch.base.recursive_freeze`
(:func:`inherit`) gives that network as an ordinary module with the supernet's weights.

What a method cannot do is refused before any training, naming the label and the method:
a mutable that no mixed module handles (a custom ``ParametrizedModule`` with a choice among
its arguments, a dangling ``add_mutable``), an argument that cannot be weighted (``stride``
as a choice under DARTS), a ``Cell`` under a method that needs one choice per label.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from nni.mutable import Categorical, Mutable, frozen_context
from nni.nas.nn.pytorch import MutableModule, ParametrizedModule

__all__ = ['Decision', 'Mix', 'MixedModule', 'OneShotUnsupported', 'Supernet', 'SupernetState', 'build_supernet',
           'freeze_module', 'inherit', 'is_none_op', 'is_skip_op', 'leaf_label']


class OneShotUnsupported(TypeError):
    """A space (or one of its mutables) that a one-shot method cannot search. The message says
    which label or module, and which method; NNI's own strategies raise ``TypeError`` with
    'not supported' as well."""


# ----------------------------------------------------------------------------- mixes

@dataclasses.dataclass
class Mix:
    """How one decision combines its candidates in one forward pass (see the module docstring)."""
    weights: Optional[torch.Tensor] = None    # one per candidate (soft / weighted)
    index: Optional[List[int]] = None         # the candidates computed; None: all
    carry: bool = False                       # add the weights of the others (zero-valued terms)

    @classmethod
    def soft(cls, weights: torch.Tensor, index: Optional[Sequence[int]] = None) -> 'Mix':
        return cls(weights, None if index is None else [int(i) for i in index])

    @classmethod
    def weighted(cls, weights: torch.Tensor, index: Sequence[int], carry: bool = False) -> 'Mix':
        return cls(weights, [int(i) for i in index], carry)

    @classmethod
    def path(cls, index: Sequence[int]) -> 'Mix':
        return cls(None, [int(i) for i in index])

    @property
    def is_path(self) -> bool:
        return self.weights is None

    def active(self, n: int) -> List[int]:
        """The candidates computed, in order."""
        return list(range(n)) if self.index is None else list(self.index)

    def combine(self, outputs: Dict[int, Any], n: int):
        """``Σ_k w_k out_k`` (or ``Σ out_k`` for a path) over the computed candidates, plus the
        carried weights. ``outputs`` maps candidate index -> tensor."""
        total = None
        for k in self.active(n):
            term = outputs[k] if self.weights is None else self.weights[k] * outputs[k]
            total = term if total is None else total + term
        if self.carry and self.weights is not None:
            rest = [k for k in range(n) if k not in set(self.active(n))]
            if rest:
                extra = sum(self.weights[k] for k in rest)
                total = extra if total is None else total + extra
        return total


# ----------------------------------------------------------------------------- decisions

@dataclasses.dataclass
class Decision:
    """One architecture decision of the supernet.

    ``kind``: ``'layer'`` (a LayerChoice), ``'input'`` (an InputChoice), ``'repeat'`` (a depth),
    ``'value'`` (a Categorical inside a mutable layer), ``'edge'`` (one edge of a Cell:
    candidates are the cell's ops). ``label`` is the space label it stands for (``None`` for
    cell edges). ``candidates`` are the label's values (op names, input values, depths, layer
    argument values), ``n_chosen`` the InputChoice's. ``skip`` / ``none`` are the indices of
    candidates that are identities / zeros (for the DARTS-collapse remedies and derivation).
    """
    key: str
    kind: str
    candidates: List[Any]
    label: Optional[str] = None
    n_chosen: Optional[int] = 1
    skip: Tuple[int, ...] = ()
    none: Tuple[int, ...] = ()
    learnable: Optional[Tuple[int, ...]] = None   # candidates with parameters (None: all)
    modules: List[str] = dataclasses.field(default_factory=list)   # where it occurs (module paths)
    #: the Repeat blocks it sits in: [(repeat decision key, depth that block needs)]
    within: List[Tuple[str, int]] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.candidates)


@dataclasses.dataclass
class CellGroup:
    """The edges of one cell, for DARTS' derivation (top-k incoming edges per node)."""
    key: str                                   # the cell's label
    num_predecessors: int
    nodes: Dict[int, List[Tuple[int, str]]]    # node -> [(input index, edge decision key)]
    op_labels: Dict[Tuple[int, int], str]      # (node, slot) -> label of the slot's op
    input_labels: Dict[Tuple[int, int], str]   # (node, slot) -> label of the slot's input
    input_values: Dict[Tuple[int, int], List[Any]]  # (node, slot) -> values of the input label
    op_names: List[Any]

    @property
    def slots(self) -> int:
        return 1 + max(k for _, k in self.op_labels) if self.op_labels else 0


class SupernetState:
    """What every mixed module of one supernet reads in its forward pass: the decisions, and
    either the current mixes (``mixes``: decision key -> :class:`Mix`) or a sample (``sample``:
    label -> value, path mode). Shared by reference, never copied (deepcopy returns itself)."""

    def __init__(self):
        self.decisions: Dict[str, Decision] = {}
        self.cells: Dict[str, CellGroup] = {}
        self.mixes: Optional[Dict[str, Mix]] = None
        self.sample: Optional[Dict[str, Any]] = None
        self.scales: Dict[str, torch.Tensor] = {}   # cell node key -> per-input scale (PC-DARTS edge normalization)

    def __deepcopy__(self, memo):
        return self

    def mix(self, key: str) -> Mix:
        if self.mixes is None or key not in self.mixes:
            raise RuntimeError(f'No mix for decision {key!r}: set the supernet\'s mixes (or a sample) before '
                               'running it')
        return self.mixes[key]

    def value(self, label: str) -> Any:
        if label not in self.sample:
            raise RuntimeError(f'The sample has no value for label {label!r}')
        return self.sample[label]

    @property
    def path_mode(self) -> bool:
        return self.sample is not None


def leaf_label(mutable: Any, what: str) -> Optional[str]:
    """The one ``Categorical`` label that ``mutable`` (a Categorical or an expression of one)
    depends on; ``None`` for a constant. Several labels: :class:`OneShotUnsupported`."""
    if not isinstance(mutable, Mutable):
        return None
    leaves = mutable.simplify()
    if len(leaves) != 1 or not isinstance(next(iter(leaves.values())), Categorical):
        raise OneShotUnsupported(f'{what} depends on {sorted(leaves)}: one-shot supernets support arguments that '
                                 'depend on one categorical choice each (not supported)')
    return next(iter(leaves))


def is_none_op(name: Any, module: Optional[nn.Module]) -> bool:
    """A candidate that outputs zeros (DARTS' ``none``), by name or by class name."""
    if str(name).lower() in ('none', 'zero', 'zeros'):
        return True
    return module is not None and 'zero' in type(module).__name__.lower()


def is_skip_op(name: Any, module: Optional[nn.Module]) -> bool:
    """A candidate that is an identity (a skip connection), by name or by type."""
    if str(name).lower() in ('skip_connect', 'skip', 'identity', 'id'):
        return True
    return type(module) is nn.Identity


# ----------------------------------------------------------------------------- building

class MixedModule(MutableModule):
    """Base of the mixed modules: holds the shared :class:`SupernetState` (not a submodule)
    and keeps the original mutables, so the supernet's ``simplify()`` is the space's."""

    def __init__(self, state: SupernetState, mutables: Iterable[Mutable] = ()):
        super().__init__()
        object.__setattr__(self, 'state', state)
        for m in mutables:
            self.add_mutable(m)

    def decision_keys(self) -> List[str]:
        return []


@dataclasses.dataclass
class BuildContext:
    """What a mutation hook gets besides the module: the state it registers decisions in, how
    the method mixes (``weighted``: the method weights candidates; ``False``: paths only),
    PC-DARTS' ``partial_k``, and ``mutate`` to recurse into the candidates it keeps."""
    state: SupernetState
    method: str
    weighted: bool
    partial_k: int
    mutate: Callable[[nn.Module, str], nn.Module]

    def register(self, decision: Decision, where: str) -> Decision:
        """Register (or join: a shared label) a decision; candidates must agree."""
        decision.key = str(decision.key)  # NNI's labels are a str subclass: keep plain strings (checkpoints)
        decision.label = None if decision.label is None else str(decision.label)
        old = self.state.decisions.get(decision.key)
        if old is None:
            decision.modules = [where]
            self.state.decisions[decision.key] = decision
            return decision
        if old.kind != decision.kind or [str(c) for c in old.candidates] != [str(c) for c in decision.candidates]:
            raise OneShotUnsupported(f'Label {decision.key!r} is shared by modules with different choices '
                                     f'({old.kind} {old.candidates} at {old.modules[0]}; {decision.kind} '
                                     f'{decision.candidates} at {where}): one set of architecture weights cannot '
                                     'serve both (not supported)')
        old.modules.append(where)
        return old


Hook = Callable[[nn.Module, str, BuildContext], Optional[nn.Module]]


def _default_hooks() -> List[Hook]:
    from . import mixed, mixed_layers
    return [mixed.MixedCell.mutate, mixed.MixedLayerChoice.mutate, mixed.MixedInputChoice.mutate,
            mixed.MixedRepeat.mutate, mixed_layers.mutate_layer]


class Supernet:
    """The result of :func:`build_supernet`: the mutated model (``model``, still the space's
    ``ModelSpace`` object) and its ``state``. ``labels`` are the labels of the space."""

    def __init__(self, model: nn.Module, state: SupernetState, space_mutables: Dict[str, Mutable], method: str):
        self.model, self.state, self.method = model, state, method
        self.space_mutables = space_mutables

    @property
    def decisions(self) -> Dict[str, Decision]:
        return self.state.decisions

    @property
    def labels(self) -> List[str]:
        return list(self.space_mutables)

    def set_mixes(self, mixes: Dict[str, Mix]) -> None:
        self.state.mixes, self.state.sample = mixes, None

    def set_sample(self, sample: Dict[str, Any]) -> None:
        self.state.sample, self.state.mixes = dict(sample), None

    def validate(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        """Check ``sample`` against the space's mutables (NNI's check); return it."""
        for label, mutable in self.space_mutables.items():
            if label not in sample:
                raise ValueError(f'The sample has no value for label {label!r}')
            err = mutable.check_contains(sample)
            if err is not None:
                raise ValueError(f'Sample value for {label!r} is not in the space: {err}')
        return sample


def build_supernet(space: nn.Module, method: str = 'darts', *, weighted: bool = True, partial_k: int = 1,
                   hooks: Sequence[Hook] = ()) -> Supernet:
    """Turn ``space`` (an NNI ``ModelSpace``, changed in place) into a supernet for ``method``.

    ``weighted``: the method mixes candidates by weights (differentiable and gated methods);
    ``False``: it runs one path at a time (only sampling is needed, so any argument of a
    mutable layer may be a choice). ``partial_k`` > 1: PC-DARTS' partial channels in cell
    edges and layer choices whose candidates keep the channel count. ``hooks`` are tried
    before the default ones: ``hook(module, path, context) -> new module or None``.
    """
    from nni.nas.nn.pytorch import ModelSpace
    if not isinstance(space, ModelSpace):
        raise OneShotUnsupported(f'One-shot search needs an NNI ModelSpace (nni.nas.nn.pytorch.ModelSpace), got '
                                 f'{type(space).__name__} (not supported)')
    space_mutables = {str(k): v for k, v in space.simplify().items()}
    if not space_mutables:
        raise ValueError(f'The model space {type(space).__name__} has nothing to search (no mutable); '
                         f'{method} needs at least one choice')
    state = SupernetState()
    all_hooks = list(hooks) + list(getattr(space, 'extra_oneshot_hooks', lambda m: [])(method) or []) + _default_hooks()

    def mutate_one(module: nn.Module, path: str) -> nn.Module:
        for hook in all_hooks:
            new = hook(module, path, ctx)
            if new is not None:
                return new
        _refuse_unhandled(module, path, method)
        mutate_children(module, path)
        return module

    def mutate_children(module: nn.Module, prefix: str) -> None:
        for name, child in list(module.named_children()):
            new = mutate_one(child, f'{prefix}.{name}' if prefix else name)
            if new is not child:
                setattr(module, name, new)

    ctx = BuildContext(state=state, method=method, weighted=weighted, partial_k=int(partial_k), mutate=mutate_one)
    _refuse_unhandled(space, '<space>', method)
    with frozen_context():  # NNI's mutables are created and registered in a (dry-run) context
        mutate_children(space, '')
    covered = {d.label for d in state.decisions.values() if d.label is not None}
    for cell in state.cells.values():
        covered.update(cell.op_labels.values())
        covered.update(cell.input_labels.values())
    missing = [label for label in space_mutables if label not in covered]
    if missing:
        raise OneShotUnsupported(f'One-shot method {method!r} cannot search the labels {missing}: no LayerChoice, '
                                 'InputChoice, Repeat, Cell or mutable layer (MutableConv2d, ...) of the space carries '
                                 'them (a dangling add_mutable or a custom module; not supported)')
    return Supernet(space, state, space_mutables, method)


def _refuse_unhandled(module: nn.Module, path: str, method: str) -> None:
    """A mutable module no hook took: refuse it if it holds choices of its own."""
    if not isinstance(module, MutableModule) or isinstance(module, MixedModule):
        return
    own = list(module.mutables)
    if not own:
        return
    kind = 'custom ParametrizedModule' if isinstance(module, ParametrizedModule) else 'mutable module'
    labels = sorted({lb for m in own for lb in m.simplify()})
    raise OneShotUnsupported(f'{type(module).__name__} at {path!r} ({kind} with the choices {labels}) is not supported '
                             f'by one-shot method {method!r}: the supernet mixes LayerChoice, InputChoice, Repeat, '
                             'Cell and the Mutable* layers of nni.nas.nn.pytorch (Conv2d, Linear, BatchNorm, LayerNorm, '
                             'MultiheadAttention)')


def freeze_module(module: nn.Module, sample: Dict[str, Any], root: bool = False) -> nn.Module:
    """``module`` with every mixed module inside frozen to ``sample`` (weights kept).

    Like NNI's ``recursive_freeze``, except that NNI's mutable layers without a choice
    (``MutableConv2d(3, 16, 3)``) are kept with their weights (NNI's ``freeze`` would build
    them anew). The module is copied only where something inside it changes."""
    if isinstance(module, MixedModule):
        return module.freeze(sample)
    if not root and isinstance(module, Mutable) and module.simplify():
        if not (isinstance(module, MutableModule) and not module.mutables):
            return module.freeze(sample)
        # a module whose choices all sit in its children: freeze those, keep its weights
    replaced = {}
    for name, child in module.named_children():
        new = freeze_module(child, sample)
        if new is not child:
            replaced[name] = new
    if not replaced:
        return module
    saved = {name: module._modules[name] for name in replaced}
    for name in replaced:  # do not deep-copy what is replaced anyway
        module._modules[name] = None
    try:
        copied = copy.deepcopy(module)
    finally:
        module._modules.update(saved)
    for name, new in replaced.items():
        copied._modules[name] = new
    return copied


def inherit(supernet: Supernet, sample: Dict[str, Any]) -> nn.Module:
    """The network of ``sample`` as an ordinary module holding a *copy* of the supernet's
    weights (its mixed modules frozen to ``sample``): training it or re-estimating its batch
    norm leaves the supernet as it was."""
    supernet.validate(sample)
    return copy.deepcopy(freeze_module(supernet.model, dict(sample), root=True))


def uniform_weights(n: int, device=None) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, device=device)


def entropy(p: torch.Tensor) -> float:
    p = p.clamp_min(1e-12)
    return float(-(p * p.log()).sum())

