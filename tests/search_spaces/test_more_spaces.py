"""NAS-Bench-101 (Ying et al. 2019), NAS-RL (Zoph & Le 2017) and MetaQNN (Baker et al. 2017) spaces."""
import json
import logging
import random

import numpy as np
import pytest
import torch

from nni_nasext.search_spaces import metaqnn as mq
from nni_nasext.search_spaces import nasbench101 as nb
from nni_nasext.search_spaces import nasrl
from nni_nasext.space_spec import SpaceSpec


def _params(net):
    return sum(p.numel() for p in net.parameters())


def _round_trip(space):
    spec = SpaceSpec.from_space(space)
    assert SpaceSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    return spec


def _run(net, shape, classes=10):
    torch.manual_seed(0)
    out = net(torch.randn(*shape))
    assert out.shape == (shape[0], classes)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


# ----------------------------------------------------------------------------- NAS-Bench-101

SMALL_NB101 = dict(stem_channels=8, num_stacks=2, cells_per_stack=1)


def test_nb101_space_spec_and_round_trip():
    spec = _round_trip(nb.NasBench101Space(**SMALL_NB101))
    assert list(spec.dims) == nb.LABELS and len(spec) == 5 + 21
    assert spec.size == 2 ** 21 * 3 ** 5
    assert spec.to_json()['op1'] == {'_type': 'choice', '_value': nb.OPS}
    assert spec.to_json()['edge_0_6'] == {'_type': 'choice', '_value': [0, 1]}


def test_nb101_inception_cell_matches_benchmark_parameter_count():
    # 2,694,282: NASBench.ipynb of google-research/nasbench, default network (stem 128, 3x3 cells)
    sample = nb.spec_to_sample(*nb.INCEPTION_LIKE)
    assert nb.is_valid(sample)
    assert _params(nb.NasBench101Space().freeze(sample)) == 2694282


@pytest.mark.parametrize('cell', ['INCEPTION_LIKE', 'RESNET_LIKE'])
def test_nb101_published_cells_run(cell):
    sample = nb.spec_to_sample(*getattr(nb, cell))
    _run(nb.NasBench101Space(**SMALL_NB101).freeze(sample), (2, 3, 16, 16))


def test_nb101_random_valid_samples_run_and_match_nni_hub_and_hash():
    from nni.nas.benchmark.nasbench101.graph_util import hash_module
    from nni.nas.hub.pytorch import NasBench101
    logging.getLogger('nni').setLevel(logging.WARNING)
    rng = random.Random(0)
    space = nb.NasBench101Space(**SMALL_NB101)
    for _ in range(6):
        sample = nb.random_valid_sample(rng)
        net = space.freeze(sample)
        _run(net, (2, 3, 16, 16))
        nv, arch = nb.to_nni_benchmark_arch(sample)
        assert nb.sample_hash(sample) == hash_module(arch, nv)  # NNI's copy of NB101's hash
        hub = NasBench101(stem_out_channels=8, num_stacks=2, num_modules_per_stack=1).freeze(
            {'cell/num_nodes': nv, **{f'cell/{k}': v for k, v in arch.items()}})
        hub(torch.randn(2, 3, 16, 16)).sum().backward()
        assert _params(net) == sum(p.numel() for p in hub.parameters() if p.grad is not None)


def test_nb101_validity_rules():
    m, ops = nb.INCEPTION_LIKE
    assert nb.is_valid(nb.spec_to_sample(m, ops))
    # disconnected: nothing reaches the output
    disc = np.zeros((7, 7), dtype=int)
    disc[0, 1] = disc[1, 2] = 1
    assert not nb.is_valid(nb.spec_to_sample(disc, ops))
    # 10 edges that all survive pruning
    dense = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 6), (2, 6), (3, 6), (4, 6), (5, 6)]:
        dense[i, j] = 1
    assert not nb.is_valid(nb.spec_to_sample(dense, ops))
    with pytest.raises(nb.InvalidCellError, match='Too many edges'):
        nb.check_spec(dense, ops)
    # 10 raw edges, but the dangling ones are pruned away: valid (the benchmark counts after pruning)
    dangling = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 1), (1, 6), (0, 2), (2, 6), (0, 3), (3, 6), (0, 4), (0, 5), (4, 5), (1, 4)]:
        dangling[i, j] = 1
    pm, pops = nb.prune(dangling, ops)
    assert len(pm) == 5 and pm.sum() == 6 and nb.is_valid(nb.spec_to_sample(dangling, ops))
    with pytest.raises(nb.InvalidCellError):
        nb.check_spec(np.triu(np.ones((7, 7), dtype=int)), ops)  # not strictly upper-triangular


def test_nb101_freezing_invalid_sample_raises_clear_error():
    disc = np.zeros((7, 7), dtype=int)
    disc[0, 1] = 1
    sample = nb.spec_to_sample(disc, nb.INCEPTION_LIKE[1])
    with pytest.raises(nb.InvalidCellError, match='Invalid NAS-Bench-101 cell: Cell input is not connected'):
        nb.NasBench101Space(**SMALL_NB101).freeze(sample)


def test_nb101_hash_is_isomorphism_invariant_and_op_sensitive():
    m = np.array(nb.INCEPTION_LIKE[0])
    ops = list(nb.INCEPTION_LIKE[1])
    h = nb.graph_hash(m, ops)
    rng = random.Random(1)
    for _ in range(5):
        inner = list(range(1, 6))
        rng.shuffle(inner)
        perm = [0] + inner + [6]  # new vertex k is old vertex perm[k]
        pm = m[np.ix_(perm, perm)]
        # relabelling must keep the matrix upper-triangular to be a valid cell; otherwise re-sort
        order = _topo_order(pm)
        pm = pm[np.ix_(order, order)]
        pops = [ops[perm[k]] for k in order]
        assert nb.graph_hash(pm, pops) == h
    changed = list(ops)
    changed[1] = nb.CONV3X3  # 1x1 -> 3x3
    assert nb.graph_hash(m, changed) != h
    # the hash of a sample ignores the vertices pruned away (the 4-vertex cell in 7 slots)
    assert nb.sample_hash(nb.spec_to_sample(*nb.RESNET_LIKE)) == nb.graph_hash(*nb.RESNET_LIKE)


def _topo_order(m):
    n = len(m)
    done, order = set(), []
    while len(order) < n:
        for v in range(n):
            if v not in done and all(u in done for u in range(n) if m[u, v]):
                done.add(v)
                order.append(v)
                break
    return order


def test_nb101_hash_permutation_of_independent_vertices():
    # vertices 1 and 2 are interchangeable up to their op: swapping the op labels gives an
    # isomorphic graph (same hash) without reordering the matrix
    m = np.zeros((4, 4), dtype=int)
    m[0, 1] = m[0, 2] = m[1, 3] = m[2, 3] = 1
    a = nb.graph_hash(m, ['input', nb.CONV1X1, nb.MAXPOOL3X3, 'output'])
    b = nb.graph_hash(m, ['input', nb.MAXPOOL3X3, nb.CONV1X1, 'output'])
    c = nb.graph_hash(m, ['input', nb.CONV1X1, nb.CONV1X1, 'output'])
    assert a == b != c


# ----------------------------------------------------------------------------- NAS-RL

def test_nasrl_space_spec_and_round_trip():
    spec = _round_trip(nasrl.NasRLSpace())
    assert len(spec) == 15 * 3 + 14
    assert spec.to_json()['layer3_inputs'] == {'_type': 'choice_multiple', '_value': [0, 1, 2], 'n_chosen': None}
    assert abs(np.log10(float(spec.size)) - nasrl.log10_size(15)) < 1e-6
    strided = _round_trip(nasrl.NasRLSpace(num_layers=4, strides=True, skips=False))
    assert set(strided.dims) == {f'layer{i}_{k}' for i in range(4) for k in ('fh', 'fw', 'filters', 'stride_h', 'stride_w')}
    assert strided.dims['layer0_stride_h'].values == (1, 2, 3)


@pytest.mark.parametrize('strides', [False, True])
def test_nasrl_random_samples_run(strides):
    space = nasrl.NasRLSpace(num_layers=5, strides=strides)
    spec = SpaceSpec.from_space(space)
    rng = random.Random(3)
    for _ in range(3):
        _run(space.freeze(spec.random(rng)), (2, 3, 32, 32))


def test_nasrl_skip_connections_change_the_inputs():
    space = nasrl.NasRLSpace(num_layers=4, strides=True)
    spec = SpaceSpec.from_space(space)
    base = {label: d.values[0] for label, d in spec.dims.items() if d.kind == 'choice'}
    base.update({'layer1_inputs': [0], 'layer2_inputs': [1], 'layer3_inputs': [2]})
    base.update({'layer0_stride_h': 2, 'layer0_stride_w': 2})  # layer 0 is 16x16, so are layers 1..3
    chain = space.freeze(base).net
    skip = space.freeze({**base, 'layer3_inputs': [0, 2], 'layer2_inputs': [],
                         'layer2_stride_h': 2, 'layer2_stride_w': 2}).net
    assert chain.inputs == [[], [0], [1], [2]] and skip.inputs == [[], [0], [], [0, 2]]
    assert chain.layers[3][0].in_channels == 24 and skip.layers[3][0].in_channels == 48
    assert skip.layers[2][0].in_channels == 3  # no input chosen: the image
    assert chain.outputs == [3] and skip.outputs == [1, 3]  # unused layers feed the classifier
    seen, outs = {}, []
    skip.layers[3].register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    for i in range(3):
        skip.layers[i].register_forward_hook(lambda m, inp, out: outs.append(out))
    x = torch.randn(1, 3, 32, 32)
    skip.eval()
    skip(x)
    a, c = outs[0], outs[2]
    assert a.shape[2:] == (16, 16) and c.shape[2:] == (16, 16)
    assert torch.equal(seen['x'], torch.cat([a, c], 1))


def test_nasrl_pads_smaller_inputs_with_zeros():
    space = nasrl.NasRLSpace(num_layers=3, strides=True)
    spec = SpaceSpec.from_space(space)
    s = {label: d.values[0] for label, d in spec.dims.items() if d.kind == 'choice'}
    s.update({'layer1_inputs': [], 'layer2_inputs': [0, 1], 'layer1_stride_h': 3, 'layer1_stride_w': 2})
    net = space.freeze(s).net.eval()
    seen = {}
    net.layers[2].register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    net(torch.randn(1, 3, 32, 32))
    x = seen['x']
    assert x.shape == (1, 48, 32, 32)
    # layer 1 output is 11x16, zero-padded (centred) to 32x32
    assert torch.count_nonzero(x[:, 24:, :10]) == 0 and torch.count_nonzero(x[:, 24:, :, :8]) == 0


# ----------------------------------------------------------------------------- MetaQNN

SMALL_MQ = dict(max_layers=8, conv_filters=(4, 8, 16, 32), fc_units=(32, 16, 8))


def test_metaqnn_space_spec_and_round_trip():
    spec = _round_trip(mq.MetaQNNSpace())
    assert list(spec.dims) == [f'layer{i}' for i in range(18)]
    assert len(spec.dims['layer0'].values) == 20
    assert 'conv_k5_f512' in spec.dims['layer0'].values and 'pool_k5_s3' in spec.dims['layer0'].values


def _check_rules(layers, rules):
    rep, prev, num_fc = rules.image_size, None, 0
    assert layers[-1].kind in ('softmax', 'gap') and all(l.kind not in ('softmax', 'gap') for l in layers[:-1])
    assert len(layers) - 1 <= rules.max_layers
    for l in layers[:-1]:
        pk = prev.kind if prev else 'start'
        if l.kind == 'conv':
            assert pk != 'fc' and l.size < rep and l.size in rules.conv_sizes and l.filters in rules.conv_filters
        elif l.kind == 'pool':
            assert pk == 'conv' and l.size < rep and (l.size, l.stride) in rules.pools
            rep = (rep - l.size) // l.stride + 1
        else:
            assert l.kind == 'fc'
            if pk == 'fc':
                assert l.size <= prev.size and num_fc < rules.max_fc
            else:
                assert rep <= rules.fc_max_size
            num_fc += 1
        prev = l
    if layers[-1].kind == 'gap':
        assert prev is None or prev.kind != 'fc'


def test_metaqnn_transition_rules_hold_on_200_random_samples():
    space = mq.MetaQNNSpace()
    spec = SpaceSpec.from_space(space)
    rng = random.Random(0)
    kinds = set()
    for _ in range(200):
        sample = spec.random(rng)
        layers = space.decode(sample)
        _check_rules(layers, space.rules)
        kinds.update(l.kind for l in layers)
        canon = space.canonical_sample(sample)
        assert space.decode(canon) == layers and space.canonical_sample(canon) == canon
    assert kinds == {'conv', 'pool', 'fc', 'gap', 'softmax'}


def test_metaqnn_samples_run():
    space = mq.MetaQNNSpace(**SMALL_MQ)
    spec = SpaceSpec.from_space(space)
    rng = random.Random(1)
    for _ in range(4):
        _run(space.freeze(spec.random(rng)), (2, 3, 32, 32))
    deep = {f'layer{i}': t for i, t in enumerate(
        ['conv_k3_f8', 'pool_k2_s2', 'conv_k5_f16', 'pool_k3_s2', 'conv_k1_f32', 'pool_k5_s3', 'fc_32', 'fc_16'])}
    layers = space.decode(deep)
    assert [l.token for l in layers] == list(deep.values()) + ['softmax']
    _run(space.freeze(deep), (2, 3, 32, 32))


def test_metaqnn_canonicalises_or_rejects():
    s = {f'layer{i}': 'softmax' for i in range(8)}
    s.update({'layer0': 'pool_k2_s2', 'layer1': 'fc_32', 'layer2': 'conv_k3_f8', 'layer3': 'pool_k2_s2',
              'layer4': 'pool_k2_s2', 'layer5': 'gap', 'layer6': 'conv_k3_f8'})
    space = mq.MetaQNNSpace(**SMALL_MQ)
    # pool first: skipped; FC at 32x32: skipped; second pool in a row: skipped; gap ends it
    assert [l.token for l in space.decode(s)] == ['conv_k3_f8', 'pool_k2_s2', 'gap']
    assert space.canonical_sample(s) == {f'layer{i}': t for i, t in enumerate(
        ['conv_k3_f8', 'pool_k2_s2', 'gap'] + ['softmax'] * 5)}
    strict = mq.MetaQNNSpace(strict=True, **SMALL_MQ)
    with pytest.raises(mq.InvalidSequenceError, match='layer0=.pool_k2_s2. after the input: pooling only'):
        strict.freeze(s)
    _run(strict.freeze(space.canonical_sample(s)), (1, 3, 32, 32))
    fc = {**{f'layer{i}': 'softmax' for i in range(8)}, 'layer0': 'conv_k1_f4', 'layer1': 'pool_k5_s3',
          'layer2': 'pool_k2_s2', 'layer3': 'pool_k3_s2', 'layer4': 'fc_16', 'layer5': 'fc_32', 'layer6': 'fc_8',
          'layer7': 'fc_8'}
    # 32 -> 10 after the pool; the second pool is skipped (no pool after pool); 10 > 7: no FC yet
    assert [l.token for l in space.decode(fc)] == ['conv_k1_f4', 'pool_k5_s3', 'softmax']
    fc['layer2'] = 'conv_k3_f4'
    # 10 -> 4: FC allowed; fc_32 after fc_16 increases: skipped; fc_8 then a third FC: skipped
    assert [l.token for l in space.decode(fc)] == ['conv_k1_f4', 'pool_k5_s3', 'conv_k3_f4', 'pool_k3_s2',
                                                   'fc_16', 'fc_8', 'softmax']
    with pytest.raises(ValueError, match='Unknown MetaQNN token'):
        space.freeze({**fc, 'layer0': 'conv_k7_f4'})
