"""Zero-cost proxies: hand-computed values on tiny networks, determinism, no side effects."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.evaluators.proxies import (PROXIES, ZeroCostProxy, empirical_ntk, naswot_kernel, score_naswot,
                                           score_synflow, score_te_nas_ntk, score_zen)
from nni_nasext.evaluators.proxies import (score_flops, score_grad_norm, score_jacob_cov, score_params, score_snip,
                                           score_te_nas_linear_regions)
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, QuickstartSpace

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'nor_conv_1x1',
          '0_3': 'avg_pool_3x3', '1_3': 'nor_conv_3x3', '2_3': 'skip_connect'}


@pytest.fixture(scope='module')
def digits_batch():
    return ZeroCostProxy('naswot', batch_size=16).batch()


def test_naswot_kernel_by_hand():
    lin = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1., 0.], [0., 1.], [1., 1.]]))
    net = nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 1))
    x = torch.tensor([[1., 1.], [1., -2.], [-1., -1.]])
    # codes: (1,1,1), (1,0,0), (0,0,0); K = 3 - Hamming distance
    expected = torch.tensor([[3., 1., 0.], [1., 3., 2.], [0., 2., 3.]], dtype=torch.float64)
    assert torch.equal(naswot_kernel(net, x), expected)
    assert score_naswot(net, x) == pytest.approx(math.log(12.0))  # det = 3*5 - 1*3 = 12


def test_synflow_closed_form():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    A = net[0].weight.detach().double().abs()  # 3 x 2
    b = net[1].weight.detach().double().abs()[0]  # 3
    # R = sum_k b_k sum_j A_kj; dR/dA_kj = b_k, dR/db_k = sum_j A_kj
    expected = float((A * b[:, None]).sum() + (b * A.sum(dim=1)).sum())
    assert score_synflow(net, torch.randn(5, 2)) == pytest.approx(expected, rel=1e-12)
    assert net[0].weight.min() < 0  # the caller's signs are kept


def test_ntk_of_linear_model_is_gram_matrix():
    torch.manual_seed(2)
    net = nn.Linear(4, 1, bias=False)
    X = torch.randn(6, 4)
    ntk = empirical_ntk(net, X)
    Xd = X.double()
    assert torch.allclose(ntk, Xd @ Xd.T, atol=1e-10)
    X4 = X[:4]
    expected = np.linalg.cond(X4.double().numpy() @ X4.double().numpy().T)
    assert score_te_nas_ntk(net, X4, reinit=False) == pytest.approx(expected, rel=1e-6)


def test_snip_and_grad_norm_of_a_linear_classifier_by_hand():
    """For logits X Wᵀ and mean cross-entropy, ∂L/∂W = (softmax(X Wᵀ) - Y)ᵀ X / n."""
    W = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(W)
    X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -1.0]])
    y = torch.tensor([0, 1, 1])
    G = (torch.softmax(X @ W.T, dim=1) - F.one_hot(y, 2).float()).T @ X / len(X)
    assert score_snip(net, X, y) == pytest.approx(float((W * G).abs().sum()), rel=1e-5)
    assert score_grad_norm(net, X, y) == pytest.approx(float(G.norm()), rel=1e-5)


def test_jacob_cov_of_a_linear_model_by_hand():
    """f(x) = w·x has the same Jacobian row for every example: the correlation matrix is all
    ones, eigenvalues (n, 0, ..., 0)."""
    net = nn.Linear(5, 1, bias=False)
    n, k = 4, 1e-5
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert score_jacob_cov(net, torch.randn(n, 5), k=k) == pytest.approx(expected, rel=1e-6)


def test_linear_regions_of_a_1d_relu_layer_by_hand():
    """ReLU(x·1 - b) with b = 0, 1, 2 cuts the line at 0, 1 and 2: four regions."""
    lin = nn.Linear(1, 3)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.copy_(torch.tensor([0.0, -1.0, -2.0]))
    net = nn.Sequential(lin, nn.ReLU())
    assert score_te_nas_linear_regions(net, torch.zeros(2000, 1), reinit=False) == 4.0


def test_params_and_flops_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(32, 3))
    assert score_params(net) == pytest.approx((2 * 9 + 32 * 3 + 3) / 1e6)
    # conv: 2 x 4 x 4 outputs x 9 MACs; linear: 3 outputs x 32 MACs
    assert score_flops(net, torch.zeros(5, 1, 4, 4)) == pytest.approx((32 * 9 + 3 * 32) / 1e6)


def _snapshot(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()})


@pytest.mark.parametrize('name', sorted(PROXIES))
def test_deterministic_and_side_effect_free(name, digits_batch):
    x, y = digits_batch
    torch.manual_seed(0)
    model = QuickstartSpace().freeze(SAMPLE)
    model.eval()
    next(model.parameters()).requires_grad_(False)
    before = _snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        a = PROXIES[name](model, x, y, seed=3)
        b = PROXIES[name](model, x, y, seed=3)
    assert isinstance(a, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    after = _snapshot(model)
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1] == after[1] and before[2] == after[2]
    assert all(p.grad is None for p in model.parameters())


def test_measuring_in_place_gives_the_copys_score_and_the_model_back(digits_batch):
    """TE-NAS measures its supernet in place (``copy=False``): the same NTK condition number and
    linear-region count as on a copy, and the model handed back as it was (values, modes,
    ``requires_grad``, gradients)."""
    from nni_nasext.strategies.zero_shot.te_nas import linear_regions
    x, _ = digits_batch
    torch.manual_seed(0)
    model = QuickstartSpace().freeze(SAMPLE)
    model.eval()
    first = next(model.parameters())
    first.requires_grad_(False)
    last = list(model.parameters())[-1]
    last.grad = torch.ones_like(last)
    before = _snapshot(model)
    copied = (score_te_nas_ntk(model, x[:4], seed=1), linear_regions(model, x[:1], samples=50, seed=1))
    in_place = (score_te_nas_ntk(model, x[:4], seed=1, copy=False),
                linear_regions(model, x[:1], samples=50, seed=1, copy=False))
    assert in_place == copied
    after = _snapshot(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1] == after[1] and before[2] == after[2]
    assert first.grad is None and torch.equal(last.grad, torch.ones_like(last))


class _Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c * x


class _DeadBranch(nn.Module):
    """x + BN(conv(0·x)): the branch behind the zero is dead (outputs zeros)."""

    def __init__(self, channels):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn(self.conv(0 * x))


def _zen_closed_form(shape, alpha=0.01):
    """With features = input (no BN): log(alpha · E Σ_CHW |ε|) = log(alpha · CHW · sqrt(2/π))."""
    return math.log(alpha * float(np.prod(shape[1:])) * math.sqrt(2 / math.pi))


def test_zen_closed_form():
    shape = (16, 3, 32, 32)
    pool = lambda *m: nn.Sequential(*m, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # noqa: E731
    expected = _zen_closed_form(shape)
    # features = the Gaussian input itself: the mean L1 change of alpha·ε
    assert score_zen(pool(nn.Identity()), torch.zeros(shape)) == pytest.approx(expected, abs=0.02)
    # BN of c·x normalises the scale away from the features; the BN correction log sqrt(var(c·x)) adds it back
    assert score_zen(pool(_Scale(10.0), nn.BatchNorm2d(3)), torch.zeros(shape)) == pytest.approx(
        expected + math.log(10.0), abs=0.03)
    # a dead branch (BN of an all-zero input) adds nothing to the function, nor to the score
    assert score_zen(pool(_DeadBranch(3)), torch.zeros(shape)) == pytest.approx(expected, abs=0.02)
    # no path from input to features: defined score (nan) and a warning
    with pytest.warns(RuntimeWarning, match='zen'):
        assert math.isnan(score_zen(pool(_Scale(0.0)), torch.zeros(shape)))


def test_zen_finite_on_a_cell_with_a_zeroed_node():
    """An NB201 cell whose first node is zeroed (`none` on 0->1) still has a path from input to
    output; the ops fed by the dead node are left out of the BN correction."""
    sample = dict(SAMPLE, **{'0_1': 'none'})
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        value = score_zen(QuickstartSpace().freeze(sample), torch.zeros(4, 1, 8, 8))
    assert math.isfinite(value)


def test_naswot_without_relu_warns():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.warns(RuntimeWarning, match='no nn.ReLU'):
        value = score_naswot(net, torch.randn(5, 3))
    assert isinstance(value, float) and math.isnan(value)


def test_synflow_all_none_cell_warns():
    model = QuickstartSpace().freeze({label: 'none' for label in EDGE_LABELS})
    with pytest.warns(RuntimeWarning, match='synflow'):
        value = score_synflow(model, torch.randn(2, 1, 8, 8))
    assert value == 0.0


def test_evaluator_trial_style():
    ev = ZeroCostProxy('synflow')
    value = ev.evaluate(QuickstartSpace().freeze(SAMPLE))
    assert isinstance(value, float) and value > 0
    again = ZeroCostProxy._load(**ev._dump()).evaluate(QuickstartSpace().freeze(SAMPLE))
    assert again == value  # re-initialised from the seed: independent of the global RNG


IMAGE_SPACES = sorted(set(__import__('nni_nasext.registry', fromlist=['SPACES']).SPACES) - {'rnn_cells', 'nas_bench_graph'})   # (graphs, not images)


@pytest.mark.parametrize('space_name', IMAGE_SPACES)
def test_every_proxy_on_every_image_space(space_name):
    """Each proxy scores a network of every image space of the project without raising (a
    defined value; non-finite ones come with a warning). ``rnn_cells`` is a language model:
    the proxies are defined for image classifiers only."""
    import random as _random
    from test_spaces_end_to_end import SMALL
    from nni_nasext import registry
    from nni_nasext.space_spec import SpaceSpec
    space = registry.build('space', space_name, **SMALL.get(space_name, {}))
    spec, rng = SpaceSpec.from_space(space), _random.Random(0)
    for _ in range(50):
        try:
            model = space.freeze(spec.random(rng))
            break
        except ValueError:  # e.g. an invalid NB101 cell
            continue
    shape = (1, 8, 8) if space_name == 'quickstart' else (3, 32, 32)
    x = torch.randn((4,) + shape, generator=torch.Generator().manual_seed(0))
    for name, fn in PROXIES.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            value = fn(model, x, None, seed=0)
        assert isinstance(value, float), (space_name, name)
        if not math.isfinite(value):
            assert any(issubclass(w.category, RuntimeWarning) for w in caught), (space_name, name)
