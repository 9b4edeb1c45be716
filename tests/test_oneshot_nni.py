"""One-shot search under NNI: the nnictl trial program, NasExperiment with OneShotStrategy, and
one real nnictl experiment of experiments/oneshot/darts.yml (tiny: digits, N=1, few epochs)."""
import json

import pytest
import torch
import yaml

from nni_nasext import nnictl_tools as nt
from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.search_spaces import NasBench201Space, QuickstartSpace
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.trial_code.oneshot import build_parser, main as oneshot_trial, resolve

from conftest import REPO

TINY = ['--dataset', 'digits', '--num-cells', '1', '--channels', '4', '--limit', '300', '--batch-size', '32']


def assert_nb201_sample(sample):
    SpaceSpec.from_space(QuickstartSpace()).validate(sample)
    assert list(sample) == EDGE_LABELS and set(sample.values()) <= set(OPS)


# ------------------------------------------------------------------------- the trial program

def test_trial_standalone_writes_sample_and_history(tmp_path, capsys):
    out = tmp_path / 'out'
    assert oneshot_trial(['--method', 'darts', '--epochs', '2', *TINY, '--output-dir', str(out),
                          '--method-args', '{"arch_lr": 0.001}']) == 0
    sample = json.loads((out / 'derived_sample.json').read_text())
    assert_nb201_sample(sample)
    history = json.loads((out / 'oneshot_history.json').read_text())
    assert history['method'] == 'darts' and history['sample'] == sample
    assert len(history['val_acc']) == 2 and all(0 <= a <= 1 for a in history['val_acc'])
    assert len(history['alpha']) == 2 and torch.tensor(history['alpha']).shape == (2, 6, 5)
    assert len(history['train_loss']) == 2 and history['seconds'] > 0
    assert history['settings']['channels'] == 4 and history['settings']['method_args'] == {'arch_lr': 0.001}
    # the record nasext run / nasext export read
    record = json.loads((out / 'result.json').read_text())
    assert record['sample'] == sample and record['value'] == history['val_acc'][-1]
    assert str(out / 'derived_sample.json') in capsys.readouterr().out  # it says where


@pytest.mark.parametrize('args, message', [
    (['--method', 'dart'], "Unknown one-shot method 'dart'"),
    (['--epochs', 'two'], "argument --epochs: invalid int value: 'two'"),
    (['--epochs', '0'], 'epochs must be a positive'),
    (['--dataset', 'imagenet'], "Unknown dataset 'imagenet'"),
    (['--method-args', '{"arch_lrr": 1}'], "Unknown argument 'arch_lrr'"),
    (['--method-args', '[1]'], 'must be a JSON object'),
    (['--module-cls', 'OneShotModule'], "must be 'package.module:Class'"),
    (['--module-cls', 'nni_nasext.strategies.oneshot:search'], 'is not a subclass'),
])
def test_trial_bad_arguments_fail_with_status_1(tmp_path, capsys, args, message):
    out = tmp_path / 'out'
    assert oneshot_trial([*TINY, '--output-dir', str(out), *args]) == 1
    err = capsys.readouterr().err
    assert 'TRIAL FAILED' in err and message in err
    assert not out.exists()  # refused before any work


def test_nni_parameters_override_arguments_and_feed_method_args():
    args = build_parser().parse_args(['--method', 'darts', '--seed', '0', '--method-args', '{"arch_lr": 0.1}'])
    s = resolve(args, {'method': 'gdas', 'seed': 3, 'num-cells': 2, 'tau_max': 5.0, 'arch_lr': 0.2})
    assert (s['method'], s['seed'], s['num_cells']) == ('gdas', 3, 2)
    assert s['method_args'] == {'arch_lr': 0.2, 'tau_max': 5.0}
    s = resolve(args, {'module_cls': 'nni_nasext.strategies.oneshot:OneShotModule', 'method': 'spos'})
    assert (s['module_cls'], s['method']) == ('nni_nasext.strategies.oneshot:OneShotModule', 'spos')
    with pytest.raises(ValueError, match="'seed' = 'x'"):
        resolve(args, {'seed': 'x'})
    with pytest.raises(ValueError, match="Unknown argument 'colour'"):
        resolve(args, {'colour': 1})


# ------------------------------------------------------------------------- NasExperiment

def test_oneshot_strategy_under_nas_experiment(tmp_path):
    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy

    strategy = OneShotStrategy('darts', verbose=False)
    exp = NasExperiment(QuickstartSpace(channels=4), ImageClassification('digits', max_epochs=1, limit=300,
                                                                         batch_size=32), strategy)
    assert exp.config.execution_engine.name == 'sequential'  # inferred, as for NNI's one-shot strategies
    exp.config.experiment_working_directory = str(tmp_path)
    try:
        exp.run()
        (sample,) = exp.export_top_models(formatter='dict')
        (net,) = exp.export_top_models(formatter='instance')
        (search_model,) = exp._engine.list_models()
    finally:
        exp.stop()
    assert_nb201_sample(sample)
    assert strategy.sample == sample and strategy.result['sample'] == sample
    assert strategy.settings['epochs'] == 1 and strategy.settings['dataset'] == 'digits'
    assert len(strategy.result['val_acc']) == 1 and strategy.oneshot_module is strategy.result['module']
    # the engine saw one model: the search, with the supernet accuracy per epoch and at the end
    assert search_model.metrics.intermediates == strategy.result['val_acc']
    assert search_model.metric == strategy.result['val_acc'][-1]
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # the derived network, ready to train
    assert strategy.state_dict()['result']['sample'] == sample  # JSON-safe checkpoint state


def _initialized(space, evaluator, **kwargs):
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy
    strategy = OneShotStrategy('darts', verbose=False, **kwargs)
    strategy.initialize(RawFormatModelSpace.from_model(space, evaluator), SequentialExecutionEngine())
    return strategy


def test_oneshot_strategy_refuses_what_it_cannot_search():
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy
    from nni_nasext.search_spaces import NasBench101Space
    with pytest.raises(ValueError, match="Unknown one-shot method 'dart'"):
        OneShotStrategy('dart')
    with pytest.raises(ValueError, match="Unknown argument 'arch_lrr'"):
        OneShotStrategy('darts', arch_lrr=1)
    with pytest.raises(TypeError, match='NAS-Bench-201 space family'):
        _initialized(NasBench101Space(), ImageClassification('digits'))
    from nni.nas.evaluator import FunctionalEvaluator
    with pytest.raises(TypeError, match='ImageClassification'):
        _initialized(QuickstartSpace(), FunctionalEvaluator(lambda model: 0.5))
    # digits is 1-channel: a 3-channel NB201 space is refused before any training
    strategy = _initialized(NasBench201Space(num_cells=1, channels=4), ImageClassification('digits', limit=100))
    with pytest.raises(ValueError, match='1-channel images and 10 classes, but the model space expects 3'):
        strategy.run()
    assert list(strategy.list_models()) == []


# ------------------------------------------------------------------------- a real nnictl experiment

def test_nnictl_runs_the_darts_config_as_one_trial(tmp_path):
    from test_nnictl_integration import processes_mentioning, run_experiment
    shipped = REPO / 'experiments' / 'oneshot' / 'darts.yml'
    config = nt.load_config(shipped)
    space = json.loads((shipped.parent / config['searchSpaceFile']).read_text())
    assert config['maxTrialNumber'] == 1 and config['trialConcurrency'] == 1
    assert 'nni_nasext.trial_code.oneshot' in config['trialCommand']
    # the shipped config, run from tmp_path; its one-point space also sets epochs=2 (an override)
    (tmp_path / 'space.json').write_text(json.dumps({**space, 'epochs': {'_type': 'choice', '_value': [2]}}))
    config.update(searchSpaceFile=str(tmp_path / 'space.json'),
                  trialCodeDirectory=str((shipped.parent / config['trialCodeDirectory']).resolve()),
                  experimentWorkingDirectory=str(tmp_path / 'experiments'), maxExperimentDuration='4m')
    path = tmp_path / 'darts.yml'
    path.write_text(yaml.safe_dump(config))
    exp_id, port, trials, _ = run_experiment(path)

    (trial,) = trials
    assert trial['status'] == 'SUCCEEDED' and trial['sample'] == {'method': 'darts', 'seed': 0, 'epochs': 2}
    assert len(trial['intermediates']) == 2 and all(0 <= a <= 1 for a in trial['intermediates'])
    assert trial['final']['default'] == pytest.approx(trial['intermediates'][-1])
    (folder,) = [p.parent for p in (tmp_path / 'experiments' / exp_id).glob('**/trials/*/derived_sample.json')]
    assert folder.name == trial['id']
    sample = json.loads((folder / 'derived_sample.json').read_text())
    assert_nb201_sample(sample)
    history = json.loads((folder / 'oneshot_history.json').read_text())
    assert history['settings']['epochs'] == 2 and history['val_acc'] == pytest.approx(trial['intermediates'])
    # nasext run's export step finds it
    best = nt.export_best(nt.trials_dir(tmp_path / 'experiments', exp_id), tmp_path / 'export')
    assert best['sample'] == sample
    assert processes_mentioning(exp_id) == [] and processes_mentioning(f'--port {port}') == []
