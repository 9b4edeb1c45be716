"""Training-free ("zero-cost") proxies of a network's trained accuracy, and an NNI evaluator.

Every ``score_<name>(model, inputs, targets=None, *, seed=0, ...) -> float`` works on a
*deep copy* of ``model``: the caller's weights, buffers, ``requires_grad`` flags and
train/eval mode are the same after scoring. Scores are deterministic under ``seed``: random
draws come from a private ``torch.Generator`` and every forward/backward pass runs inside
``torch.random.fork_rng`` seeded with ``seed`` (so dropout masks and re-initialisations are
seeded and the global RNG is left alone). Computation happens on ``inputs.device``.

Proxies (larger is better for all but ``params``/``flops``, which are plain costs):

* ``naswot`` -- Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without
  Training", ICML 2021. Binary codes of the ReLU pre-activations (``> 0``) over the batch,
  Hamming kernel ``K = N_A - d_H`` summed over all ``nn.ReLU`` modules, score ``log|det K|``.
  Only ``nn.ReLU`` *modules* are seen (forward pre-hooks); ``torch.relu`` / ``F.relu`` called
  inside a ``forward`` cannot be hooked and is invisible to the proxy.
* ``synflow`` -- Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020; used as a NAS proxy by Abdelfattah,
  Mehrotra, Dudziak, Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
* ``snip`` -- Lee, Ajanthan, Torr, "SNIP: Single-shot network pruning based on connection
  sensitivity", ICLR 2019 (as a NAS proxy: Abdelfattah et al. 2021).
* ``grad_norm`` -- Abdelfattah et al. 2021: the *sum of per-tensor L2 norms* of the loss
  gradient of the Conv2d/Linear weights (as in the zero-cost-proxies code), not the total norm.
* ``jacob_cov`` -- Mellor et al., arXiv v1 of NASWOT (2020), as packaged by Abdelfattah et al.
* ``zen`` -- Lin, Wang, Sun, Chen, Sun, Qian, Li, Jin, "Zen-NAS: A Zero-Shot NAS for
  High-Performance Image Recognition", ICCV 2021.
* ``te_nas_ntk`` and ``te_nas_linear_regions`` -- Chen, Gong, Wang, "Neural Architecture
  Search on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective", ICLR 2021
  (TE-NAS). The NTK condition number is *smaller-is-better* in the paper; the function
  returns the condition number itself (use ``negate=True`` in :class:`ZeroCostProxy`).
* ``params`` (millions of trainable parameters) and ``flops`` (millions of multiply-accumulates
  of Conv2d/Linear layers for one example of the inputs' size).

As in the zero-cost-proxies code, ``synflow``, ``snip`` and ``grad_norm`` sum over the
*weights* of ``nn.Conv2d`` / ``nn.Linear`` layers (biases and BN affine parameters excluded);
the TE-NAS NTK uses every parameter whose name ends in ``weight``, as in the TE-NAS code.

Degenerate cases never raise: a network without ``nn.ReLU`` (``naswot``), an all-zero output
(``synflow``: ``0.0``), a singular/constant Jacobian or an overflow return ``nan`` (or the value
given in the docstring) together with a ``warnings.warn``.

Registry line (``nni_nasext/registry.py``, ``EVALUATORS``)::

    Entry('zero_cost', 'nni_nasext.evaluators.proxies:ZeroCostProxy',
          'training-free proxy score (synflow, naswot, snip, grad_norm, jacob_cov, zen, te_nas_ntk, ...)'),
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import nni
from nni.nas.evaluator import Evaluator

__all__ = [
    'PROXIES', 'DATA_FREE', 'ZeroCostProxy', 'naswot_kernel', 'empirical_ntk',
    'score_naswot', 'score_synflow', 'score_snip', 'score_grad_norm', 'score_jacob_cov', 'score_zen',
    'score_te_nas_ntk', 'score_te_nas_linear_regions', 'score_params', 'score_flops',
]

_BN = nn.modules.batchnorm._BatchNorm


# ----------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run with the global RNG(s) seeded, restoring them afterwards."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device='cpu').manual_seed(int(seed))


def _randn(shape, gen: torch.Generator, device, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=dtype).to(device)


def scoring_copy(model: nn.Module, device: torch.device, train: bool = True) -> nn.Module:
    """A deep copy on ``device``, every parameter trainable, in train (or eval) mode."""
    net = copy.deepcopy(model).to(device)
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    net.train(train)
    return net


@contextlib.contextmanager
def scoring_net(model: nn.Module, device: torch.device, train: bool = True, copy: bool = True):
    """The network a proxy measures: :func:`scoring_copy`, or with ``copy=False`` the model itself,
    set up the same way (every parameter trainable, no gradients, the given mode) and given back
    on exit as it was (parameters, buffers, ``requires_grad``, gradients, modes). A caller that
    measures many masks of one supernet (TE-NAS) saves a deep copy per measurement, which for a
    supernet costs more than the measurement; the model must already be on ``device``."""
    if copy:
        yield scoring_copy(model, device, train)
        return
    # tensors are restored in place (a measurement changes values, not which tensors a module holds)
    state = [(t, t.detach().clone()) for t in (*model.parameters(), *model.buffers())]
    grads = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    model.train(train)
    try:
        yield model
    finally:
        with torch.no_grad():
            for t, saved in state:
                t.copy_(saved)
        for p, requires, grad in grads:
            p.requires_grad_(requires)
            p.grad = grad
        for m, training in modes:
            m.training = training


def _reset(net: nn.Module) -> None:
    """PyTorch's default initialisation of every module (under the current, seeded RNG)."""
    for m in net.modules():
        if hasattr(m, 'reset_parameters') and callable(m.reset_parameters):
            m.reset_parameters()


def _weights(net: nn.Module) -> List[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _labels(targets, inputs: torch.Tensor, out_dim: int, gen: torch.Generator) -> torch.Tensor:
    if targets is not None:
        return targets.to(inputs.device).long()
    return torch.randint(0, out_dim, (len(inputs),), generator=gen).to(inputs.device)


def _degenerate(message: str, value: float = float('nan')) -> float:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return value


def loss_grads(model, inputs, targets, seed, reinit) -> List[torch.Tensor]:
    """Gradients of the batch cross-entropy w.r.t. the Conv2d/Linear weights of a copy."""
    net = scoring_copy(model, inputs.device, train=True)
    gen = _generator(seed)
    with seeded(seed, inputs.device):
        if reinit:
            _reset(net)
        weights = _weights(net)
        if not weights:
            return [], []
        out = net(inputs)
        loss = F.cross_entropy(out, _labels(targets, inputs, out.shape[-1], gen))
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    pairs = [(w.detach(), g) for w, g in zip(weights, grads) if g is not None]
    return [w for w, _ in pairs], [g for _, g in pairs]


# ----------------------------------------------------------------------------- NASWOT

def naswot_kernel(model: nn.Module, inputs: torch.Tensor) -> Optional[torch.Tensor]:
    """``K[i, j]`` = number of ReLU units on which examples ``i`` and ``j`` agree
    (``N_A - d_H``), summed over all ``nn.ReLU`` modules; ``None`` when there is no ReLU.

    Runs ``model`` as given (mode and weights untouched; hooks are removed afterwards).
    A unit is "on" when its pre-activation is ``> 0``.
    """
    n = len(inputs)
    acc = {'K': torch.zeros(n, n, dtype=torch.float64, device=inputs.device), 'seen': 0}

    def hook(module, args):
        # K += c c^T + (1-c)(1-c)^T = 2 c c^T - r 1^T - 1 r^T + units, with r the rows' on-counts:
        # one matmul instead of two. In float32 while exact: every entry is an integer count of
        # at most `units`, and float32 holds integers exactly up to 2^24.
        c = args[0].detach().reshape(n, -1) > 0
        units = c.shape[1]
        dtype = torch.float32 if units <= 2 ** 23 else torch.float64
        c = c.to(dtype)
        r = c.sum(1, keepdim=True)
        acc['K'] += (2 * (c @ c.T) - r - r.T + units).double()
        acc['seen'] += 1

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return acc['K'] if acc['seen'] else None


def score_naswot(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                 reinit: bool = False) -> float:
    """NASWOT (Mellor et al., ICML 2021): ``log|det K|`` of :func:`naswot_kernel`.

    The copy runs in train mode (BN uses batch statistics, as in the authors' code). Without
    any ``nn.ReLU`` module the score is ``nan`` with a warning; a singular ``K`` gives ``-inf``.
    """
    net = scoring_copy(model, inputs.device, train=True)
    with seeded(seed, inputs.device):
        if reinit:
            _reset(net)
        K = naswot_kernel(net, inputs)
    if K is None:
        return _degenerate('naswot: the network has no nn.ReLU module (functional relu is not '
                           'hookable); score is nan')
    return float(torch.linalg.slogdet(K)[1])


# ----------------------------------------------------------------------------- synflow

def score_synflow(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                  reinit: bool = False) -> float:
    """SynFlow (Tanaka et al. 2020; Abdelfattah et al. 2021): ``sum |θ ⊙ dR/dθ|`` over the
    Conv2d/Linear weights, with ``R = sum(f(1))`` computed in double on ``|θ|`` (all parameters
    sign-stripped) and an all-ones input of one example. BatchNorm layers are replaced by
    identities (the zero-cost-proxies code scores a BN-free copy); the copy runs in eval mode.
    A network whose output does not depend on its weights (e.g. an all-'none' NB201 cell)
    scores ``0.0`` with a warning.
    """
    device = inputs.device
    net = scoring_copy(model, device, train=False)
    with seeded(seed, device):
        if reinit:
            _reset(net)
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _BN):
                setattr(module, child_name, nn.Identity())
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = _weights(net)
    x = torch.ones((1,) + tuple(inputs.shape[1:]), dtype=torch.float64, device=device)
    with seeded(seed, device):
        R = net(x).sum()
    if not weights or not R.requires_grad:
        return _degenerate('synflow: the output does not depend on any Conv2d/Linear weight; score 0.0', 0.0)
    grads = torch.autograd.grad(R, weights, allow_unused=True)
    score = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)
    if score == 0.0:
        return _degenerate('synflow: zero synaptic flow (e.g. a cell of only zero ops); score 0.0', 0.0)
    if not math.isfinite(score):
        return _degenerate('synflow: overflow in double precision; score nan')
    return score


# ----------------------------------------------------------------------------- SNIP, grad_norm

def score_snip(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
               reinit: bool = False) -> float:
    """SNIP (Lee et al. 2019; Abdelfattah et al. 2021): ``sum |θ ⊙ ∂L/∂θ|`` over the
    Conv2d/Linear weights, ``L`` the batch cross-entropy (train mode). Without ``targets`` the
    labels are drawn uniformly from ``seed``."""
    weights, grads = loss_grads(model, inputs, targets, seed, reinit)
    score = sum(float((w * g).abs().sum()) for w, g in zip(weights, grads))
    return score if math.isfinite(score) else _degenerate('snip: non-finite gradient; score nan')


def score_grad_norm(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                    reinit: bool = False) -> float:
    """grad_norm (Abdelfattah et al. 2021): the sum over Conv2d/Linear weight tensors of the
    L2 norm of ``∂L/∂W`` (per-tensor norms summed, as in the zero-cost-proxies code)."""
    _, grads = loss_grads(model, inputs, targets, seed, reinit)
    score = sum(float(g.norm()) for g in grads)
    return score if math.isfinite(score) else _degenerate('grad_norm: non-finite gradient; score nan')


# ----------------------------------------------------------------------------- jacob_cov

def score_jacob_cov(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                    reinit: bool = False, k: float = 1e-5) -> float:
    """jacob_cov (Mellor et al. 2020, v1; Abdelfattah et al. 2021): ``J`` = gradient of the
    summed outputs w.r.t. the input, one flattened row per example; ``C`` = correlation matrix
    of the rows; score ``-sum(log(λ + k) + 1/(λ + k))`` over its eigenvalues ``λ``. A constant
    row (correlation undefined) gives ``nan`` with a warning."""
    net = scoring_copy(model, inputs.device, train=True)
    x = inputs.detach().clone().requires_grad_(True)
    with seeded(seed, inputs.device):
        if reinit:
            _reset(net)
        out = net(x)
        (J,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if J is None:
        return _degenerate('jacob_cov: the output does not depend on the input; score nan')
    J = J.reshape(len(x), -1).double()
    Jc = J - J.mean(dim=1, keepdim=True)
    norms = Jc.norm(dim=1)
    if not torch.all(norms > 0) or not torch.isfinite(J).all():
        return _degenerate('jacob_cov: a constant or non-finite Jacobian row; score nan')
    Jn = Jc / norms[:, None]
    lam = torch.linalg.eigvalsh(Jn @ Jn.T)
    return float(-(torch.log(lam + k) + 1.0 / (lam + k)).sum())


# ----------------------------------------------------------------------------- Zen-NAS

def _default_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input of the last ``nn.AdaptiveAvgPool2d`` (the pre-GAP feature map); the output when
    there is none (with a warning)."""
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        warnings.warn('zen: no nn.AdaptiveAvgPool2d; using the network output as features', RuntimeWarning)
        return net(x)
    box = []
    handle = pools[-1].register_forward_pre_hook(lambda m, a: box.append(a[0]))
    try:
        net(x)
    finally:
        handle.remove()
    return box[-1]


def score_zen(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0, alpha: float = 0.01,
              repeats: int = 1, feature_fn: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None
              ) -> float:
    """Zen-score (Lin et al., ICCV 2021), averaged over ``repeats`` draws.

    Per draw: weights re-initialised Gaussian (Conv/Linear weights ~ N(0, 1), biases 0, BN
    affine 1/0), ``x ~ N(0, 1)`` of the inputs' shape, ``x' = x + alpha·ε``; with ``f`` the
    pre-GAP feature map (``feature_fn(net, x)``, default: the input of the last
    ``nn.AdaptiveAvgPool2d``), score = ``log E_batch ||f(x) - f(x')||_1`` (sum over C, H, W,
    as in the authors' code) ``+ Σ_BN log sqrt(mean_c σ²_c)``, ``σ²_c`` the *batch* variance
    of each BN layer's input on the ``x`` pass (train mode); BN layers whose input is constant
    over the batch (dead branches, which output zeros) are left out of the sum. Overflow or a
    zero difference (no path from input to features) gives ``nan`` with a warning.
    """
    feature_fn = feature_fn or _default_features
    device, gen = inputs.device, _generator(seed)
    net = scoring_copy(model, device, train=True)
    scores = []
    for _ in range(repeats):
        with seeded(seed, device), torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(m.weight, 0.0, 1.0, generator=gen)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, _BN) and m.affine:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            x = _randn(inputs.shape, gen, device)
            x2 = x + alpha * _randn(inputs.shape, gen, device)
            bn_vars: List[torch.Tensor] = []
            dims = lambda t: [d for d in range(t.dim()) if d != 1]
            handles = [m.register_forward_pre_hook(
                lambda mod, a: bn_vars.append(a[0].double().var(dim=dims(a[0]), unbiased=False).mean()))
                for m in net.modules() if isinstance(m, _BN)]
            try:
                f1 = feature_fn(net, x)
            finally:
                for h in handles:
                    h.remove()
            f2 = feature_fn(net, x2)
            diff = (f1.double() - f2.double()).abs().reshape(len(x), -1).sum(dim=1).mean()
            # A BN layer whose input has zero batch variance (a dead branch behind a `none` op, e.g.
            # every op fed by a zeroed NB201 node) outputs zeros and adds nothing to the function; its
            # correction log(0) is undefined and left out rather than sinking the whole score to -inf.
            score = torch.log(diff) + sum((0.5 * torch.log(v) for v in bn_vars if v > 0),
                                          torch.zeros((), dtype=torch.float64, device=device))
        scores.append(float(score))
    value = sum(scores) / len(scores)
    if not math.isfinite(value):
        return _degenerate('zen: overflow or zero feature difference; score nan')
    return value


# ----------------------------------------------------------------------------- TE-NAS

def empirical_ntk(model: nn.Module, inputs: torch.Tensor, *, per_output: bool = False,
                  params: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Empirical NTK on the batch: ``Θ[i, j] = <∂g_i/∂θ, ∂g_j/∂θ>`` with ``g_i`` the sum of the
    outputs of example ``i`` (TE-NAS), or, with ``per_output``, the ``(B·K) x (B·K)`` kernel of
    every output. ``params`` defaults to every parameter whose name ends in ``weight`` (TE-NAS).
    The model is run as given (mode untouched; no ``.grad`` is written). Returns float64.
    For ``f(x) = w·x`` this is ``X Xᵀ``."""
    if params is None:
        params = [p for n, p in model.named_parameters() if n.endswith('weight')]
    params = [p for p in params if p.requires_grad] or list(params)
    out = model(inputs)
    out = out.reshape(len(inputs), -1)
    scalars = out.reshape(-1) if per_output else out.sum(dim=1)
    rows = []
    for i in range(len(scalars)):
        grads = torch.autograd.grad(scalars[i], params, retain_graph=i + 1 < len(scalars), allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                               for g, p in zip(grads, params)]))
    J = torch.stack(rows)
    return J @ J.T


def kaiming_init(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BN):
            m.reset_parameters()


def score_te_nas_ntk(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                     reinit: bool = True, per_output: bool = False, copy: bool = True) -> float:
    """TE-NAS NTK condition number ``λ_max / λ_min`` of :func:`empirical_ntk` (Chen et al.,
    ICLR 2021; *smaller is better*). The copy is re-initialised Kaiming-normal (fan-in) from
    ``seed`` unless ``reinit=False``, and runs in train mode as in the TE-NAS code. A singular
    kernel gives ``inf`` with a warning. ``copy=False``: measured in place and given back as it
    was (:func:`scoring_net`)."""
    with scoring_net(model, inputs.device, train=True, copy=copy) as net, seeded(seed, inputs.device):
        if reinit:
            kaiming_init(net)
        ntk = empirical_ntk(net, inputs, per_output=per_output)
    lam = torch.linalg.eigvalsh(ntk)
    if not torch.isfinite(lam).all():
        return _degenerate('te_nas_ntk: non-finite NTK; score nan')
    if lam[0] <= 0:
        return _degenerate('te_nas_ntk: singular NTK; condition number inf', float('inf'))
    return float(lam[-1] / lam[0])


def score_te_nas_linear_regions(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0,
                                num_samples: Optional[int] = None, reinit: bool = True) -> float:
    """TE-NAS linear-region count (Chen et al., ICLR 2021): the number of distinct joint ReLU
    activation patterns over ``num_samples`` (default ``len(inputs)``) Gaussian inputs of the
    inputs' shape. The copy is re-initialised Kaiming-normal from ``seed`` and run in *eval*
    mode so that each input's pattern does not depend on the others in the batch. Without
    any ``nn.ReLU`` module the network is one linear region: ``1.0`` with a warning."""
    device, gen = inputs.device, _generator(seed)
    net = scoring_copy(model, device, train=False)
    n = int(num_samples or len(inputs))
    codes: List[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda mod, a: codes.append(a[0].reshape(len(a[0]), -1) > 0))
               for m in net.modules() if isinstance(m, nn.ReLU)]
    with seeded(seed, device), torch.no_grad():
        if reinit:
            kaiming_init(net)
        net(_randn((n,) + tuple(inputs.shape[1:]), gen, device))
    for h in handles:
        h.remove()
    if not codes:
        return _degenerate('te_nas_linear_regions: no nn.ReLU module; one linear region', 1.0)
    return float(len(torch.unique(torch.cat(codes, dim=1), dim=0)))


# ----------------------------------------------------------------------------- costs

def score_params(model: nn.Module, inputs: torch.Tensor = None, targets=None, *, seed: int = 0) -> float:
    """Trainable parameters, in millions."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6


def score_flops(model: nn.Module, inputs: torch.Tensor, targets=None, *, seed: int = 0) -> float:
    """Multiply-accumulates of ``nn.Conv2d`` and ``nn.Linear`` layers for *one* example of the
    inputs' size, in millions (forward hooks on an eval-mode copy; other layers count 0)."""
    net = copy.deepcopy(model).to(inputs.device).eval()
    total = [0]

    def hook(m, a, out):
        per_out = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.in_features
        total[0] += out.numel() // len(out) * per_out

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(inputs[:1])
    for h in handles:
        h.remove()
    return total[0] / 1e6


PROXIES: Dict[str, Callable[..., float]] = {
    'naswot': score_naswot,
    'synflow': score_synflow,
    'snip': score_snip,
    'grad_norm': score_grad_norm,
    'jacob_cov': score_jacob_cov,
    'zen': score_zen,
    'te_nas_ntk': score_te_nas_ntk,
    'te_nas_linear_regions': score_te_nas_linear_regions,
    'params': score_params,
    'flops': score_flops,
}

#: Proxies that need no real data (Gaussian inputs / all-ones or input size only).
DATA_FREE = frozenset({'synflow', 'zen', 'te_nas_linear_regions', 'params', 'flops'})


# ----------------------------------------------------------------------------- evaluator

class ZeroCostProxy(Evaluator):
    """Score a network with one training-free proxy; report it as the final result.

    Parameters
    ----------
    proxy
        A key of :data:`PROXIES`.
    dataset
        A :func:`nni_nasext.datasets.load_dataset` name for the mini-batch (``None``: Gaussian
        inputs of ``input_size`` and uniform labels). Data-free proxies (:data:`DATA_FREE`)
        always use Gaussian inputs of the dataset's (or ``input_size``) shape.
    batch_size, seed
        The batch is the first ``batch_size`` training examples after a ``seed``-ed shuffle;
        ``seed`` also seeds the proxy.
    input_size
        ``(C, H, W)``; real images are resized (bilinear) and their channels repeated or
        averaged to fit. Required when ``dataset`` is ``None``.
    reinit
        Re-initialise the scored copy with PyTorch's default init from ``seed`` first (for the
        proxies with a ``reinit`` option), so the score depends on architecture and seed only.
    negate
        Report ``-score`` (e.g. for ``te_nas_ntk``, ``params``, ``flops`` under a maximiser).
    fallback
        Reported instead of a non-finite score when not ``None``.
    proxy_kwargs
        Extra keyword arguments of the proxy function (e.g. ``repeats`` for ``zen``).
    """

    def __init__(self, proxy: str = 'synflow', dataset: Optional[str] = 'digits', batch_size: int = 64,
                 seed: int = 0, input_size: Optional[Sequence[int]] = None, num_classes: int = 10,
                 reinit: bool = True, negate: bool = False, fallback: Optional[float] = None,
                 device: Optional[str] = None, proxy_kwargs: Optional[dict] = None):
        if proxy not in PROXIES:
            raise ValueError(f'Unknown proxy {proxy!r}; known: {", ".join(PROXIES)}')
        if dataset is None and input_size is None:
            raise ValueError('ZeroCostProxy needs a dataset or an input_size')
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        self.proxy, self.dataset, self.batch_size, self.seed = proxy, dataset, int(batch_size), int(seed)
        self.input_size = tuple(int(s) for s in input_size) if input_size is not None else None
        self.num_classes, self.reinit, self.negate, self.fallback = int(num_classes), bool(reinit), bool(negate), fallback
        self.device = device
        self.proxy_kwargs = dict(proxy_kwargs or {})
        self._batch = None

    def _dump(self) -> dict:
        return {'proxy': self.proxy, 'dataset': self.dataset, 'batch_size': self.batch_size, 'seed': self.seed,
                'input_size': list(self.input_size) if self.input_size else None, 'num_classes': self.num_classes,
                'reinit': self.reinit, 'negate': self.negate, 'fallback': self.fallback, 'device': self.device,
                'proxy_kwargs': self.proxy_kwargs}

    @classmethod
    def _load(cls, **arguments) -> 'ZeroCostProxy':
        return cls(**arguments)

    def extra_repr(self) -> str:
        return f'proxy={self.proxy!r}, dataset={self.dataset!r}, batch_size={self.batch_size}, seed={self.seed}'

    def batch(self):
        """``(inputs, targets)`` on CPU, built once."""
        if self._batch is None:
            gen = _generator(self.seed)
            if self.dataset is not None:
                from nni_nasext.datasets import load_dataset
                train, _, info = load_dataset(self.dataset)
                idx = torch.randperm(len(train), generator=gen)[:self.batch_size]
                x = train.images[idx].float() * train.scale
                y = train.labels[idx]
                if self.input_size is not None:
                    c, h, w = self.input_size
                    if x.shape[1] != c:
                        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c != 1 else x.mean(1, keepdim=True)
                    if tuple(x.shape[2:]) != (h, w):
                        x = F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)
                    x = x.contiguous()
            else:
                x = torch.randn((self.batch_size,) + self.input_size, generator=gen)
                y = torch.randint(0, self.num_classes, (self.batch_size,), generator=gen)
            if self.proxy in DATA_FREE:
                x = torch.randn(x.shape, generator=gen)
            self._batch = (x, y)
        return self._batch

    def score(self, model: nn.Module) -> float:
        x, y = self.batch()
        device = torch.device(self.device) if self.device else next(
            (p.device for p in model.parameters()), torch.device('cpu'))
        fn = PROXIES[self.proxy]
        kwargs = dict(self.proxy_kwargs)
        if self.reinit and 'reinit' in fn.__code__.co_varnames[:fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]:
            kwargs.setdefault('reinit', True)
        value = float(fn(model, x.to(device), y.to(device), seed=self.seed, **kwargs))
        return -value if self.negate else value

    def evaluate(self, model: nn.Module) -> float:
        value = self.score(model)
        if not math.isfinite(value) and self.fallback is not None:
            value = float(self.fallback)
        nni.report_final_result(value)
        return value
