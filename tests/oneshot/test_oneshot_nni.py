"""One-shot search under NNI: the nnictl trial program, NasExperiment with OneShotStrategy (our
evaluator and NNI's), resume after SIGKILL, and one real nnictl experiment of
experiments/oneshot/darts.yml."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import nni
from nni.nas.evaluator.pytorch import Classification, DataLoader
from torch.utils.data import TensorDataset

from nni_nasext import nnictl_tools as nt
from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.search_spaces import NasBench201Space, QuickstartSpace
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.trial_code.oneshot import build_parser, main as oneshot_trial, resolve

from conftest import REPO
from nni_style_spaces import SPACES

TINY = ['--space', 'quickstart', '--space-args', '{"channels": 4}', '--evaluator', 'classification',
        '--evaluator-args', '{"dataset": "digits", "limit": 300, "batch_size": 32, "max_epochs": 2}']


def assert_nb201_sample(sample):
    QuickstartSpace().validate(sample)
    assert list(sample) == EDGE_LABELS and set(sample.values()) <= set(OPS)


# ------------------------------------------------------------------------- the trial program

def test_trial_standalone_writes_sample_history_and_checkpoint(tmp_path, capsys):
    out = tmp_path / 'out'
    assert oneshot_trial(['--method', 'darts', *TINY, '--output-dir', str(out),
                          '--method-args', '{"arch_lr": 0.001}']) == 0
    sample = json.loads((out / 'derived_sample.json').read_text())
    assert_nb201_sample(sample)
    history = json.loads((out / 'oneshot_history.json').read_text())
    assert history['method'] == 'darts' and history['sample'] == sample
    assert len(history['val']) == 2 and all(0 <= a <= 1 for a in history['val'])
    assert len(history['strengths']) == 2 and set(history['strengths'][0]) == set(EDGE_LABELS)
    assert len(history['train_loss']) == 2 and history['seconds'] > 0
    assert history['settings']['method_args'] == {'arch_lr': 0.001}
    record = json.loads((out / 'result.json').read_text())
    assert record['sample'] == sample and record['value'] == history['val'][-1]
    assert record['space'] == 'quickstart' and record['space_args'] == {'channels': 4}
    assert (out / 'checkpoints' / 'last.ckpt').exists()
    assert str(out / 'derived_sample.json') in capsys.readouterr().out  # it says where


@pytest.mark.parametrize('args, message', [
    (['--method', 'dart'], "Unknown oneshot 'dart'"),
    (['--epochs', 'two'], "argument --epochs: invalid optional_int value: 'two'"),
    (['--epochs', '0'], 'epochs must be a positive'),
    (['--space', 'nasbench2O1'], "Unknown space 'nasbench2O1'"),
    (['--evaluator', 'nb20l'], "Unknown evaluator 'nb20l'"),
    (['--method-args', '{"arch_lrr": 1}'], "Unknown argument 'arch_lrr'"),
    (['--method-args', '[1]'], 'must be a JSON object'),
    (['--arch-data', 'test'], "arch_data must be 'split' or 'val'"),
    (['--evaluator-args', '{"dataset": "imagenet"}'], "Unknown dataset 'imagenet'"),
])
def test_trial_bad_arguments_fail_with_status_1(tmp_path, capsys, args, message):
    out = tmp_path / 'out'
    assert oneshot_trial([*TINY, '--output-dir', str(out), *args]) == 1
    err = capsys.readouterr().err
    assert 'TRIAL FAILED' in err and message in err
    assert not (out / 'checkpoints').exists()  # nothing was trained


def test_nni_parameters_override_arguments_and_feed_method_args():
    args = build_parser().parse_args(['--method', 'darts', '--epochs', '3'])
    s = resolve(args, {'method': 'gdas', 'epochs': 1, 'tau_max': 4.0, 'method_args': {'tau_min': 0.5}})
    assert s['method'] == 'gdas' and s['epochs'] == 1
    assert s['method_args'] == {'tau_max': 4.0, 'tau_min': 0.5}
    with pytest.raises(ValueError, match="Unknown argument 'tau_max' for one-shot method 'darts'"):
        resolve(args, {'tau_max': 4.0})


# ------------------------------------------------------------------------- NasExperiment

def _nni_classification(max_epochs=1):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 10, (96,), generator=g)
    return Classification(train_dataloaders=nni.trace(DataLoader)(TensorDataset(x, y), batch_size=16),
                          val_dataloaders=nni.trace(DataLoader)(TensorDataset(x[:32], y[:32]), batch_size=16),
                          num_classes=10, max_epochs=max_epochs)


@pytest.mark.parametrize('case', ['ours', 'nni'])
def test_oneshot_strategy_under_nas_experiment(tmp_path, case):
    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy

    if case == 'ours':
        space, evaluator = QuickstartSpace(channels=4), ImageClassification('digits', max_epochs=2, limit=300,
                                                                           batch_size=32)
    else:  # NNI's own evaluator on a space of LayerChoice, value choices and InputChoice
        space, evaluator = SPACES['simple_value_choice'][0](), _nni_classification(max_epochs=2)
    strategy = OneShotStrategy('gdas', verbose=False, output_dir=str(tmp_path / 'search'))
    exp = NasExperiment(space, evaluator, strategy)
    assert exp.config.execution_engine.name == 'sequential'  # inferred, as for NNI's one-shot strategies
    exp.config.experiment_working_directory = str(tmp_path)
    try:
        exp.run()
        (sample,) = exp.export_top_models(formatter='dict')
        (net,) = exp.export_top_models(formatter='instance')
        (search_model,) = exp._engine.list_models()
    finally:
        exp.stop()
    space.validate(sample)
    assert strategy.sample == sample and strategy.result.sample == sample
    assert len(strategy.result.history['val']) == 2 and strategy.oneshot_module is strategy.result.module
    assert search_model.metric == pytest.approx(strategy.result.history['val'][-1])
    if case == 'ours':
        assert search_model.metrics.intermediates == pytest.approx(strategy.result.history['val'])
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # the derived network, ready to train
    state = strategy.state_dict()
    assert state['result']['sample'] == sample and state['ckpt_path'].endswith('last.ckpt')
    json.dumps(state)  # JSON-safe
    # a restored strategy exports the same sample without searching again
    again = OneShotStrategy('gdas', verbose=False)
    again.load_state_dict(state)
    assert again.sample == sample


def _initialized(space, evaluator, method='darts', **kwargs):
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy
    strategy = OneShotStrategy(method, verbose=False, **kwargs)
    strategy.initialize(RawFormatModelSpace.from_model(space, evaluator), SequentialExecutionEngine())
    return strategy


def test_oneshot_strategy_refuses_what_it_cannot_search():
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy
    with pytest.raises(KeyError, match="Unknown oneshot 'dart'"):
        OneShotStrategy('dart')
    with pytest.raises(ValueError, match="Unknown argument 'arch_lrr'"):
        OneShotStrategy('darts', arch_lrr=1)
    from nni.nas.evaluator import FunctionalEvaluator
    with pytest.raises(TypeError, match='not supported'):
        _initialized(QuickstartSpace(), FunctionalEvaluator(lambda model: 0.5)).run()
    with pytest.raises(TypeError, match="MyOp at 'batch_norm'.*not supported"):
        _initialized(SPACES['custom_op'][0](), _nni_classification()).run()
    # digits is 1-channel: a 3-channel NB201 space is refused before any training
    strategy = _initialized(NasBench201Space(num_cells=1, channels=4), ImageClassification('digits', limit=100))
    with pytest.raises(ValueError, match='does not run on a training batch'):
        strategy.run()
    assert list(strategy.list_models()) == []


# ------------------------------------------------------------------------- resume after SIGKILL

def _trial_cmd(out, method):
    return [sys.executable, '-m', 'nni_nasext.trial_code.oneshot', '--method', method, '--space', 'nasbench201',
            '--space-args', '{"num_cells": 1, "channels": 8, "in_channels": 1}', '--evaluator', 'classification',
            '--evaluator-args', '{"dataset": "digits", "max_epochs": 3, "batch_size": 16, "limit": 480}',
            '--output-dir', str(out)]


@pytest.mark.parametrize('method', ['gdas', 'spos'])
def test_a_search_killed_half_way_resumes_to_the_same_architecture(tmp_path, method):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    full = tmp_path / 'full'
    subprocess.run(_trial_cmd(full, method), check=True, env=env, capture_output=True, timeout=300)
    part = tmp_path / 'part'
    proc = subprocess.Popen(_trial_cmd(part, method), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = part / 'checkpoints' / 'last.ckpt'
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert ckpt.exists() and not (part / 'derived_sample.json').exists(), 'killed too late to test resuming'
    killed_at = torch.load(ckpt, weights_only=False)['epoch']
    assert killed_at < 2
    run = subprocess.run(_trial_cmd(part, method), env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'resuming from' in run.stderr
    a = json.loads((full / 'oneshot_history.json').read_text())
    b = json.loads((part / 'oneshot_history.json').read_text())
    assert b['resumed_from'] and a['sample'] == b['sample']
    assert a['val'] == b['val'] and a['train_loss'] == b['train_loss'] and a['strengths'] == b['strengths']


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
    assert history['settings']['epochs'] == 2 and history['val'] == pytest.approx(trial['intermediates'])
    # nasext run's export step finds it
    best = nt.export_best(nt.trials_dir(tmp_path / 'experiments', exp_id), tmp_path / 'export')
    assert best['sample'] == sample
    assert processes_mentioning(exp_id) == [] and processes_mentioning(f'--port {port}') == []
