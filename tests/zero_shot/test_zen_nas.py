"""Zen-NAS evolution and the proxy warm start."""
import pytest

from nni_nasext import registry
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.zero_shot.zen_nas import CostBudget, ProxyWarmStart, ZenNAS


@pytest.fixture(scope='module')
def spec():
    return SpaceSpec.from_space(registry.build('space', 'quickstart'))


def _score(sample):  # a toy objective: number of 3x3 convolutions
    return sum(v == 'nor_conv_3x3' for v in sample.values())


def test_zen_nas_keeps_the_best_and_finds_the_optimum(spec):
    s = ZenNAS(population_size=6, seed=0).configure(spec)
    for _ in range(150):
        x = s.ask()
        s.tell(x, _score(x))
    assert len(s.population) == 6
    values = sorted(o['value'] for o in s.population)
    assert values[0] >= sorted(o['value'] for o in s.history)[-6]  # the population is the top 6 ever seen
    assert s.best()['value'] == 6
    assert len({SpaceSpec.key(o['sample']) for o in s.history}) == 150  # never asks a sample twice


def test_zen_nas_respects_the_budget(spec):
    budget = CostBudget('quickstart', max_params=0.03)
    s = ZenNAS(population_size=4, constraint=budget, seed=1).configure(spec)
    for _ in range(20):
        x = s.ask()
        assert budget.cost(x)[0] <= 0.03
        s.tell(x, budget.cost(x)[0])  # maximise params under the budget
    assert s.discarded > 0
    # the nnictl form builds the same budget from JSON arguments
    t = ZenNAS(population_size=4, space='quickstart', max_params=0.03, seed=1).configure(spec)
    assert isinstance(t.constraint, CostBudget) and t.ask() == ZenNAS(population_size=4, constraint=budget,
                                                                      seed=1).configure(spec).ask()
    with pytest.raises(ValueError, match='space'):
        ZenNAS(max_params=0.03)
    with pytest.raises(ValueError, match='input_size'):
        CostBudget('quickstart', max_flops=1.0)


def test_zen_nas_impossible_budget_is_a_clear_error(spec):
    s = ZenNAS(constraint=lambda sample: False, max_tries=50, seed=0).configure(spec)
    with pytest.raises(RuntimeError, match='budget'):
        s.ask()


def test_zen_nas_resume_continues_identically(spec):
    a = ZenNAS(population_size=4, seed=3).configure(spec)
    for _ in range(10):
        x = a.ask()
        a.tell(x, _score(x))
    b = ZenNAS(population_size=4, seed=3).configure(spec)
    b.load_state_dict(a.state_dict())
    assert [a.ask() for _ in range(3)] == [b.ask() for _ in range(3)]


def test_warm_start_proposes_the_top_scored_first(spec):
    s = ProxyWarmStart(scorer=_score, num_scored=40, top_k=3, then='random', verbose=False, seed=0).configure(spec)
    first = [s.ask() for _ in range(3)]
    best_scores = sorted((v for v, _ in s.scores), reverse=True)[:3]
    assert [_score(x) for x in first] == best_scores and len(s.scores) == 40
    for x in first:
        s.tell(x, float(_score(x)))
    assert len(s.inner.history) == 3  # the inner searcher learned from the warm-start trials
    s.ask()
    assert s.inner.num_asked == 1


def test_warm_start_with_a_real_proxy_and_resume(spec):
    s = ProxyWarmStart(space='quickstart', proxy='params', num_scored=6, top_k=2, then='regularized_evolution',
                       then_args={'population_size': 3, 'sample_size': 2}, verbose=False, seed=0).configure(spec)
    x = s.ask()
    assert s.scores[0][1] == x and s.scores[0][0] == max(v for v, _ in s.scores)
    s.tell(x, 0.5)
    t = ProxyWarmStart(space='quickstart', proxy='params', num_scored=6, top_k=2, then='regularized_evolution',
                       then_args={'population_size': 3, 'sample_size': 2}, verbose=False, seed=0).configure(spec)
    t.load_state_dict(s.state_dict())
    assert t.ask() == s.ask()  # the second of the top 2
    with pytest.raises(ValueError, match='top_k'):
        ProxyWarmStart(space='quickstart', num_scored=2, top_k=3)
    with pytest.raises(ValueError, match='space'):
        ProxyWarmStart().configure(spec)  # constructible with defaults (as NNI does), but needs a space to score


def test_proxy_warm_start_skips_samples_it_cannot_build():
    """A sample whose network the space cannot build (an invalid NB101 cell) is skipped with a
    warning, never proposed from the warm-start queue."""
    from nni_nasext import registry
    spec = SpaceSpec.from_space(registry.build('space', 'quickstart'))
    bad = set()

    def scorer(sample):
        key = SpaceSpec.key(sample)
        if len(bad) < 4 and key not in bad:
            bad.add(key)
            raise ValueError('cannot build')
        return 1.0

    s = ProxyWarmStart(scorer=scorer, num_scored=6, top_k=2, verbose=False, seed=0).configure(spec)
    with pytest.warns(RuntimeWarning, match='cannot be built'):
        first = s.ask()
    assert len(s.scores) == 2 and SpaceSpec.key(first) not in bad
    assert all(SpaceSpec.key(x) not in bad for _, x in s.scores)


def test_proxy_as_reward_under_nni_engine():
    """Any of our strategies can use a zero-cost proxy as its reward under NNI's own engine."""
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace

    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.evaluators.proxies import ZeroCostProxy

    class Engine(SequentialExecutionEngine):
        def budget_available(self):
            return len(list(self.list_models())) < 6

    space = registry.build('space', 'quickstart')
    strategy = SearcherStrategy(ZenNAS(population_size=3, seed=0))
    engine = Engine(continue_on_failure=True)
    strategy(RawFormatModelSpace.from_model(space, ZeroCostProxy('synflow', dataset='digits')), engine)
    models = list(engine.list_models())
    assert len(models) == 6 and all(m.metric is not None and m.metric > 0 for m in models)
    assert sorted(o['value'] for o in strategy.searcher.population) == sorted(m.metric for m in models)[-3:]


def test_zen_nas_under_a_device_latency_budget():
    """The tutorial's hardware-aware Zen-NAS: the budget is a device's measured latency."""
    from nni_nasext.hardware import latency as hw_latency
    from nni_nasext.data_paths import DataNotFoundError
    try:
        hw_latency.latency_table('raspi4')
    except DataNotFoundError as err:
        pytest.skip(f'NB201 latency tables not found: {err}')
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
    nb201 = SpaceSpec.from_json({e: {'_type': 'choice', '_value': list(OPS)} for e in EDGE_LABELS})
    limit = 12.0
    s = ZenNAS(population_size=5, cost='nb201_latency:raspi4', limit=limit, seed=0).configure(nb201)
    for _ in range(30):
        x = s.ask()
        assert hw_latency.latency_ms(x, 'raspi4') <= limit
        s.tell(x, sum(v == 'nor_conv_3x3' for v in x.values()))  # heavier cells score more: pushes at the budget
    assert s.discarded > 0
    # with a parameter budget too, both hold
    t = ZenNAS(population_size=3, cost='nb201_latency:raspi4', limit=limit, space='nasbench201', max_params=0.5,
               seed=0).configure(nb201)
    x = t.ask()
    assert hw_latency.latency_ms(x, 'raspi4') <= limit and t.constraint.constraints[0].cost(x)[0] <= 0.5
    with pytest.raises(ValueError, match='go together'):
        ZenNAS(cost='nb201_latency:raspi4')
    with pytest.raises(ValueError, match='devices'):
        ZenNAS(cost='nb201_latency:nowhere', limit=1.0)
