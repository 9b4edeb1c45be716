"""NASNet-family cell spaces: sample / freeze / run, SpaceSpec round trip, published architectures."""
import json
import random

import pytest
import torch

from nni_nasext.search_spaces.cells import (
    FAMILIES, PUBLISHED, AmoebaNetSpace, CellSpace, DARTSSpace, ENASMicroSpace, NASNetSpace, PNASSpace,
    cell_labels, count_params, genotype_to_sample, published, space_size,
)
from nni_nasext.space_spec import SpaceSpec

torch.set_num_threads(1)

TINY = dict(channels=4, num_cells=1)
SPACES = {'nasnet': NASNetSpace, 'darts': DARTSSpace, 'enas': ENASMicroSpace, 'amoebanet': AmoebaNetSpace,
          'pnas': PNASSpace}


def _params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('family', sorted(SPACES))
def test_space_labels_and_spec_round_trip(family):
    space = SPACES[family](**TINY)
    spec = SpaceSpec.from_space(space)
    assert sorted(spec.dims) == sorted(cell_labels(family))
    ops = FAMILIES[family]['ops']
    for label, dim in spec.dims.items():
        j = int(label.rsplit('_', 2)[-2])
        if '/op_' in label:
            assert dim.kind == 'choice' and list(dim.values) == ops
        else:
            assert dim.kind == 'choice_multiple' and list(dim.values) == list(range(j)) and dim.n_chosen == 1
    js = spec.to_json()
    assert SpaceSpec.from_json(json.loads(json.dumps(js))) == spec
    assert spec.size == pytest.approx(10 ** space_size(family), rel=1e-9)


@pytest.mark.parametrize('family', sorted(SPACES))
@pytest.mark.parametrize('seed', [0, 1])
def test_random_samples_freeze_and_train_step(family, seed):
    torch.manual_seed(seed)
    space = SPACES[family](**TINY)
    spec = SpaceSpec.from_space(space)
    sample = spec.random(random.Random(seed))
    net = space.freeze(sample)
    net.train()
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_width_depth_classes_and_auxiliary_head():
    space = DARTSSpace(channels=4, num_cells=(1, 0, 1), num_classes=7, in_channels=1, auxiliary=True)
    net = space.freeze(PUBLISHED['darts_v2'][2])
    assert len(net.cells) == 4
    logits, aux = net(torch.randn(2, 1, 32, 32))
    assert logits.shape == aux.shape == (2, 7)
    net.eval()
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError):
        CellSpace('resnet')
    with pytest.raises(ValueError):
        DARTSSpace(num_cells=(1, 2))


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_published_samples_fit_their_space_and_run_small(name):
    space, sample = published(name, channels=4, num_cells=1)
    spec = SpaceSpec.from_space(space)
    assert spec.validate(sample) is sample
    assert set(sample) == set(spec.dims)
    net = space.freeze(sample)
    out = net(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10)


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_published_parameter_counts_match_papers(name):
    """Paper figures are in millions rounded to 0.1M: within 5% (no auxiliary head)."""
    paper = PUBLISHED[name][3]
    ours = count_params(name) / 1e6
    assert ours == pytest.approx(paper, rel=0.05), (name, ours, paper)


def test_darts_v2_equals_nni_hub_network():
    """Our DARTS cell and skeleton use NNI's hub operations: DARTS-V2 has the hub's exact count."""
    from nni.nas.hub.pytorch import DARTS
    hub = DARTS.load_searched_model('darts-v2')
    assert count_params('darts_v2') == _params(hub) == 3349342
    # and the hub's sample format is ours (minus the 'none' op, which DARTS-V2 does not use)
    space, sample = published('darts_v2', channels=4, num_cells=1)
    assert {k: v for k, v in sample.items()} == genotype_to_sample(
        [(sample[f'normal/op_{j}_{k}'], sample[f'normal/input_{j}_{k}'][0]) for j in range(2, 6) for k in range(2)],
        [(sample[f'reduce/op_{j}_{k}'], sample[f'reduce/input_{j}_{k}'][0]) for j in range(2, 6) for k in range(2)])


def test_loose_end_concatenation_follows_the_papers():
    net = published('nasnet_a', channels=4, num_cells=1)[0].freeze(PUBLISHED['nasnet_a'][2])
    normal, reduce = net.cells[0], net.cells[1]
    assert normal.out_indices == [0, 2, 3, 4, 5, 6]  # "6 @ 768": h_{i-1} + five blocks
    assert reduce.out_indices == [4, 5, 6]
    pnas = published('pnasnet_5', channels=4)[0]
    assert [c.reduction for c in pnas.cells] == [False] * 3 + [True] + [False] * 2 + [True] + [False] * 2
    amoeba = published('amoebanet_a', channels=4, num_cells=1)[0].freeze(PUBLISHED['amoebanet_a'][2])
    assert amoeba.cells[0].out_indices == [4, 5, 6] and amoeba.cells[1].out_indices == [3, 4, 6]


def test_bad_samples_and_names_are_refused():
    space = DARTSSpace(**TINY)
    spec = SpaceSpec.from_space(space)
    good = dict(PUBLISHED['darts_v2'][2])
    with pytest.raises(ValueError):
        spec.validate({**good, 'normal/op_2_0': 'conv_9x9'})
    with pytest.raises(ValueError):
        spec.validate({**good, 'normal/input_2_0': [2]})
    with pytest.raises(KeyError):
        published('resnet50')
    with pytest.raises(ValueError):
        genotype_to_sample([('sep_conv_3x3', 2), ('sep_conv_3x3', 0)])
