import json
import math
import pickle
import random

import pytest
import torch
from nni.mutable import Categorical, CategoricalMultiple, Numerical

from nni_nasext.adapters import SearcherStrategy, SearcherTuner
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch
from nni_nasext.strategies.searchers.reinforce import ReinforceController
from test_searchers import drive as drive_searcher

from test_searchers import SPEC, score

TARGET = 'nor_conv_3x3'

MIXED = SpaceSpec.from_space({
    'k': Categorical([3, 5, 7], label='k'),
    'in': CategoricalMultiple([0, 1, 2], n_chosen=2, label='in'),
    'any': CategoricalMultiple(['a', 'b', 'c'], label='any'),
    'lr': Numerical(1e-4, 1e-1, log_distributed=True, label='lr'),
    'd': Numerical(0, 0.5, quantize=0.1, label='d'),
})


def count_target(sample):
    """Toy objective: how many edges use the rewarded op (0..6)."""
    return float(sum(v == TARGET for v in sample.values()))


def drive(searcher, n, objective=count_target, **kwargs):
    return drive_searcher(searcher, n, objective, **kwargs)


def target_probs(ctrl):
    idx = SPEC.dims['0_1'].values.index(TARGET)
    return [p[0][idx] for p in ctrl.probabilities().values()]


def test_policy_learns_the_rewarded_op():
    ctrl = ReinforceController(learning_rate=5e-3, seed=0).configure(SPEC)
    before = target_probs(ctrl)
    assert all(abs(p - 0.2) < 0.05 for p in before)  # near-uniform start
    asked = drive(ctrl, 150)
    after = target_probs(ctrl)
    assert ctrl.num_updates == 30 and ctrl.baseline is not None
    assert min(after) > 0.25 and sum(after) / 6 > 0.6  # from 0.2 each (0.55 / 0.90 with this seed)
    first, last = asked[:30], asked[-30:]
    assert sum(map(count_target, last)) > 2 * sum(map(count_target, first))
    assert all(v == TARGET for v in ctrl.greedy_sample().values())


def test_default_settings_move_the_policy_the_right_way():
    ctrl = ReinforceController(seed=1).configure(SPEC)
    before = sum(target_probs(ctrl)) / 6
    drive(ctrl, 150)
    assert sum(target_probs(ctrl)) / 6 > before + 0.003  # slow (lr 6e-4, 30 updates) but upward


def test_same_seed_same_search_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = drive(ReinforceController(seed=7), 60, objective=score)
    assert torch.equal(torch.get_rng_state(), before)
    b = drive(ReinforceController(seed=7), 60, objective=score)
    c = drive(ReinforceController(seed=8), 60, objective=score)
    assert a == b and a != c


def test_state_dict_resumes_identically():
    a = ReinforceController(batch_size=4, learning_rate=3e-3, seed=3)
    drive(a, 22)  # mid-batch: 2 rewards pending
    assert len(a._batch) == 2
    state = a.state_dict()
    for copy in (pickle.loads(pickle.dumps(state)), json.loads(json.dumps(state))):
        b = ReinforceController(batch_size=4, learning_rate=3e-3, seed=99)
        b.load_state_dict(copy)  # no configure: the space comes from the state
        assert b.space == SPEC and b.baseline == a.baseline and b.num_updates == a.num_updates
        b.configure(SPEC)  # what the adapters do next: must keep the loaded controller
        assert b.num_updates == a.num_updates
    c = ReinforceController(batch_size=4, learning_rate=3e-3, seed=42).configure(SPEC)
    c.load_state_dict(state)
    for _ in range(15):
        sa, sb, sc = a.ask(), b.ask(), c.ask()
        assert sa == sb == sc
        for ctrl in (a, b, c):
            ctrl.tell(sa, count_target(sa))
    assert a.probabilities() == b.probabilities() == c.probabilities()


def test_asynchronous_tells_in_any_order():
    ctrl = ReinforceController(batch_size=3, seed=0).configure(SPEC)
    pending = [ctrl.ask() for _ in range(7)]
    for s in reversed(pending):
        ctrl.tell(s, count_target(s))
    assert ctrl.num_updates == 2 and len(ctrl._batch) == 1 and not ctrl._asked


def test_failed_trials_do_not_crash_or_update():
    ctrl = ReinforceController(batch_size=2, seed=0).configure(SPEC)
    probs = ctrl.probabilities()
    for i in range(10):
        s = ctrl.ask()
        ctrl.tell(s, None if i % 2 else float('nan'))
    assert ctrl.num_failed == 10 and ctrl.num_updates == 0 and ctrl.baseline is None
    assert ctrl.probabilities() == probs and not ctrl._batch and not ctrl._asked
    assert ctrl.best() is None
    asked = drive(ctrl, 30, fail=lambda i, s: i % 3 == 0)
    assert ctrl.num_failed == 20 and ctrl.num_updates == 10 and len(asked) == 30


def test_mixed_space_samples_are_valid():
    ctrl = ReinforceController(learning_rate=5e-3, seed=0)
    objective = lambda s: s['k'] + len(s['any']) - 10 * abs(math.log10(s['lr']) + 2) + s['d']  # noqa: E731
    asked = drive(ctrl, 120, objective=objective, spec=MIXED)
    for s in asked:
        MIXED.validate(s)
        assert len(s['in']) == 2 and s['in'] == sorted(s['in'])
    assert {len(s['any']) for s in asked} == {0, 1, 2, 3}
    assert all(abs(s['d'] * 10 - round(s['d'] * 10)) < 1e-9 for s in asked) and len({s['d'] for s in asked}) <= 6
    lr_bins = sorted({s['lr'] for s in asked})
    assert lr_bins[0] == pytest.approx(1e-4) and lr_bins[-1] == pytest.approx(0.1) and len(lr_bins) <= 10
    probs = ctrl.probabilities()
    assert len(probs['in']) == 2 and len(probs['any']) == 3 and all(len(p) == 2 for p in probs['any'])
    assert len(probs['lr'][0]) == 10 and len(probs['d'][0]) == 6
    assert 0 in [p for p in probs['in'][1]]  # the first pick is masked out of the second
    assert sum(map(objective, asked[-30:])) > sum(map(objective, asked[:30])) + 30  # +1 per sample on average


def test_told_samples_it_never_asked_are_learned_from():
    ctrl = ReinforceController(batch_size=4, seed=0).configure(MIXED)
    other = RandomSearch(seed=1).configure(MIXED)
    for _ in range(8):
        s = other.ask()
        ctrl.tell(s, 1.0 + len(s['any']))
    assert ctrl.num_updates == 2 and ctrl.num_ignored == 0
    off_grid = {'k': 5, 'in': [2, 0], 'any': ['c'], 'lr': 3e-3, 'd': 0.2}  # any order, any value in range
    assert ctrl._actions_of(off_grid)[1] == [2, 0]
    ctrl.tell(off_grid, 2.0)
    ctrl.tell({'k': 4, 'in': [0, 1], 'any': [], 'lr': 1e-3, 'd': 0.}, 3.0)  # not in the space: ignored
    assert ctrl.num_ignored == 1 and len(ctrl._batch) == 1 and len(ctrl.history) == 10
    ctrl.tell({'k': 7.0, 'in': [1, 2], 'any': ['a'], 'lr': 0.1, 'd': 0.5}, 1.0)  # 7.0 == 7: in the space
    ctrl.tell({'k': {3}, 'in': [], 'any': [], 'lr': 1., 'd': 0.}, 1.0)  # not even JSON: ignored, no crash
    ctrl.tell('not a sample', 1.0)
    assert ctrl.num_ignored == 3 and ctrl.num_updates == 2 and len(ctrl._batch) == 2


def test_resume_through_tuner_import_data():
    from nni_nasext.adapters.tuner import ReinforceControllerTuner  # registered as NasextReinforce
    tuner = ReinforceControllerTuner(batch_size=2, seed=0)
    assert isinstance(tuner, SearcherTuner) and isinstance(tuner.searcher, ReinforceController)
    tuner.update_search_space(json.loads(json.dumps(SPEC.to_json())))
    tuner.import_data([{'parameter': SPEC.random(random.Random(i)), 'value': {'default': float(i)}} for i in range(6)])
    assert tuner.searcher.num_updates == 3 and tuner.searcher.num_asked == 0
    SPEC.validate(tuner.generate_parameters(0))


def test_bad_arguments():
    for kwargs in [dict(batch_size=0), dict(hidden_size=0), dict(num_layers=0), dict(learning_rate=0),
                   dict(baseline_decay=1.0), dict(baseline_decay=-0.1), dict(entropy_weight=-1),
                   dict(grad_clip=0), dict(temperature=0), dict(tanh_constant=-2.5), dict(num_bins=1)]:
        with pytest.raises(ValueError):
            ReinforceController(**kwargs)
    with pytest.raises(RuntimeError, match='configure'):
        ReinforceController().ask()
    with pytest.raises(ValueError, match='finite'):
        ReinforceController().configure(SpaceSpec.from_json({'x': {'_type': 'uniform', '_value': [0, math.inf]}}))
    state = ReinforceController(seed=0).configure(SPEC).state_dict()
    with pytest.raises(ValueError, match='another search space'):
        ReinforceController().configure(MIXED).load_state_dict(state)


def test_shaping_options_and_presets():
    ctrl = ReinforceController(temperature=5.0, tanh_constant=2.5, seed=0)
    drive(ctrl, 20)
    for p in ctrl.probabilities().values():
        assert max(p[0]) < 0.5
    normal = SpaceSpec.from_json({'w': {'_type': 'qnormal', '_value': [1.0, 0.5, 0.25]}})
    s = drive(ReinforceController(seed=0), 10, objective=lambda s: s['w'], spec=normal)
    assert all(-0.01 <= x['w'] <= 2.01 and abs(x['w'] / 0.25 - round(x['w'] / 0.25)) < 1e-9 for x in s)
    preset = ReinforceController.nb201_preset(seed=0)
    assert (preset.learning_rate, preset.baseline_decay, preset.batch_size) == (1e-3, 0.9, 1)


def test_through_nni_strategy_adapter_on_nb201_lookup(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(ReinforceController(seed=0))
    engine = simulate_search(strategy, ev, budget=3000)
    searcher = strategy.searcher
    n = len(searcher.history)
    assert n == len(list(engine.list_models())) >= 10 and searcher.num_failed == 0
    assert searcher.num_updates == n // 5
    state = strategy.state_dict()
    again = SearcherStrategy(ReinforceController(seed=1))
    again.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert again.searcher.ask() == searcher.ask()
