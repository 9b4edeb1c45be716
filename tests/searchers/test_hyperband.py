"""Successive halving and Hyperband, and the budget that travels in samples."""
import json
from collections import Counter

import pytest

from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators import ImageClassification
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.fidelity import BUDGET_KEY, incumbent, split_budget, with_budget
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.hyperband import Hyperband, SuccessiveHalving, hyperband_brackets
from nni_nasext.trial_code.run import main as trial

from budget_toy import SPEC, run, toy, asks_alike  # noqa: E402  (tests/budget_toy.py)


def test_brackets_are_table_1_of_the_paper():
    # Li et al. 2018, Table 1: R = 81, eta = 3
    plans = [[n for _, n in b['rungs']] for b in hyperband_brackets(5, 3)]
    assert plans == [[81, 27, 9, 3, 1], [34, 11, 3, 1], [15, 5, 1], [8, 2], [5]]
    starts = [b['rungs'][0][0] for b in hyperband_brackets(5, 3)]
    assert starts == [0, 1, 2, 3, 4]
    hb = Hyperband(min_budget=1, max_budget=81, eta=3)
    assert hb.budgets == [1, 3, 9, 27, 81]
    assert Hyperband().budgets == [1, 3, 9, 27] and SuccessiveHalving().budgets == [1, 3, 9, 27]


def test_one_iteration_allocates_budgets_as_algorithm_1():
    hb = Hyperband(min_budget=1, max_budget=81, eta=3, seed=0)
    asked = run(hb, 81 + 27 + 9 + 3 + 1 + 34 + 11 + 3 + 1 + 15 + 5 + 1 + 8 + 2 + 5)
    budgets = [s[BUDGET_KEY] for s in asked]
    expected = [1] * 81 + [3] * 27 + [9] * 9 + [27] * 3 + [81] + [3] * 34 + [9] * 11 + [27] * 3 + [81] \
        + [9] * 15 + [27] * 5 + [81] + [27] * 8 + [81] * 2 + [81] * 5
    assert budgets == expected
    assert len(hb.brackets) == 5
    assert hb.ask()[BUDGET_KEY] == 1  # the cycle starts again with bracket s_max
    assert len(hb.brackets) == 6 and all(b['current'] == len(b['rungs']) for b in hb.brackets[:5])


def test_promotion_keeps_the_best_of_each_rung():
    hb = Hyperband(min_budget=1, max_budget=9, eta=3, seed=1)
    asked = run(hb, 9 + 3 + 1)
    first, second, third = asked[:9], asked[9:12], asked[12:]
    arch = lambda s: split_budget(s)[0]  # noqa: E731
    top3 = sorted(first, key=toy, reverse=True)[:3]
    assert [arch(s) for s in second] == [arch(s) for s in top3]
    assert arch(third[0]) == arch(max(second, key=toy))
    assert hb.best()['sample'] == third[0]  # the answer is at the highest budget


def test_asynchronous_asks_open_the_next_bracket_instead_of_waiting():
    hb = SuccessiveHalving(budgets=[1, 4], eta=4, seed=0).configure(SPEC)
    first = [hb.ask() for _ in range(4)]      # the first rung of bracket 0
    more = [hb.ask() for _ in range(4)]       # nothing told yet: a second bracket starts
    assert [s[BUDGET_KEY] for s in first + more] == [1] * 8 and len(hb.brackets) == 2
    for s in first:
        hb.tell(s, toy(s))
    promoted = hb.ask()
    assert promoted[BUDGET_KEY] == 4 and split_budget(promoted)[0] == split_budget(max(first, key=toy))[0]


def test_failed_trials_are_never_promoted():
    hb = SuccessiveHalving(budgets=[1, 3], eta=3, seed=0)
    bad = {'0_1': 'nor_conv_3x3'}
    asked = run(hb, 30, fail=lambda s: s['0_1'] == 'nor_conv_3x3')
    assert hb.num_failed > 0
    for s in asked:
        if s[BUDGET_KEY] == 3:
            assert s['0_1'] != bad['0_1']
    # a rung where everything fails ends its bracket; the search goes on
    hb = SuccessiveHalving(budgets=[1, 3], eta=3, seed=0)
    asked = run(hb, 12, fail=lambda s: True)
    assert all(s[BUDGET_KEY] == 1 for s in asked) and hb.best() is None


def test_state_dict_resumes_identically_mid_bracket():
    a = Hyperband(min_budget=1, max_budget=27, eta=3, seed=3).configure(SPEC)
    in_flight = []
    for i in range(40):
        s = a.ask()
        if i % 7 == 3:
            in_flight.append(s)  # results still running when the state is saved
        else:
            a.tell(s, toy(s))
    b = Hyperband(min_budget=1, max_budget=27, eta=3, seed=99).configure(SPEC)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for s in in_flight:
        a.tell(s, toy(s))
        b.tell(s, toy(s))
    asks_alike(a, b, 60)


def test_imported_results_are_history_and_a_fresh_bracket_starts():
    a = SuccessiveHalving(budgets=[1, 3], eta=3, seed=0)
    asked = run(a, 8)
    fresh = SuccessiveHalving(budgets=[1, 3], eta=3, seed=0).configure(SPEC)
    for s in asked:  # what nnictl resume does through the tuner's import_data
        fresh.tell(s, toy(s))
    assert len(fresh.history) == 8 and fresh.best() is not None
    nxt = fresh.ask()
    assert nxt[BUDGET_KEY] == 1 and split_budget(nxt)[0] not in [split_budget(s)[0] for s in asked]


def test_incumbent_prefers_the_highest_budget():
    obs = [{'sample': {'a': 1, BUDGET_KEY: 1}, 'value': 0.9}, {'sample': {'a': 2, BUDGET_KEY: 9}, 'value': 0.5},
           {'sample': {'a': 3, BUDGET_KEY: 9}, 'value': 0.6}, {'sample': {'a': 4, BUDGET_KEY: 27}, 'value': None}]
    assert incumbent(obs)['sample']['a'] == 3
    assert incumbent([]) is None
    assert with_budget({'a': 1, BUDGET_KEY: 3}, None) == {'a': 1} and with_budget({'a': 1}, 5) == {'a': 1, BUDGET_KEY: 5}
    with pytest.raises(ValueError, match='positive'):
        split_budget({'a': 1, BUDGET_KEY: 0})


def test_bad_arguments():
    with pytest.raises(ValueError, match='eta'):
        Hyperband(min_budget=1, max_budget=9, eta=1)
    with pytest.raises(ValueError, match='ascending'):
        Hyperband(budgets=[3, 1])
    with pytest.raises(ValueError, match='either budgets'):
        Hyperband(min_budget=1)
    with pytest.raises(ValueError, match='min_budget <= max_budget'):
        Hyperband(min_budget=9, max_budget=1)
    with pytest.raises(ValueError, match='brackets'):
        Hyperband(budgets=[1, 3], brackets=[5])
    with pytest.raises(ValueError, match='reserved'):
        Hyperband(budgets=[1, 3]).configure(SpaceSpec.from_json({BUDGET_KEY: {'_type': 'choice', '_value': [1, 2]}}))


def test_presets_on_nb201():
    assert Counter(tuple(n for _, n in b['rungs']) for b in hyperband_brackets(2, 3)) == {(3, 1): 1, (2,): 1}
    hb = Hyperband.nb201_preset(seed=0)
    assert hb.budgets == [12, 200] and hb.bracket_cycle == [1, 0]
    sh = SuccessiveHalving.nb201_preset(seed=0)
    assert sh.budgets == [12, 200] and sh._plans == {1: [(0, 8), (1, 1)]}


def test_lookup_charges_the_asked_budget(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(SuccessiveHalving.nb201_preset(seed=0))
    engine = simulate_search(strategy, ev, budget=6000)
    models = list(engine.list_models())
    budgets = [m.sample[BUDGET_KEY] for m in models]
    assert set(budgets) == {12, 200} and budgets[:9] == [12] * 8 + [200]
    table = ev.table
    expected_cost = sum(table.query(split_budget(m.sample)[0], 'cifar10-valid', m.sample[BUDGET_KEY]).cost
                        for m in models)
    assert ev.total_cost == pytest.approx(expected_cost)
    ninth = models[8]
    assert ninth.metric == pytest.approx(table.query(split_budget(ninth.sample)[0], 'cifar10-valid', 200).accuracy)
    with pytest.raises(ValueError, match='12, 200'):
        ev.query({**split_budget(ninth.sample)[0], BUDGET_KEY: 50})


def test_classification_budget_is_epochs(tmp_path):
    ev = ImageClassification('digits', max_epochs=5, limit_train_batches=2)
    two = ev.with_budget(2)
    assert two.max_epochs == 2 and ev.max_epochs == 5 and two.limit_train_batches == 2
    with pytest.raises(ValueError, match='whole numbers'):
        ev.with_budget(1.5)
    good = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'nor_conv_1x1',
            '0_3': 'avg_pool_3x3', '1_3': 'none', '2_3': 'nor_conv_3x3'}
    rc = trial(['--space', 'quickstart', '--evaluator', 'classification', '--evaluator-args',
                json.dumps({'dataset': 'digits', 'max_epochs': 5, 'limit_train_batches': 2}),
                '--sample', json.dumps({**good, BUDGET_KEY: 2}), '--output-dir', str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['budget'] == 2 and result['sample'] == good


def test_trial_refuses_a_budget_the_evaluator_cannot_honour(tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(ImageClassification, 'with_budget')
    rc = trial(['--space', 'quickstart', '--evaluator', 'classification',
                '--sample', json.dumps({'0_1': 'none', BUDGET_KEY: 2}), '--output-dir', str(tmp_path)])
    assert rc == 1 and 'has no fidelity' in capsys.readouterr().err


def test_export_picks_the_best_at_the_highest_budget(tmp_path):
    import json as _json
    from nni_nasext.nnictl_tools import export_best
    for name, budget, value in [('a', 1, 0.95), ('b', 3, 0.80), ('c', 3, 0.85), ('d', 1, 0.99)]:
        folder = tmp_path / 'exp' / 'trials' / name
        folder.mkdir(parents=True)
        (folder / 'result.json').write_text(_json.dumps({'sample': {'x': name}, 'value': value, 'budget': budget}))
    best = export_best(tmp_path / 'exp', tmp_path / 'out')
    assert best['sample'] == {'x': 'c'} and best['budget'] == 3


def test_export_minimize_picks_the_lowest(tmp_path):
    import json as _json
    from nni_nasext.nnictl_tools import export_best
    for name, value in [('a', 16.1), ('b', 12.5), ('c', 20.0)]:
        folder = tmp_path / 'exp' / 'trials' / name
        folder.mkdir(parents=True)
        (folder / 'result.json').write_text(_json.dumps({'sample': {'x': name}, 'value': value}))
    assert export_best(tmp_path / 'exp', tmp_path / 'out', minimize=True)['sample'] == {'x': 'b'}
    assert export_best(tmp_path / 'exp', tmp_path / 'out2')['sample'] == {'x': 'c'}
