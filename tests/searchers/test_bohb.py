"""BOHB: Hyperband brackets with configurations from a density model."""
import json
import statistics

import pytest

from nni_nasext.fidelity import BUDGET_KEY, split_budget
from nni_nasext.strategies.searchers.bohb import BOHB
from nni_nasext.strategies.searchers.hyperband import Hyperband, SuccessiveHalving
from budget_toy import asks_alike
from test_hyperband import SPEC, run, toy


def first_rung_quality(searcher, n=300):
    """Mean toy score (at budget 1) of the configurations that *start* brackets, late in the run."""
    asked = run(searcher, n)
    starts = [split_budget(s)[0] for s in asked if s[BUDGET_KEY] == searcher.budgets[0]]
    return statistics.mean(toy({**a, BUDGET_KEY: 1}) for a in starts[-60:])


def test_model_proposals_beat_random_starts():
    bohb = [first_rung_quality(BOHB(budgets=[1, 3], eta=3, seed=s)) for s in range(3)]
    hb = [first_rung_quality(SuccessiveHalving(budgets=[1, 3], eta=3, seed=s)) for s in range(3)]
    assert statistics.mean(bohb) > statistics.mean(hb) + 1.0  # toy scale: 0..12 at budget 1


def test_model_uses_the_largest_budget_with_enough_points():
    b = BOHB(budgets=[1, 3, 9], eta=3, seed=0).configure(SPEC)
    assert b.searcher.min_points() == len(SPEC) + 1 == 7
    assert b.model_budget() is None
    arch = lambda i: {k: v for k, v in zip(SPEC.dims, ['none', 'skip_connect', 'avg_pool_3x3',  # noqa: E731
                                                             'nor_conv_1x1', 'nor_conv_3x3', 'none'][i:] + ['none'] * i)}
    for i in range(9):
        b.tell({**arch(i % 6), BUDGET_KEY: 1}, float(i))
    assert b.model_budget() == 1
    for i in range(8):
        b.tell({**arch(i % 6), BUDGET_KEY: 3}, float(i))
    assert b.model_budget() == 1  # 8 < 7 + 2
    b.tell({**arch(0), BUDGET_KEY: 3}, None)  # failures do not count
    assert b.model_budget() == 1
    b.tell({**arch(1), BUDGET_KEY: 3}, 2.0)
    assert b.model_budget() == 3


def test_random_fraction_one_is_hyperband_sampling():
    b = BOHB(budgets=[1, 3], eta=3, random_fraction=1.0, seed=0)
    run(b, 120)
    assert b.num_model_proposals == 0
    b = BOHB(budgets=[1, 3], eta=3, random_fraction=0.0, seed=0)
    run(b, 120)
    assert b.num_model_proposals > 50


def test_state_dict_resumes_identically():
    a = BOHB(min_budget=1, max_budget=9, eta=3, seed=4).configure(SPEC)
    for _ in range(50):
        s = a.ask()
        a.tell(s, toy(s))
    b = BOHB(min_budget=1, max_budget=9, eta=3, seed=0).configure(SPEC)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    asks_alike(a, b, 40)


def test_failures_and_bad_arguments():
    b = BOHB(budgets=[1, 3], eta=3, random_fraction=0.0, seed=0)
    run(b, 80, fail=lambda s: s['0_1'] == 'none')
    assert b.num_failed > 0 and b.best() is not None
    for kwargs, message in [({'random_fraction': 1.5}, 'random_fraction'), ({'top_n_percent': 0}, 'top_n_percent'),
                            ({'num_samples': 0}, 'num_samples'), ({'min_points_in_model': 0}, 'min_points')]:
        with pytest.raises(ValueError, match=message):
            BOHB(budgets=[1, 3], **kwargs)
    preset = BOHB.nb201_preset(seed=1)
    assert preset.budgets == [12, 200] and preset.bracket_cycle == [1] and isinstance(preset, Hyperband)
