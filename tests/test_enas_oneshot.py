"""ENAS on tiny NB201 supernets: the LSTM controller, REINFORCE with a moving-average baseline,
exact marginals and mode, a tiny search."""
import collections
import math

import pytest
import torch

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
from nni_nasext.strategies.enas import EnasController, EnasModule, Reinforce, search
from nni_nasext.strategies.oneshot_supernet import SearchCell

CONV3 = OPS.index('nor_conv_3x3')


def test_reinforce_on_a_toy_reward_raises_that_ops_probability():
    controller = EnasController(seed=0)
    objective = Reinforce(baseline_decay=0.99, entropy_weight=1e-4)
    opt = torch.optim.Adam(controller.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-3)
    gen = torch.Generator().manual_seed(0)
    before = controller.marginals()
    assert float(before[0, CONV3]) == pytest.approx(0.2, abs=0.05)  # close to uniform at the start
    for _ in range(80):
        opt.zero_grad()
        actions, log_prob, entropy = controller.sample(gen)
        objective.loss(log_prob, entropy, 1.0 if actions[0] == CONV3 else 0.0).backward()
        opt.step()
    after = controller.marginals()
    assert float(after[0, CONV3]) > 0.6 > float(before[0, CONV3])
    assert controller.mode()[0] == CONV3
    assert 0 < float(objective.baseline) < 1


def test_baseline_is_the_exponential_moving_average():
    objective = Reinforce(baseline_decay=0.9, entropy_weight=0.5)
    assert math.isnan(float(objective.baseline))
    assert objective.update_baseline(1.0) == 0.0 and float(objective.baseline) == pytest.approx(1.0)  # starts at R_1
    assert objective.update_baseline(0.0) == pytest.approx(-1.0)  # advantage against the old baseline
    assert float(objective.baseline) == pytest.approx(0.9)         # 0.9 * 1 + 0.1 * 0
    log_prob, entropy = torch.tensor(-2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    loss = objective.loss(log_prob, entropy, 0.5)  # advantage 0.5 - 0.9 = -0.4
    assert float(objective.baseline) == pytest.approx(0.9 * 0.9 + 0.1 * 0.5)
    assert float(loss.detach()) == pytest.approx(-(-0.4) * -2.0 - 0.5 * 3.0)
    loss.backward()
    assert float(log_prob.grad) == pytest.approx(0.4) and float(entropy.grad) == pytest.approx(-0.5)
    # the default decay is the paper's 0.99 and the baseline is part of the module's state
    module = EnasModule(channels=4, num_classes=3, in_channels=1)
    assert module.reinforce.baseline_decay == 0.99 and 'reinforce.baseline' in module.state_dict()
    with pytest.raises(ValueError, match='baseline_decay'):
        Reinforce(baseline_decay=1.0)


def test_controller_distribution_is_enumerated_exactly():
    controller = EnasController(seed=1, tanh_constant=2.5, temperature=1.0)
    with torch.no_grad():
        controller.head.weight.mul_(20)  # a peaked policy, so that the mode is clear
        actions, log_probs = controller.enumerate()
        assert actions.shape == (len(OPS) ** len(EDGE_LABELS), len(EDGE_LABELS))
        assert float(log_probs.exp().sum()) == pytest.approx(1.0, abs=1e-5)
        for i in (0, 777, 15624):
            assert float(controller.evaluate(actions[i].tolist())[0]) == pytest.approx(float(log_probs[i]), abs=1e-5)
        mode = controller.mode()
        assert float(controller.evaluate(mode)[0]) == pytest.approx(float(log_probs.max()), abs=1e-6)
        marginals = controller.marginals()
        assert torch.allclose(marginals.sum(1), torch.ones(len(EDGE_LABELS)), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        counts = collections.Counter(a for _ in range(300) for a in enumerate(controller.sample(gen)[0]))
    empirical = torch.tensor([[counts[(e, k)] / 300 for k in range(len(OPS))] for e in range(len(EDGE_LABELS))])
    assert torch.allclose(empirical, marginals, atol=0.1)
    # tanh clipping bounds the logits
    z = controller.logits(torch.randn(4, 64) * 100).detach()
    assert float(z.abs().max()) <= 2.5 + 1e-6
    with pytest.raises(ValueError, match='temperature'):
        EnasController(temperature=0)


def test_one_step_samples_single_paths_and_updates_only_the_controller():
    module = EnasModule(channels=4, num_classes=3, in_channels=1, num_cells=1, controller_samples=2)
    calls = collections.Counter()
    for c, cell in enumerate(module.supernet.cells):
        if isinstance(cell, SearchCell):
            for label, edge in cell.edges.items():
                for k, op in enumerate(edge.ops):
                    op.register_forward_hook(lambda m, i, o, key=(c, label): calls.update([key]))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    module.train()
    module(x)
    assert set(calls.values()) == {1}  # one op per edge per cell: a single sampled path
    ctrl_before = [p.detach().clone() for p in module.controller.parameters()]
    weights_before = [p.detach().clone() for p in module.supernet.parameters()]
    opt = torch.optim.Adam(module.arch_parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-3)
    module._arch_step(opt, x, y, x, y)
    module._arch_step(opt, x, y, x, y)
    assert len(module._rewards) == 4 and all(0 <= r <= 1 for r in module._rewards)
    assert any(not torch.equal(a, b) for a, b in zip(ctrl_before, module.controller.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(weights_before, module.supernet.parameters()))
    assert all(p.grad is None for p in module.supernet.parameters())
    with pytest.raises(ValueError, match='one-shot method'):
        EnasModule('darts')


def test_tiny_search_on_digits_derives_a_valid_sample():
    result = search(dataset='digits', limit=256, epochs=2, batch_size=32, channels=4, verbose=False,
                    accelerator='cpu')
    sample, module = result['sample'], result['module']
    assert set(sample) == set(EDGE_LABELS) and set(sample.values()) <= set(OPS)
    assert sample == module.sample_of(module.controller.mode())
    NasBench201Space(num_cells=1, channels=4, num_classes=10, in_channels=1).freeze(sample)
    assert len(result['val_acc']) == 2 and len(result['alpha']) == 2
    for alpha in result['alpha']:
        assert torch.allclose(torch.tensor(alpha).sum(1), torch.ones(len(EDGE_LABELS)), atol=1e-5)
    assert len(module.history['reward']) == 2 and all(0 <= r <= 1 for r in module.history['reward'])
    # the paper's derivation: the best of N sampled cells by supernet accuracy
    result = search(dataset='digits', limit=256, epochs=1, batch_size=32, channels=4, verbose=False,
                    accelerator='cpu', derive_samples=4)
    assert set(result['sample']) == set(EDGE_LABELS) and set(result['sample'].values()) <= set(OPS)
    assert len(result['module']._reward_batches) > 0
