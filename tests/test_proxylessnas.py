"""ProxylessNAS on tiny NB201 supernets: two paths per edge, the binary-gate gradient, the
latency loss and table, derivation."""
import collections
import json

import pytest
import torch
import torch.nn.functional as F

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space
from nni_nasext.strategies.oneshot_supernet import Mix, MixedEdge, SearchCell
from nni_nasext.strategies.proxylessnas import (ProxylessModule, binary_gate_alpha_grad, load_latency_table,
                                                measure_latency_table, save_latency_table, search)

TINY = dict(channels=4, num_classes=3, in_channels=1)
# per edge: none, skip, 1x1 conv, 3x3 conv, pool (ms); the convolutions are the expensive ops
COST = dict(zip(OPS, [0.1, 0.1, 1.0, 5.0, 0.5]))
TABLE = {'unit': 'ms', 'fixed': 1.0, 'latency': {e: dict(COST) for e in EDGE_LABELS}}


def _count_op_calls(module):
    """Hooks on every op of every edge; returns (counter keyed by (cell, edge, op), handles)."""
    calls = collections.Counter()
    handles = []
    for c, cell in enumerate(module.supernet.cells):
        if isinstance(cell, SearchCell):
            for label, edge in cell.edges.items():
                for k, op in enumerate(edge.ops):
                    handles.append(op.register_forward_hook(
                        lambda m, i, o, key=(c, label, k): calls.update([key])))
    return calls, handles


def _ops_per_edge(calls):
    per_edge = collections.defaultdict(set)
    for (c, label, k), n in calls.items():
        assert n == 1  # each computed op runs once
        per_edge[(c, label)].add(k)
    return per_edge


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_only_two_paths_per_edge_in_the_arch_step_and_one_in_the_weight_step():
    module = ProxylessModule(num_cells=2, latency_table=TABLE, **TINY)
    opt = torch.optim.Adam([module.alpha], lr=0.01, betas=(0.0, 0.999))
    (xt, yt), (xv, yv) = _batch(seed=0), _batch(seed=1)
    calls, handles = _count_op_calls(module)
    n_cells = 6  # 3 stages x 2 cells
    for step in range(3):
        calls.clear()
        module._arch_step(opt, xt, yt, xv, yv)
        per_edge = _ops_per_edge(calls)
        assert len(per_edge) == n_cells * len(EDGE_LABELS)
        pairs = module._last_pairs.tolist()
        for (c, label), ops in per_edge.items():
            assert ops == set(pairs[EDGE_LABELS.index(label)])  # exactly the two sampled ops
        calls.clear()
        module.train()
        module(xt)  # the weight step's forward: one sampled path
        per_edge = _ops_per_edge(calls)
        assert len(per_edge) == n_cells * len(EDGE_LABELS) and all(len(v) == 1 for v in per_edge.values())
        # all cells share the edge decisions
        assert len({(label, min(v)) for (c, label), v in per_edge.items()}) == len(EDGE_LABELS)
    for h in handles:
        h.remove()


def test_gate_gradient_matches_a_hand_computation():
    # eq. 4 over two paths: p = (0.7, 0.3), dL/dg = (0.5, -1.0)
    # dL/da_a = 0.5*0.7*(1-0.7) + (-1)*0.3*(0-0.7) = 0.315;  dL/da_b = 0.5*0.7*(0-0.3) + (-1)*0.3*(1-0.3) = -0.315
    grad = binary_gate_alpha_grad(torch.tensor([0.5, -1.0]), torch.tensor([0.7, 0.3]))
    assert grad.tolist() == pytest.approx([0.315, -0.315])
    # the pair mix gives dL/dg_j = <dL/dm, o_j(x)> for both gates, the inactive one included
    torch.manual_seed(0)
    edge = MixedEdge(2).train()
    x, w = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    gates = torch.tensor([0.0, 1.0], requires_grad=True)
    (edge(x, Mix('pair', weights=gates, index=[3, 4])) * w).sum().backward()
    with torch.no_grad():
        expected = [float((w * edge.ops[3](x)).sum()), float((w * edge.ops[4](x)).sum())]
    assert gates.grad.tolist() == pytest.approx(expected, rel=1e-5)
    # inside the architecture step (no latency term): alpha's gradient is eq. 4 on the two
    # sampled ops of each edge and zero elsewhere; the rescaling keeps the other ops' probabilities
    module = ProxylessModule(latency_weight=0.0, **TINY)
    with torch.no_grad():
        module.alpha.copy_(torch.randn(6, 5, generator=torch.Generator().manual_seed(3)))
    before = module.alpha.detach().clone()
    (xt, yt), (xv, yv) = _batch(seed=0), _batch(seed=1)
    module._arch_step(torch.optim.Adam([module.alpha], lr=0.05, betas=(0.0, 0.999)), xt, yt, xv, yv)
    pairs, gates = module._last_pairs, module._last_gates
    assert gates.grad is not None and bool((gates.grad != 0).any())
    expected = torch.zeros(6, 5)
    for e in range(6):
        a, b = pairs[e].tolist()
        q = F.softmax(before[e, [a, b]], 0)
        gg = gates.grad[e]
        expected[e, a] = gg[0] * q[0] * (1 - q[0]) + gg[1] * q[1] * (0 - q[0])
        expected[e, b] = gg[0] * q[0] * (0 - q[1]) + gg[1] * q[1] * (1 - q[1])
    assert torch.allclose(module.alpha.grad, expected, atol=1e-7)
    p_before, p_after = F.softmax(before, -1), F.softmax(module.alpha.detach(), -1)
    for e in range(6):
        others = [k for k in range(5) if k not in pairs[e].tolist()]
        assert torch.allclose(p_after[e, others], p_before[e, others], atol=1e-6)
    assert not torch.equal(module.alpha.detach(), before)
    assert all(p.grad is None for p in module.supernet.parameters())


def _expected_latency(weight, form='add'):
    result = search(dataset='digits', limit=256, epochs=2, batch_size=32, seed=0, verbose=False, accelerator='cpu',
                    latency_table=TABLE, latency_weight=weight, latency_loss=form, arch_lr=0.05, **{'channels': 4})
    module = result['module']
    assert len(module.history['expected_latency']) == 2
    return float(module.expected_latency().detach()), F.softmax(module.alpha.detach(), -1)


def test_a_larger_latency_weight_pushes_alpha_to_cheaper_ops():
    uniform = 1.0 + 6 * sum(COST.values()) / len(OPS)
    lat0, p0 = _expected_latency(0.0)
    lat_big, p_big = _expected_latency(5.0)
    assert lat_big < lat0 and lat_big < uniform
    conv3 = OPS.index('nor_conv_3x3')
    assert float(p_big[:, conv3].mean()) < float(p0[:, conv3].mean())
    lat_mul, _ = _expected_latency(5.0, 'mul')  # the multiplicative form pushes the same way
    assert lat_mul < lat0 and lat_mul < uniform


def test_latency_table_round_trips_through_json(tmp_path):
    table = measure_latency_table(num_cells=1, channels=4, in_channels=1, image_size=8, repeats=2, inner=1, warmup=1)
    assert table['stage_shapes'] == [[4, 8, 8], [8, 4, 4], [16, 2, 2]]
    assert set(table['latency']) == set(EDGE_LABELS)
    assert all(v >= 0 for e in EDGE_LABELS for v in table['latency'][e].values()) and table['fixed'] > 0
    again = json.loads(json.dumps(table))
    assert again == table
    path = save_latency_table(table, tmp_path / 'lat.json')
    assert load_latency_table(path) == load_latency_table(table)
    m1, m2 = ProxylessModule(latency_table=again, **TINY), ProxylessModule(latency_table=str(path), **TINY)
    assert torch.equal(m1.latency, m2.latency) and m1.latency_fixed == m2.latency_fixed == pytest.approx(table['fixed'])
    assert float(m1.latency[0, OPS.index('nor_conv_3x3')]) == pytest.approx(
        sum(table['per_cell']['nor_conv_3x3']))
    # measured at construction when the image size is given
    m3 = ProxylessModule(latency_image_size=8, latency_repeats=2, **TINY)
    assert m3.latency_table['config']['image_size'] == [8, 8] and m3.expected_latency() is not None
    bad = json.loads(json.dumps(TABLE))
    del bad['latency']['2_3']['none']
    with pytest.raises(ValueError, match='2_3/none'):
        ProxylessModule(latency_table=bad, **TINY)
    bad['latency']['2_3']['none'] = -1
    with pytest.raises(ValueError, match='finite number'):
        load_latency_table(bad)
    with pytest.raises(FileNotFoundError):
        load_latency_table(tmp_path / 'missing.json')
    with pytest.raises(ValueError, match='latency_loss'):
        ProxylessModule(latency_loss='nonsense', **TINY)
    with pytest.raises(ValueError, match='one-shot method'):
        ProxylessModule('darts', **TINY)


def test_derives_a_valid_sample_with_a_table_measured_on_the_fly():
    result = search(dataset='digits', limit=256, epochs=1, batch_size=32, channels=4, verbose=False,
                    accelerator='cpu', latency_repeats=2)
    sample, module = result['sample'], result['module']
    assert set(sample) == set(EDGE_LABELS) and set(sample.values()) <= set(OPS)
    assert sample == {e: OPS[int(module.alpha[i].argmax())] for i, e in enumerate(EDGE_LABELS)}
    NasBench201Space(num_cells=1, channels=4, num_classes=10, in_channels=1).freeze(sample)
    assert module.latency_table['config']['image_size'] == [8, 8]  # the digits' size, from the first batch
    assert len(result['alpha']) == 1 and len(result['alpha'][0]) == 6 and len(result['val_acc']) == 1
