"""The nasext command line and the trial program, including their answers to bad input."""
import json

import pytest

from nni_nasext.cli import main as nasext
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.trial_code.run import main as trial

GOOD = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'nor_conv_1x1',
        '0_3': 'avg_pool_3x3', '1_3': 'none', '2_3': 'nor_conv_3x3'}


def test_list_shows_every_registered_part(capsys):
    assert nasext(['list']) == 0
    out = capsys.readouterr().out
    for name in ('nasbench201', 'quickstart', 'random', 'regularized_evolution', 'NasextEvolution', 'NasextMedianStop',
                 'nasbench_macro', 'NasextBOHB', 'NasextPNAS',
                 'classification', 'nb201', '15,625'):
        assert name in out


def test_list_oneshot_shows_every_method_with_its_paper_and_loads_it(capsys):
    from nni_nasext.registry import ONESHOT
    from nni_nasext.strategies.oneshot import OneShotModule, method_class
    assert nasext(['list']) == 0        # te_nas shows under zero-shot, the others under oneshot
    out = capsys.readouterr().out
    assert len(ONESHOT) == 18
    for name, entry in ONESHOT.items():
        assert f'  {name} ' in out and entry.extra['paper'] in out and f"OneShotStrategy('{name}')" in out
        cls = method_class(name)
        assert issubclass(cls, OneShotModule) and cls.method == name


def test_space_json_round_trips(capsys):
    assert nasext(['space', 'quickstart', '--json']) == 0
    spec = SpaceSpec.from_json(json.loads(capsys.readouterr().out))
    assert spec == SpaceSpec.from_space(QuickstartSpace())


@pytest.mark.parametrize('argv, message', [
    (['space', 'nope'], "Unknown space 'nope'"),
    (['space', 'nasbench201', '--arg', 'num_cels=2'], "Bad arguments for space 'nasbench201'"),
    (['export', 'noexp', '--experiment-dir', '/nonexistent'], 'Experiment noexp not found'),
])
def test_bad_input_is_one_clear_error(capsys, argv, message):
    assert nasext(argv) == 2
    assert message in capsys.readouterr().err


def test_broken_experiment_configs(tmp_path, capsys):
    missing = tmp_path / 'missing.yml'
    assert nasext(['run', str(missing)]) == 2
    assert 'does not exist' in capsys.readouterr().err
    bad = tmp_path / 'bad.yml'
    bad.write_text('trialCommand: python3 -m x --a {"b": 1}\n')
    assert nasext(['run', str(bad)]) == 2
    assert 'not valid YAML' in capsys.readouterr().err
    incomplete = tmp_path / 'incomplete.yml'
    incomplete.write_text('trialCommand: echo\n')
    assert nasext(['run', str(incomplete)]) == 2
    assert "lacks 'trainingService'" in capsys.readouterr().err
    wrong_tuner = tmp_path / 'tuner.yml'
    wrong_tuner.write_text('trialCommand: echo\ntrainingService: {platform: local}\ntuner: {name: NasextNope}\n')
    assert nasext(['run', str(wrong_tuner)]) == 2
    assert "unknown tuner 'NasextNope'" in capsys.readouterr().err
    wrong_assessor = tmp_path / 'assessor.yml'
    wrong_assessor.write_text('trialCommand: echo\ntrainingService: {platform: local}\nassessor: {name: NasextMedian}\n')
    assert nasext(['run', str(wrong_assessor)]) == 2
    assert "unknown assessor 'NasextMedian'" in capsys.readouterr().err


def test_trial_program_writes_its_result(tmp_path, capsys):
    rc = trial(['--space', 'quickstart', '--evaluator', 'classification', '--evaluator-args',
                json.dumps({'dataset': 'digits', 'max_epochs': 1, 'limit_train_batches': 4}),
                '--sample', json.dumps(GOOD), '--output-dir', str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['sample'] == GOOD and 0 < result['value'] <= 1 and result['params'] > 0
    assert (tmp_path / 'model.pt').exists()
    import torch
    net = QuickstartSpace().freeze(GOOD)
    net.load_state_dict(torch.load(tmp_path / 'model.pt'))  # the exported weights fit the architecture


@pytest.mark.parametrize('args, message', [
    (['--sample', json.dumps({**GOOD, '0_1': 'conv_9x9'})], "'0_1'"),
    (['--sample', '{not json'], 'not valid JSON'),
    (['--evaluator-args', '{"dataset": "cifar100", "data_root": "/nonexistent"}', '--sample', json.dumps(GOOD)],
     'cifar100'),
])
def test_trial_program_fails_visibly(tmp_path, capsys, args, message):
    argv = ['--space', 'quickstart', '--evaluator', 'classification', '--output-dir', str(tmp_path)] + args
    assert trial(argv) == 1
    err = capsys.readouterr().err
    assert 'TRIAL FAILED' in err and message in err
    assert not (tmp_path / 'result.json').exists()


def test_arch_lists_and_prints_published_architectures(capsys):
    assert nasext(['arch']) == 0
    out = capsys.readouterr().out
    for name in ('nasnet_a', 'amoebanet_a', 'pnasnet_5', 'enas_micro', 'darts_v1', 'darts_v2'):
        assert name in out
    assert nasext(['arch', 'darts_v2', '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['params'] == 3_349_342 and info['paper_params_millions'] == 3.3 and info['space'] == 'DARTSSpace'
    assert nasext(['arch', 'resnet']) == 2
    assert "Unknown architecture 'resnet'" in capsys.readouterr().err
