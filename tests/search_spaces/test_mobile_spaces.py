"""Mobile spaces (search_spaces/mobile.py): ProxylessNAS (NNI hub), MnasNet, Once-for-All, EfficientNet scaling."""
import json
import random

import pytest
import torch

from nni_nasext.search_spaces import mobile as M

from nni_nasext.space_spec import SpaceSpec

TORCHVISION_MOBILENET_V2 = 3_504_872   # torchvision.models.mobilenet_v2(), 1000 classes
TORCHVISION_EFFICIENTNET_B0 = 5_288_548  # torchvision.models.efficientnet_b0(), 1000 classes


def _params(net):
    return sum(p.numel() for p in net.parameters())


def _round_trip(space):
    spec = SpaceSpec.from_space(space)
    assert SpaceSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    return spec


def _run(net, shape=(2, 3, 32, 32), classes=5):
    torch.manual_seed(0)
    out = net(torch.randn(*shape))
    assert out.shape == (shape[0], classes)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def _random_samples(space, n, seed=0, feasible=lambda s: True):
    spec = _round_trip(space)
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        s = spec.random(rng)
        if feasible(s):
            out.append(spec.validate(s))
    return spec, out


# ----------------------------------------------------------------------------- ProxylessNAS (hub)

def test_proxyless_spec_and_random_samples_run():
    space = M.ProxylessSpace(num_classes=5, width_mult=0.25, resolution=32)
    spec, samples = _random_samples(space, 2)
    assert len(spec) == 5 + 5 * 4 + 1
    assert spec.to_json()['s2_depth'] == {'_type': 'choice', '_value': [1, 2, 3, 4]}
    assert sorted(spec.to_json()['s3_i1']['_value']) == sorted(f'k{k}e{e}' for k in (3, 5, 7) for e in (3, 6))
    assert spec.size == 4 ** 5 * 6 ** 21
    for s in samples:
        _run(space.freeze(s))


def test_proxyless_mobilenet_v2_matches_torchvision_parameter_count():
    space = M.ProxylessSpace(base_widths=M.MOBILENET_V2_WIDTHS)
    assert _params(space.freeze(M.mobilenet_v2_sample())) == TORCHVISION_MOBILENET_V2


def test_proxyless_zero_ops_become_depth():
    ops = {k: ['k3e6', 'zero', 'k5e3', 'zero'] for k in (2, 3, 4, 5, 6)}
    sample = M.proxyless_block_ops_to_sample(ops, 'k7e6')
    assert sample['s2_depth'] == 2 and sample['s2_i0'] == 'k3e6' and sample['s2_i1'] == 'k5e3'
    SpaceSpec.from_space(M.ProxylessSpace(num_classes=5, width_mult=0.25)).validate(sample)
    with pytest.raises(ValueError):
        M.proxyless_block_ops_to_sample({**ops, 2: ['zero', 'k3e6', 'k3e6', 'k3e6']}, 'k7e6')


# ----------------------------------------------------------------------------- MnasNet

def test_mnasnet_spec_and_random_samples_run():
    space = M.MnasNetSpace(num_classes=5, width_mult=0.25, resolution=32)
    spec, samples = _random_samples(space, 3)
    assert len(spec) == 7 * 5
    assert spec.to_json()['stage0_layers']['_value'] == [1, 2]
    assert spec.to_json()['stage3_layers']['_value'] == [3, 4, 5]
    assert spec.size == 96 ** 2 * 144 ** 5
    for s in samples:
        _run(space.freeze(s))


def test_mnasnet_mobilenet_v2_sample_matches_torchvision_and_ops_differ():
    sample = M.mnasnet_mobilenet_v2_sample()
    assert _params(M.MnasNetSpace().freeze(sample)) == TORCHVISION_MOBILENET_V2
    small = M.MnasNetSpace(num_classes=5, width_mult=0.25)
    base = _params(small.freeze(sample))
    for change in ({'stage2_se': True}, {'stage2_kernel': 5}, {'stage2_layers': 4}, {'stage2_filters': 1.25}):
        net = small.freeze({**sample, **change})
        assert _params(net) > base, change
        _run(net)
    assert _params(small.freeze({**sample, 'stage2_op': 'mb3'})) < base
    conv = small.freeze({**sample, 'stage2_op': 'conv'})
    assert not any(m.groups > 1 for m in conv.net.blocks[3:6].modules() if isinstance(m, torch.nn.Conv2d))
    _run(conv)


# ----------------------------------------------------------------------------- Once-for-All

SMALL_OFA = dict(num_classes=5, resolutions=(32, 40), width_mult=0.25)


def test_ofa_spec_and_random_samples_run():
    space = M.OFASpace(**SMALL_OFA)
    spec, samples = _random_samples(space, 3)
    assert len(spec) == 5 * (1 + 4 * 2) + 1
    assert spec.to_json()['resolution'] == {'_type': 'choice', '_value': [32, 40]}
    assert spec.to_json()['stage0_block3_expand'] == {'_type': 'choice', '_value': [3, 4, 6]}
    for s in samples:
        net = space.freeze(s)
        assert net.net.resolution == s['resolution']
        _run(net, shape=(2, 3, 24, 24))  # resized to the sampled resolution


def test_ofa_depth_handling():
    space = M.OFASpace(**SMALL_OFA)
    sample = M.ofa_max_sample(resolution=32)
    full = space.freeze(sample)
    assert len(full.net.blocks) == 1 + 5 * 4
    shallow = {**sample, **{f'stage{s}_depth': 2 for s in range(5)}}
    net = space.freeze(shallow)
    assert len(net.net.blocks) == 1 + 5 * 2
    # the decisions of blocks beyond the depth are present but ignored
    ignored = {**shallow, 'stage0_block2_kernel': 3, 'stage0_block3_expand': 3, 'stage4_block3_kernel': 5}
    SpaceSpec.from_space(space).validate(ignored)
    assert M.ofa_canonical_sample(ignored) == M.ofa_canonical_sample(shallow)
    torch.manual_seed(1)
    a = space.freeze(shallow)
    torch.manual_seed(1)
    b = space.freeze(ignored)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(a.eval()(x), b.eval()(x))
    # decisions inside the depth count
    assert M.ofa_canonical_sample({**shallow, 'stage0_block1_kernel': 3}) != M.ofa_canonical_sample(shallow)
    assert _params(space.freeze({**shallow, 'stage0_depth': 3})) > _params(net)
    _run(net)


def test_ofa_largest_network_size():
    # OFA's largest MobileNetV3 sub-network (d=4, k=7, e=6, width 1.0) has about 7.7M parameters
    assert 7.5e6 < _params(M.OFASpace().freeze(M.ofa_max_sample())) < 7.8e6


# ----------------------------------------------------------------------------- EfficientNet scaling

SMALL_EFF = dict(base='tiny', base_resolution=32, num_classes=5)


def test_efficientnet_feasibility_and_refusal():
    space = M.EfficientNetScalingSpace(**SMALL_EFF)
    spec = _round_trip(space)
    assert list(spec.dims) == ['alpha', 'beta', 'gamma', 'phi']
    paper = {'alpha': 1.2, 'beta': 1.1, 'gamma': 1.15, 'phi': 1}
    spec.validate(paper)
    assert space.is_feasible(paper)
    bad = {'alpha': 2.0, 'beta': 1.5, 'gamma': 1.5, 'phi': 1}
    assert not space.is_feasible(bad)
    with pytest.raises(M.InfeasibleSampleError, match='alpha \\* beta\\^2 \\* gamma\\^2'):
        space.freeze(bad)
    assert not space.is_feasible({'alpha': 1.0, 'beta': 1.0, 'gamma': 1.0, 'phi': 1})
    tight = M.EfficientNetScalingSpace(tolerance=0.05, **SMALL_EFF)
    assert not tight.is_feasible(paper)  # 1.2 * 1.1**2 * 1.15**2 = 1.92


def test_efficientnet_random_feasible_samples_scale_and_run():
    space = M.EfficientNetScalingSpace(phis=(1, 2), **SMALL_EFF)
    _, samples = _random_samples(space, 3, feasible=space.is_feasible)
    for s in samples:
        net = space.freeze(s)
        d, w, r = M.compound_coefficients(s)
        assert net.net.resolution == round(32 * r)
        _run(net, shape=(2, 3, 32, 32))
    one = space.freeze({'alpha': 1.2, 'beta': 1.1, 'gamma': 1.15, 'phi': 1})
    two = space.freeze({'alpha': 1.2, 'beta': 1.1, 'gamma': 1.15, 'phi': 2})
    assert _params(two) > _params(one) and two.net.resolution > one.net.resolution


def test_efficientnet_b0_base_matches_torchvision_parameter_count():
    space = M.EfficientNetScalingSpace(phis=(0, 1))
    assert _params(space.freeze({'alpha': 1.2, 'beta': 1.1, 'gamma': 1.15, 'phi': 0})) == TORCHVISION_EFFICIENTNET_B0
