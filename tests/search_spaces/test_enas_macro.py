"""ENAS macro search space (Pham et al., ICML 2018)."""
import json
import random

import pytest
import torch

from nni_nasext.search_spaces import enas_macro as em
from nni_nasext.space_spec import SpaceSpec

torch.set_num_threads(1)
SMALL = dict(num_layers=6, width=8)


def _spec(space):
    spec = SpaceSpec.from_space(space)
    assert SpaceSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    return spec


def _run(net):
    torch.manual_seed(0)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    # reductions of nodes that no later layer reads get no gradient (the official code builds them too)
    assert all(p.grad is not None for n, p in net.named_parameters() if '.reductions.' not in n)


def test_labels_size_and_round_trip():
    spec = _spec(em.EnasMacroSpace())
    assert len(spec) == 12 + 11
    assert spec.dims['layer0_op'].values == tuple(em.OPS)
    assert spec.dims['layer3_skip'].values == (-1, 0, 1) and spec.dims['layer3_skip'].n_chosen is None
    assert abs(em.log10_size(12) - 29.206) < 1e-3          # the paper's 1.6e29
    assert em.pool_layers(12) == [3, 7] and em.pool_layers(24) == [7, 15]


@pytest.mark.parametrize('style', ['search', 'final'])
def test_random_samples_freeze_forward_backward(style):
    space = em.EnasMacroSpace(style=style, **SMALL)
    spec = _spec(space)
    rng = random.Random(0)
    for _ in range(3):
        sample = spec.random(rng)
        _run(space.freeze(sample))
    every_op = {f'layer{i}_op': em.OPS[i] for i in range(6)}
    every_op.update({f'layer{i}_skip': em.skip_candidates(i) for i in range(1, 6)})
    _run(space.freeze(every_op))


def test_skips_change_inputs():
    space = em.EnasMacroSpace(**SMALL)
    base = {f'layer{i}_op': 'conv_3x3' for i in range(6)}
    base.update({f'layer{i}_skip': [] for i in range(1, 6)})
    with_skip = dict(base, layer5_skip=[-1, 2])
    torch.manual_seed(0)
    a = space.freeze(base)
    torch.manual_seed(0)
    b = space.freeze(with_skip)
    assert a.net.skips[5] == [] and b.net.skips[5] == [-1, 2]
    b.load_state_dict(a.state_dict())      # same weights, only the wiring differs (search style: sum)
    a.eval(); b.eval()
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(a(x), b(x))
    f = em.EnasMacroSpace(style='final', **SMALL)
    assert f.freeze(with_skip).net.skip_ops[5][1].in_channels == 3 * 32   # concat of 3 nodes, width 8 doubled twice
    with pytest.raises(ValueError):
        space.freeze(dict(base, layer5_skip=[4]))        # layer 4 is the input, not a skip candidate


def test_official_arc():
    kwargs, sample = em.ENAS_MACRO_CIFAR10
    assert len([k for k in sample if k.endswith('_op')]) == 24
    assert em.sample_to_arc(sample, 24) == em.ENAS_MACRO_CIFAR10_ARC
    assert sample['layer2_skip'] == [-1] and sample['layer3_skip'] == [1]
    spec = _spec(em.EnasMacroSpace(**kwargs))
    spec.validate(sample)
    small = dict(kwargs, width=8)
    _run(em.EnasMacroSpace(**small).freeze(sample))
