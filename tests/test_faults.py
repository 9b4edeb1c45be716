"""Faults under ``nnictl``, with real processes (issue 16): nothing finished is lost.

Each test runs a real experiment of NB201 lookup trials (about a second each; random search with
a fixed seed, so the samples are known) and breaks it as a crash would:

* the NNI manager killed with SIGKILL, then resumed (:func:`nnictl_tools.resume`);
* the tuner (dispatcher) process killed: NNI sets ERROR and starts nothing more; the supervision
  of ``nasext run`` (:func:`nnictl_tools.supervise`) resumes it;
* a running trial killed: FAILED, the tuner is told, the search goes on;
* a trial that hangs: ``maxTrialDuration`` ends it;
* trials that report NaN (a user's trial) or train into NaN (ours);
* a trial that fills the disk of the experiment directory (a small tmpfs the test mounts).

After a resume, every trial finished before the fault keeps its metric, no sample is trained
twice (the tuner answers the samples it has records of) and the search completes its budget.
"""
import contextlib
import json
import re
import sqlite3
import subprocess
import time

import psutil
import pytest
import yaml

from nni_nasext import nnictl_tools as nt
from nni_nasext.search_spaces.nasbench201 import NasBench201Space
from nni_nasext.space_spec import SpaceSpec

LOOKUP = ("python3 -m nni_nasext.trial_code --space nasbench201 --evaluator nb201 "
          "--evaluator-args '{\"epochs\": 12}'")


def lookup_config(tmp_path, trials, prefix='', workdir=None, concurrency=2, command=None, **extra):
    (tmp_path / 'space.json').write_text(json.dumps(SpaceSpec.from_space(NasBench201Space()).to_json()))
    config = {
        'experimentName': 'nasext-fault-test', 'searchSpaceFile': 'space.json',
        'trialCommand': command or (prefix + LOOKUP), 'trialCodeDirectory': '.',
        'trialConcurrency': concurrency, 'maxTrialNumber': trials, 'maxExperimentDuration': '10m',
        'tuner': {'name': 'NasextRandom', 'classArgs': {'seed': 0}},
        'trainingService': {'platform': 'local'},
        'experimentWorkingDirectory': str(workdir or tmp_path / 'experiments'), **extra}
    path = tmp_path / 'config.yml'
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def experiment(config_path):
    """``nnictl create`` on a free port; at the end the experiment is stopped and every process
    of it is gone (asserted)."""
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(config_path, port)
    try:
        yield exp_id, port
    finally:
        nt.stop(exp_id)  # nnictl stop, then whatever it leaves is ended
        assert nt.experiment_processes(exp_id) == []


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f'timed out waiting for {what}')


def succeeded(port):
    return {t['id']: t for t in nt.Rest(port).trials() if t['status'] == 'SUCCEEDED'}


def finished_while_running(port, n):
    """The succeeded trials, once at least ``n`` have succeeded and another one is running (a
    fault then hits a running trial)."""
    trials = nt.Rest(port).trials()
    done = {t['id']: t for t in trials if t['status'] == 'SUCCEEDED'}
    return done if len(done) >= n and any(t['status'] == 'RUNNING' for t in trials) else None


def arch(trial):
    return json.dumps(trial['sample'], sort_keys=True)


def dispatcher_log(workdir, exp_id):
    return (workdir / exp_id / 'log' / 'dispatcher.log').read_text()


def check_nothing_lost(trials, before, budget):
    """All ``budget`` trials succeeded, those finished before the fault with the same metric, and
    no sample was trained twice."""
    by_id = {t['id']: t for t in trials}
    assert [t['status'] for t in trials] == ['SUCCEEDED'] * budget
    for trial_id, trial in before.items():
        assert by_id[trial_id]['final'] == trial['final'] and by_id[trial_id]['sample'] == trial['sample']
    assert len({arch(t) for t in trials}) == budget


def test_the_manager_killed_then_resumed_loses_nothing(tmp_path, nb12):
    config = lookup_config(tmp_path, 10, prefix='sleep 1 && ')
    with experiment(config) as (exp_id, port):
        before = wait_until(lambda: finished_while_running(port, 3), 120, '3 trials and a running one')
        manager = [p for p in nt.experiment_processes(exp_id) if '--experiment-id' in cmdline(p)]
        assert len(manager) == 1
        manager[0].kill()
        manager[0].wait(10)
        with pytest.raises(nt.ManagerGone):
            nt.wait(port, timeout=5, verbose=False)
        # nasext resume: ends the surviving tuner first (it would break the new manager), resumes,
        # waits under supervision and exports the best
        from nni_nasext.cli import main
        assert main(['resume', exp_id, '--port', str(port), '--export', str(tmp_path / 'best'), '--keep']) == 0
        trials = nt.Rest(port).trials()
    check_nothing_lost(trials, before, 10)
    best = json.loads((tmp_path / 'best' / 'best_result.json').read_text())
    assert best['value'] == max(t['final']['default'] for t in trials)
    imported = re.findall(r'Imported (\d+) earlier trials', dispatcher_log(tmp_path / 'experiments', exp_id))
    assert imported and int(imported[0]) >= len(before)  # the tuner was rebuilt from NNI's records
    manager_log = (tmp_path / 'experiments' / exp_id / 'log' / 'nnimanager.log').read_text()
    rerun = re.findall(r'submitted trials: \d+, where (\d+) is resuming', manager_log)
    assert rerun and int(rerun[-1]) >= 1   # the trial that was running is rerun (same id), not lost


def cmdline(proc) -> list:
    """A process's command line; [] for one that ended while it was looked at (a trial's)."""
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def is_tuner(proc) -> bool:
    """NNI's tuner process: ``python -m nni --exp_params ...``."""
    cmd = cmdline(proc)
    return bool(cmd) and 'python' in cmd[0] and '--exp_params' in cmd


def test_a_killed_tuner_is_resumed_by_the_supervision(tmp_path, nb12, capsys):
    config = lookup_config(tmp_path, 10, prefix='sleep 1 && ')
    with experiment(config) as (exp_id, port):
        before = wait_until(lambda: finished_while_running(port, 3), 120, '3 trials and a running one')
        tuner = [p for p in nt.experiment_processes(exp_id) if is_tuner(p)]
        assert len(tuner) == 1
        tuner[0].kill()
        trials = nt.supervise(exp_id, port, timeout=240, restarts=1, poll=1, verbose=False)
    check_nothing_lost(trials, before, 10)
    out = capsys.readouterr().out
    assert 'tuner may have crashed' in out and 'restart 1 of 1' in out


def test_a_killed_trial_is_failed_and_the_search_goes_on(tmp_path, nb12):
    config = lookup_config(tmp_path, 6, prefix='sleep 4 && ')
    with experiment(config) as (exp_id, port):
        def running_trial():
            for p in nt.experiment_processes(exp_id):
                try:
                    victim = p.environ().get('NNI_TRIAL_JOB_ID')
                except psutil.Error:
                    continue
                if victim:
                    return victim
        victim = wait_until(running_trial, 60, 'a running trial')
        procs = [p for p in nt.experiment_processes(exp_id) if p.environ().get('NNI_TRIAL_JOB_ID') == victim]
        for p in procs:
            p.kill()
        trials = nt.wait(port, timeout=180, poll=1, verbose=False)
        status = nt.Rest(port).status()
    statuses = {t['id']: t['status'] for t in trials}
    # not retried; NNI 3.0's local service shows a trial killed by a signal as USER_CANCELED
    assert statuses.pop(victim) in ('FAILED', 'USER_CANCELED')
    assert list(statuses.values()) == ['SUCCEEDED'] * 5 and status == 'DONE'
    assert 'without a final result; told as failed' in dispatcher_log(tmp_path / 'experiments', exp_id)


def test_a_hanging_trial_is_ended_by_max_trial_duration(tmp_path, nb12):
    # the first trial to start hangs (mkdir is atomic: exactly one trial gets the lock)
    config = lookup_config(tmp_path, 5, prefix=f'mkdir {tmp_path}/hang 2>/dev/null && sleep 300; ',
                           maxTrialDuration='8s')
    with experiment(config) as (exp_id, port):
        trials = nt.supervise(exp_id, port, timeout=180, poll=1, verbose=False)
        jobs = {j['trialJobId']: j for j in nt.Rest(port).get('/trial-jobs')}
        # NNI ended the trial's shell; the supervision ended the program it had started
        def hanging():
            return [p for p in psutil.process_iter(['cmdline']) if p.info['cmdline'] == ['sleep', '300']]
        # the supervision reaps on its next poll: allow it a few seconds under load (not the 300 s of the sleep)
        deadline = time.time() + 15
        while hanging() and time.time() < deadline:
            time.sleep(0.5)
        hung = [(p.pid, p.ppid(), p.environ().get('NNI_TRIAL_JOB_ID'), p.environ().get('NNI_EXP_ID'))
                for p in hanging()]
    assert hung == [], f'left running (pid, ppid, trial, experiment {exp_id}): {hung}; trials: ' + \
        str([(t['id'], t['status']) for t in trials])
    ended = [t for t in trials if t['status'] != 'SUCCEEDED']
    assert len(ended) == 1 and ended[0]['status'] in ('EARLY_STOPPED', 'USER_CANCELED')
    job = jobs[ended[0]['id']]
    assert (job['endTime'] - job['startTime']) / 1000 < 60       # ended near the limit, not at 300 s
    assert sum(t['status'] == 'SUCCEEDED' for t in trials) == 4


def test_nan_results_are_never_ranked(tmp_path, nb12):
    # a user's own trial reporting NaN: NNI shows SUCCEEDED with NaN; our tuner tells a failure
    (tmp_path / 'nan_trial.py').write_text(
        'import nni\nnni.get_next_parameter()\nnni.report_final_result(float("nan"))\n')
    config = lookup_config(tmp_path, 2, command='python3 nan_trial.py')
    with experiment(config) as (exp_id, port):
        trials = nt.wait(port, timeout=120, poll=1, verbose=False)
    assert [t['status'] for t in trials] == ['SUCCEEDED'] * 2 and all(t['final'] != t['final'] for t in trials)
    assert dispatcher_log(tmp_path / 'experiments', exp_id).count('not a number: told as failed') == 2
    # our trial program: a training loss that turns NaN fails the trial, with the reason
    args = json.dumps({'dataset': 'digits', 'max_epochs': 1, 'limit_train_batches': 2, 'learning_rate': 1e30})
    config = lookup_config(tmp_path, 1, command='python3 -m nni_nasext.trial_code --space quickstart '
                           f"--evaluator classification --evaluator-args '{args}'")
    with experiment(config) as (exp_id, port):
        trials = nt.wait(port, timeout=180, poll=1, verbose=False)
    assert [t['status'] for t in trials] == ['FAILED']
    stderr = next((tmp_path / 'experiments' / exp_id).glob('**/trials/*/trial.stderr')).read_text()
    assert re.search(r'TRIAL FAILED: TrialFailed: .*(?i:nan)', stderr)


def test_a_full_disk_is_a_clear_error_and_nothing_is_lost(tmp_path, nb12):
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}')
    try:
        flag = tmp_path / 'fill'
        # once the flag exists, a trial writes more than the disk holds
        config = lookup_config(tmp_path, 6, workdir=disk, concurrency=1,
                               prefix=f'test -e {flag} && head -c 40000000 /dev/zero > $NNI_OUTPUT_DIR/fill.bin; ')
        with experiment(config) as (exp_id, port):
            before = wait_until(lambda: (lambda s: s if len(s) >= 2 else None)(succeeded(port)), 120, '2 trials')
            flag.touch()
            with pytest.raises(nt.DiskFull, match=r'disk of the experiment directory .* is full.*nasext resume'):
                nt.supervise(exp_id, port, timeout=120, poll=1, verbose=False)
            nt.stop(exp_id)
            db = sqlite3.connect(disk / exp_id / 'db' / 'nni.sqlite')
            assert db.execute('pragma integrity_check').fetchall() == [('ok',)]
            finals = {row[0] for row in db.execute("select trialJobId from MetricData where type = 'FINAL'")}
            db.close()
            assert set(before) <= finals
            # space freed: the search resumes and completes
            flag.unlink()
            for big in disk.glob('**/fill.bin'):
                big.unlink()
            nt.resume(exp_id, port)
            trials = nt.supervise(exp_id, port, timeout=180, restarts=0, poll=1, verbose=False)
        done = {t['id']: t for t in trials if t['status'] == 'SUCCEEDED'}
        for trial_id, trial in before.items():
            assert done[trial_id]['final'] == trial['final']
        assert len(trials) == 6 and len(done) >= 5   # the trial that filled the disk may stay FAILED
    finally:
        subprocess.run(['umount', '-l', str(disk)], capture_output=True)
