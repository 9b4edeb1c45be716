import json
import random

import pytest

from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch, RegularizedEvolution

SPEC = SpaceSpec.from_space(QuickstartSpace())
OPS_SCORE = {'none': 0, 'skip_connect': 1, 'avg_pool_3x3': 2, 'nor_conv_1x1': 3, 'nor_conv_3x3': 4}


def score(sample):
    """A deterministic toy objective: more convolution is better; max 24."""
    return float(sum(OPS_SCORE[v] for v in sample.values()))


def drive(searcher, n, objective=score, spec=SPEC, fail=lambda i, s: False):
    """Ask and tell ``n`` times on ``spec`` with a toy objective; ``fail`` marks failed trials."""
    searcher.configure(spec)
    asked = []
    for i in range(n):
        s = searcher.ask()
        asked.append(s)
        searcher.tell(s, None if fail(i, s) else objective(s))
    return asked


def test_same_seed_same_search():
    for cls in (RandomSearch, RegularizedEvolution):
        a = drive(cls(seed=7), 60)
        b = drive(cls(seed=7), 60)
        c = drive(cls(seed=8), 60)
        assert a == b and a != c


def test_random_search_dedups():
    asked = drive(RandomSearch(seed=0), 300)
    assert len({json.dumps(s, sort_keys=True) for s in asked}) == 300


def test_evolution_random_phase_then_one_mutation_of_tournament_winner():
    rea = RegularizedEvolution(population_size=5, sample_size=2, seed=0)
    rea.configure(SPEC)
    for _ in range(5):
        s = rea.ask()
        rea.tell(s, score(s))
    population = [o['sample'] for o in rea.population]
    for _ in range(30):
        child = rea.ask()
        distances = [sum(child[k] != p[k] for k in child) for p in population]
        assert 1 in distances  # a one-decision mutation of some member
        rea.tell(child, score(child))
        population = [o['sample'] for o in rea.population]


def test_evolution_ages_out_the_oldest():
    rea = RegularizedEvolution(population_size=4, sample_size=2, seed=1)
    rea.configure(SPEC)
    told = []
    for i in range(10):
        s = rea.ask()
        rea.tell(s, 100. - i)  # the oldest are the best: aging must still remove them
        told.append(s)
    assert [o['sample'] for o in rea.population] == told[-4:]


def test_tournament_picks_best_of_sample():
    rea = RegularizedEvolution(population_size=3, sample_size=3, seed=2)
    rea.configure(SPEC)
    samples = [SPEC.random(random.Random(i)) for i in range(3)]
    for s, v in zip(samples, [1., 5., 3.]):
        rea.num_asked += 1
        rea.tell(s, v)
    for _ in range(20):  # with the whole population in the tournament the parent is always the best
        child = rea.ask()
        assert sum(child[k] != samples[1][k] for k in child) == 1


def test_evolution_beats_random_on_toy_objective():
    rea = [max(score(s) for s in drive(RegularizedEvolution(population_size=10, sample_size=3, seed=s), 150))
           for s in range(10)]
    rs = [max(score(s) for s in drive(RandomSearch(seed=s), 150)) for s in range(10)]
    assert sum(rea) > sum(rs)


def test_failures_are_recorded_and_search_goes_on():
    rea = RegularizedEvolution(population_size=4, sample_size=2, seed=0)
    asked = drive(rea, 40, fail=lambda i, s: i % 3 == 0)
    assert rea.num_failed == 14 and len(asked) == 40
    assert all(o['value'] is not None for o in rea.population)
    assert rea.best()['value'] == max(score(s) for i, s in enumerate(asked) if i % 3)
    rea.tell(asked[0], float('nan'))  # NaN is a failure, not a score
    assert rea.num_failed == 15


def test_all_failures_never_hang():
    rea = RegularizedEvolution(population_size=3, sample_size=2, seed=0)
    asked = drive(rea, 20, fail=lambda i, s: True)
    assert len(asked) == 20 and rea.best() is None


def test_state_dict_resumes_identically():
    a = RegularizedEvolution(population_size=5, sample_size=2, seed=3)
    drive(a, 20)
    state = json.loads(json.dumps(a.state_dict()))  # survives JSON
    b = RegularizedEvolution(population_size=5, sample_size=2, seed=99)
    b.configure(SPEC)
    b.load_state_dict(state)
    for _ in range(10):
        sa, sb = a.ask(), b.ask()
        assert sa == sb
        a.tell(sa, score(sa))
        b.tell(sb, score(sb))


def test_bad_arguments_and_unconfigured_use():
    with pytest.raises(ValueError):
        RegularizedEvolution(population_size=3, sample_size=5)
    with pytest.raises(RuntimeError, match='configure'):
        RandomSearch().ask()
