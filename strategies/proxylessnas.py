"""ProxylessNAS on the NAS-Bench-201 supernet: binarized paths and a latency-aware loss.

H. Cai, L. Zhu, S. Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and
Hardware", ICLR 2019 (arXiv:1812.00332). The module is a :class:`ProxylessModule`, a subclass of
:class:`~nni_nasext.strategies.oneshot.OneShotModule` (method ``'proxyless'``); it keeps the
base module's data protocol (weight half / architecture half of the training split, paired per
step) and the per-edge architecture parameters ``α`` (6 edges x 5 ops), ``p = softmax(α)``.

**Binarized paths** (Section 3.2). Instead of DARTS' weighted sum of all ops, an edge runs a
binary gate ``g`` (one-hot, drawn from ``p``): ``m(x) = Σ_i g_i o_i(x)`` (eq. 3), so at most the
sampled paths are computed and kept in memory.

* *Weight step* (``α`` frozen): per edge one op ``k ~ p`` (a ``'single'`` mix, as the
  authors' code does while training the weights: one active path); SGD on the first half.
* *Architecture step* (weights frozen), on the second half: per edge two ops ``{a, b}`` are drawn
  from ``p`` (multinomial without replacement), the others are masked out as if absent, and ``p``
  is renormalised over the two, ``q = softmax(α_a, α_b)``; one gate ``g ∈ {(1,0), (0,1)}`` is
  drawn from ``q`` and both paths are computed (a ``'pair'`` mix, ``g_a o_a(x) + g_b o_b(x)``),
  so that autograd gives ``∂L/∂g_j = <∂L/∂m, o_j(x)>`` for both. The BinaryConnect-style
  estimate (eq. 4, restricted to the two paths) is::

      ∂L/∂α_i ≈ Σ_{j∈{a,b}} ∂L/∂g_j · q_j (δ_ij − q_i)          (i ∈ {a, b})

  (:func:`binary_gate_alpha_grad`). After the Adam step the two updated ``α`` are shifted by a
  common offset that restores their ``logsumexp``, so that the probabilities of the paths
  not sampled stay as they were (the paper's rescaling, end of Section 3.2).

**Latency loss** (Section 3.3.1). With ``F(o, e)`` the measured latency of op ``o`` at edge
``e`` (summed over the ``3 · num_cells`` cells where the edge occurs) and ``F_0`` the fixed part
(stem, reductions, head), the expected latency is differentiable in ``α``::

    E[LAT] = F_0 + Σ_edges Σ_ops p_{e,o} · F(o, e)                     (eq. 5-6)

and enters the architecture loss in one of two forms (``latency_loss``):

``'add'`` (default)
    ``L = L_CE + λ · (E[LAT] − ref) / ref``: the paper's eq. 7, ``L_CE + λ2 E[LAT]``, with the
    latency divided by a reference so that ``λ`` (``latency_weight``, default 0.1) has no unit;
    this is the ``add#linear`` form of the authors' code. (Weight decay on ``α``, the ``λ1`` term,
    is the optimizer's ``arch_weight_decay``, 0 as in their code.)
``'mul'``
    ``L = L_CE · (E[LAT] / ref)^λ``, the MnasNet-style multiplicative form (the authors' code
    uses ``(log E[LAT] / log ref)^β``, which breaks for latencies under 1 ms).

``ref`` (``latency_ref``) defaults to ``E[LAT]`` under uniform ``p``, the latency of the
initial supernet in expectation. The latency gradient reaches all five ``α`` of an edge
(``∂E[LAT]/∂p_o = F(o, e)``, through the full softmax), the CE gradient only the two sampled.

**Latency table** (:func:`measure_latency_table`). Each op is timed on this machine's CPU
(forward, ``no_grad``, eval mode, ``threads`` torch threads, median of ``repeats`` timings of
``inner`` calls) at the input shape it has in each stage of the real network (width ``C, 2C,
4C``, resolution halved per reduction); the six edges of an NB201 cell all see the cell's input
shape, so they get the same numbers, kept per edge so that a table measured otherwise (another
device, a profiler) can differ per edge. The table is a JSON-safe dict (:func:`save_latency_table`,
:func:`load_latency_table`). ``ProxylessModule(latency_table=None)`` measures one: at
construction when ``latency_image_size`` is given, else on the first architecture batch.

**Derivation**: per edge the op with the largest ``α`` (the base module's :meth:`derive`); the
supernet's per-epoch validation accuracy uses that path.

**What differs from the paper.** NB201 cells instead of MobileNetV2 blocks; the architecture is
updated every step (their code: every 5 weight steps) with Adam ``lr=1e-3, betas=(0, 0.999)``
(their defaults); the gradient uses the two-path mode (``two``) of the paper, not the ``full_v2``
mode their code defaults to; ``ref`` defaults to the uniform expectation instead of a target
latency; latencies are measured per op in isolation on a CPU (batch 1 by default), not
predicted from a lookup table of a phone.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, make_op
from nni_nasext.strategies import oneshot as _oneshot
from nni_nasext.strategies.oneshot import OneShotModule
from nni_nasext.strategies.oneshot_supernet import Mix, NB201Supernet, SearchCell

__all__ = ['ProxylessModule', 'binary_gate_alpha_grad', 'latency_matrix', 'load_latency_table',
           'measure_latency_table', 'save_latency_table', 'search']

TABLE_FORMAT = 'nni-nasext/nb201-latency/1'


# -------------------------------------------------------------------- latency table

def _time_ms(fn, x: torch.Tensor, repeats: int, inner: int, warmup: int) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn(x)
        times.append((time.perf_counter() - start) / inner)
    return 1e3 * statistics.median(times)


@torch.no_grad()
def measure_latency_table(num_cells: int = 1, channels: int = 16, in_channels: int = 3,
                          image_size: Union[int, Sequence[int]] = 32, repeats: int = 20, *, num_classes: int = 10,
                          batch_size: int = 1, inner: int = 5, warmup: int = 3, threads: int = 1,
                          ops: Sequence[str] = OPS) -> Dict[str, Any]:
    """Measure the forward latency (ms) of every op at every edge of the NB201 network.

    Builds the real skeleton (:class:`NB201Supernet`) to find each stage's input shape, times
    each op of ``ops`` at each stage (``make_op(op, width)``, eval mode, ``no_grad``, ``threads``
    torch threads; the median of ``repeats`` timings of ``inner`` calls after ``warmup`` calls)
    and sums over the ``num_cells`` cells of the three stages. Also times the fixed layers (stem,
    residual reductions, head). Returns a JSON-safe dict::

        {'format', 'unit': 'ms', 'ops', 'edges',
         'latency': {edge: {op: ms}},       # per edge, all 3 * num_cells cells
         'fixed': ms,                       # stem + reductions + head
         'per_cell': {op: [ms at stage 0, 1, 2]}, 'stage_shapes': [[C, H, W], ...],
         'config': {...how and where it was measured}}
    """
    if min(num_cells, channels, in_channels, repeats, batch_size, inner, threads) < 1 or warmup < 0:
        raise ValueError('num_cells, channels, in_channels, repeats, batch_size, inner and threads must be positive')
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        net = NB201Supernet(1, channels, num_classes, in_channels, ops=ops).eval()
        time_it = lambda fn, x: _time_ms(fn, x, repeats, inner, warmup)  # noqa: E731
        x = torch.randn(batch_size, in_channels, h, w)
        fixed = time_it(net.stem, x)
        x = net.stem(x)
        shapes: List[List[int]] = [list(x.shape[1:])]
        for layer in net.cells:
            if not isinstance(layer, SearchCell):
                fixed += time_it(layer, x)
                x = layer(x)
                shapes.append(list(x.shape[1:]))
        fixed += time_it(net.head, x)
        per_cell: Dict[str, List[float]] = {op: [] for op in ops}
        for c, hh, ww in shapes:
            x = torch.randn(batch_size, c, hh, ww)
            for op in ops:
                per_cell[op].append(time_it(make_op(op, c).eval(), x))
    finally:
        torch.set_num_threads(before)
    per_edge = {op: num_cells * sum(v) for op, v in per_cell.items()}
    return {
        'format': TABLE_FORMAT, 'unit': 'ms', 'ops': list(ops), 'edges': list(EDGE_LABELS),
        'latency': {edge: dict(per_edge) for edge in EDGE_LABELS},
        'fixed': fixed, 'per_cell': per_cell, 'stage_shapes': shapes,
        'config': {'num_cells': num_cells, 'channels': channels, 'in_channels': in_channels, 'image_size': [h, w],
                   'num_classes': num_classes, 'batch_size': batch_size, 'repeats': repeats, 'inner': inner,
                   'warmup': warmup, 'threads': threads, 'device': 'cpu',
                   'processor': platform.processor() or platform.machine(), 'torch': torch.__version__},
    }


def load_latency_table(table: Union[Dict[str, Any], str, Path]) -> Dict[str, Any]:
    """A checked copy of ``table`` (a dict, or the path of a JSON file holding one).

    Every edge of :data:`EDGE_LABELS` must map every op of :data:`OPS` to a finite latency
    ``>= 0`` under ``table['latency']``; ``fixed`` (default 0) likewise."""
    where = 'latency table'
    if isinstance(table, (str, Path)):
        where = f'latency table {str(table)!r}'
        path = Path(table).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'{where} does not exist')
        table = json.loads(path.read_text())
    if not isinstance(table, dict) or not isinstance(table.get('latency'), dict):
        raise ValueError(f"{where} must be a dict with a 'latency' mapping edge -> op -> ms")
    out = json.loads(json.dumps(table))  # a deep, JSON-safe copy
    missing = [f'{e}/{o}' for e in EDGE_LABELS for o in OPS
               if not isinstance(out['latency'].get(e), dict) or o not in out['latency'][e]]
    if missing:
        raise ValueError(f'{where} lacks entries for {missing}')
    for e in EDGE_LABELS:
        for o in OPS:
            v = out['latency'][e][o]
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f'{where}: latency of {o} at edge {e} must be a finite number >= 0, got {v!r}')
    fixed = out.setdefault('fixed', 0.0)
    if not isinstance(fixed, (int, float)) or not math.isfinite(fixed) or fixed < 0:
        raise ValueError(f"{where}: 'fixed' must be a finite number >= 0, got {fixed!r}")
    return out


def save_latency_table(table: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``table`` (checked) as JSON; returns the path."""
    path = Path(path).expanduser()
    path.write_text(json.dumps(load_latency_table(table), indent=1))
    return path


def latency_matrix(table: Dict[str, Any]) -> torch.Tensor:
    """``F(o, e)`` as a (6 edges x 5 ops) tensor in :data:`EDGE_LABELS` / :data:`OPS` order."""
    lat = table['latency']
    return torch.tensor([[float(lat[e][o]) for o in OPS] for e in EDGE_LABELS])


# -------------------------------------------------------------------- gradient

def binary_gate_alpha_grad(gate_grad: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """ProxylessNAS eq. 4: ``∂L/∂α_i = Σ_j ∂L/∂g_j · p_j (δ_ij − p_i)`` along the last axis.

    ``gate_grad`` (``∂L/∂g``) and ``probs`` (``p``, here the softmax renormalised over the
    sampled paths) have the same shape ``(..., n)``."""
    weighted = probs * gate_grad
    return weighted - probs * weighted.sum(-1, keepdim=True)


# -------------------------------------------------------------------- module

class ProxylessModule(OneShotModule):
    """ProxylessNAS (method ``'proxyless'``) on the NB201 supernet; see the module docstring.

    Parameters beyond :class:`OneShotModule`'s: ``latency_table`` (dict or JSON path; ``None``:
    measured here), ``latency_weight`` λ (0.1; 0 switches the latency term off and measures
    nothing), ``latency_loss`` (``'add'`` or ``'mul'``), ``latency_ref`` (``None``: ``E[LAT]``
    under uniform ``p``), ``latency_image_size`` (measure at construction for this input size;
    ``None``: on the first architecture batch), ``latency_repeats`` (20), ``rescale_alpha`` (True:
    the paper's rescaling of the two updated ``α``). Defaults changed from the base to the
    authors' code: ``arch_lr=1e-3``, ``arch_weight_decay=0`` (Adam ``betas=(0, 0.999)``).
    """

    methods = ('proxyless',)
    differentiable_methods = ('proxyless',)

    def __init__(self, method: str = 'proxyless', *, latency_table: Union[Dict[str, Any], str, Path, None] = None,
                 latency_weight: float = 0.1, latency_loss: str = 'add', latency_ref: Optional[float] = None,
                 latency_image_size: Union[int, Sequence[int], None] = None, latency_repeats: int = 20,
                 rescale_alpha: bool = True, arch_lr: float = 1e-3, arch_weight_decay: float = 0.0, **kwargs):
        super().__init__(method, arch_lr=arch_lr, arch_weight_decay=arch_weight_decay, **kwargs)
        if latency_loss not in ('add', 'mul'):
            raise ValueError(f"latency_loss must be 'add' or 'mul', got {latency_loss!r}")
        if not math.isfinite(latency_weight) or latency_weight < 0:
            raise ValueError(f'latency_weight must be a finite number >= 0, got {latency_weight}')
        if latency_ref is not None and not (math.isfinite(latency_ref) and latency_ref > 0):
            raise ValueError(f'latency_ref must be a positive number, got {latency_ref}')
        self.hp.update(latency_weight=float(latency_weight), latency_loss=latency_loss, latency_repeats=latency_repeats,
                       rescale_alpha=bool(rescale_alpha))
        self._latency_ref_arg = latency_ref
        self.register_buffer('latency', torch.zeros(len(EDGE_LABELS), len(OPS)))
        self.latency_fixed = 0.0
        self.latency_ref: Optional[float] = None
        self.latency_table: Optional[Dict[str, Any]] = None
        self.history['expected_latency'] = []
        self._last_pairs: Optional[torch.Tensor] = None
        self._last_gates: Optional[torch.Tensor] = None
        if latency_table is not None:
            self.set_latency_table(latency_table)
        elif latency_weight > 0 and latency_image_size is not None:
            self.set_latency_table(self._measure(latency_image_size))

    # ---------------------------------------------------------------- latency
    def _measure(self, image_size) -> Dict[str, Any]:
        kw = self.supernet_kwargs
        return measure_latency_table(kw['num_cells'], kw['channels'], kw['in_channels'], image_size,
                                     self.hp['latency_repeats'], num_classes=kw['num_classes'])

    def set_latency_table(self, table: Union[Dict[str, Any], str, Path]) -> None:
        """Use ``table`` (see :func:`load_latency_table`) for ``E[LAT]`` from now on."""
        table = load_latency_table(table)
        config = table.get('config') or {}
        for key in ('num_cells', 'channels', 'in_channels'):
            if key in config and config[key] != self.supernet_kwargs[key]:
                warnings.warn(f'latency table measured with {key}={config[key]}, the supernet has '
                              f'{key}={self.supernet_kwargs[key]}', stacklevel=2)
        self.latency_table = table
        self.latency.copy_(latency_matrix(table).to(self.latency))
        self.latency_fixed = float(table['fixed'])
        self.latency_ref = (self._latency_ref_arg if self._latency_ref_arg is not None
                            else self.latency_fixed + float(self.latency.mean(dim=1).sum()))
        if self.latency_ref <= 0:
            raise ValueError('the latency table gives a reference latency of 0; pass latency_ref')

    def expected_latency(self, alpha: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """``E[LAT] = F_0 + Σ_e Σ_o softmax(α)_{e,o} F(o, e)`` (differentiable in ``α``), or
        ``None`` without a latency table."""
        if self.latency_table is None:
            return None
        alpha = self.alpha if alpha is None else alpha
        return self.latency_fixed + (F.softmax(alpha, dim=-1) * self.latency).sum()

    def _latency_loss(self, ce: torch.Tensor) -> torch.Tensor:
        lam = self.hp['latency_weight']
        if lam == 0:
            return ce
        lat = self.expected_latency()
        if self.hp['latency_loss'] == 'add':
            return ce + lam * (lat - self.latency_ref) / self.latency_ref
        return ce * (lat / self.latency_ref) ** lam

    # ---------------------------------------------------------------- mixing
    def mixes(self, training: bool = True) -> Dict[str, Mix]:
        """Training (the weight step): one op per edge drawn from ``softmax(α)``; evaluation: the
        ``argmax`` path. Both run a single path (``'single'`` mix)."""
        with torch.no_grad():
            if training:
                probs = F.softmax(self.alpha.detach(), dim=-1).cpu()
                index = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
            else:
                index = self.alpha.detach().argmax(dim=-1)
        return {label: Mix('single', index=[int(index[e])]) for e, label in enumerate(EDGE_LABELS)}

    def pair_mixes(self) -> Tuple[Dict[str, Mix], torch.Tensor, torch.Tensor]:
        """The architecture step's mixes: per edge two ops ``pairs[e] = [a, b]`` drawn from
        ``softmax(α_e)`` without replacement and a one-hot gate ``gates[e]`` drawn from
        ``softmax(α_a, α_b)``; ``gates`` is a leaf tensor whose ``.grad`` is ``∂L/∂g``.
        Returns ``(mixes, pairs, gates)``."""
        with torch.no_grad():
            probs = F.softmax(self.alpha.detach(), dim=-1).cpu()
            pairs = torch.multinomial(probs, 2, replacement=False, generator=self.generator)
            q = F.softmax(self.alpha.detach().cpu().gather(1, pairs), dim=-1)
            active = torch.multinomial(q, 1, generator=self.generator)[:, 0]
        gates = F.one_hot(active, 2).to(self.alpha).requires_grad_(True)
        mixes = {label: Mix('pair', weights=gates[e], index=pairs[e].tolist()) for e, label in enumerate(EDGE_LABELS)}
        return mixes, pairs.to(self.alpha.device), gates

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        opts, scheds = super().configure_optimizers()
        hp = self.hp
        opts[1] = torch.optim.Adam([self.alpha], lr=hp['arch_lr'], betas=(0.0, 0.999), eps=1e-8,
                                   weight_decay=hp['arch_weight_decay'])
        return opts, scheds

    def _arch_step(self, opt_a, xt, yt, xv, yv) -> None:
        if self.latency_table is None and self.hp['latency_weight'] > 0:
            self.set_latency_table(self._measure(tuple(xv.shape[-2:])))
        opt_a.zero_grad()
        mixes, pairs, gates = self.pair_mixes()
        loss = self._latency_loss(F.cross_entropy(self.supernet(xv, mixes), yv))
        if not torch.isfinite(loss):
            raise FloatingPointError(f'proxyless: architecture loss is {float(loss)} at epoch {self.current_epoch}')
        self._backward(loss)
        with torch.no_grad():
            old = self.alpha.gather(1, pairs)
            grad = binary_gate_alpha_grad(gates.grad, F.softmax(old, dim=-1))
            if self.alpha.grad is None:
                self.alpha.grad = torch.zeros_like(self.alpha)
            self.alpha.grad.scatter_add_(1, pairs, grad)
        opt_a.step()
        if self.hp['rescale_alpha']:
            with torch.no_grad():
                new = self.alpha.gather(1, pairs)
                offset = torch.logsumexp(new, dim=-1, keepdim=True) - torch.logsumexp(old, dim=-1, keepdim=True)
                self.alpha.scatter_(1, pairs, new - offset)
        self._last_pairs, self._last_gates = pairs, gates
        for p in self.weight_parameters():  # the arch step must not leave gradients on the weights
            p.grad = None

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint['proxyless_latency_table'] = self.latency_table

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        if checkpoint.get('proxyless_latency_table') is not None:
            self.set_latency_table(checkpoint['proxyless_latency_table'])

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        lat = self.expected_latency()
        self.history['expected_latency'].append(None if lat is None else float(lat.detach()))


def search(**kwargs) -> Dict[str, Any]:
    """:func:`nni_nasext.strategies.oneshot.search` with ``method='proxyless'`` and
    :class:`ProxylessModule`; ProxylessModule's parameters pass through ``kwargs``."""
    return _oneshot.search('proxyless', module_cls=ProxylessModule, **kwargs)
