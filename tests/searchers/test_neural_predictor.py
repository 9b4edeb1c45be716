import json
import pickle
import random

import numpy as np
import pytest
import torch

from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch
from nni_nasext.strategies.searchers.neural_predictor import NeuralPredictor
from test_reinforce import MIXED
from test_searchers import SPEC, drive, score

FAST = dict(epochs=60, hidden=(32, 32))  # a smaller predictor keeps the file fast


def keys(samples):
    return {SpaceSpec.key(s) for s in samples}


def test_random_phase_then_best_predicted_unseen_of_the_whole_space():
    np_ = NeuralPredictor(num_initial=8, pool_size=20000, seed=0, **FAST)  # 15,625 cells: all scored
    asked = drive(np_, 8)
    assert np_.num_fits == 0 and len(keys(asked)) == 8
    s = np_.ask()
    assert np_.num_fits == 1
    samples, all_keys, X = np_._whole_space()
    assert len(samples) == 15625
    mean, _ = np_.predictor.predict(X)
    unseen = [i for i, k in enumerate(all_keys) if k not in keys(asked)]
    assert s == samples[max(unseen, key=lambda i: (mean[i], -i))]
    again = np_.ask()  # nothing new told: no refit, the next best unseen
    assert np_.num_fits == 1 and again != s
    np_.tell(s, score(s))
    np_.tell(again, score(again))
    np_.ask()
    assert np_.num_fits == 2  # refit once for the two new results


def test_predictor_ranks_a_linear_objective():
    rng = random.Random(0)
    weights = {(label, op): rng.uniform(-1, 1) for label in SPEC.dims for op in SPEC.dims[label].values}
    linear = lambda s: sum(weights[(k, v)] for k, v in s.items())  # noqa: E731
    np_ = NeuralPredictor(num_initial=30, seed=1, **FAST)
    asked = drive(np_, 36, objective=linear)
    pool = [SPEC.random(rng) for _ in range(300)]
    mean, std = np_.predictor.predict(np_.encoder.encode_many(pool))
    truth = np.array([linear(s) for s in pool])
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    assert np.corrcoef(rank(mean), rank(truth))[0, 1] > 0.7  # Spearman from 35 cells
    after = [linear(s) for s in asked[30:]]
    assert np.mean(after) > np.percentile(truth, 90)  # the predictor's picks are top cells


def test_beats_random_search_on_toy_objective():
    budget, seeds = 25, range(4)
    ours = [max(map(score, drive(NeuralPredictor(num_initial=10, pool_size=500, seed=s, **FAST), budget)))
            for s in seeds]
    rs = [max(map(score, drive(RandomSearch(seed=s), budget))) for s in seeds]
    assert np.mean(ours) > np.mean(rs) + 2  # 24.0 vs 18.75 with these seeds


@pytest.mark.parametrize('acquisition', ['mean', 'ucb'])
def test_mixed_space_samples_are_valid(acquisition):
    np_ = NeuralPredictor(num_initial=6, pool_size=300, acquisition=acquisition, ucb_beta=2.0, seed=0, **FAST)
    objective = lambda s: s['k'] + len(s['any']) + s['d'] - abs(np.log10(s['lr']) + 2)  # noqa: E731
    asked = drive(np_, 16, objective=objective, spec=MIXED)
    for s in asked:
        MIXED.validate(s)
        assert len(s['in']) == 2
    assert len(keys(asked)) == 16 and np_.num_fits == 10


def test_same_seed_same_search_and_global_rng_untouched():
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = drive(NeuralPredictor(num_initial=5, seed=3, **FAST), 12)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    b = drive(NeuralPredictor(num_initial=5, seed=3, **FAST), 12)
    c = drive(NeuralPredictor(num_initial=5, seed=4, **FAST), 12)
    assert a == b and a != c


@pytest.mark.parametrize('pool_size', [300, 20000])  # random pools / the whole space
def test_state_dict_resumes_identically(pool_size):
    a = NeuralPredictor(num_initial=5, pool_size=pool_size, seed=3, **FAST)
    drive(a, 8)
    state = a.state_dict()
    b = NeuralPredictor(num_initial=5, pool_size=pool_size, seed=99, **FAST)
    b.load_state_dict(json.loads(json.dumps(state)))  # no configure: the space comes with the state
    assert b.space == SPEC
    b.configure(SPEC)
    c = NeuralPredictor(num_initial=5, pool_size=pool_size, seed=42, **FAST).configure(SPEC)
    c.load_state_dict(pickle.loads(pickle.dumps(state)))
    for _ in range(4):
        sa, sb, sc = a.ask(), b.ask(), c.ask()
        assert sa == sb == sc
        for p in (a, b, c):
            p.tell(sa, score(sa))


def test_failed_trials_are_dropped_and_search_goes_on():
    np_ = NeuralPredictor(num_initial=5, seed=0, **FAST)
    asked = drive(np_, 15, fail=lambda i, s: i % 3 == 0)
    assert np_.num_failed == 5 and len(keys(asked)) == 15
    assert np_.predictor is not None and np_._fit_n == 9  # the last ask saw 9 successes of 14
    np_.tell(asked[1], float('nan'))
    assert np_.num_failed == 6
    dead = NeuralPredictor(num_initial=3, seed=0, **FAST)
    asked = drive(dead, 10, fail=lambda i, s: True)  # never a fit: unseen random samples
    assert len(keys(asked)) == 10 and dead.best() is None and dead.num_fits == 0


def test_bad_arguments():
    for kwargs in [dict(num_initial=0), dict(pool_size=0), dict(acquisition='ei'), dict(ucb_beta=-1),
                   dict(num_parents=-1), dict(num_bins=1), dict(epochs=0), dict(hidden=(0,)), dict(weight_decay=-1)]:
        with pytest.raises(ValueError):
            NeuralPredictor(**kwargs)
    with pytest.raises(RuntimeError, match='configure'):
        NeuralPredictor().ask()
    state = NeuralPredictor(seed=0).configure(SPEC).state_dict()
    with pytest.raises(ValueError, match='another search space'):
        NeuralPredictor().configure(MIXED).load_state_dict(state)
    preset = NeuralPredictor.nb201_preset(seed=0)
    assert preset.num_initial == 10 and preset.pool_size >= SPEC.size and preset.acquisition == 'mean'


def test_through_nni_strategy_adapter_on_nb201_lookup(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(NeuralPredictor(num_initial=10, pool_size=20000, seed=0, **FAST))
    engine = simulate_search(strategy, ev, budget=2000)
    searcher = strategy.searcher
    n = len(searcher.history)
    assert n == len(list(engine.list_models())) >= 12 and searcher.num_failed == 0
    assert searcher.num_fits == n - 10 and len(keys(o['sample'] for o in searcher.history)) == n
    state = strategy.state_dict()
    again = SearcherStrategy(NeuralPredictor(num_initial=10, pool_size=20000, seed=1, **FAST))
    again.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert again.searcher.ask() == searcher.ask()
