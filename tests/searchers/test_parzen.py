"""The Parzen densities of TPE (strategies/searchers/parzen.py), BOHB's model; the spaces and objective
here are shared with tests/searchers/test_optuna_sampler.py."""
import itertools
import math
import random

import pytest

from nni.mutable import Categorical, CategoricalMultiple, Numerical

from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.parzen import TPEModel

SPEC = SpaceSpec.from_space(QuickstartSpace())
ABCD = SpaceSpec.from_space({'x': Categorical(['a', 'b', 'c', 'd'], label='x')})
UNIT = SpaceSpec.from_space({'u': Numerical(0, 1, label='u')})
TWO = SpaceSpec.from_space({'a': Categorical([0, 1], label='a'), 'b': Categorical(['x', 'y'], label='b')})
MIXED = SpaceSpec.from_space({
    'k': Categorical([3, 5, 7], label='k'),
    'in': CategoricalMultiple([0, 1, 2, 3], n_chosen=2, label='in'),
    'any': CategoricalMultiple(['a', 'b', 'c'], label='any'),
    'lr': Numerical(1e-4, 1e-1, log_distributed=True, label='lr'),
    'd': Numerical(0, 0.5, quantize=0.1, label='d'),
    'qlr': Numerical(1e-3, 1, log_distributed=True, quantize=1e-3, label='qlr'),
    'n': Numerical(mu=0, sigma=1, label='n'),
})


def mixed_objective(s):
    return (s['k'] + len(s['any']) - abs(math.log10(s['lr']) + 2) + 2 * s['d'] - s['n'] ** 2
            + (3 in s['in']) - abs(math.log10(s['qlr']) + 1)) / 12


def _ncdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_categorical_densities_by_hand():
    samples = [{'x': v} for v in 'bbacdacd']
    values = [10., 9., 0., 0., 0., 0., 0., 0.]  # n=8, gamma 0.25: the two 'b' are good
    model = TPEModel(ABCD, gamma=0.25, prior_weight=1.0).fit(samples + [{'x': 'a'}], values + [None])
    assert (model.n_good, model.n_bad) == (2, 6)
    # l = (count + 1) / (2 + 4), g = (count + 1) / (6 + 4)
    assert math.exp(model.log_l({'x': 'b'})) == pytest.approx(3 / 6)
    assert math.exp(model.log_l({'x': 'a'})) == pytest.approx(1 / 6)
    assert math.exp(model.log_g({'x': 'b'})) == pytest.approx(1 / 10)
    assert math.exp(model.log_g({'x': 'c'})) == pytest.approx(3 / 10)
    assert model.score({'x': 'b'}) == pytest.approx(math.log(5))
    rng = random.Random(0)
    assert all(model.propose(rng) == {'x': 'b'} for _ in range(20))
    assert model.propose(rng, exclude={SpaceSpec.key({'x': 'b'})}) != {'x': 'b'}  # excluded: the next best
    everything = {SpaceSpec.key({'x': v}) for v in 'abcd'}
    assert ABCD.validate(model.propose(rng, exclude=everything))  # exhausted space: still an answer
    assert TPEModel(ABCD).num_good(100) == 25 and TPEModel(ABCD).num_good(1000) == 25  # the cap
    assert TPEModel(ABCD, max_good=None).num_good(1000) == 250 and TPEModel(ABCD).num_good(3) == 1


def test_numerical_parzen_by_hand():
    # one good point at 0.8 on [0, 1]: components N(0.8, s) and the prior N(0.5, 1), weights 1:1,
    # both truncated to [0, 1]; s = gap to the prior mean (0.3) clipped up to 1 / min(100, 3)
    model = TPEModel(UNIT).fit([{'u': 0.8}, {'u': 0.2}], [1., 0.])
    s = 1 / 3

    def trunc(x, mu, sigma):
        z = _ncdf((1 - mu) / sigma) - _ncdf((0 - mu) / sigma)
        return math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) / z

    for x in (0.05, 0.5, 0.8, 0.97):
        assert math.exp(model.log_l({'u': x})) == pytest.approx(0.5 * trunc(x, 0.8, s) + 0.5 * trunc(x, 0.5, 1))
        assert math.exp(model.log_g({'u': x})) == pytest.approx(0.5 * trunc(x, 0.2, s) + 0.5 * trunc(x, 0.5, 1))
    rng = random.Random(0)
    assert all(model.propose(rng)['u'] > 0.5 for _ in range(20))


def test_densities_are_normalised_and_sampled_as_modelled():
    rng = random.Random(1)
    samples = [MIXED.random(rng) for _ in range(30)]
    model = TPEModel(MIXED).fit(samples, [mixed_objective(s) for s in samples])
    fixed = [list(c) for c in itertools.combinations([0, 1, 2, 3], 2)]
    subsets = [[v for v, keep in zip('abc', mask) if keep] for mask in itertools.product([0, 1], repeat=3)]
    for label, values in [('k', [3, 5, 7]), ('in', fixed), ('any', subsets), ('d', [0., .1, .2, .3, .4, .5])]:
        f = model.l_factors[label]
        codes = [model._encode_value(MIXED.dims[label], v) for v in values]
        probs = [math.exp(p) for p in f.logpdf(codes)]
        assert sum(probs) == pytest.approx(1.0)  # an exact distribution over the values
        if label in ('in', 'any'):  # the conditional-Bernoulli / Bernoulli sampler matches it
            draws = [f.sample(rng) for _ in range(3000)]
            for c, p in zip(codes, probs):
                assert draws.count(c) / len(draws) == pytest.approx(p, abs=0.03)


def test_bad_arguments():
    for kwargs in [dict(bandwidth='silverman'), dict(max_good=0), dict(gamma=-0.1), dict(gamma=0), dict(gamma=1.5),
                   dict(gamma=math.nan), dict(prior_weight=0), dict(prior_weight=-1), dict(prior_weight=math.inf),
                   dict(prior_weight=math.nan)]:
        with pytest.raises(ValueError):
            TPEModel(SPEC, **kwargs)
    with pytest.raises(ValueError):
        TPEModel(SPEC).fit([SPEC.random(random.Random(0))], [])
    with pytest.raises(ValueError):
        TPEModel(SPEC).propose(random.Random(0), n_candidates=0)
    for bad in ({'x': {'_type': 'loguniform', '_value': [0, 1]}}, {'x': {'_type': 'uniform', '_value': [0, math.inf]}},
                {'x': {'_type': 'normal', '_value': [0, 0]}}):
        with pytest.raises(ValueError):
            TPEModel(SpaceSpec.from_json(bad))
