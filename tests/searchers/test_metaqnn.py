import json
import math
import pickle

import pytest
from nni.mutable import Categorical, CategoricalMultiple, Numerical

from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch
from nni_nasext.strategies.searchers.metaqnn import MetaQNN
from nni_nasext.searcher import SpaceExhausted
from test_searchers import drive as drive_searcher

SPEC = SpaceSpec.from_space(QuickstartSpace())
TARGET = 'nor_conv_3x3'
TWO = SpaceSpec.from_space({'a': Categorical([0, 1], label='a'), 'b': Categorical(['x', 'y'], label='b')})
MIXED = SpaceSpec.from_space({
    'k': Categorical([3, 5, 7], label='k'),
    'in': CategoricalMultiple([0, 1, 2, 3], n_chosen=2, label='in'),
    'any': CategoricalMultiple(['a', 'b', 'c'], label='any'),
    'lr': Numerical(1e-4, 1e-1, log_distributed=True, label='lr'),
    'd': Numerical(0, 0.5, quantize=0.1, label='d'),
})


def target_share(sample):
    """Toy objective in [0, 1]: the share of edges that use the rewarded op."""
    return sum(v == TARGET for v in sample.values()) / 6


def drive(searcher, n, objective=target_share, **kwargs):
    return drive_searcher(searcher, n, objective, **kwargs)


def test_bellman_update_matches_the_closed_form():
    alpha, gamma, q0 = 0.1, 0.9, 0.5
    m = MetaQNN(alpha=alpha, gamma=gamma, q_init=q0, replay_size=1, reward_scale=0.01, seed=0).configure(TWO)
    m.tell({'a': 1, 'b': 'y'}, 80.)  # one memory entry, one replay: trajectory [1, 1], r = 0.8
    q1 = (1 - alpha) * q0 + alpha * 0.8  # terminal step: max Q of the terminal state is 0
    q0_ = (1 - alpha) * q0 + alpha * gamma * max(q0, q1)  # first step, after the terminal one
    assert m.q_value(1, 1, 1) == pytest.approx(q1) and m.q_value(0, -1, 1) == pytest.approx(q0_)
    assert len(m.q) == 2 and m.num_updates == 2 and m.q_value(1, 1, 0) == q0 and m.q_value(0, -1, 0) == q0
    m.tell({'a': 1, 'b': 'y'}, 80.)  # the memory holds the same trajectory twice: a second update
    q1b = (1 - alpha) * q1 + alpha * 0.8
    q0b = (1 - alpha) * q0_ + alpha * gamma * max(q0, q1b)
    assert m.q_value(1, 1, 1) == pytest.approx(q1b) and m.q_value(0, -1, 1) == pytest.approx(q0b)
    # a reward below q_init: the untried action keeps the max at q_init (paper's alpha, gamma)
    m = MetaQNN(replay_size=2, seed=0).configure(TWO)
    m.tell({'a': 0, 'b': 'x'}, 0.2)
    q1 = 0.99 * (0.99 * 0.5 + 0.01 * 0.2) + 0.01 * 0.2
    assert m.q_value(1, 0, 0) == pytest.approx(q1) and m.q_value(0, -1, 0) == pytest.approx(0.5)


def test_greedy_after_a_good_trajectory():
    m = MetaQNN(epsilon_schedule=[(0.0, 1)], replay_size=5, dedup=False, seed=0).configure(SPEC)
    best = {k: TARGET for k in SPEC.dims}
    m.tell(best, 1.0)  # above q_init: its path wins every argmax
    assert m.ask() == best == m.greedy_sample()


def test_learns_the_rewarded_op_as_epsilon_runs_down():
    m = MetaQNN(seed=0)
    asked = drive(m, 300)
    assert m.epsilon() == pytest.approx(0.1) and len(m.memory) == 300
    first, last = sum(map(target_share, asked[:30])) / 30, sum(map(target_share, asked[-30:])) / 30
    assert first < 0.3 and last > first + 0.15  # 0.17 -> 0.45 with this seed
    assert target_share(m.greedy_sample()) >= 2 / 6


def test_dedup_redraws_seen_samples():
    m = MetaQNN(epsilon_schedule=[(0.0, 1)], seed=0).configure(TWO)  # greedy: one path unless redrawn
    asked = drive(m, 4, objective=lambda s: 1.0, spec=TWO)
    assert len({SpaceSpec.key(s) for s in asked}) == 4  # the whole space, no repeat
    with pytest.raises(SpaceExhausted):  # space exhausted: the search ends, no hang
        m.ask()
    m = MetaQNN(epsilon_schedule=[(0.0, 1)], dedup=False, seed=0).configure(TWO)
    assert len({SpaceSpec.key(s) for s in drive(m, 4, objective=lambda s: 1.0, spec=TWO)}) == 1


def test_epsilon_schedule():
    m = MetaQNN()
    assert m.epsilon_schedule == [(1.0, 150)] + [(e / 10, 10) for e in range(9, 0, -1)]
    expect = {0: 1.0, 149: 1.0, 150: 0.9, 159: 0.9, 160: 0.8, 229: 0.2, 230: 0.1, 239: 0.1, 240: 0.1, 10 ** 6: 0.1}
    for n, eps in expect.items():
        assert m.epsilon(n) == pytest.approx(eps)
    paper = MetaQNN(schedule_scale=1.0)
    assert [paper.epsilon(n) for n in (1499, 1500, 1599, 1600, 2399, 2400)] == pytest.approx([1, .9, .9, .8, .1, .1])
    custom = MetaQNN(epsilon_schedule=[(0.5, 2), (0.2, 1)], seed=0)  # a given schedule is not scaled
    assert [custom.epsilon(n) for n in range(5)] == [0.5, 0.5, 0.2, 0.2, 0.2]
    drive(custom, 2)
    assert custom.epsilon() == 0.2  # counts the models asked so far


def test_same_seed_same_search():
    kwargs = dict(schedule_scale=0.02, replay_size=20)  # 30 random models, then greedy ones soon
    a = drive(MetaQNN(seed=7, **kwargs), 80)
    b = drive(MetaQNN(seed=7, **kwargs), 80)
    c = drive(MetaQNN(seed=8, **kwargs), 80)
    assert a == b and a != c


def test_state_dict_resumes_identically():
    a = MetaQNN(schedule_scale=0.05, replay_size=30, seed=3)
    drive(a, 80)  # past the random phase (75 models)
    state = a.state_dict()
    for copy in (pickle.loads(pickle.dumps(state)), json.loads(json.dumps(state))):
        b = MetaQNN(schedule_scale=0.05, replay_size=30, seed=99)
        b.load_state_dict(copy)  # no configure: the space comes from the state
        assert b.space == SPEC and b.q == a.q and b.memory == a.memory
        b.configure(SPEC)  # what the adapters do next: must keep the loaded Q-table
        assert b.q == a.q
    c = MetaQNN(schedule_scale=0.05, replay_size=30, seed=42).configure(SPEC)
    c.load_state_dict(json.loads(json.dumps(state)))
    for _ in range(20):
        sa, sb, sc = a.ask(), b.ask(), c.ask()
        assert sa == sb == sc
        for m in (a, b, c):
            m.tell(sa, target_share(sa))
    assert a.q == b.q == c.q and a.num_updates == c.num_updates


def test_failed_trials_do_not_crash_or_update():
    m = MetaQNN(replay_size=10, seed=0).configure(SPEC)
    for i in range(10):
        s = m.ask()
        m.tell(s, None if i % 2 else float('nan'))
    assert m.num_failed == 10 and not m.q and not m.memory and m.num_updates == 0 and m.best() is None
    asked = drive(m, 30, fail=lambda i, s: i % 3 == 0)
    assert m.num_failed == 20 and len(m.memory) == 20 and len(asked) == 30
    assert m.num_updates == 20 * 10 * 6


def test_mixed_space_samples_are_valid():
    m = MetaQNN(schedule_scale=0.1, replay_size=20, seed=0)
    objective = lambda s: (s['k'] + len(s['any']) - abs(math.log10(s['lr']) + 2) + s['d']) / 12  # noqa: E731
    asked = drive(m, 260, objective=objective, spec=MIXED)
    for s in asked:
        MIXED.validate(s)
        assert len(s['in']) == 2 and s['in'] == sorted(s['in'])
        assert m._sample_of(m._actions_of(s)) == s  # one trajectory per sample
    assert {len(s['any']) for s in asked} == {0, 1, 2, 3}
    assert {tuple(s['in']) for s in asked} == {(i, j) for i in range(4) for j in range(i + 1, 4)}
    assert all(abs(s['d'] * 10 - round(s['d'] * 10)) < 1e-9 for s in asked) and len({s['d'] for s in asked}) <= 6
    lr_bins = sorted({s['lr'] for s in asked})
    assert lr_bins[0] == pytest.approx(1e-4) and lr_bins[-1] == pytest.approx(0.1) and len(lr_bins) <= 10
    assert len(m._steps) == 1 + 2 + 3 + 1 + 1
    assert sum(map(objective, asked[-30:])) > sum(map(objective, asked[:30]))


def test_told_samples_it_never_asked_are_learned_from():
    m = MetaQNN(replay_size=4, epsilon_schedule=[(0.0, 1)], seed=0).configure(MIXED)
    other = RandomSearch(seed=1).configure(MIXED)
    for _ in range(8):
        s = other.ask()
        m.tell(s, 0.1 * len(s['any']))
    assert len(m.memory) == 8 and m.num_updates == 8 * 4 * 8 and m.num_asked == 0
    off_grid = {'k': 5, 'in': [3, 0], 'any': ['c'], 'lr': 3e-3, 'd': 0.2}  # any order, any value in range
    assert m._actions_of(off_grid)[1:3] == [0, 3]
    m.tell(off_grid, 1.0)
    greedy = MetaQNN(q_init=0., replay_size=50, epsilon_schedule=[(0.0, 1)], dedup=False, seed=0)
    greedy.configure(MIXED)
    greedy.tell(off_grid, 1.0)  # the only rewarded path: the greedy one becomes its trajectory
    lr_bin = min(greedy._steps[6].values, key=lambda x: abs(math.log(x / 3e-3)))
    assert greedy.ask() == {**off_grid, 'in': [0, 3], 'lr': lr_bin} == greedy.greedy_sample()
    m.tell({'k': 4, 'in': [0, 1], 'any': [], 'lr': 1e-3, 'd': 0.}, 3.0)  # not in the space: ignored
    m.tell({'k': {3}, 'in': [], 'any': [], 'lr': 1., 'd': 0.}, 1.0)  # not even JSON: ignored, no crash
    m.tell('not a sample', 1.0)
    assert m.num_ignored == 3 and len(m.memory) == 9 and len(m.history) == 12
    m.tell({'k': 7.0, 'in': [1, 2], 'any': ['a'], 'lr': 0.1, 'd': 0.5}, 1.0)  # 7.0 == 7: in the space
    assert len(m.memory) == 10 and m.num_ignored == 3


def test_bad_arguments():
    for kwargs in [dict(alpha=0), dict(alpha=1.5), dict(gamma=-0.1), dict(gamma=1.1), dict(q_init=math.nan),
                   dict(reward_scale=0), dict(reward_scale=-1), dict(replay_size=0), dict(schedule_scale=0),
                   dict(num_bins=1), dict(epsilon_schedule=[]), dict(epsilon_schedule=[(1.5, 10)]),
                   dict(epsilon_schedule=[(0.5, -1)]), dict(epsilon_schedule=[(0.5, 1.5)]),
                   dict(epsilon_schedule=[(0.5,)]), dict(epsilon_schedule=['ab'])]:
        with pytest.raises(ValueError):
            MetaQNN(**kwargs)
    with pytest.raises(RuntimeError, match='configure'):
        MetaQNN().ask()
    with pytest.raises(ValueError, match='finite'):
        MetaQNN().configure(SpaceSpec.from_json({'x': {'_type': 'uniform', '_value': [0, math.inf]}}))
    with pytest.raises(ValueError, match='nothing to decide'):
        MetaQNN().configure(SpaceSpec.from_json({'x': {'_type': 'choice_multiple', '_value': [1, 2], 'n_chosen': 0}}))
    state = MetaQNN(seed=0).configure(SPEC).state_dict()
    with pytest.raises(ValueError, match='another search space'):
        MetaQNN().configure(MIXED).load_state_dict(state)


def test_through_nni_strategy_adapter_on_nb201_lookup(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(MetaQNN(reward_scale=0.01, seed=0))
    engine = simulate_search(strategy, ev, budget=3000)
    searcher = strategy.searcher
    n = len(searcher.history)
    assert n == len(list(engine.list_models())) >= 10 and searcher.num_failed == 0
    assert len(searcher.memory) == n and all(0 < r < 1 for _, r in searcher.memory)
    state = strategy.state_dict()
    again = SearcherStrategy(MetaQNN(reward_scale=0.01, seed=1))
    again.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert again.searcher.ask() == searcher.ask()
