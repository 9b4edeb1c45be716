"""One-shot strategies on tiny NB201 supernets: mixing, second-order gradient, partial
channels, Gumbel sampling, derivation."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
from nni_nasext.strategies.oneshot import METHODS, OneShotModule, darts_second_order_grad, search
from nni_nasext.strategies.oneshot_supernet import Mix, MixedEdge, NB201Supernet, channel_shuffle


def test_soft_mix_is_the_weighted_sum():
    torch.manual_seed(0)
    edge = MixedEdge(4).train()
    x = torch.randn(3, 4, 5, 5)
    w = torch.softmax(torch.randn(len(OPS)), 0)
    expected = sum(w[k] * op(x) for k, op in enumerate(edge.ops))
    assert torch.allclose(edge(x, Mix('soft', weights=w)), expected, atol=1e-6)
    # a one-hot weight vector gives that op alone
    onehot = F.one_hot(torch.tensor(3), len(OPS)).float()
    assert torch.allclose(edge(x, Mix('soft', weights=onehot)), edge.ops[3](x), atol=1e-6)
    assert torch.allclose(edge(x, Mix('single', index=[3])), edge.ops[3](x))


def test_second_order_gradient_matches_finite_differences_of_the_unrolled_objective():
    """F(α) = L_val(w - ξ ∇_w L_train(w, α), α) on a toy model; DARTS' eq. 7 with the
    finite-difference Hessian-vector product must match dF/dα by central differences."""
    torch.manual_seed(0)
    dt = torch.float64
    xt, yt = torch.randn(16, 3, dtype=dt), torch.randn(16, dtype=dt)
    xv, yv = torch.randn(16, 3, dtype=dt), torch.randn(16, dtype=dt)
    w = torch.randn(3, 2, dtype=dt, requires_grad=True)
    a = torch.randn(2, dtype=dt, requires_grad=True)
    xi = 0.1

    def model(x, w_, a_):  # a nonlinear mix of two "ops" (columns of w) by softmax(α)
        return (torch.tanh(x @ w_) * torch.softmax(a_, 0)).sum(1)

    def l_train(w_=None, a_=None):
        return ((model(xt, w if w_ is None else w_, a if a_ is None else a_) - yt) ** 2).mean()

    def l_val(w_=None, a_=None):
        return ((model(xv, w if w_ is None else w_, a if a_ is None else a_) - yv) ** 2).mean()

    (grad,) = darts_second_order_grad([w], [a], l_train, l_val, xi=xi)

    def unrolled(a_):
        a_ = a_.detach().requires_grad_(True)
        (gw,) = torch.autograd.grad(l_train(w, a_), [w])
        return float(l_val(w.detach() - xi * gw, a_))

    h = 1e-5
    numeric = torch.tensor([(unrolled(a + h * e) - unrolled(a - h * e)) / (2 * h) for e in torch.eye(2, dtype=dt)],
                           dtype=dt)
    assert torch.allclose(grad, numeric, rtol=1e-3, atol=1e-6)
    # and it differs from the first-order gradient (the Hessian term matters here)
    (first,) = torch.autograd.grad(l_val(), [a])
    assert not torch.allclose(first, numeric, rtol=1e-3, atol=1e-6)
    # the weights are restored
    assert w.grad is None


def test_partial_channels_use_one_kth():
    torch.manual_seed(0)
    edge = MixedEdge(8, partial_k=4)
    convs = [m for m in edge.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.in_channels == 2 and c.out_channels == 2 for c in convs)
    x = torch.randn(2, 8, 4, 4)
    out = edge(x, Mix('soft', weights=torch.softmax(torch.randn(len(OPS)), 0)))
    assert out.shape == x.shape
    # un-shuffle: the last 3/4 of the channels passed through untouched
    unshuffled = channel_shuffle(out, 2)  # shuffle with C/K groups inverts a shuffle with K groups
    assert torch.equal(unshuffled[:, 2:], x[:, 2:])
    with pytest.raises(ValueError, match='divide'):
        MixedEdge(6, partial_k=4)


def test_pcdarts_edge_normalization_sums_to_one_per_node():
    module = OneShotModule('pcdarts', channels=8, num_classes=3, in_channels=1, epochs=1)
    scale = module.edge_scale()
    for j in range(1, 4):
        assert float(sum(scale[f'{i}_{j}'] for i in range(j))) == pytest.approx(1.0)


def test_gdas_is_hard_in_the_forward_pass_and_soft_in_the_backward():
    module = OneShotModule('gdas', channels=4, num_classes=3, in_channels=1, epochs=1, seed=0)
    mixes = module.mixes(training=True)
    for mix in mixes.values():
        assert mix.kind == 'hard'
        assert sorted(mix.weights.tolist()) == pytest.approx([0.0] * (len(OPS) - 1) + [1.0], abs=1e-6)
        assert int(mix.weights.argmax()) == mix.index[0]
    x = torch.randn(2, 1, 8, 8)
    module(x, mixes).sum().backward()
    assert module.alpha.grad is not None and bool((module.alpha.grad != 0).any(dim=1).all())
    # different steps sample different paths
    paths = {tuple(m.index[0] for m in module.mixes(True).values()) for _ in range(10)}
    assert len(paths) > 1


def test_single_path_of_the_supernet_is_the_frozen_network():
    torch.manual_seed(0)
    sample = dict(zip(EDGE_LABELS, ['nor_conv_3x3', 'skip_connect', 'nor_conv_1x1', 'avg_pool_3x3', 'none',
                                    'nor_conv_3x3']))
    supernet = NB201Supernet(num_cells=1, channels=4, num_classes=3, in_channels=1)
    net = supernet.load_into(NasBench201Space(num_cells=1, channels=4, num_classes=3, in_channels=1).freeze(sample),
                             sample)
    x = torch.randn(4, 1, 8, 8)
    supernet.eval()
    net.eval()
    assert torch.allclose(supernet(x, supernet.single_path(sample)), net(x), atol=1e-5)


def test_fairdarts_zero_one_loss_pushes_weights_away_from_one_half():
    module = OneShotModule('fairdarts', channels=4, num_classes=3, in_channels=1, epochs=1)
    with torch.no_grad():
        module.alpha.fill_(0.1)
    loss = module._arch_extra_loss()
    loss.backward()
    assert float(loss) < 0 and bool((module.alpha.grad < 0).all())  # gradient descent raises α > 0 further


def test_unknown_method_and_bad_arguments():
    with pytest.raises(ValueError, match='one-shot method'):
        OneShotModule('nonsense')
    with pytest.raises(ValueError, match='epochs'):
        OneShotModule('darts', epochs=0)
    with pytest.raises(ValueError, match='no Mix'):
        NB201Supernet(1, 4, 3, 1)(torch.randn(1, 1, 8, 8), {})


@pytest.mark.parametrize('method', METHODS)
def test_each_method_derives_a_valid_sample(method):
    result = search(method, dataset='digits', limit=256, epochs=1, batch_size=32, channels=4, num_candidates=6,
                    verbose=False, accelerator='cpu')
    assert set(result['sample']) == set(EDGE_LABELS) and set(result['sample'].values()) <= set(OPS)
    assert len(result['val_acc']) == 1 and 0 <= result['val_acc'][0] <= 1
    NasBench201Space(num_cells=1, channels=4, num_classes=10, in_channels=1).freeze(result['sample'])
    if method not in ('rsps', 'spos'):
        assert len(result['alpha']) == 1 and len(result['alpha'][0]) == len(EDGE_LABELS)
    else:
        assert result['evaluated'] == 6
