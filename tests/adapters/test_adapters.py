import atexit
import json

import pytest

import nni.nas.strategy as nni_strategy
from nni.nas.experiment import NasExperiment, NasExperimentConfig

from nni_nasext.adapters import SearcherStrategy, SearcherTuner
from nni_nasext.adapters.tuner import TUNER_CLASSES, metric_value
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.search_spaces import NasBench201Space
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch, RegularizedEvolution

from test_searchers import SPEC, score
from test_space_spec import SpaceWithInputs


def sequential_experiment(strategy, tmp_path, trials, evaluator=None):
    config = NasExperimentConfig('sequential', 'raw', max_trial_number=trials,
                                 experiment_working_directory=str(tmp_path))
    exp = NasExperiment(NasBench201Space(), evaluator or NasBench201Lookup('cifar10-valid', 12), strategy, config)
    exp.run()
    atexit.unregister(exp.stop)  # NNI's exit hook would log into pytest's closed streams
    return exp


def test_nas_experiment_with_our_strategy_on_nb201_lookup(nb12, tmp_path):
    strategy = SearcherStrategy(RegularizedEvolution(population_size=5, sample_size=2, seed=0))
    exp = sequential_experiment(strategy, tmp_path, 20)
    history = strategy.searcher.history
    assert len(history) == 20 and all(o['value'] is not None for o in history)
    top = exp.export_top_models(formatter='dict')[0]
    assert max(o['value'] for o in history) == pytest.approx(
        NasBench201Lookup('cifar10-valid', 12).table.query(top, 'cifar10-valid', 12).accuracy)


@pytest.mark.parametrize('make', [lambda: nni_strategy.RegularizedEvolution(population_size=5, sample_size=2, seed=0),
                                  lambda: nni_strategy.Random(seed=0)])
def test_nni_builtin_strategies_on_our_space_and_evaluator(nb12, tmp_path, make):
    exp = sequential_experiment(make(), tmp_path, 12)
    top = exp.export_top_models(formatter='dict')
    assert top and set(top[0]) == set(SPEC.dims)


class FlakyLookup(NasBench201Lookup):
    """Fails on every third query, as a crashing trial would."""

    def evaluate(self, sample):
        if self.num_queries % 3 == 2:
            self.num_queries += 1
            raise RuntimeError('trial crashed')
        return super().evaluate(sample)


def test_failed_models_are_told_and_search_continues(nb12):
    ev = FlakyLookup('cifar10-valid', 12)
    strategy = SearcherStrategy(RandomSearch(seed=0))
    engine = simulate_search(strategy, ev, budget=4000)
    searcher = strategy.searcher
    assert searcher.num_failed >= 3
    assert len(searcher.history) == len(list(engine.list_models()))
    assert sum(o['value'] is not None for o in searcher.history) >= 2 * searcher.num_failed - 1
    assert ev.total_cost >= 4000


def test_strategy_state_dict_round_trip(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    a = SearcherStrategy(RegularizedEvolution(population_size=4, sample_size=2, seed=0))
    simulate_search(a, ev, 2000)
    b = SearcherStrategy(RegularizedEvolution(population_size=4, sample_size=2, seed=5))
    b.searcher.configure(SPEC)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [o['sample'] for o in b.searcher.population] == [o['sample'] for o in a.searcher.population]
    assert b.searcher.ask() == a.searcher.ask()


def test_tuner_driven_directly():
    tuner = SearcherTuner('regularized_evolution', population_size=4, sample_size=2, seed=0)
    tuner.update_search_space(json.loads(json.dumps(SPEC.to_json())))
    best = -1.
    for pid in range(30):
        params = tuner.generate_parameters(pid)
        SPEC.validate(params)
        if pid % 5 == 4:  # a crashed trial: only trial_end arrives
            tuner.trial_end(pid, False)
            continue
        tuner.receive_trial_result(pid, params, {'default': score(params), 'cost': 1.})
        tuner.trial_end(pid, True)
        best = max(best, score(params))
    searcher = tuner.searcher
    # repeats of finished samples are answered from their results, not trained (tuner docstring),
    # as replays: the history keeps one entry per trial
    assert searcher.num_failed == 6 and len(searcher.history) == 30
    assert searcher.best()['value'] == best


def test_tuner_end_event_before_result_is_not_a_failure():
    tuner = SearcherTuner('random', seed=0)
    tuner.update_search_space(SPEC.to_json())
    params = tuner.generate_parameters(0)
    tuner.trial_end(0, True)            # event overtakes the metric
    tuner.receive_trial_result(0, params, 3.0)
    assert tuner.searcher.num_failed == 0 and [o['value'] for o in tuner.searcher.history] == [3.0]


def test_tuner_on_inputchoice_space_where_nni_tpe_fails():
    json_space = json.loads(json.dumps(SpaceSpec.from_space(SpaceWithInputs()).to_json()))
    tuner = TUNER_CLASSES and SearcherTuner('regularized_evolution', population_size=3, sample_size=2, seed=1)
    tuner.update_search_space(json_space)
    for pid in range(10):
        params = tuner.generate_parameters(pid)
        SpaceWithInputs().freeze(params)
        tuner.receive_trial_result(pid, params, float(len(params['inputs']) + params['width']))
    assert len(tuner.searcher.population) == 3


def test_tuner_resume_through_import_data():
    tuner = SearcherTuner('regularized_evolution', population_size=3, sample_size=2, seed=0)
    tuner.update_search_space(SPEC.to_json())
    records = []
    for pid in range(5):
        p = tuner.generate_parameters(pid)
        records.append({'parameter': p, 'value': json.dumps({'default': score(p)})})
    resumed = SearcherTuner('regularized_evolution', population_size=3, sample_size=2, seed=0)
    resumed.update_search_space(SPEC.to_json())
    resumed.import_data([{'parameter': r['parameter'], 'value': json.loads(r['value'])} for r in records])
    assert [o['sample'] for o in resumed.searcher.population] == [r['parameter'] for r in records[-3:]]
    assert resumed.searcher.num_asked == 0 and resumed.searcher.best()['value'] == max(score(r['parameter'])
                                                                                     for r in records)
    child = resumed.generate_parameters(5)  # evolution goes on: a mutation, not a new random phase
    assert any(sum(child[k] != o['sample'][k] for k in child) == 1 for o in resumed.searcher.population)


def test_tuner_minimize_and_bad_names():
    tuner = SearcherTuner('random', optimize_mode='minimize', seed=0)
    tuner.update_search_space(SPEC.to_json())
    p = tuner.generate_parameters(0)
    tuner.receive_trial_result(0, p, 2.5)
    assert tuner.searcher.history[0]['value'] == -2.5
    with pytest.raises(KeyError, match='Known strategy names'):
        SearcherTuner('nope')
    with pytest.raises(TypeError, match='regularized_evolution'):
        SearcherTuner('regularized_evolution', populaton_size=3)
    with pytest.raises(ValueError):
        SearcherTuner('random', optimize_mode='up')
    assert metric_value({'default': float('nan')}) is None and metric_value('x') is None


def test_registered_tuner_classes_import():
    import importlib
    needs_target = {'NasextTransferGP', 'NasextXferNAS', 'NasextRapidNAS'}   # NB201 transfer: a target is required
    needs_cost = {'NasextConstrainedEvolution', 'NasextMnasNet', 'NasextParetoEvolution'}   # hardware-aware
    for name, path in TUNER_CLASSES.items():
        module, _, cls = path.rpartition('.')
        tuner_cls = getattr(importlib.import_module(module), cls)
        if name in needs_target:
            with pytest.raises(ValueError, match='target'):
                tuner_cls(seed=0)
            tuner = tuner_cls(seed=0, target='cifar100')
        elif name in needs_cost:
            with pytest.raises((TypeError, ValueError), match='cost'):
                tuner_cls(seed=0)
            tuner = tuner_cls(seed=0, cost='nb201_flops', **({'limit': 100.0} if 'Constrained' in name else
                                                          {'target': 100.0} if 'MnasNet' in name else {}))
        else:
            tuner = tuner_cls(seed=0)
        assert isinstance(tuner, SearcherTuner) and name.startswith('Nasext')
