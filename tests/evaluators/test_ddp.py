"""Lightning DDP inside a trial (issue 17, part 2): ``ImageClassification(devices=2,
strategy='ddp')`` trains one model with two processes (gloo on this CPU); only the first process
reports to NNI; under nnictl the second takes the first's sample, not a parameter of its own."""
import json
import subprocess
import sys

import pytest
import yaml

from nni_nasext import nnictl_tools as nt
from nni_nasext.evaluators.classification import ImageClassification
from conftest import REPO, computed_once

ROOT = REPO
SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_1x1', '1_2': 'skip_connect', '0_3': 'avg_pool_3x3',
          '1_3': 'nor_conv_3x3', '2_3': 'skip_connect'}
ARGS = {'dataset': 'digits', 'max_epochs': 2, 'devices': 2, 'accelerator': 'cpu', 'limit_train_batches': 6}


def test_ddp_arguments_are_checked_when_the_evaluator_is_built():
    with pytest.raises(ValueError, match='global batch'):
        ImageClassification('digits', devices=2, batch_size=63)
    with pytest.raises(ValueError, match='Unknown strategy'):
        ImageClassification('digits', devices=2, strategy='horovod')
    with pytest.raises(ValueError, match='devices'):
        ImageClassification('digits', devices=0)
    assert ImageClassification('digits', devices=2).strategy == 'ddp'   # not Lightning's spawn-based pick


def _two_process_trial(out):
    """Our trial program training with two processes, two whole epochs (23 steps each): its
    output and result."""
    out.mkdir(parents=True, exist_ok=True)
    args = dict(ARGS, limit_train_batches=None)
    proc = subprocess.run([sys.executable, '-m', 'nni_nasext.trial_code', '--space', 'quickstart',
                           '--evaluator', 'classification', '--evaluator-args', json.dumps(args),
                           '--sample', json.dumps(SAMPLE), '--output-dir', str(out)],
                          capture_output=True, text=True, timeout=300, cwd=out)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    return output, json.loads((out / 'result.json').read_text())


@pytest.fixture
def two_process_trial(tmp_path_factory):
    """Run once for the session (the first worker that asks runs it, the others read its output)."""
    return computed_once(tmp_path_factory, 'ddp-two-process-trial',
                         lambda: _two_process_trial(tmp_path_factory.mktemp('ddp-trial')))


def test_a_ddp_trial_trains_with_two_processes_and_reports_once(two_process_trial):
    out, result = two_process_trial
    assert 'GLOBAL_RANK: 1, MEMBER: 2/2' in out                     # a second process trained
    assert out.count('INFO nni: Intermediate result') == 2          # one per epoch, not one per process
    assert out.count('INFO nni: Final result') == 1
    assert result['sample'] == SAMPLE and 0 < result['value'] <= 1 and len(result['epoch_seconds']) == 2


def test_two_processes_train_what_one_process_trains(tmp_path, monkeypatch, two_process_trial):
    """Same global batches, gradients averaged over the processes, batch norm over the global
    batch: the two-process run follows the one-process run (here, inside the test's process) up to
    float summation order, so their validation accuracies (360 images) differ by at most a few images."""
    from nni_nasext.trial_code.run import DDP_SAMPLE, main
    monkeypatch.setenv(DDP_SAMPLE, '')   # the trial sets it for its further processes: unset again afterwards
    args = dict(ARGS, limit_train_batches=None, devices=1)   # 2 whole epochs of 23 steps
    assert main(['--space', 'quickstart', '--evaluator', 'classification', '--evaluator-args', json.dumps(args),
                 '--sample', json.dumps(SAMPLE), '--output-dir', str(tmp_path)]) == 0
    one = json.loads((tmp_path / 'result.json').read_text())
    _, two = two_process_trial
    assert abs(one['value'] - two['value']) <= 3 / 360, (one['value'], two['value'])
    assert one['value'] > 0.6, one['value']   # it learned (chance: 0.1)


def test_ddp_trials_under_nnictl(tmp_path):
    config = yaml.safe_load((ROOT / 'experiments' / 'ddp.yml').read_text())
    args = dict(ARGS, strategy='ddp')
    config.update(searchSpaceFile=str(ROOT / 'experiments' / 'spaces' / 'quickstart.json'), trialCodeDirectory=str(tmp_path),
                  maxTrialNumber=2, experimentWorkingDirectory=str(tmp_path / 'experiments'),
                  trialCommand=config['trialCommand'].split('--evaluator-args')[0]
                  + f"--evaluator-args '{json.dumps(args)}'")
    path = tmp_path / 'ddp.yml'
    path.write_text(yaml.safe_dump(config))
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(path, port)
    try:
        trials = nt.wait(port, timeout=400, poll=2, verbose=False)
    finally:
        nt.stop(exp_id)
    assert len(trials) == 2 and all(t['status'] == 'SUCCEEDED' for t in trials), trials
    for t in trials:   # one final result and one intermediate per epoch, from the first process only
        assert isinstance(t['final'], float) and len(t['intermediates']) == 2
        assert t['parameter_id'] == t['metric_parameter_id']       # its own sample, none taken from another trial
    assert len({json.dumps(t['sample'], sort_keys=True) for t in trials}) == 2
