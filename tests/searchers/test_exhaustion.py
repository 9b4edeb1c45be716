"""A finite search space ends the search cleanly, for every searcher: the searcher raises
``SpaceExhausted`` once every configuration has been asked (multi-fidelity searchers: once no
bracket has new work), the tuner turns it into NNI's ``NoMoreTrialError`` and the NNI strategy
stops submitting, as NNI's own strategies do (NNI v3.0 ``test/ut/nas/strategy/test_sanity.py``
runs its strategies on spaces that run out)."""
import atexit
import random

import pytest
import torch.nn as nn

import nni
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.experiment import NasExperiment, NasExperimentConfig
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear

from nni_nasext import registry
from toy_cost import COST_ARGS
from nni_nasext.adapters import SearcherStrategy, SearcherTuner
from nni_nasext.fidelity import split_budget
from nni_nasext.searcher import SpaceExhausted
from nni_nasext.space_spec import SpaceSpec

SMALL = {'a': {'_type': 'choice', '_value': [1, 2]}, 'b': {'_type': 'choice', '_value': ['x', 'y']}}
#: need a target dataset of NB201 or a scorer: they only search NB201 / a registered space
NEEDS_TARGET = {'rapidnas', 'transfer_gp', 'xfernas', 'proxy_warm_start'}
#: reads every sample as an NB201 or NB101 cell graph: refuses these spaces at configure (its tests:
#: test_neural_predictor_gcn.py, test_every_strategy_on_every_space.py)
NEEDS_TARGET |= {'neural_predictor_gcn'}
MULTI_FIDELITY = {'hyperband', 'successive_halving', 'bohb'}


@pytest.mark.parametrize('name', sorted(set(registry.STRATEGIES) - NEEDS_TARGET))
def test_every_searcher_ends_on_an_exhausted_space(name):
    space = SpaceSpec.from_json(SMALL)
    searcher = registry.build('strategy', name, seed=0, **COST_ARGS.get(name, {})).configure(space)
    rng, asked = random.Random(0), []
    with pytest.raises(SpaceExhausted):
        for _ in range(300):
            sample = searcher.ask()
            asked.append(sample)
            searcher.tell(sample, rng.random())
    configs = {SpaceSpec.key(split_budget(s)[0]) for s in asked}
    for s in asked:
        space.validate(split_budget(s)[0])
    assert len(configs) == 4                      # every configuration was tried before the end
    if name not in MULTI_FIDELITY:
        assert len(asked) <= 40
    with pytest.raises(SpaceExhausted):           # and it stays over
        searcher.ask()


def test_multi_fidelity_on_a_space_smaller_than_a_rung_still_promotes():
    searcher = registry.build('strategy', 'successive_halving', seed=0).configure(SpaceSpec.from_json(SMALL))
    asked = []
    with pytest.raises(SpaceExhausted):
        for _ in range(100):
            s = searcher.ask()
            asked.append(s)
            searcher.tell(s, {1: 0.1, 2: 0.9}[s['a']] + (0.05 if s['b'] == 'y' else 0))
    budgets = [split_budget(s)[1] for s in asked]
    assert budgets == sorted(budgets) and len(set(budgets)) == len(searcher.budgets)
    top = [split_budget(s)[0] for s in asked if split_budget(s)[1] == max(budgets)]
    assert top == [{'a': 2, 'b': 'y'}]             # the best configuration reached the largest budget


def test_the_tuner_says_no_more_trials():
    tuner = SearcherTuner('random', seed=0)
    tuner.update_search_space(SMALL)
    seen = []
    for i in range(4):
        seen.append(tuner.generate_parameters(i))
        tuner.receive_trial_result(i, seen[-1], float(i))
    assert len({SpaceSpec.key(s) for s in seen}) == 4
    with pytest.raises(nni.NoMoreTrialError):
        tuner.generate_parameters(4)


class TwoByTwo(ModelSpace):
    def __init__(self):
        super().__init__()
        self.fc = MutableLinear(3, nni.choice('width', [2, 4]))
        self.act = LayerChoice({'relu': nn.ReLU(), 'tanh': nn.Tanh()}, label='act')


def _evaluate(model):
    nni.report_final_result(float(model.fc.out_features) + (0.5 if isinstance(model.act, nn.Tanh) else 0.0))


@pytest.mark.parametrize('make', [lambda: registry.build('strategy', 'random', seed=0),
                                  lambda: registry.build('strategy', 'regularized_evolution', seed=0,
                                                         population_size=2, sample_size=1)])
def test_nas_experiment_stops_when_the_space_is_exhausted(make, tmp_path):
    strategy = SearcherStrategy(make())
    config = NasExperimentConfig('sequential', 'raw', max_trial_number=20, experiment_working_directory=str(tmp_path))
    exp = NasExperiment(TwoByTwo(), FunctionalEvaluator(_evaluate), strategy, config)
    exp.run()
    atexit.unregister(exp.stop)
    values = sorted(o['value'] for o in strategy.searcher.history)
    assert len({SpaceSpec.key(o['sample']) for o in strategy.searcher.history}) == 4
    assert values[-1] == 4.5 and len(values) < 20
    assert exp.export_top_models(formatter='dict')[0] == {'width': 4, 'act': 'tanh'}


def constrained_space():
    from nni.mutable import Categorical, ExpressionConstraint
    a, b = Categorical([1, 2, 3], label='a'), Categorical([1, 2, 3], label='b')
    return SpaceSpec.from_space({'a': a, 'b': b, 'small': ExpressionConstraint(a + b <= 4, label='small')})


@pytest.mark.parametrize('name', sorted(set(registry.STRATEGIES) - NEEDS_TARGET))
def test_no_searcher_hands_out_a_sample_that_breaks_a_constraint(name):
    space = constrained_space()
    feasible = {SpaceSpec.key({'a': a, 'b': b}) for a in (1, 2, 3) for b in (1, 2, 3) if a + b <= 4}
    searcher = registry.build('strategy', name, seed=0, **COST_ARGS.get(name, {})).configure(space)
    rng, handed = random.Random(0), []
    with pytest.raises(SpaceExhausted):
        for _ in range(300):
            sample = searcher.ask()
            handed.append(split_budget(sample)[0])
            assert space.violated(split_budget(sample)[0]) is None
            searcher.tell(sample, rng.random())
    assert {SpaceSpec.key(s) for s in handed} == feasible   # all 6 feasible ones, then the end
    infeasible = [o for o in searcher.history if o.get('infeasible')]
    assert all('small' in o['infeasible'] and o['value'] is None for o in infeasible)


def test_an_unsatisfiable_constraint_is_a_clear_error_and_cannot_go_to_nnictl_json():
    from nni.mutable import ExpressionConstraint, Numerical
    x = Numerical(0, 1, label='x')
    space = SpaceSpec.from_space({'x': x, 'impossible': ExpressionConstraint(x > 2, label='impossible')})
    searcher = registry.build('strategy', 'random', seed=0).configure(space)
    with pytest.raises(ValueError, match='break the constraints.*impossible'):
        searcher.ask()
    with pytest.raises(ValueError, match='cannot be written in nnictl'):
        space.to_json()
