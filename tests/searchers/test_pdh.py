"""Progressive Dynamic Hurdles (strategies/searchers/pdh.py; So et al. 2019, Algorithm 1)."""
import json
import statistics

import pytest

from nni_nasext.fidelity import BUDGET_KEY, split_budget
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.pdh import ProgressiveDynamicHurdles as PDH

from budget_toy import SPEC, run, toy, asks_alike  # noqa: E402  (tests/budget_toy.py)


def test_no_promotion_before_the_first_hurdle_then_exactly_the_children_above_it():
    pdh = PDH(budgets=[1, 3], population_size=6, sample_size=2, hurdle_every=6, seed=0)
    asked = run(pdh, 6)
    assert all(s[BUDGET_KEY] == 1 for s in asked)
    # the 6th child's result sets the hurdle: the mean fitness of the population (all 6)
    assert pdh.hurdles == [pytest.approx(statistics.mean(toy(s) for s in asked))]
    promoted = 0
    for _ in range(60):
        s = pdh.ask()
        if s[BUDGET_KEY] == 3:   # a promotion: its stage-0 result was at least the hurdle
            promoted += 1
            arch = split_budget(s)[0]
            assert toy({**arch, BUDGET_KEY: 1}) >= pdh.hurdles[0]
        pdh.tell(s, toy(s))
    assert promoted > 0
    # every child told at stage 0 after the hurdle and at least at the hurdle was promoted, and no other
    stage0 = [o for o in pdh.history[6:] if o['sample'][BUDGET_KEY] == 1]
    above = {SpaceSpec.key(split_budget(o['sample'])[0]) for o in stage0 if o['value'] >= pdh.hurdles[0]}
    at3 = {SpaceSpec.key(split_budget(o['sample'])[0]) for o in pdh.history if o['sample'][BUDGET_KEY] == 3}
    assert at3 <= above and len(above - at3) <= 1   # (the last one may still wait in the queue)


def test_three_stages_set_two_hurdles_and_the_second_compares_stage_one_results():
    pdh = PDH(budgets=[1, 3, 9], population_size=5, sample_size=2, hurdle_every=[5, 5], seed=1)
    run(pdh, 80)
    assert len(pdh.hurdles) == 2
    assert pdh.hurdles[1] > pdh.hurdles[0]   # stage-1 results are larger under toy()
    assert {s['sample'][BUDGET_KEY] for s in pdh.history} == {1, 3, 9}
    for o in pdh.history:   # nothing reaches stage 2 without passing both hurdles
        arch, b = split_budget(o['sample'])
        if b == 9:
            assert toy({**arch, BUDGET_KEY: 1}) >= pdh.hurdles[0] and toy({**arch, BUDGET_KEY: 3}) >= pdh.hurdles[1]


def test_tournament_parents_are_the_fittest_and_children_mutate_one_decision():
    pdh = PDH(budgets=[1, 3], population_size=4, sample_size=4, seed=2)   # tournament = the whole population
    run(pdh, 4)
    best = max(pdh.population, key=lambda m: pdh.fitness(pdh.models[m]))
    child = split_budget(pdh.ask())[0]
    parent = pdh.models[best]['sample']
    assert sum(child[k] != parent[k] for k in parent) == 1


def test_asynchronous_promotions_go_before_new_children():
    pdh = PDH(budgets=[1, 3], population_size=3, sample_size=2, hurdle_every=3, seed=3).configure(SPEC)
    run(pdh, 4)
    assert len(pdh.hurdles) == 1
    h = pdh.hurdles[0]
    a, b = pdh.ask(), pdh.ask()   # two in flight
    pdh.tell(b, h + 100)          # b is above the hurdle: its promotion is next, before any new child
    nxt = pdh.ask()
    assert nxt == {**split_budget(b)[0], BUDGET_KEY: 3}
    pdh.tell(a, h - 100)          # a is below: finished at stage 0, in the population
    mid_a = next(i for i, m in enumerate(pdh.models) if m['sample'] == split_budget(a)[0])
    assert pdh.models[mid_a]['done'] and mid_a in pdh.population


def test_failures_never_join_and_a_failed_promotion_keeps_its_fitness():
    pdh = PDH(budgets=[1, 3], population_size=3, sample_size=2, hurdle_every=3, seed=4)
    run(pdh, 40, fail=lambda s: s[BUDGET_KEY] == 3 or sum(v == 'none' for v in s.values()) >= 3)
    for mid in pdh.population:
        m = pdh.models[mid]
        assert m['stage'] == 0 and m['values'][0] is not None
    assert any(o['value'] is None and o['sample'][BUDGET_KEY] == 3 for o in pdh.history)


def test_state_dict_resumes_identically_with_trials_in_flight():
    a = PDH(budgets=[1, 3, 9], population_size=5, sample_size=2, seed=5).configure(SPEC)
    in_flight = []
    for i in range(40):
        s = a.ask()
        if i % 6 == 2:
            in_flight.append(s)
        else:
            a.tell(s, toy(s))
    b = PDH(budgets=[1, 3, 9], population_size=5, sample_size=2, seed=99).configure(SPEC)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for s in in_flight:
        a.tell(s, toy(s))
        b.tell(s, toy(s))
    asks_alike(a, b, 50)


def test_imported_history_rebuilds_the_population():
    a = PDH(budgets=[1, 3], population_size=4, sample_size=2, hurdle_every=4, seed=6)
    asked = run(a, 20)
    fresh = PDH(budgets=[1, 3], population_size=4, sample_size=2, hurdle_every=4, seed=6).configure(SPEC)
    for s in asked:   # what nnictl resume does through the tuner's import_data
        fresh.tell(s, toy(s))
    fresh._rebuild()
    assert len(fresh.population) == 4 and fresh.best() is not None
    assert fresh.best()['sample'][BUDGET_KEY] == 3   # the answer is at the highest budget
    s = fresh.ask()
    fresh.tell(s, toy(s))
    assert len(fresh.hurdles) == 1


def test_a_small_space_is_exhausted():
    from nni_nasext.searcher import SpaceExhausted
    spec = SpaceSpec.from_json({'a': {'_type': 'choice', '_value': [1, 2, 3]},
                                'b': {'_type': 'choice', '_value': [1, 2]}})
    pdh = PDH(budgets=[1, 2], population_size=2, sample_size=1, hurdle_every=2, seed=0).configure(spec)
    seen = set()
    with pytest.raises(SpaceExhausted):
        for _ in range(100):
            s = pdh.ask()
            seen.add((s['a'], s['b'], s[BUDGET_KEY]))
            pdh.tell(s, s['a'] + s['b'] + s[BUDGET_KEY])
    assert {(a, b) for a, b, budget in seen if budget == 1} == {(a, b) for a in (1, 2, 3) for b in (1, 2)}


def test_bad_arguments():
    with pytest.raises(ValueError, match='ascending'):
        PDH(budgets=[3, 1])
    with pytest.raises(ValueError, match='ascending'):
        PDH(budgets=[12])
    with pytest.raises(ValueError, match='hurdle_every'):
        PDH(budgets=[1, 3, 9], hurdle_every=[5])
    with pytest.raises(ValueError, match='population_size'):
        PDH(population_size=3, sample_size=5)
    with pytest.raises(ValueError, match='reserved'):
        PDH().configure(SpaceSpec.from_json({BUDGET_KEY: {'_type': 'choice', '_value': [1, 2]}}))


def test_nb201_preset_on_the_lookup(nb12):
    """On NAS-Bench-201 (12- and 200-epoch tables) under a simulated budget: the hurdle is set
    after 10 children and only children at least at it are trained for 200 epochs."""
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
    pdh = PDH.nb201_preset(seed=0)
    assert pdh.budgets == [12, 200] and pdh.population_size == 10 and pdh.sample_size == 3
    engine = simulate_search(SearcherStrategy(pdh), NasBench201Lookup('cifar10-valid', epochs=12), budget=20000)
    assert len(pdh.hurdles) == 1
    at200 = [o for o in pdh.history if o['sample'][BUDGET_KEY] == 200]
    assert at200 and pdh.best()['sample'][BUDGET_KEY] == 200
    stage0 = {SpaceSpec.key(split_budget(o['sample'])[0]): o['value'] for o in pdh.history
              if o['sample'][BUDGET_KEY] == 12}
    assert all(stage0[SpaceSpec.key(split_budget(o['sample'])[0])] >= pdh.hurdles[0] for o in at200)
    assert len(engine.list_models()) == len(pdh.history)
