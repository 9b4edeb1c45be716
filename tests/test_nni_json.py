"""Every type of NNI's search-space JSON through our tuners, checked the way NNI v3.0's
``test/ut/sdk/test_builtin_tuners.py`` checks NNI's own tuners (each type alone, then all
together; generated parameters in range and of the right type; results received), plus the
nested shape NNI's tuners hand to trials, resume by ``import_data`` and malformed input."""
import math
import random

import pytest

import nni

from nni_nasext import registry
from toy_cost import COST_ARGS, SMALL_MODELS
from nni_nasext.adapters import SearcherTuner
from nni_nasext.nni_json import JsonSpace

NESTED = {'_type': 'choice', '_value': [
    {'_name': 'sgd', 'lr': {'_type': 'loguniform', '_value': [1e-4, 1e-1]},
     'momentum': {'_type': 'choice', '_value': [0.0, 0.9]}},
    {'_name': 'adam', 'lr': {'_type': 'uniform', '_value': [1e-4, 1e-2]},
     'schedule': {'_type': 'choice', '_value': [{'_name': 'cosine', 'epochs': {'_type': 'randint', '_value': [1, 4]}},
                                                'constant']}},
    'none']}
#: one entry per type, in NNI's formats (the "_equal" ones have low == high, as NNI's asset does)
TYPES = {
    'choice_str': {'_type': 'choice', '_value': ['cat', 'dog', 'elephant', 'cow', 'sheep', 'panda']},
    'choice_num': {'_type': 'choice', '_value': [10, 20, 30, 40, 50, 60]},
    'choice_nested': NESTED,
    'randint_ok': {'_type': 'randint', '_value': [-2, 8]},
    'randint_large': {'_type': 'randint', '_value': [0, 10 ** 6]},
    'uniform_ok': {'_type': 'uniform', '_value': [-1.0, 1.5]},
    'uniform_equal': {'_type': 'uniform', '_value': [99.9, 99.9]},
    'quniform_ok': {'_type': 'quniform', '_value': [0.0, 10.0, 2.5]},
    'loguniform_ok': {'_type': 'loguniform', '_value': [0.001, 100]},
    'qloguniform_ok': {'_type': 'qloguniform', '_value': [0.001, 100, 1]},
    'normal_ok': {'_type': 'normal', '_value': [-1.0, 5.0]},
    'qnormal_ok': {'_type': 'qnormal', '_value': [-1.5, 5.0, 0.1]},
    'lognormal_ok': {'_type': 'lognormal', '_value': [-1.0, 5.0]},
    'qlognormal_ok': {'_type': 'qlognormal', '_value': [-1.5, 5.0, 0.1]},
}
#: tuners that need an NB201 target or a scorer search nothing else
NEEDS_TARGET = {'rapidnas', 'transfer_gp', 'xfernas', 'proxy_warm_start'}
#: reads every sample as an NB201 or NB101 cell graph: refuses these spaces at configure (its tests:
#: test_neural_predictor_gcn.py, test_every_strategy_on_every_space.py)
NEEDS_TARGET |= {'neural_predictor_gcn'}
TUNERS = sorted(set(registry.STRATEGIES) - NEEDS_TARGET)


def check_nested(value, spec):
    if isinstance(value, dict):
        option = next(o for o in spec['_value'] if isinstance(o, dict) and o['_name'] == value['_name'])
        assert set(value) == set(option)                        # the chosen option's entries, nothing else
        for k, v in value.items():
            if k != '_name':
                check_value(v, option[k])
    else:
        assert value in spec['_value'] and not isinstance(value, dict)


def check_value(v, item):
    typ, val = item['_type'], item['_value']
    if typ == 'choice':
        if any(isinstance(o, dict) for o in val):
            return check_nested(v, item)
        assert v in val
    assert not isinstance(v, dict)                              # never the unsampled spec
    if typ == 'randint':
        assert isinstance(v, int) and val[0] <= v < val[1]
    if typ == 'uniform':
        assert isinstance(v, float)
    if typ in ('uniform', 'quniform', 'loguniform', 'qloguniform'):
        assert val[0] - 1e-9 <= v <= val[1] + 1e-9
    if typ.startswith('q') and val[0] + 1e-6 < v < val[1] - 1e-6:
        assert abs(v / val[2] - round(v / val[2])) < 1e-6
    if typ in ('lognormal', 'qlognormal'):
        assert v >= 0
    if typ in ('normal', 'qnormal', 'lognormal', 'qlognormal'):
        assert math.isfinite(v)


def drive(tuner, space, rounds=3, per_round=20):
    tuner.update_search_space(space)
    rng = random.Random(0)
    n = 0
    for _ in range(rounds):
        for _ in range(per_round):
            try:
                params = tuner.generate_parameters(n)
            except nni.NoMoreTrialError:
                return n
            budget = params.pop('nasext_budget', None)   # multi-fidelity tuners add their budget
            assert set(params) == set(space) and (budget is None or budget > 0)
            for k, v in params.items():
                check_value(v, space[k])
            if budget is not None:
                params['nasext_budget'] = budget
            tuner.receive_trial_result(n, params, rng.uniform(-100, 100))
            tuner.trial_end(n, True)
            n += 1
    return n


#: Optuna's GP sampler fits a GP per ask after its random start (10): one fit per type alone is
#: enough to take every type through the model, and costs half as much as two
ARGS = {**COST_ARGS, 'optuna_gp': {'sampler_args': {'n_startup_trials': 11}}, 'tapas': SMALL_MODELS['tapas'],
        'pnas': SMALL_MODELS['pnas'], 'neural_predictor': SMALL_MODELS['neural_predictor']}
#: every type together, 24 asks: the GP's last two go through the model (a fit per ask after the start)
TOGETHER_ARGS = {'optuna_gp': {'sampler_args': {'n_startup_trials': 22}}}


@pytest.mark.parametrize('name', TUNERS)
def test_every_tuner_on_every_nni_type_alone_and_together(name, monkeypatch):
    # a one-decision space is soon all finished: the tuner then answers up to MAX_KNOWN_IN_A_ROW
    # asks from its records before it trains a random unseen sample (tests/adapters/test_tuner_records.py);
    # 50 takes that path as 1000 does, in a twentieth of the asks
    monkeypatch.setattr(SearcherTuner, 'MAX_KNOWN_IN_A_ROW', 50)
    for key, item in TYPES.items():
        n = drive(SearcherTuner(name, seed=0, **ARGS.get(name, {})), {key: item}, rounds=3, per_round=4)
        assert n >= min(12, JsonSpace({key: item}).size), key  # a small space ends once all are handed out
    assert drive(SearcherTuner(name, seed=0, **TOGETHER_ARGS.get(name, ARGS.get(name, {}))), TYPES, rounds=3,
                 per_round=8) == 24


def test_nested_choice_gives_nni_shapes_and_counts_configurations():
    js = JsonSpace({'opt': NESTED})
    assert list(js.spec.dims) == ['opt', 'opt/sgd/lr', 'opt/sgd/momentum', 'opt/adam/lr', 'opt/adam/schedule',
                                  'opt/adam/schedule/cosine/epochs']
    rng = random.Random(1)
    shapes = set()
    for _ in range(300):
        flat = js.canonical(js.spec.random(rng))
        params = js.decode(flat)
        check_value(params['opt'], NESTED)
        shapes.add(tuple(sorted(params['opt'])) if isinstance(params['opt'], dict) else params['opt'])
        back = js.encode(params)
        assert js.decode(back) == params
        assert back == flat                                     # canonical flat samples round-trip
    assert shapes == {('_name', 'lr', 'momentum'), ('_name', 'lr', 'schedule'), 'none'}
    small = JsonSpace({'o': {'_type': 'choice', '_value': [{'_name': 'a', 'x': {'_type': 'choice', '_value': [1, 2, 3]}},
                                                           'b']},
                       'r': {'_type': 'randint', '_value': [0, 2]}})
    assert small.size == (3 + 1) * 2                            # a sum over options, not a product
    tuner = SearcherTuner('random', seed=0)
    assert drive(tuner, {'o': small_spec()['o'], 'r': small_spec()['r']}, rounds=1, per_round=50) == 8


def small_spec():
    return {'o': {'_type': 'choice', '_value': [{'_name': 'a', 'x': {'_type': 'choice', '_value': [1, 2, 3]}}, 'b']},
            'r': {'_type': 'randint', '_value': [0, 2]}}


def test_resume_replays_nested_parameters_into_the_searcher():
    first = SearcherTuner('regularized_evolution', population_size=3, sample_size=2, seed=0)
    first.update_search_space(TYPES)
    data = []
    for i in range(5):
        p = first.generate_parameters(i)
        data.append({'parameter': p, 'value': {'default': float(i)}})
    second = SearcherTuner('regularized_evolution', population_size=3, sample_size=2, seed=0)
    second.update_search_space(TYPES)
    second.import_data(data)
    history = second.searcher.history
    assert len(history) == 5 and all(o['value'] is not None for o in history)
    for obs in history:
        second.searcher.space.validate(obs['sample'])           # told as flat samples of the space
    assert [second.codec.decode(o['sample']) for o in history][-1]['choice_nested'] == data[-1]['parameter']['choice_nested']


@pytest.mark.parametrize('space,match', [
    ({'x': {'_type': 'randint', '_value': [5, 5]}}, 'low < high'),
    ({'x': {'_type': 'randint', '_value': [0.5, 3]}}, 'integers'),
    ({'x': {'_type': 'lognormal', '_value': [0, -1]}}, 'sigma > 0'),
    ({'x': {'_type': 'qlognormal', '_value': [0, 1]}}, r'\[mu, sigma, q\]'),
    ({'x': {'_type': 'uniform', '_value': [2, 1]}}, 'low <= high'),
    ({'x': {'_type': 'loguniform', '_value': [0, 1]}}, 'low > 0'),
    ({'x': {'_type': 'quniform', '_value': [0, 1, 0]}}, 'q > 0'),
    ({'x': {'_type': 'choice', '_value': []}}, 'non-empty'),
    ({'x': {'_type': 'choice', '_value': [{'_name': 'a'}, {'_name': 'a'}]}}, 'distinct'),
    ({'x': {'_type': 'choice', '_value': [{'_name': 'a'}, {'lr': 1}]}}, 'without "_name"'),
    ({'x': {'_type': 'choice', '_value': [{'_name': 'a', 'lr': 0.1}]}}, r"x/a/lr.*_type"),
    ({'x': {'_type': 'gaussian', '_value': [0, 1]}}, 'unsupported _type'),
    ({'x': {'_type': 'uniform', '_value': ['a', 1]}}, 'finite number'),
    ({'x': 3}, '"_type" and "_value"'),
    ({}, 'non-empty'),
])
def test_malformed_spaces_are_clear_errors_naming_the_entry(space, match):
    with pytest.raises(ValueError, match=match):
        SearcherTuner('random', seed=0).update_search_space(space)


def test_keys_outside_the_space_such_as_the_budget_pass_through():
    js = JsonSpace({'o': small_spec()['o']})
    flat = {'o': 'a', 'o/a/x': 2, 'nasext_budget': 3}
    assert js.decode(flat) == {'o': {'_name': 'a', 'x': 2}, 'nasext_budget': 3}
    assert js.encode({'o': {'_name': 'a', 'x': 2}, 'nasext_budget': 3}) == flat
    tuner = SearcherTuner('successive_halving', budgets=[1, 2], eta=2, seed=0)
    tuner.update_search_space(small_spec())
    assert all(tuner.generate_parameters(i)['nasext_budget'] == 1 for i in range(2))
