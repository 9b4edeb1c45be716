"""ProxylessNAS with the latency predictor (issue 18, part 4): a supernet's latency table built
from :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor` agrees with the predictor on every
frozen network, and a hinge-loss search derives an architecture within its target.

Operation timings are replaced by a deterministic function of the operation, so the checks are
exact and do not depend on this machine's load."""
import math
import random

import pytest
import torch

from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.hardware.latency_predictor import LatencyPredictor
from nni_nasext.search_spaces.mobile import ProxylessSpace
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.oneshot import build_supernet, method_class, search
from nni_nasext.strategies.oneshot.data import first_batch, recipe_for
from nni_nasext.strategies.oneshot.latency import measure_latency_table, table_latency
from nni_nasext.strategies.oneshot.proxyless import fit_to_budget

SIZE = 32


def fake_profile(module, shape):
    """A deterministic 'latency' (ms): grows with the operation's weights and its input size."""
    weights = sum(p.numel() for p in module.parameters(recurse=False))
    return 1e-4 * (1 + weights) * math.prod(shape[2:]) ** 0.5 + 1e-3


def predictor(coef=(1.3, 0.002, 0.05)):
    p = LatencyPredictor((1, 3, SIZE, SIZE))
    p._profile = fake_profile
    p.coef = coef
    return p


def evaluator(**kw):
    return ImageClassification('digits', max_epochs=1, batch_size=16, limit=64, image_size=SIZE, in_channels=3,
                               **kw)


def space():
    return ProxylessSpace(num_classes=10, width_mult=0.25, resolution=SIZE)


def module_and_batch(sp, ev):
    cls = method_class('proxyless')
    supernet = build_supernet(sp, 'proxyless', weighted=cls.weighted, partial_k=cls.partial_k)
    recipe = recipe_for(ev, supernet.model)
    return cls(recipe.module, supernet, seed=0, metric=recipe.metric, mode=recipe.mode), first_batch(recipe.train)


def test_the_predictor_table_agrees_with_the_predictor_on_frozen_networks():
    sp = space()
    module, batch = module_and_batch(sp, evaluator())
    pred = predictor()
    table = measure_latency_table(module, batch, batch_size=1, predictor=pred)
    assert table['config']['source'] == 'predictor' and table['config']['predictor_coef'] == list(pred.coef)
    rng = random.Random(0)
    spec = SpaceSpec.from_space(space())
    samples = [spec.random(rng) for _ in range(8)]
    for s in samples:
        from_table = table['fixed'] + table_latency(module.supernet, table, s)
        assert from_table == pytest.approx(pred.predict(space().freeze(s)), rel=1e-6)
    # a deeper stage costs more, a bigger op costs more
    deep, shallow = {**samples[0], 's3_depth': 4}, {**samples[0], 's3_depth': 1}
    assert table_latency(module.supernet, table, deep) > table_latency(module.supernet, table, shallow)
    ops = module.supernet.decisions['s4_i0'].candidates
    assert table['latency']['s4_i0'][ops.index('k7e6')] > table['latency']['s4_i0'][ops.index('k3e3')]


def test_a_predictor_for_another_input_is_refused():
    module, batch = module_and_batch(space(), evaluator())
    wrong = LatencyPredictor((1, 3, SIZE + 8, SIZE + 8))
    with pytest.raises(ValueError, match='inputs'):
        measure_latency_table(module, batch, batch_size=1, predictor=wrong)


def test_the_predictor_survives_a_round_trip_through_json(tmp_path):
    import json
    p = predictor()
    p.table = {'Conv2d(3, 8)@(1, 3, 8, 8)': 0.25}
    path = tmp_path / 'pred.json'
    path.write_text(json.dumps(p.state_dict()))
    q = LatencyPredictor.from_state_dict(str(path))
    assert q.table == p.table and q.coef == tuple(p.coef) and q.input_shape == p.input_shape
    with pytest.raises(ValueError, match='input_shape'):
        LatencyPredictor.from_state_dict({'table': {}})


def test_fit_to_budget_switches_the_cheapest_decision_first_and_meets_the_budget():
    from nni_style_spaces import RepeatNet
    sn = build_supernet(RepeatNet(), 'proxyless')
    table = {'fixed': 1.0, 'latency': {'ch1': [1.0, 3.0], 'kernel': [0.0, 2.0], 'rep': [1.0, 2.0, 3.0, 4.0]}}
    cands = {k: sn.decisions[k].candidates for k in table['latency']}
    top = {k: c[-1] for k, c in cands.items()}
    assert 1.0 + table_latency(sn, table, top) == pytest.approx(10.0)
    # 'kernel' is nearly indifferent (its switch loses little log-probability), 'rep' is sure
    logp = {'ch1': torch.log(torch.tensor([0.2, 0.8])), 'kernel': torch.log(torch.tensor([0.45, 0.55])),
            'rep': torch.log(torch.tensor([0.01, 0.01, 0.01, 0.97]))}
    out = fit_to_budget(sn, table, logp, top, 8.0)
    assert 1.0 + table_latency(sn, table, out) <= 8.0
    assert out['kernel'] == cands['kernel'][0] and out['rep'] == top['rep']  # the cheap switch, not the sure one
    assert fit_to_budget(sn, table, logp, top, 20.0) == top                  # already within: unchanged
    floor = fit_to_budget(sn, table, logp, top, 0.5)                         # out of reach: the cheapest sample
    assert 1.0 + table_latency(sn, table, floor) == pytest.approx(1.0 + 1.0 + 0.0 + 1.0)


def test_a_hinge_search_with_the_predictor_derives_within_its_target():
    sp = space()
    module, batch = module_and_batch(space(), evaluator())
    pred = predictor()
    table = measure_latency_table(module, batch, batch_size=1, predictor=pred)
    spec = SpaceSpec.from_space(sp)
    lo = min(pred.predict(sp.freeze(spec.random(random.Random(i)))) for i in range(4))
    target = 0.9 * lo  # below every random network: only the derivation's trade-down reaches it
    res = search(sp, evaluator(), 'proxyless', epochs=1, seed=0, verbose=False, latency_predictor=pred.state_dict(),
                 latency_loss='hinge', latency_target=target, latency_weight=1.0, arch_lr=0.01)
    assert table['fixed'] + table_latency(module.supernet, table, res.sample) <= target
    assert res.history['derived_latency'][-1] <= target


def test_derive_within_target_needs_a_target():
    sp = space()
    with pytest.raises(ValueError, match='latency_target'):
        search(sp, evaluator(), 'proxyless', epochs=1, verbose=False, derive_within_target=True)
