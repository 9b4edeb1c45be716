"""The generic supernet of nni_nasext.strategies.oneshot: mixed modules, weight sharing, errors."""
import numpy as np
import pytest
import torch
from torch import nn

import nni
from nni.nas.nn.pytorch import Cell, InputChoice, LayerChoice, ModelSpace, MutableConv2d, Repeat

from nni_nasext.strategies.oneshot import Mix, OneShotUnsupported, build_supernet, inherit, random_sample
from nni_nasext.strategies.oneshot.mixed import PartialChannels
from nni_nasext.search_spaces import NasBench201Space
from nni_nasext.search_spaces.cells import DARTSSpace
from nni_nasext.search_spaces.enas_macro import EnasMacroSpace

from nni_style_spaces import SPACES, example_input


def uniform(supernet):
    return {k: Mix.soft(torch.full((d.size,), 1.0 / d.size)) for k, d in supernet.decisions.items()}


def one_hot(supernet, chosen):
    """Soft mixes that put all weight on the candidates of ``chosen`` (decision key -> index)."""
    return {k: Mix.soft(nn.functional.one_hot(torch.tensor(chosen[k]), d.size).float())
            for k, d in supernet.decisions.items()}


# ------------------------------------------------------------------ a soft mix with one-hot weights is the chosen op

class Tiny(ModelSpace):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.op = LayerChoice({'conv': nn.Conv2d(4, 4, 3, padding=1), 'pool': nn.AvgPool2d(3, 1, 1),
                               'skip': nn.Identity()}, label='op')
        self.inp = InputChoice(2, 1, label='inp')
        self.rep = Repeat(lambda i: nn.Conv2d(4, 4, 1), (1, 3), label='depth')
        k = nni.choice('k', [1, 3, 5])
        c = nni.choice('c', [2, 4])
        self.conv = MutableConv2d(4, c, k, padding=k // 2)

    def forward(self, x):
        x = self.stem(x)
        x = self.inp([self.op(x), x])
        return self.conv(self.rep(x))


@pytest.mark.parametrize('sample', [{'op': 'conv', 'inp': [0], 'depth': 3, 'k': 5, 'c': 2},
                                    {'op': 'pool', 'inp': [1], 'depth': 1, 'k': 1, 'c': 4},
                                    {'op': 'skip', 'inp': [0], 'depth': 2, 'k': 3, 'c': 4}])
def test_one_hot_soft_mix_equals_the_path_and_the_frozen_network(sample):
    torch.manual_seed(0)
    sn = build_supernet(Tiny(), 'darts')
    assert {d.kind for d in sn.decisions.values()} == {'layer', 'input', 'repeat', 'value'}
    chosen = {k: d.candidates.index(sample[d.label]) if d.kind != 'input' else d.candidates.index(sample[d.label][0])
              for k, d in sn.decisions.items()}
    x = torch.randn(3, 1, 6, 6)
    sn.model.eval()
    sn.set_mixes(one_hot(sn, chosen))
    soft = sn.model(x)
    sn.set_sample(sample)
    path = sn.model(x)
    # channels not chosen are masked to zero in the soft pass; the path computes only those chosen
    assert torch.allclose(soft[:, :sample['c']], path, atol=1e-6)
    assert torch.all(soft[:, sample['c']:] == 0)
    net = inherit(sn, sample).eval()
    assert torch.allclose(net(x), path, atol=1e-6)
    ref = Tiny().freeze(sample)
    ref.load_state_dict(net.state_dict())
    assert torch.allclose(ref.eval()(x), path, atol=1e-6)


def test_soft_mix_is_the_weighted_sum_of_the_candidates():
    torch.manual_seed(0)
    sn = build_supernet(Tiny(), 'darts')
    x = torch.randn(2, 1, 6, 6)
    sn.model.eval()
    w = torch.tensor([0.2, 0.3, 0.5])
    base = {'inp': 0, 'depth': 0, 'k': 0, 'c': 1}
    outs = []
    for i in range(3):
        sn.set_mixes(one_hot(sn, {**base, 'op': i}))
        outs.append(sn.model(x))
    mixes = one_hot(sn, {**base, 'op': 0})
    mixes['op'] = Mix.soft(w)
    sn.set_mixes(mixes)
    # everything after the layer choice is linear in its output (a 1x1 conv, then a conv)
    lin = sum(wi * o for wi, o in zip(w, outs))  # the weights sum to one: biases pass through once
    assert torch.allclose(sn.model(x), lin, atol=1e-5)


@pytest.mark.parametrize('name', ['simple', 'simple_value_choice', 'value_choice', 'repeat', 'multihead_attention',
                                  'cell_simple'])
def test_single_path_with_copied_weights_equals_space_freeze(name):
    factory, data = SPACES[name]
    sn = build_supernet(factory(), 'spos', weighted=False)
    x = example_input(data)
    rng = np.random.RandomState(0)
    for _ in range(3):
        sample = random_sample(sn, rng)
        sn.set_sample(sample)
        sn.model.eval()
        with torch.no_grad():
            path = sn.model(x)
            ref = factory().freeze(sample)
            ref.load_state_dict(inherit(sn, sample).state_dict())
            assert torch.allclose(ref.eval()(x), path, atol=1e-5)


@pytest.mark.parametrize('space', [lambda: NasBench201Space(num_cells=1, channels=4, in_channels=1),
                                   lambda: EnasMacroSpace(num_layers=4, width=8, in_channels=1)])
def test_single_path_equals_freeze_on_our_spaces(space):
    sn = build_supernet(space(), 'spos', weighted=False)
    x = torch.randn(2, 1, 8, 8)
    sample = random_sample(sn, np.random.RandomState(3))
    sn.set_sample(sample)
    sn.model.eval()
    ref = space().freeze(sample)
    ref.load_state_dict(inherit(sn, sample).state_dict())
    with torch.no_grad():
        assert torch.allclose(ref.eval()(x), sn.model(x), atol=1e-5)


def test_shared_labels_share_one_decision():
    sn = build_supernet(NasBench201Space(num_cells=2, channels=4, in_channels=1), 'darts')
    assert sorted(sn.decisions) == sorted(['0_1', '0_2', '1_2', '0_3', '1_3', '2_3'])
    assert len(sn.decisions['0_1'].modules) == 6  # 3 stages x 2 cells
    cells = build_supernet(DARTSSpace(channels=4, num_cells=1, in_channels=1), 'darts')
    edges = [k for k, d in cells.decisions.items() if d.kind == 'edge']
    assert len(edges) == 28 and len(cells.decisions['normal/edge_2_0'].modules) == 3  # N=1: 3 normal cells
    assert cells.decisions['normal/edge_2_0'].none == (0,) and cells.decisions['normal/edge_2_0'].skip == (3,)


def test_reduction_cell_edges_take_stride_two_only_from_cell_inputs():
    sn = build_supernet(DARTSSpace(channels=4, num_cells=1, in_channels=1), 'darts')
    sn.set_mixes(uniform(sn))
    out = sn.model(torch.randn(2, 1, 16, 16))  # the supernet runs: every edge of a node has one shape
    assert out.shape == (2, 10)
    cell = sn.model.cells[1].cell  # the first reduction cell
    assert cell.edges['2_0'].candidates[4][1].stride == (2, 2)   # sep_conv on input 0
    assert cell.edges['3_2'].candidates[4][1].stride == (1, 1)   # sep_conv on node 2


def test_partial_channels_on_cell_edges_and_full_width_where_they_cannot_apply():
    torch.manual_seed(0)
    sn = build_supernet(DARTSSpace(channels=8, num_cells=1, in_channels=1), 'pcdarts', partial_k=4)
    sn.set_mixes(uniform(sn))
    with torch.no_grad():
        sn.model(torch.randn(2, 1, 16, 16))  # the probe pass settles them
    pcs = [m for m in sn.model.modules() if isinstance(m, PartialChannels)]
    assert pcs and all(pc.partial_k == 4 for pc in pcs)
    conv = pcs[0].candidates[4][1]  # sep_conv_3x3's depthwise conv at 1/4 of the width
    assert conv.in_channels == 2 and conv.groups == 2
    out = sn.model(torch.randn(2, 1, 16, 16))
    out.sum().backward()
    # a layer choice whose candidates change the channel count stays full width
    simple = build_supernet(SPACES['simple'][0](), 'pcdarts', partial_k=4)
    simple.set_mixes(uniform(simple))
    simple.model(torch.randn(2, 1, 8, 8))
    (pc,) = [m for m in simple.model.modules() if isinstance(m, PartialChannels) and m.key == 'conv']
    assert pc.partial_k == 1 and 'channel count' in pc.note


# ------------------------------------------------------------------ what cannot be searched: clear errors before training

def test_custom_module_with_a_choice_is_refused_naming_it():
    with pytest.raises(OneShotUnsupported, match="MyOp at 'batch_norm'.*\\['ch1'\\].*not supported by one-shot method 'darts'"):
        build_supernet(SPACES['custom_op'][0](), 'darts')
    assert issubclass(OneShotUnsupported, TypeError)


class StrideChoice(ModelSpace):
    def __init__(self):
        super().__init__()
        self.conv = MutableConv2d(1, 4, 3, stride=nni.choice('stride', [1, 2]), padding=1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def test_an_argument_that_cannot_be_weighted_is_refused_for_weighted_methods_only():
    with pytest.raises(OneShotUnsupported, match=r"the choice of \['stride'\].*cannot be mixed by weights.*'gdas'"):
        build_supernet(StrideChoice(), 'gdas', weighted=True)
    sn = build_supernet(StrideChoice(), 'spos', weighted=False)
    for stride in (1, 2):
        sn.set_sample({'stride': stride})
        assert sn.model.conv(torch.randn(1, 1, 8, 8)).shape[-1] == 8 // stride


class Dangling(ModelSpace):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.add_mutable(nni.choice('lr', [0.1, 0.01]))

    def forward(self, x):
        return self.fc(x)


class Nothing(ModelSpace):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def test_a_choice_no_module_carries_and_a_space_without_choices_are_refused():
    with pytest.raises(OneShotUnsupported, match="Dangling.*\\['lr'\\]"):
        build_supernet(Dangling(), 'darts')
    with pytest.raises(ValueError, match='nothing to search'):
        build_supernet(Nothing(), 'darts')
    with pytest.raises(OneShotUnsupported, match='needs an NNI ModelSpace'):
        build_supernet(nn.Linear(2, 2), 'darts')


def test_a_label_shared_by_different_choices_is_refused():
    class Clash(ModelSpace):
        def __init__(self):
            super().__init__()
            self.a = LayerChoice([nn.Identity(), nn.ReLU()], label='x')
            self.b = Repeat(nn.Identity(), (1, 3), label='y')

        def forward(self, v):
            return self.b(self.a(v))

    build_supernet(Clash(), 'darts')  # distinct labels: fine
    from nni_nasext.strategies.oneshot.supernet import BuildContext, Decision, SupernetState
    ctx = BuildContext(SupernetState(), 'darts', True, 1, lambda m, p: m)
    ctx.register(Decision('x', 'layer', [0, 1], label='x'), 'a')
    ctx.register(Decision('x', 'layer', [0, 1], label='x'), 'c')  # the same choice again: joined
    assert ctx.state.decisions['x'].modules == ['a', 'c']
    with pytest.raises(OneShotUnsupported, match="Label 'x' is shared by modules with different choices"):
        ctx.register(Decision('x', 'repeat', [1, 2, 3], label='x'), 'b')


def test_cell_supernet_concatenates_every_node_and_freezes_to_the_chosen_cell():
    space = SPACES['cell_simple'][0]()
    sn = build_supernet(space, 'darts')
    assert isinstance(space, ModelSpace) and not any(isinstance(m, Cell) for m in sn.model.modules())
    x = example_input('pair')
    sn.set_mixes(uniform(sn))
    assert sn.model(x).shape == (4, 10)


def _reference_bn_batch_statistics(model, x):
    """What scoring under batch statistics computes, spelled out: a copy of the model in
    evaluation mode with its batch norms (torch's, NNI's, any subclass) in training mode."""
    import copy
    ref = copy.deepcopy(model).eval()
    for m in ref.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    with torch.no_grad():
        return ref(x)


class _Counter(nn.Module):
    """A module with a buffer it changes in every forward, and its own ``train()``."""
    def __init__(self):
        super().__init__()
        self.register_buffer('calls', torch.zeros(()))
        self.trained = []

    def train(self, mode=True):
        self.trained.append(mode)
        return super().train(mode)

    def forward(self, x):
        self.calls += 1
        return x


@pytest.mark.parametrize('own_train', [False, True])
def test_batch_statistics_scoring_changes_no_buffer_and_no_mode(own_train):
    from nni.nas.nn.pytorch import MutableBatchNorm2d
    from nni_nasext.evaluators.sync_batchnorm import GlobalBatchNorm2d
    from nni_nasext.strategies.oneshot.base import bn_batch_statistics
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), MutableBatchNorm2d(4), GlobalBatchNorm2d(4),
                          nn.BatchNorm2d(4, momentum=None), nn.Dropout(0.5), *([_Counter()] if own_train else []))
    model.train()
    model[3].eval()                      # a mixed state comes back as it was
    x = torch.randn(6, 3, 7, 7) * 3 + 1
    for _ in range(2):                   # running statistics away from their initial values
        model(x)
    before = {n: b.clone() for n, b in model.named_buffers()}
    modes = [m.training for m in model.modules()]
    expected = _reference_bn_batch_statistics(model, x + 1)
    with bn_batch_statistics(model):
        with torch.no_grad():
            got = model(x + 1)
        assert [m.training for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [True] * 4
        assert not model.training and not model[6].training   # dropout off
    assert torch.allclose(got, expected, atol=1e-6)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert [m.training for m in model.modules()] == modes
    if own_train:
        assert model[7].trained[-2:] == [False, True]      # its own train() was called, then restored
