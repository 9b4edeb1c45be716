"""Every one-shot method of the registry on every test space, with NNI's evaluators and ours;
then each method's own policy (the equations it follows) on small cases.

The contract test enumerates ``nni_nasext.registry.ONESHOT``: a new method is tested by adding
its registry line."""
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import nni
from nni.nas.evaluator.pytorch import Classification, DataLoader, Regression

from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.registry import ONESHOT
from nni_nasext.search_spaces import NasBench201Space
from nni_nasext.search_spaces.cells import CellSpace, DARTSSpace
from nni_nasext.search_spaces.enas_macro import EnasMacroSpace
from nni_nasext.search_spaces.mobile import ProxylessSpace
from nni_nasext.strategies.oneshot import OneShotUnsupported, search

from nni_style_spaces import SPACES, expect_unsupported

METHODS = sorted(ONESHOT)


def nni_classification():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 10, (96,), generator=g)
    train = nni.trace(DataLoader)(TensorDataset(x, y), batch_size=16)
    val = nni.trace(DataLoader)(TensorDataset(x[:32], y[:32]), batch_size=16)
    return Classification(train_dataloaders=train, val_dataloaders=val, num_classes=10, max_epochs=1)


class _QKV(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.q, self.k, self.v = (torch.rand(n, 4, 16, generator=g) for _ in range(3))
        self.t = torch.rand(n, 4, 1, generator=g)

    def __len__(self):
        return len(self.t)

    def __getitem__(self, i):
        return (self.q[i], self.k[i], self.v[i]), self.t[i]


def nni_regression():
    train = nni.trace(DataLoader)(_QKV(64, 0), batch_size=16)
    val = nni.trace(DataLoader)(_QKV(32, 1), batch_size=16)
    return Regression(train_dataloaders=train, val_dataloaders=val, max_epochs=1)


def ours(**kwargs):
    return ImageClassification('digits', **{'max_epochs': 1, 'batch_size': 16, 'limit': 48, **kwargs})


def _valid(space_factory, sample):
    space = space_factory()
    space.validate(sample)
    return space.freeze(sample)


# ------------------------------------------------------------------ contract: every method x every NNI-style space

@pytest.mark.parametrize('name', [n for n in SPACES if n not in expect_unsupported])
@pytest.mark.parametrize('method', METHODS)
def test_every_method_searches_the_nni_style_spaces_with_nni_evaluators(method, name):
    factory, data = SPACES[name]
    if data == 'pair':
        pytest.skip('two-input cell space on vectors: exercised by the supernet tests')
    if method == 'te_nas' and data == 'attention':  # the NTK needs one input tensor with a batch dimension
        with pytest.raises(TypeError, match='not supported'):
            search(factory(), nni_regression(), method, verbose=False)
        return
    evaluator = nni_regression() if data == 'attention' else nni_classification()
    result = search(factory(), evaluator, method, verbose=False, num_candidates=4) if method in (
        'rsps', 'spos', 'bender') else search(factory(), evaluator, method, verbose=False)
    _valid(factory, result.sample)


@pytest.mark.parametrize('method', METHODS)
def test_every_method_refuses_a_custom_module_with_a_choice(method):
    with pytest.raises(OneShotUnsupported, match="MyOp at 'batch_norm'.*not supported"):
        search(SPACES['custom_op'][0](), nni_classification(), method, verbose=False)


OUR_SPACES = {
    'nasbench201': (lambda: NasBench201Space(num_cells=1, channels=4, in_channels=1), {}),
    # DARTS' cell space, reduced: 2 blocks, one normal cell and the two reduction cells
    'darts_cells': (lambda: CellSpace('darts', channels=4, num_cells=(1, 0, 0), in_channels=1, num_blocks=2), {}),
    'enas_macro': (lambda: EnasMacroSpace(num_layers=4, width=8, in_channels=1), {}),
    'proxylessnas': (lambda: ProxylessSpace(num_classes=10, width_mult=0.25), {'image_size': 8, 'in_channels': 3, 'limit': 16, 'batch_size': 4}),
}


@pytest.mark.parametrize('space', list(OUR_SPACES))
@pytest.mark.parametrize('method', METHODS)
def test_every_method_searches_our_spaces_with_our_evaluator(method, space, monkeypatch):
    factory, ev_args = OUR_SPACES[space]
    if method == 'te_nas' and space in ('darts_cells', 'proxylessnas'):
        # TE-NAS measures every candidate of every round (hundreds of NTKs on these spaces):
        # the first measurement is real, the rest synthetic, to keep the test short
        from nni_nasext.strategies.zero_shot.te_nas import TENAS
        real, calls = TENAS._measure, []

        def measure(self, alive, inputs):
            calls.append(1)
            if len(calls) == 1:
                cond, regions = real(self, alive, inputs)
                assert cond > 0 and regions >= 1
            return float(sum(len(v) for v in alive.values())), 1.0

        monkeypatch.setattr(TENAS, '_measure', measure)
    extra = {'num_candidates': 3} if method in ('rsps', 'spos', 'bender') else {}
    if method == 'te_nas':
        extra = {'lr_samples': 20, 'ntk_batch': 4}
    if method in ('darts_pt', 'darts_pt_fixed'):
        extra = {'tune_steps': 1, 'kept_batches': 1}
    if method == 'rdarts':
        extra = {'hessian_iters': 2, 'kept_batches': 1}
    result = search(factory(), ours(**ev_args), method, verbose=False, **extra)
    _valid(factory, result.sample)
    if not getattr(result.module, 'training_free', False):
        assert len(result.history['val']) == 1 and 0 <= result.history['val'][0] <= 1


# ------------------------------------------------------------------ bad input, before any training

def test_unknown_methods_and_arguments_are_refused():
    with pytest.raises(KeyError, match="Unknown oneshot 'dart'"):
        search(SPACES['simple'][0](), ours(), 'dart')
    with pytest.raises(ValueError, match="Unknown argument 'arch_lrr' for one-shot method 'darts'"):
        search(SPACES['simple'][0](), ours(), 'darts', arch_lrr=1)
    with pytest.raises(ValueError, match="Unknown argument 'tau_max' for one-shot method 'darts'"):
        search(SPACES['simple'][0](), ours(), 'darts', tau_max=1)
    search(SPACES['simple'][0](), ours(), 'gdas', tau_max=2.0, verbose=False)  # GDAS takes it
    with pytest.raises(ValueError, match='epochs must be positive'):
        search(SPACES['simple'][0](), ours(), 'darts', epochs=0)
    with pytest.raises(ValueError, match="arch_data must be 'split'"):
        search(SPACES['simple'][0](), ours(), 'darts', arch_data='test')


def test_a_space_that_does_not_fit_the_data_fails_before_training():
    with pytest.raises(ValueError, match='does not run on a training batch.*input channels'):
        search(NasBench201Space(num_cells=1, channels=4), ours(), 'darts')  # 3-channel space, 1-channel digits
    from nni.nas.evaluator import FunctionalEvaluator
    with pytest.raises(TypeError, match='has none \\(not supported\\)'):
        search(SPACES['simple'][0](), FunctionalEvaluator(lambda m: 0.5), 'darts')


# ------------------------------------------------------------------ DARTS family

def test_second_order_gradient_matches_finite_differences_of_the_unrolled_objective():
    from nni_nasext.strategies.oneshot.darts import darts_second_order_grad
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    a = torch.randn(2, requires_grad=True)
    xt, xv = torch.randn(5, 3), torch.randn(5, 3)

    def loss(x, w_, a_):
        return ((x @ w_) * torch.tanh(a_[0]) + a_[1] * (x @ w_) ** 2).pow(2).mean()

    xi, lam = 0.1, 0.01
    (g,) = [darts_second_order_grad([w], [a], lambda: loss(xt, w, a), lambda: loss(xv, w, a), xi, lam)[0]]

    def unrolled(a_):
        w_ = w.detach().requires_grad_(True)
        (gw,) = torch.autograd.grad(loss(xt, w_, a_), w_, create_graph=True)
        return loss(xv, w_ - xi * (gw + lam * w_), a_)

    exact = torch.autograd.grad(unrolled(a), a)[0]
    assert torch.allclose(g, exact, rtol=1e-2, atol=1e-4)


def _module(method, space=None, **kwargs):
    """A trained-for-nothing module of ``method`` on a tiny NB201 space (no Trainer)."""
    from nni_nasext.strategies.oneshot import build_supernet, method_class
    from nni_nasext.strategies.oneshot.data import recipe_for
    cls = method_class(method)
    sn = build_supernet(space or NasBench201Space(num_cells=1, channels=4, in_channels=1), method,
                        weighted=cls.weighted, partial_k=kwargs.pop('partial_k', cls.partial_k))
    recipe = recipe_for(ours(), sn.model)
    return cls(recipe.module, sn, metric='val_acc', **kwargs)


def test_gdas_is_one_hot_forward_and_straight_through_backward():
    m = _module('gdas')
    mixes = m.mixes(training=True)
    for k, mix in mixes.items():
        assert len(mix.index) == 1 and mix.carry
        assert float(mix.weights[mix.index[0]]) == pytest.approx(1.0)
        assert all(abs(float(w)) < 1e-6 for i, w in enumerate(mix.weights) if i != mix.index[0])
    # the one-hot weights carry the softmax's gradient to every alpha of the decision
    key = next(iter(mixes))
    mixes[key].weights[mixes[key].index[0]].backward()
    assert m.a(key).grad is not None and bool((m.a(key).grad != 0).any())
    assert all(len(mix.index) == 1 and mix.weights is None for mix in m.mixes(training=False).values())


def test_fairdarts_zero_one_loss_pushes_weights_away_from_one_half():
    m = _module('fairdarts')
    with torch.no_grad():
        m.alpha[0].copy_(torch.tensor([0.1, -0.1, 0.0, 2.0, -2.0]))
    m.arch_extra_loss().backward()
    g = m.alpha[0].grad
    assert g[0] < 0 and g[1] > 0 and g[3] < 0 and g[4] > 0  # gradient descent moves them away from 0
    assert torch.allclose(m.probs('0_1'), torch.sigmoid(m.a('0_1')))


def test_pcdarts_edge_normalisation_sums_to_one_and_scales_the_strengths():
    m = _module('pcdarts', space=DARTSSpace(channels=8, num_cells=1, in_channels=1))
    scales = m.edge_scales()
    assert set(scales) == {f'{c}/node_{i}' for c in ('normal', 'reduce') for i in range(2, 6)}
    assert all(float(s.sum()) == pytest.approx(1.0) and len(s) == int(k[-1]) for k, s in scales.items())
    with torch.no_grad():
        m.beta[0].copy_(torch.tensor([5.0, -5.0]))  # normal node 2: input 0 dominates
    s = m.strengths()
    assert float(s['normal/edge_2_0'].sum()) > 0.99 and float(s['normal/edge_2_1'].sum()) < 0.01


# ------------------------------------------------------------------ ProxylessNAS

def test_binary_gate_gradient_matches_a_hand_computation():
    from nni_nasext.strategies.oneshot.proxyless import binary_gate_alpha_grad
    p = torch.tensor([0.3, 0.7])
    g = torch.tensor([1.5, -0.5])
    expected = torch.tensor([sum(g[j] * p[j] * (float(i == j) - p[i]) for j in range(2)) for i in range(2)])
    assert torch.allclose(binary_gate_alpha_grad(g, p), expected)


def test_proxyless_arch_step_runs_two_paths_and_the_weight_step_one():
    m = _module('proxyless', latency_weight=0.0)
    assert all(len(mix.index) == 1 and mix.weights is None for mix in m.mixes(training=True).values())
    seen = []
    original = m.set_mixes
    m.set_mixes = lambda mixes: (seen.append(mixes), original(mixes))
    batch = next(iter(m.inner.hp.dataloaders()[0]))
    m._arch_optimizer = lambda: torch.optim.Adam(m.arch_parameters(), lr=1e-3)
    m.arch_step(batch, batch, 0)
    (mixes,) = seen
    assert all(len(mix.index) == 2 and mix.weights is not None for mix in mixes.values())
    for key, mix in mixes.items():  # alpha moved only on the two sampled paths
        moved = [i for i in range(5) if float(m.a(key)[i]) != 0.0]
        assert set(moved) <= set(mix.index)


def test_expected_latency_weights_candidates_by_probability_and_repeat_depth():
    from nni_nasext.strategies.oneshot import build_supernet
    from nni_nasext.strategies.oneshot.latency import expected_latency
    from nni_style_spaces import RepeatNet
    sn = build_supernet(RepeatNet(), 'proxyless')
    table = {'fixed': 1.0, 'latency': {'ch1': [1.0, 3.0], 'kernel': [0.0, 2.0], 'rep': [1.0, 2.0, 3.0, 4.0]}}
    probs = {'ch1': torch.tensor([0.5, 0.5]), 'kernel': torch.tensor([1.0, 0.0]), 'rep': torch.tensor([0., 0., 0., 1.])}
    assert float(expected_latency(sn, table, probs)) == pytest.approx(1.0 + 2.0 + 0.0 + 4.0)


def test_a_latency_term_pushes_alpha_to_cheaper_candidates():
    m = _module('proxyless', latency_weight=1.0, latency_table={
        'fixed': 0.0, 'latency': {k: [0.0, 0.0, 5.0, 10.0, 1.0] for k in ('0_1', '0_2', '1_2', '0_3', '1_3', '2_3')}})
    loss = m.latency_term(torch.zeros(()))
    loss.backward()
    g = m.a('0_1').grad
    assert g[3] > g[2] > g[4] > g[0]  # descent lowers the expensive conv_3x3 most


# ------------------------------------------------------------------ remedies

def test_power_iteration_finds_the_largest_eigenvalue_of_a_quadratic():
    from nni_nasext.strategies.oneshot.remedies import dominant_hessian_eigenvalue
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]])
    x = torch.randn(2, requires_grad=True)
    value = dominant_hessian_eigenvalue(lambda: 0.5 * x @ A @ x, [x], iters=100)
    assert value == pytest.approx(float(torch.linalg.eigvalsh(A)[-1]), rel=1e-3)


def test_eigenvalue_early_stop_and_darts_plus_rules():
    from nni_nasext.strategies.oneshot.remedies import darts_plus_stop, eigenvalue_early_stop
    assert eigenvalue_early_stop([1, 1, 1, 1], k=2, window=1) is None
    assert eigenvalue_early_stop([1, 1, 1, 2], k=2, window=1) == 1          # 1/2 < 0.75
    assert eigenvalue_early_stop([1, 1, 1, 1.2], k=2, window=1) is None     # 1/1.2 >= 0.75
    assert darts_plus_stop([0, 1, 2], [[0], [0], [1]], max_skips=2, patience=5) == 'skip_connections'
    assert darts_plus_stop([0, 0, 0, 0], [[1], [2], [2], [2]], max_skips=2, patience=2) == 'stable_ranking'
    assert darts_plus_stop([3], [[0]], max_skips=2, min_epochs=1) is None


def test_pdarts_limits_skips_to_the_strongest():
    from nni_nasext.strategies.oneshot.remedies import count_skips, limit_skips
    m = _module('pdarts')
    sn = m.supernet
    skip = sn.decisions['0_1'].candidates.index('skip_connect')
    strengths = {k: torch.full((5,), 0.1) for k in sn.decisions}
    for i, k in enumerate(sn.decisions):
        strengths[k][skip] = 0.5 + 0.01 * i      # every edge prefers the skip, the later ones more
        strengths[k][3] = 0.3                    # next best: nor_conv_3x3
    sample = limit_skips(sn, strengths, 2)
    assert count_skips(sn, sample) == 2
    assert [k for k, v in sample.items() if v == 'skip_connect'] == ['1_3', '2_3']
    assert all(v == 'nor_conv_3x3' for k, v in sample.items() if k not in ('1_3', '2_3'))


def test_skip_dropout_wraps_skip_candidates_and_decays():
    from nni_nasext.strategies.oneshot.remedies import SkipDropout
    m = _module('pdarts', skip_dropout=1.0)
    wrapped = [mod for mod in m.supernet.model.modules() if isinstance(mod, SkipDropout)]
    assert len(wrapped) == 18  # the skip candidate of 6 edges in each of the 3 cells
    m.set_skip_dropout(1.0)
    x = torch.randn(2, 4, 4, 4)
    wrapped[0].train()
    assert torch.all(wrapped[0](x) == 0)
    m.set_skip_dropout(0.0)
    assert torch.equal(wrapped[0](x), x)


def test_asap_prunes_below_the_threshold_but_never_the_strongest():
    m = _module('asap')
    with torch.no_grad():
        for a in m.alpha:
            a.copy_(torch.tensor([5.0, 0.0, -5.0, -5.0, -5.0]))
    m.threshold = 0.2
    gone = m.prune()
    assert all(m.masks[k].tolist() == [True, False, False, False, False] for k in m.keys)
    assert len(gone) == 4 * len(m.keys)
    m.threshold = 2.0  # above every weight: the strongest still stays
    m.prune()
    assert all(int(mask.sum()) == 1 for mask in m.masks.values())
    assert all(mix.index == [0] for mix in m.mixes().values())


def test_darts_pt_keeps_the_candidate_whose_removal_costs_most(monkeypatch):
    m = _module('darts_pt', tune_steps=0)
    m.kept_arch = [None]
    # a synthetic supernet metric: the network is only good while edge 0_1 keeps nor_conv_1x1 (index 2),
    # although alpha favours avg_pool (index 4) there
    with torch.no_grad():
        m.a('0_1').copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0]))

    def measure(weights):
        return 1.0 if float(weights['0_1'][2]) > 0 else 0.0

    monkeypatch.setattr(m, '_measure', measure)
    sample = m.select()
    assert sample['0_1'] == 'nor_conv_1x1'


# ------------------------------------------------------------------ ENAS, single path, TE-NAS

def test_enas_controller_samples_valid_architectures_and_learns_a_toy_reward():
    from nni_nasext.strategies.oneshot.enas import Controller
    from nni_style_spaces import SimpleNet
    from nni_nasext.strategies.oneshot import build_supernet
    sn = build_supernet(SimpleNet(), 'enas', weighted=False)
    ctrl = Controller(sn.space_mutables, hidden_size=16, temperature=None, tanh_constant=None, seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        sn.validate(ctrl.to_sample(ctrl.sample(g)[0]))
    opt = torch.optim.Adam(ctrl.parameters(), lr=0.05)
    baseline = None
    for _ in range(150):  # reward: 1 when 'conv' is the separable conv (1)
        actions, logp, _ = ctrl.sample(g)
        reward = float(ctrl.to_sample(actions)['conv'] == 1)
        baseline = reward if baseline is None else 0.9 * baseline + 0.1 * reward
        opt.zero_grad()
        (-(reward - baseline) * logp).backward()
        opt.step()
    assert ctrl.to_sample(ctrl.greedy()[0])['conv'] == 1


def test_any_subset_input_choice_is_sampled_bit_by_bit():
    from nni_nasext.strategies.oneshot.enas import Controller
    from nni_nasext.strategies.oneshot import build_supernet
    sn = build_supernet(EnasMacroSpace(num_layers=4, width=8, in_channels=1), 'enas', weighted=False)
    ctrl = Controller(sn.space_mutables, seed=0)
    kinds = [k for _, k, _ in ctrl.steps]
    assert kinds.count('cat') == 4 and kinds.count('bit') == 1 + 2 + 3
    sample = ctrl.to_sample(ctrl.sample(torch.Generator().manual_seed(1))[0])
    sn.validate(sample)


def test_single_path_methods_train_one_random_architecture_per_step():
    m = _module('spos')
    samples = []
    original = m.set_sample
    m.set_sample = lambda s: (samples.append(dict(s)), original(s))
    m.optimize_weights = lambda loss: loss
    batch = next(iter(m.inner.hp.dataloaders()[0]))
    for i in range(4):
        m.weight_step(batch, i)
    assert len(samples) == 4 and len({tuple(sorted(s.items())) for s in samples}) > 1
    for s in samples:
        m.supernet.validate(s)


def test_bender_path_dropout_keeps_at_least_one_candidate_and_grows():
    m = _module('bender', dropout_rate=0.9)
    rates = []
    for _ in range(200):
        mixes = m.dropout_mixes(0.9)
        rates.append(np.mean([len(mix.index) for mix in mixes.values()]))
        assert all(len(mix.index) >= 1 for mix in mixes.values())
    # each of 5 candidates kept with probability 1 - 0.9^(1/5) = 0.021, at least one: about 1.1 kept
    assert 1.0 <= np.mean(rates) < 1.3
    assert np.mean([len(mix.index) for mix in m.dropout_mixes(0.0).values()]) == 5


def test_te_nas_prunes_by_joint_ranks(monkeypatch):
    m = _module('te_nas')
    # synthetic measures: removing candidate 0 of any decision gives the best (smallest) NTK and the most regions
    def measure(alive, inputs):
        missing = sum(1 for k, idx in alive.items() if 0 not in idx)
        return 10.0 - missing, float(missing)

    monkeypatch.setattr(m, '_measure', measure)
    batch = next(iter(m.inner.hp.dataloaders()[0]))
    sample = m.prune(batch)
    # round 1 prunes candidate 0 everywhere (best ranks); then every removal ties and the
    # earliest candidate goes: 1, 2, 3; avg_pool_3x3 (the last) stays
    assert all(v == 'avg_pool_3x3' for v in sample.values())
    assert len(m.history['rounds']) == 4


def test_te_nas_lr_space_needs_the_same_decisions():
    with pytest.raises(ValueError, match='same decisions'):
        _module('te_nas', lr_space=DARTSSpace(channels=4, num_cells=1, in_channels=1))
    m = _module('te_nas', lr_space=NasBench201Space(num_cells=1, channels=1, in_channels=1), lr_input_size=(1, 3, 3),
                lr_samples=20, ntk_batch=4)
    batch = next(iter(m.inner.hp.dataloaders()[0]))
    m.supernet.validate(m.prune(batch))



@pytest.mark.parametrize('method,batch_stats', [('spos', True), ('proxyless', True), ('gdas', True), ('enas', True),
                                                ('darts', False)])
def test_validation_of_single_path_methods_normalises_with_batch_statistics(method, batch_stats):
    """The running BN statistics of a path-sampling supernet belong to no single path: its
    per-epoch validation uses each batch's statistics (and leaves the running ones as they were)."""
    from nni_nasext.strategies.oneshot.base import captured_logs
    torch.manual_seed(0)
    m = _module(method)
    assert m.val_bn_batch_stats is batch_stats
    batch = next(iter(m.inner.hp.dataloaders()[1] if len(m.inner.hp.dataloaders()) > 1 else m.inner.hp.dataloaders()[0]))
    m.eval()

    outputs = []
    m.supernet.model.register_forward_hook(lambda mod, args, out: outputs.append(out.detach().clone()))

    def validate():
        outputs.clear()
        with captured_logs(m.inner) as logged:
            m.validation_step(batch, 0)
        assert logged and len(outputs) == 1
        return outputs[0]

    clean = validate()
    bns = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm) and b.track_running_stats]
    assert bns
    with torch.no_grad():
        for b in bns:
            # a shift down, so that the ReLU after the last BN passes it on to the logits
            b.running_mean.sub_(50.0)
    before = [b.running_mean.clone() for b in bns]
    shifted = validate()
    assert all(torch.equal(b.running_mean, x) for b, x in zip(bns, before))
    if batch_stats:
        assert torch.allclose(shifted, clean, atol=1e-5)
    else:
        assert not torch.allclose(shifted, clean, atol=1e-2)
    # the constructor argument overrides the method's default
    assert _module(method, val_bn_batch_stats=not batch_stats).val_bn_batch_stats is (not batch_stats)
