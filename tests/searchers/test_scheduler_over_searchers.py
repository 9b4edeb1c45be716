"""Successive halving and Hyperband as schedulers over any registered searcher (issue 15, part 3):
the searcher proposes each bracket's new configurations and learns from their results."""
import json
import statistics

import pytest

from nni_nasext import registry
from nni_nasext.fidelity import BUDGET_KEY, split_budget
from nni_nasext.nnictl_tools import load_config
from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RegularizedEvolution
from nni_nasext.strategies.searchers.bohb import BOHB, BudgetTPE
from nni_nasext.strategies.searchers.hyperband import Hyperband, SuccessiveHalving

from budget_toy import SPEC, run, toy, asks_alike  # noqa: E402  (tests/budget_toy.py)
from conftest import REPO

EXPERIMENTS = REPO / 'experiments'


class Recording(Searcher):
    """Random proposals; records what it is told."""

    def __init__(self, seed=None):
        super().__init__(seed=seed)

    def _ask(self):
        return self.space.random(self.rng)


def test_the_searcher_proposes_every_new_configuration_and_learns_each_once_at_its_last_budget():
    inner = Recording(seed=0)
    sh = SuccessiveHalving(budgets=[1, 3, 9], eta=3, searcher=inner, seed=0)
    asked = run(sh, 9 + 3 + 1)            # one whole bracket: 9 at budget 1, 3 at 3, 1 at 9
    starts = [split_budget(s)[0] for s in asked if s[BUDGET_KEY] == 1]
    assert [o['sample'] for o in inner.history] != [] and inner.num_asked == 9
    told = {SpaceSpec.key(o['sample']): o['value'] for o in inner.history}
    assert len(inner.history) == len(told) == 9        # each configuration told once
    best = max(starts, key=lambda a: toy({**a, BUDGET_KEY: 1}))
    for arch in starts:                                # at the highest budget it was trained on
        reached = max(s[BUDGET_KEY] for s in asked if split_budget(s)[0] == arch)
        assert told[SpaceSpec.key(arch)] == pytest.approx(toy({**arch, BUDGET_KEY: reached}))
    assert told[SpaceSpec.key(best)] == pytest.approx(toy({**best, BUDGET_KEY: 9}))
    assert all(BUDGET_KEY not in o['sample'] for o in inner.history)


def test_a_failed_configuration_is_told_as_failed():
    inner = Recording(seed=1)
    sh = SuccessiveHalving(budgets=[1, 3], eta=3, searcher=inner, seed=0)
    run(sh, 4, fail=lambda s: s[BUDGET_KEY] == 1 and s['0_1'] == 'none')
    failed = [o for o in inner.history if o['value'] is None]
    assert len(failed) == sh.num_failed and all(o['sample']['0_1'] == 'none' for o in failed)


def first_rung_quality(searcher, n=400):
    asked = run(searcher, n)
    starts = [split_budget(s)[0] for s in asked if s[BUDGET_KEY] == searcher.budgets[0]]
    return statistics.mean(toy({**a, BUDGET_KEY: 1}) for a in starts[-60:])


@pytest.mark.parametrize('name, args', [('regularized_evolution', {'population_size': 10, 'sample_size': 3}),
                                        ('tpe', {'num_startup': 10}), ('optuna_nsga2', {'sampler_args': {'population_size': 10}})])
def test_a_learning_searcher_under_hyperband_proposes_better_configurations_than_random(name, args):
    ours = [first_rung_quality(Hyperband(budgets=[1, 3], eta=3, searcher=name, searcher_args=args, seed=s))
            for s in range(3)]
    plain = [first_rung_quality(Hyperband(budgets=[1, 3], eta=3, seed=s)) for s in range(3)]
    # toy scale 0..12 at budget 1; random starts average 6
    assert statistics.mean(ours) > statistics.mean(plain) + 1.0, (ours, plain)


def test_bohb_is_hyperband_with_budget_tpe():
    a = BOHB(budgets=[1, 3, 9], eta=3, seed=2)
    b = Hyperband(budgets=[1, 3, 9], eta=3, searcher=BudgetTPE(seed=2), seed=2)
    assert run(a, 120) == run(b, 120)
    assert a.num_model_proposals == b.searcher.num_model_proposals > 0


def test_state_dict_resumes_the_scheduler_and_its_searcher_identically():
    make = lambda seed: SuccessiveHalving(min_budget=1, max_budget=9, eta=3, seed=seed,  # noqa: E731
                                          searcher='regularized_evolution',
                                          searcher_args={'population_size': 6, 'sample_size': 2, 'seed': seed})
    a = make(4).configure(SPEC)
    in_flight = []
    for i in range(50):
        s = a.ask()
        if i in (40, 46):
            in_flight.append(s)   # still running when the state is saved
        else:
            a.tell(s, toy(s))
    b = make(0).configure(SPEC)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert len(b.searcher.history) == len(a.searcher.history) > 0
    for s in in_flight:
        a.tell(s, toy(s))
        b.tell(s, toy(s))
    asks_alike(a, b, 60)


def test_a_small_space_still_ends_when_the_searcher_runs_dry():
    from nni.mutable import Categorical
    tiny = SpaceSpec.from_space({'a': Categorical([0, 1, 2], label='a')})
    sh = SuccessiveHalving(budgets=[1, 3], eta=3, searcher='random', seed=0).configure(tiny)
    from nni_nasext.searcher import SpaceExhausted
    asked = []
    with pytest.raises(SpaceExhausted):
        for _ in range(50):
            s = sh.ask()
            asked.append(s)
            sh.tell(s, float(s['a']) * s[BUDGET_KEY])
    # every configuration once at budget 1, the best promoted to 3; then no bracket has new work
    assert sorted((s['a'], s[BUDGET_KEY]) for s in asked) == [(0, 1), (1, 1), (2, 1), (2, 3)]


def test_bad_searchers_are_refused_before_any_training():
    with pytest.raises(ValueError, match='itself multi-fidelity'):
        Hyperband(searcher='bohb')
    with pytest.raises(ValueError, match='itself multi-fidelity'):
        SuccessiveHalving(searcher=Hyperband())
    with pytest.raises(KeyError, match='Unknown strategy'):
        Hyperband(searcher='evolution_please')
    with pytest.raises(TypeError, match="Bad arguments for strategy 'regularized_evolution'"):
        Hyperband(searcher='regularized_evolution', searcher_args={'population': 3})
    with pytest.raises(ValueError, match='without a searcher'):
        Hyperband(searcher_args={'seed': 1})
    with pytest.raises(ValueError, match='given by name'):
        Hyperband(searcher=RegularizedEvolution(), searcher_args={'seed': 1})
    with pytest.raises(TypeError, match='registered strategy name or a Searcher'):
        Hyperband(searcher=42)


def test_regularized_evolution_under_successive_halving_from_an_nnictl_config():
    """experiments/hyperband_rea.yml: the tuner NasextSuccessiveHalving with a searcher in classArgs."""
    import importlib

    from nni_nasext.adapters.tuner import TUNER_CLASSES
    path = EXPERIMENTS / 'hyperband_rea.yml'
    config = load_config(path)
    module, _, cls = TUNER_CLASSES[config['tuner']['name']].rpartition('.')
    tuner = getattr(importlib.import_module(module), cls)(**config['tuner']['classArgs'])
    space = json.loads((path.parent / config['searchSpaceFile']).read_text())
    tuner.update_search_space(space)
    assert isinstance(tuner.searcher.searcher, RegularizedEvolution)
    spec = SpaceSpec.from_json(space)
    for i in range(13):
        params = tuner.generate_parameters(i)
        arch, budget = split_budget(params)
        spec.validate(arch)
        tuner.receive_trial_result(i, params, toy(params) / 12)
    assert [split_budget(p)[1] for p in [tuner.searcher.history[i]['sample'] for i in range(13)]].count(9) == 1
    assert len(tuner.searcher.searcher.history) == 9    # the evolution learnt each of the bracket's 9 cells
    assert registry.STRATEGIES['successive_halving'].load() is SuccessiveHalving
