"""Randomly wired networks (search_spaces/randwire.py; Xie et al., ICCV 2019)."""
import json

import pytest
import torch

from nni_nasext.search_spaces.randwire import (PUBLISHED, RandWireNetwork, RandWireSpace, published,
                                               random_dag)
from nni_nasext.space_spec import SpaceSpec


def small_space(**kw):
    return RandWireSpace(**{'channels': 8, 'nodes': 8, 'num_classes': 10, 'in_channels': 1,
                            'stem_strides': (1, 1), 'head_channels': 32, **kw})


def test_ws_without_rewiring_is_the_ring_lattice_pointing_up():
    inputs = random_dag('ws', 10, seed=0, ws_k=4, ws_p=0.0)
    assert inputs[0] == [] and inputs[1] == [0] and inputs[5] == [3, 4]
    assert inputs[9] == [0, 1, 7, 8]   # the ring closes: 9's neighbours 0 and 1 are lower
    assert all(j < i for i, ins in enumerate(inputs) for j in ins)


def test_ba_nodes_after_the_seed_star_attach_to_m_earlier_nodes():
    inputs = random_dag('ba', 16, seed=3, ba_m=3)
    assert all(len(inputs[i]) == 3 for i in range(4, 16))
    assert all(j < i for i, ins in enumerate(inputs) for j in ins)


def test_the_seed_draws_the_graph():
    assert random_dag('er', 16, seed=1, er_p=0.3) == random_dag('er', 16, seed=1, er_p=0.3)
    assert random_dag('er', 16, seed=1, er_p=0.3) != random_dag('er', 16, seed=2, er_p=0.3)
    assert random_dag('ws', 16, seed=1, ws_p=0.75) != random_dag('ws', 16, seed=2, ws_p=0.75)


def test_bad_generator_arguments_are_refused():
    with pytest.raises(ValueError, match='Unknown generator'):
        random_dag('grid', 8, seed=0)
    with pytest.raises(ValueError, match='even k'):
        random_dag('ws', 8, seed=0, ws_k=3)
    with pytest.raises(ValueError, match='1 <= m < nodes'):
        random_dag('ba', 4, seed=0, ba_m=4)
    with pytest.raises(ValueError, match='nodes'):
        RandWireSpace(nodes=2)


def test_small_regime_ws_has_the_papers_parameter_count():
    """Table 2 of the paper: RandWire-WS(4, 0.75) in the small regime (C=78, N=32) has 5.6 M parameters."""
    net = RandWireSpace().freeze(published('randwire_ws'))
    params = sum(p.numel() for p in net.parameters())
    assert params == pytest.approx(5.6e6, rel=0.02)


def test_stage_wiring_sources_take_the_input_and_sinks_are_averaged():
    graphs = [[[], [0], [0], [1, 2]]] * 3   # a diamond: 0 -> 1, 2 -> 3
    net = RandWireNetwork(graphs, channels=8, num_classes=10, in_channels=1, stem_strides=(1, 1), head_channels=16)
    stage = net.stages[0]
    assert stage.sinks == [3]
    assert stage.nodes[0].op[1].stride == (2, 2) and stage.nodes[1].op[1].stride == (1, 1)
    assert stage.nodes[0].weights is None and stage.nodes[3].weights.shape == (2,)
    x = torch.randn(2, 8, 16, 16)
    manual = stage.nodes[3]([stage.nodes[1]([stage.nodes[0]([x])]), stage.nodes[2]([stage.nodes[0]([x])])])
    torch.testing.assert_close(stage(x), manual)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_space_samples_freeze_to_working_networks():
    space = small_space()
    spec = SpaceSpec.from_space(space)
    assert set(spec.dims) == {'generator', 'ws_k', 'ws_p', 'er_p', 'ba_m', 'graph_seed'}
    assert max(spec.dims['ws_k'].values) < 8 and max(spec.dims['ba_m'].values) < 8   # feasible for 8 nodes
    import random
    rng = random.Random(0)
    for _ in range(6):
        sample = spec.random(rng)
        net = space.freeze(sample)
        assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # the unchosen generator's parameters do not change the network
    a = {**published('randwire_er', 5), 'ws_k': 2}
    b = {**published('randwire_er', 5), 'ws_k': 6}
    torch.manual_seed(0)
    na = space.freeze(a)
    torch.manual_seed(0)
    nb = space.freeze(b)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(na.eval()(x), nb.eval()(x))


def test_published_generators():
    assert set(PUBLISHED) == {'randwire_ws', 'randwire_er', 'randwire_ba'}
    assert published('randwire_ws', 7) == {'generator': 'ws', 'ws_k': 4, 'ws_p': 0.75, 'er_p': 0.2, 'ba_m': 5,
                                           'graph_seed': 7}
    with pytest.raises(KeyError, match='known'):
        published('randwire_grid')


def test_trial_program_trains_a_randwire_network(tmp_path):
    """The nnictl trial program with --space randwire (the space's arguments from the command line)."""
    from nni_nasext.trial_code.run import main as trial
    args = {'channels': 8, 'nodes': 6, 'num_classes': 10, 'in_channels': 1, 'stem_strides': [1, 1],
            'head_channels': 16}
    code = trial(['--space', 'randwire', '--space-args', json.dumps(args), '--evaluator', 'classification',
                  '--evaluator-args', json.dumps({'dataset': 'digits', 'max_epochs': 1, 'limit_train_batches': 3}),
                  '--sample', json.dumps(published('randwire_ws', 1) | {'ws_k': 4}), '--output-dir', str(tmp_path)])
    assert code in (0, None)
    result = json.loads((tmp_path / 'result.json').read_text())
    assert 0 <= result['value'] <= 1 and result['sample']['generator'] == 'ws'
