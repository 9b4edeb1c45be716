"""Mixed versions of NNI's mutable layers (``MutableConv2d``, ``MutableLinear``,
``MutableBatchNorm1d/2d``, ``MutableLayerNorm``, ``MutableMultiheadAttention``).

A layer whose arguments hold choices (``nni.choice`` values, or expressions of one choice
such as ``padding=kernel // 2``) is built once at the largest value of every argument; a
sample runs the slice of its weights that the smaller layer has (the first output / input
channels, the central ``k x k`` of the kernel, the first heads' projections), as NNI's
``MixedOperation`` (``nni/nas/oneshot/pytorch/supermodule/operation.py``) and Once-for-All
(Cai et al., ICLR 2020) share weights. Under a weighted mix (DARTS and the other
differentiable or gated methods) the choice of a *width* (output channels / features) masks
the output channels with ``Σ_v w_v 1[c < v]`` and the choice of a *kernel size* masks the
kernel with ``Σ_v w_v 1[centre v x v]``: by linearity of the convolution, the output is the
weighted sum of the outputs of every candidate layer (a DARTS mixed op over layer sizes,
computed once). Input widths follow the input; normalisation layers and attention run at
full width (their input is already masked). Arguments that cannot be weighted (stride,
dilation, groups, number of heads) are refused for weighted methods and work for path
methods.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from nni.mutable import Mutable
from nni.nas.nn.pytorch import ParametrizedModule

from .supernet import BuildContext, Decision, MixedModule, OneShotUnsupported, leaf_label

__all__ = ['MixedBatchNorm', 'MixedBatchNorm1d', 'MixedBatchNorm2d', 'MixedBatchNorm3d', 'MixedConv2d', 'MixedLayerNorm',
           'MixedLinear', 'MixedMultiheadAttention',
           'mutate_layer', 'shrink_channels']


def _bound(layer: ParametrizedModule, wrapped: type) -> Dict[str, Any]:
    sig = inspect.signature(wrapped.__init__)
    bound = sig.bind(None, *layer.trace_args, **layer.trace_kwargs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    args.pop('self', None)
    args.pop('device', None)
    args.pop('dtype', None)
    return args


class MixedLayer(MixedModule):
    """Common part: the layer's arguments, which of them are choices, their values."""

    wrapped: type = nn.Module
    weightable: tuple = ()      # arguments a weighted mix may vary (masked)
    followers: tuple = ()       # arguments that follow the input (sliced to it)

    def __init__(self, layer: ParametrizedModule, path: str, ctx: BuildContext):
        super().__init__(ctx.state, list(layer.mutables))
        self.where = path
        self.args = _bound(layer, self.wrapped)
        self.mutable_args: Dict[str, str] = {}       # argument -> label
        self.values: Dict[str, Dict[Any, Any]] = {}  # argument -> {label value: argument value}
        for name, arg in self.args.items():
            if isinstance(arg, Mutable):
                label = str(leaf_label(arg, f'{type(layer).__name__} {path!r} argument {name!r}'))
                values = list(arg.simplify()[label].values)
                self.mutable_args[name] = label
                self.values[name] = {v: arg.freeze({label: v}) for v in values}
                ctx.register(Decision(label, 'value', values, label=label), path)
        if ctx.weighted:
            bad = [n for n in self.mutable_args if n not in self.weightable + self.followers + ('padding',)]
            if bad:
                raise OneShotUnsupported(f'{type(layer).__name__} at {path!r}: the choice of {bad} '
                                         f'(labels {[self.mutable_args[n] for n in bad]}) cannot be mixed by weights, '
                                         f'which one-shot method {ctx.method!r} needs (not supported)')

    def decision_keys(self) -> List[str]:
        return sorted(set(self.mutable_args.values()))

    def max_value(self, name: str):
        if name in self.values:
            vals = list(self.values[name].values())
            return max(vals, key=lambda v: v if not isinstance(v, (tuple, list)) else tuple(v))
        return self.args[name]

    def frozen(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        """The layer's arguments for ``sample``."""
        return {n: (self.values[n][sample[self.mutable_args[n]]] if n in self.mutable_args else v)
                for n, v in self.args.items()}

    def _mask(self, name: str, size: int, device) -> Optional[torch.Tensor]:
        """``Σ_v w_v 1[c < v]`` over the candidates of the mix of ``name``'s label (None: full)."""
        if name not in self.mutable_args:
            return None
        label = self.mutable_args[name]
        mix = self.state.mix(label)
        values = list(self.values[name].values())
        mask = None
        for i in mix.active(len(values)):
            m = (torch.arange(size, device=device) < int(values[i])).float()
            term = m if mix.weights is None else mix.weights[i] * m
            mask = term if mask is None else mask + term
        return mask

    def current(self) -> Dict[str, Any]:
        """Arguments in path mode, or in a mix whose every choice is one path of one value."""
        state = self.state
        if state.path_mode:
            return self.frozen(state.sample)
        out = dict(self.args)
        for name, label in self.mutable_args.items():
            mix = state.mix(label)
            values = list(self.values[name].values())
            active = mix.active(len(values))
            out[name] = values[active[0]] if (mix.is_path and len(active) == 1) else self.max_value(name)
        return out

    def weighted_args(self) -> List[str]:
        """Arguments whose label has a weighted (or multi-path) mix now."""
        if self.state.path_mode:
            return []
        names = []
        for name, label in self.mutable_args.items():
            mix = self.state.mix(label)
            if not (mix.is_path and len(mix.active(len(self.values[name]))) == 1):
                names.append(name)
        return names


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class MixedConv2d(MixedLayer):
    wrapped = nn.Conv2d
    weightable = ('out_channels', 'kernel_size')
    followers = ('in_channels',)

    def __init__(self, layer, path, ctx):
        super().__init__(layer, path, ctx)
        if ctx.weighted and 'padding' in self.mutable_args:
            if self.mutable_args.get('padding') != self.mutable_args.get('kernel_size'):
                raise OneShotUnsupported(f'MutableConv2d at {path!r}: padding must be a function of the kernel-size choice '
                                         f'to be mixed by weights (method {ctx.method!r}; not supported)')
            dil = _pair(self.args['dilation'])
            offsets = {_pair(p)[0] - dil[0] * (_pair(k)[0] - 1) // 2
                       for k, p in zip(self.values['kernel_size'].values(), self.values['padding'].values())}
            if len(offsets) != 1:
                raise OneShotUnsupported(f'MutableConv2d at {path!r}: the kernel choices give different output sizes; '
                                         f'they cannot be mixed by weights (method {ctx.method!r}; not supported)')
        full = {n: self.max_value(n) for n in self.args}
        if 'groups' in self.mutable_args:
            full['groups'] = 1 if max(self.values['groups'].values()) == 1 else full['in_channels']
        self.groups_is_depthwise = 'groups' in self.mutable_args and full['groups'] != 1
        self.layer = nn.Conv2d(**full)

    def _weight(self, args, x):
        w, b = self.layer.weight, self.layer.bias
        k_full, k = _pair(self.layer.kernel_size), _pair(args['kernel_size'])
        out = int(args['out_channels'])
        groups = int(args['groups']) if not self.groups_is_depthwise else x.shape[1]
        cin = x.shape[1] // groups
        w = w[:out, :cin]
        if k != k_full:
            s0, s1 = (k_full[0] - k[0]) // 2, (k_full[1] - k[1]) // 2
            w = w[:, :, s0:s0 + k[0], s1:s1 + k[1]]
        return w, (b[:out] if b is not None else None), groups

    def forward(self, x):
        weighted = self.weighted_args()
        args = self.current()
        if not weighted:
            w, b, groups = self._weight(args, x)
            return F.conv2d(x, w, b, args['stride'], args['padding'], args['dilation'], groups)
        args = dict(args)
        for name in weighted:
            args[name] = self.max_value(name)
        if 'kernel_size' in weighted:
            args['padding'] = self.max_value('padding') if 'padding' in self.values else self.args['padding']
        w, b, groups = self._weight(args, x)
        if 'kernel_size' in weighted:
            kf = _pair(self.layer.kernel_size)
            kmask = None
            mix = self.state.mix(self.mutable_args['kernel_size'])
            values = list(self.values['kernel_size'].values())
            for i in mix.active(len(values)):
                k = _pair(values[i])
                m = torch.zeros(kf, device=x.device)
                s0, s1 = (kf[0] - k[0]) // 2, (kf[1] - k[1]) // 2
                m[s0:s0 + k[0], s1:s1 + k[1]] = 1.0
                term = m if mix.weights is None else mix.weights[i] * m
                kmask = term if kmask is None else kmask + term
            w = w * kmask
        y = F.conv2d(x, w, b, args['stride'], args['padding'], args['dilation'], groups)
        if 'out_channels' in weighted:
            y = y * self._mask('out_channels', y.shape[1], x.device).view(1, -1, 1, 1)
        return y

    def freeze(self, sample):
        args = self.frozen(sample)
        conv = nn.Conv2d(**{n: v for n, v in args.items()})
        x_like = torch.empty(1, int(args['in_channels']), 1, 1)
        w, b, _ = self._weight(args, x_like)
        with torch.no_grad():
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
        return conv


class MixedLinear(MixedLayer):
    wrapped = nn.Linear
    weightable = ('out_features',)
    followers = ('in_features',)

    def __init__(self, layer, path, ctx):
        super().__init__(layer, path, ctx)
        self.layer = nn.Linear(**{n: self.max_value(n) for n in self.args})

    def forward(self, x):
        weighted = self.weighted_args()
        args = self.current()
        out = self.max_value('out_features') if 'out_features' in weighted else int(args['out_features'])
        w = self.layer.weight[:out, :x.shape[-1]]
        b = self.layer.bias[:out] if self.layer.bias is not None else None
        y = F.linear(x, w, b)
        if 'out_features' in weighted:
            y = y * self._mask('out_features', y.shape[-1], x.device)
        return y

    def freeze(self, sample):
        args = self.frozen(sample)
        lin = nn.Linear(**args)
        with torch.no_grad():
            lin.weight.copy_(self.layer.weight[:args['out_features'], :args['in_features']])
            if lin.bias is not None:
                lin.bias.copy_(self.layer.bias[:args['out_features']])
        return lin


class MixedBatchNorm(MixedLayer):
    wrapped = nn.BatchNorm2d
    followers = ('num_features',)

    def __init__(self, layer, path, ctx):
        super().__init__(layer, path, ctx)
        self.layer = self.wrapped(**{n: self.max_value(n) for n in self.args})

    def forward(self, x):
        bn, c = self.layer, x.shape[1]
        momentum = 0.0 if bn.momentum is None else bn.momentum
        use_batch = self.training or not bn.track_running_stats
        if self.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        mean = bn.running_mean[:c] if bn.track_running_stats else None
        var = bn.running_var[:c] if bn.track_running_stats else None
        return F.batch_norm(x, mean, var, bn.weight[:c] if bn.affine else None, bn.bias[:c] if bn.affine else None,
                            use_batch, momentum, bn.eps)

    def freeze(self, sample):
        args = self.frozen(sample)
        new = self.wrapped(**args)
        c = int(args['num_features'])
        state = {k: (v[:c] if v.dim() == 1 else v) for k, v in self.layer.state_dict().items()}
        new.load_state_dict(state)
        return new


class MixedBatchNorm1d(MixedBatchNorm):
    wrapped = nn.BatchNorm1d


class MixedBatchNorm2d(MixedBatchNorm):
    wrapped = nn.BatchNorm2d


class MixedBatchNorm3d(MixedBatchNorm):
    wrapped = nn.BatchNorm3d


class MixedLayerNorm(MixedLayer):
    wrapped = nn.LayerNorm
    followers = ('normalized_shape',)

    def __init__(self, layer, path, ctx):
        super().__init__(layer, path, ctx)
        self.layer = nn.LayerNorm(**{n: self.max_value(n) for n in self.args})

    def forward(self, x):
        ln, c = self.layer, x.shape[-1]
        w = ln.weight[:c] if ln.weight is not None else None
        b = ln.bias[:c] if ln.bias is not None else None
        return F.layer_norm(x, (c,), w, b, ln.eps)

    def freeze(self, sample):
        args = self.frozen(sample)
        new = nn.LayerNorm(**args)
        c = new.normalized_shape[-1]
        new.load_state_dict({k: v[:c] for k, v in self.layer.state_dict().items()})
        return new


class MixedMultiheadAttention(MixedLayer):
    wrapped = nn.MultiheadAttention
    followers = ('embed_dim',)

    def __init__(self, layer, path, ctx):
        super().__init__(layer, path, ctx)
        full = {n: self.max_value(n) for n in self.args}
        if full.get('kdim') not in (None, full['embed_dim']) or full.get('vdim') not in (None, full['embed_dim']):
            raise OneShotUnsupported(f'MutableMultiheadAttention at {path!r}: kdim/vdim other than embed_dim are not '
                                     'supported by the one-shot supernet')
        self.layer = nn.MultiheadAttention(**full)

    def _slices(self, e: int):
        m, E = self.layer, self.layer.embed_dim
        rows = torch.cat([torch.arange(e), E + torch.arange(e), 2 * E + torch.arange(e)]).to(m.in_proj_weight.device)
        in_w = m.in_proj_weight[rows][:, :e]
        in_b = m.in_proj_bias[rows] if m.in_proj_bias is not None else None
        out_w = m.out_proj.weight[:e, :e]
        out_b = m.out_proj.bias[:e] if m.out_proj.bias is not None else None
        return in_w, in_b, out_w, out_b

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        m = self.layer
        args = self.current()
        e = query.shape[-1]
        heads = int(args['num_heads'])
        if e % heads:
            raise RuntimeError(f'{self.where}: embed_dim {e} is not divisible by num_heads {heads}')
        in_w, in_b, out_w, out_b = self._slices(e)
        if m.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        bias_k = m.bias_k[..., :e] if m.bias_k is not None else None
        bias_v = m.bias_v[..., :e] if m.bias_v is not None else None
        # need_weights=True takes the explicit softmax path, which (unlike the fused kernel on the
        # CPU) has a second derivative: the Hessian of R-DARTS and DARTS' second order need it
        out, weights = F.multi_head_attention_forward(
            query, key, value, e, heads, in_w, in_b, bias_k, bias_v, m.add_zero_attn, m.dropout, out_w, out_b,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=True, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        weights = weights if need_weights else None
        if m.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def freeze(self, sample):
        args = self.frozen(sample)
        new = nn.MultiheadAttention(**args)
        e = new.embed_dim
        in_w, in_b, out_w, out_b = self._slices(e)
        with torch.no_grad():
            new.in_proj_weight.copy_(in_w)
            if in_b is not None:
                new.in_proj_bias.copy_(in_b)
            new.out_proj.weight.copy_(out_w)
            if out_b is not None:
                new.out_proj.bias.copy_(out_b)
        return new


def mutate_layer(module: nn.Module, path: str, ctx: BuildContext):
    """The mutation hook for NNI's mutable layers that hold choices (others stay as they are)."""
    if not isinstance(module, ParametrizedModule) or not list(module.mutables):
        return None
    for cls in (MixedConv2d, MixedLinear, MixedLayerNorm, MixedMultiheadAttention, MixedBatchNorm1d,
                MixedBatchNorm2d, MixedBatchNorm3d):
        if isinstance(module, cls.wrapped):
            return cls(module, path, ctx)
    return None


def shrink_channels(module: nn.Module, channels: int, k: int) -> nn.Module:
    """A copy of ``module`` (an op mapping ``channels`` to ``channels``) at ``1/k`` of its width:
    every ``Conv2d`` and ``BatchNorm2d`` gets ``1/k`` of its channels (depthwise groups too),
    freshly initialised. ``ValueError`` when a width is not divisible or a layer cannot shrink."""
    if k == 1:
        return copy.deepcopy(module)
    new = copy.deepcopy(module)

    def visit(parent: nn.Module):
        for name, child in list(parent.named_children()):
            if isinstance(child, MixedModule):
                raise ValueError(f'{type(child).__name__} inside the op cannot shrink')
            if isinstance(child, nn.Conv2d):
                cin, cout, g = child.in_channels, child.out_channels, child.groups
                if cin % k or cout % k or (g != 1 and g % k):
                    raise ValueError(f'conv {name} ({cin}->{cout}, groups {g}) is not divisible by {k}')
                setattr(parent, name, nn.Conv2d(cin // k, cout // k, child.kernel_size, child.stride, child.padding,
                                                child.dilation, g // k if g != 1 else 1, child.bias is not None,
                                                child.padding_mode))
            elif isinstance(child, nn.BatchNorm2d):
                if child.num_features % k:
                    raise ValueError(f'batch norm {name} ({child.num_features}) is not divisible by {k}')
                setattr(parent, name, nn.BatchNorm2d(child.num_features // k, child.eps, child.momentum, child.affine,
                                                     child.track_running_stats))
            elif isinstance(child, (nn.Linear, nn.LayerNorm, nn.MultiheadAttention, nn.Conv1d, nn.Conv3d)):
                raise ValueError(f'{type(child).__name__} {name} cannot shrink')
            else:
                visit(child)

    if isinstance(new, (nn.Conv2d, nn.BatchNorm2d)):
        holder = nn.Sequential(new)
        visit(holder)
        return holder[0]
    visit(new)
    return new
