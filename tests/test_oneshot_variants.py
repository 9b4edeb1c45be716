"""DARTS-collapse remedies: Hessian eigenvalue, DARTS-ES rule and roll-back, DARTS+ rule,
P-DARTS skip dropout and skip limit, ASAP pruning, DARTS-PT selection, and a tiny search each."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
from nni_nasext.strategies.oneshot import search
from nni_nasext.strategies.oneshot_supernet import Mix, MixedEdge
from nni_nasext.strategies.oneshot_variants import (
    VARIANT_METHODS, AsapModule, PDartsModule, RobustDartsModule, SkipDropout, asap_prune, darts_plus_stop,
    dominant_hessian_eigenvalue, eigenvalue_early_stop, limit_skip_connections, perturbation_select, search_variant)

TINY = dict(dataset='digits', limit=256, batch_size=32, channels=4, verbose=False, accelerator='cpu')


def test_power_iteration_finds_the_largest_eigenvalue_of_a_quadratic():
    """L(x) = ½ xᵀAx + bᵀx has Hessian A everywhere; x is split over two tensors."""
    torch.manual_seed(0)
    dt = torch.float64
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=dt))
    a = q @ torch.diag(torch.tensor([4.0, 2.5, -1.0, 0.3, 0.0], dtype=dt)) @ q.T
    b = torch.randn(5, dtype=dt)
    x1 = torch.randn(2, dtype=dt, requires_grad=True)
    x2 = torch.randn(3, dtype=dt, requires_grad=True)

    def loss():
        x = torch.cat([x1, x2])
        return 0.5 * x @ a @ x + b @ x

    value = dominant_hessian_eigenvalue(loss, [x1, x2], iters=200, seed=1, tol=1e-12)
    assert value == pytest.approx(4.0, rel=1e-6)
    assert value == pytest.approx(float(torch.linalg.eigvalsh(a).max()), rel=1e-6)
    assert x1.grad is None and x2.grad is None
    # a loss linear in the parameters has a zero Hessian
    assert dominant_hessian_eigenvalue(lambda: (b[:2] * x1).sum(), [x1]) == 0.0


def test_early_stop_rule_on_a_synthetic_eigenvalue_sequence():
    ev = [1.0, 1.0, 1.1, 1.2, 1.3, 1.8, 2.5, 4.0]
    # k = 2, window 2: i=3: 1/1.15 = .87; i=4: 1.05/1.25 = .84; i=5: 1.15/1.55 = .742 < .75
    fired = [eigenvalue_early_stop(ev[:i + 1], k=2, window=2) for i in range(len(ev))]
    assert fired[:5] == [None] * 5 and fired[5] == 3
    # a flat sequence never stops; the paper's k=5 needs two full windows
    assert all(eigenvalue_early_stop([2.0] * n, k=2) is None for n in range(1, 12))
    assert eigenvalue_early_stop(ev, k=5) is None and eigenvalue_early_stop([1.0] * 5 + [9.0] * 5, k=5) == 4


class _ScriptedEigen(RobustDartsModule):
    """λ_max replaced by a scripted sequence (the training itself is real)."""
    SEQ = [1.0, 1.0, 1.1, 1.2, 1.3, 1.8, 2.5, 4.0]

    def hessian_eigenvalue(self, batches=None):
        return self.SEQ[len(self.history['eigenvalue'])]


def test_rdarts_stops_at_the_right_epoch_and_rolls_back_alpha():
    result = search('rdarts', epochs=8, es_k=2, es_window=2, module_cls=_ScriptedEigen, **TINY)
    module = result['module']
    h = module.history
    assert h['eigenvalue'] == _ScriptedEigen.SEQ[:6]
    assert result['epochs_run'] == 6 and h['stopped_at'] == 5 and h['rollback_epoch'] == 3
    assert h['stop_reason'] == 'eigenvalue'
    assert torch.equal(module.alpha.detach(), module.alpha_snapshots[3])
    assert not torch.equal(module.alpha_snapshots[3], module.alpha_snapshots[5])
    expected = {label: OPS[int(torch.tensor(h['alpha'][3][e]).argmax())] for e, label in enumerate(EDGE_LABELS)}
    assert result['sample'] == expected


def test_darts_plus_rule():
    assert darts_plus_stop([0, 2], [1, 2], max_skips=2, min_epochs=1) == 'skip_connections'
    assert darts_plus_stop([2], [1], max_skips=2, min_epochs=1) is None  # not after the first epoch
    assert darts_plus_stop([0, 1, 1, 1], ['a', 'b', 'b', 'b'], max_skips=2, patience=2) == 'stable_ranking'
    assert darts_plus_stop([0, 1, 1, 1], ['a', 'b', 'a', 'b'], max_skips=2, patience=2) is None


def test_skip_limit_keeps_the_two_strongest_skips_and_takes_next_best_ops():
    # columns: none, skip, conv1x1, conv3x3, pool
    s = torch.tensor([[0.1, 0.5, 0.2, 0.15, 0.05],   # skip .5: kept
                      [0.1, 0.1, 0.6, 0.1, 0.1],     # conv1x1
                      [0.05, 0.4, 0.1, 0.15, 0.3],   # skip .4: the weakest, -> pool (.3)
                      [0.1, 0.6, 0.1, 0.1, 0.1],     # skip .6: kept
                      [0.1, 0.1, 0.1, 0.6, 0.1],     # conv3x3
                      [0.7, 0.1, 0.1, 0.05, 0.05]])  # none
    assert list(limit_skip_connections(s, None).values()).count('skip_connect') == 3
    cell = limit_skip_connections(s, 2)
    assert cell == dict(zip(EDGE_LABELS, ['skip_connect', 'nor_conv_1x1', 'avg_pool_3x3', 'skip_connect',
                                          'nor_conv_3x3', 'none']))
    module = PDartsModule(channels=4, num_classes=3, in_channels=1, epochs=1)
    with torch.no_grad():
        module.alpha.copy_(s.log())
    assert module.derive() == cell


def test_skip_dropout_zeroes_at_rate_one_and_is_identity_at_rate_zero():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 5)
    drop = SkipDropout(nn.Identity(), 1.0).train()
    assert torch.equal(drop(x), torch.zeros_like(x))
    assert torch.equal(drop.eval()(x), x)  # no dropout outside training
    assert torch.equal(SkipDropout(nn.Identity(), 0.0).train()(x), x)
    # inside the supernet: the skip path of every edge is wrapped
    module = PDartsModule(channels=4, num_classes=3, in_channels=1, epochs=1).train()
    edge = next(m for m in module.supernet.modules() if isinstance(m, MixedEdge))
    only_skip = Mix('soft', weights=F.one_hot(torch.tensor(OPS.index('skip_connect')), len(OPS)).float())
    module.set_skip_dropout(1.0)
    assert torch.equal(edge(x, only_skip), torch.zeros_like(x))
    module.set_skip_dropout(0.0)
    assert torch.equal(edge(x, only_skip), x)


def test_asap_never_prunes_the_last_op_and_derives_from_the_remaining():
    w = torch.full((6, 5), 0.2)
    w[0] = torch.tensor([0.05, 0.4, 0.3, 0.15, 0.1])
    mask = torch.ones(6, 5, dtype=torch.bool)
    new = asap_prune(w, mask, threshold=2.0)  # above every weight: one op per edge survives
    assert new.sum(1).tolist() == [1] * 6 and bool(new[0, 1])
    assert asap_prune(w, mask, 0.12)[0].tolist() == [False, True, True, True, False]
    mask[1, 1:] = False  # a lone op is never pruned
    assert asap_prune(w, mask, 2.0)[1].tolist() == [True, False, False, False, False]

    module = AsapModule(channels=4, num_classes=3, in_channels=1, epochs=1)
    with torch.no_grad():
        module.alpha.copy_(torch.log(torch.tensor([0.05, 0.45, 0.3, 0.15, 0.05])).repeat(6, 1))
        module.op_mask[:, 1] = False  # skip_connect pruned everywhere: conv1x1 is the strongest left
    assert set(module.derive().values()) == {'nor_conv_1x1'}
    assert float(module.op_strengths()[:, 1].max()) == 0.0
    module.schedule(1.0)
    assert module.tau == pytest.approx(0.05) and module.threshold == pytest.approx(0.3)
    pruned = module.prune()  # at T = 0.05 the weaker ops fall under 0.3
    assert ('0_1', 'nor_conv_3x3') in pruned and module.op_mask.sum(1).min() >= 1
    assert set(module.derive().values()) == {'nor_conv_1x1'}


class _Toy(nn.Module):
    """logits = Σ_e Σ_k w_ek · x W_ek on 4-d inputs; only (edge 2, conv1x1) carries the signal."""

    def __init__(self, true_w):
        super().__init__()
        self.w = nn.Parameter(0.01 * torch.randn(6, 5, 4, 3))
        with torch.no_grad():
            self.w[2, OPS.index('nor_conv_1x1')] = 5 * true_w
            self.w[2, OPS.index('skip_connect')] = 0.0  # the decoy: strongest α, no effect

    def forward(self, x, mixes, edge_scale=None):
        w = torch.stack([mixes[label].weights for label in EDGE_LABELS])
        return torch.einsum('ek,nd,ekdc->nc', w, x, self.w)


class _ToyModule:
    def __init__(self, supernet, strengths):
        self.supernet, self._s = supernet, strengths

    def op_strengths(self):
        return self._s


def test_darts_pt_keeps_the_essential_op_not_the_largest_alpha():
    torch.manual_seed(0)
    true_w = torch.randn(4, 3)
    x = torch.randn(192, 4)
    y = (x @ true_w).argmax(1)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 192, 64)]
    strengths = torch.full((6, 5), 0.2)
    strengths[2] = torch.tensor([0.1, 0.5, 0.15, 0.15, 0.1])  # α says skip_connect on edge 1_2
    module = _ToyModule(_Toy(true_w), strengths)
    found = perturbation_select(module, batches, seed=0)
    essential = EDGE_LABELS[2]
    assert found['sample'][essential] == 'nor_conv_1x1'
    assert found['scores'][essential]['nor_conv_1x1'] < 0.6 < found['scores'][essential]['skip_connect']
    assert sorted(found['order']) == sorted(EDGE_LABELS)
    assert set(found['sample']) == set(EDGE_LABELS)
    # with fine-tuning between edges, and the same seed -> the same order
    tuned = perturbation_select(module, batches, tune_batches=batches, tune_steps=2, tune_lr=0.01, seed=0)
    assert tuned['order'] == found['order'] and tuned['sample'][essential] == 'nor_conv_1x1'


def test_variant_modules_reject_single_path_methods_and_unknown_names():
    with pytest.raises(ValueError, match='one-shot method'):
        RobustDartsModule('rsps')
    with pytest.raises(ValueError, match='one-shot method'):
        AsapModule('darts')
    with pytest.raises(ValueError, match='DARTS variant'):
        search_variant('nonsense')


@pytest.mark.parametrize('method', VARIANT_METHODS)
def test_each_variant_derives_a_valid_sample(method):
    extra = {'rdarts': dict(es_k=1, hessian_iters=5), 'darts_plus': dict(patience=1),
             'darts_pt': dict(tune_steps=1, kept_batches=2), 'pdarts': {}, 'asap': {}}[method]
    result = search_variant(method, epochs=2, **TINY, **extra)
    assert set(result['sample']) == set(EDGE_LABELS) and set(result['sample'].values()) <= set(OPS)
    NasBench201Space(num_cells=1, channels=4, num_classes=10, in_channels=1).freeze(result['sample'])
    assert 1 <= result['epochs_run'] <= 2 and len(result['alpha']) == result['epochs_run']
    h = result['module'].history
    if method == 'rdarts':
        assert len(h['eigenvalue']) == result['epochs_run'] and all(map(torch.isfinite, torch.tensor(h['eigenvalue'])))
    if method == 'pdarts':
        assert h['skip_dropout'] == pytest.approx([0.4, 0.4 * 2.718281828 ** -0.2])
        assert list(result['sample'].values()).count('skip_connect') <= 2
    if method == 'asap':
        mask = torch.tensor(h['mask'][-1])
        assert mask.sum(1).min() >= 1
        assert all(mask[e, OPS.index(op)] for e, op in enumerate(result['sample'].values()))
    if method == 'darts_pt':
        assert h['pt']['sample'] == result['sample']
