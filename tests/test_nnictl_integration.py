"""A real ``nnictl create`` experiment: our tuner, our trial code, the NNI manager, REST API.

Each experiment gets a free loopback port and its own experiment directory under tmp_path,
is stopped at the end, and must leave no manager or trial process behind.
"""
import json
import re
import time

import psutil
import pytest
import yaml

from nni_nasext import nnictl_tools as nt
from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SpaceSpec
from conftest import TESTS

# (no skip: without an `nnictl` script on PATH, nnictl_tools runs `python -m nni.tools.nnictl.nnictl`)


def processes_mentioning(text):
    found = []
    for p in psutil.process_iter(['cmdline']):
        try:
            if any(text in part for part in (p.info['cmdline'] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


#: the light trial program of the tests whose claim is about a budgeted tuner (no training)
BUDGET_TRIAL = f'python3 {TESTS / "budget_trial.py"}'


def write_config(tmp_path, trials, evaluator_args, concurrency=2, tuner=None, command=None):
    """An experiment of quickstart cells trained by our trial program with the classification
    evaluator (``evaluator_args``), or run by ``command``."""
    (tmp_path / 'space.json').write_text(json.dumps(SpaceSpec.from_space(QuickstartSpace()).to_json()))
    config = {
        'experimentName': 'nasext-integration-test',
        'searchSpaceFile': 'space.json',
        'trialCommand': command or ('python3 -m nni_nasext.trial_code --space quickstart --evaluator classification '
                                    f"--evaluator-args '{json.dumps(evaluator_args)}'"),
        'trialCodeDirectory': '.',
        'trialConcurrency': concurrency,
        'maxTrialNumber': trials,
        'maxExperimentDuration': '5m',
        'tuner': tuner or {'name': 'NasextEvolution', 'classArgs': {'population_size': 2, 'sample_size': 1, 'seed': 0}},
        'trainingService': {'platform': 'local'},
        'experimentWorkingDirectory': str(tmp_path / 'experiments'),
    }
    path = tmp_path / 'config.yml'
    path.write_text(yaml.safe_dump(config))
    return path


def run_experiment(config_path):
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(config_path, port)
    try:
        trials = nt.wait(port, timeout=240, poll=2, verbose=False)
        details = nt.Rest(port).get('/experiment')
    finally:
        nt.stop(exp_id)
    deadline = time.time() + 30
    while processes_mentioning(exp_id) and time.time() < deadline:
        time.sleep(1)
    return exp_id, port, trials, details


def test_nnictl_experiment_of_three_trials(tmp_path):
    config = write_config(tmp_path, 3, {'dataset': 'digits', 'max_epochs': 2, 'limit_train_batches': 6})
    exp_id, port, trials, details = run_experiment(config)
    assert len(trials) == 3
    for t in trials:
        assert t['status'] == 'SUCCEEDED'
        SpaceSpec.from_space(QuickstartSpace()).validate(t['sample'])   # the sample is the trial's parameters
        assert len(t['intermediates']) == 2                               # per-epoch validation accuracy
        assert 0 < t['final'] <= 1 and t['final'] == pytest.approx(t['intermediates'][-1])
    assert details['params']['tuner']['name'] == 'NasextEvolution'
    # the web UI's parameters, the metrics' parameter id and the trial's own record agree
    # (NNI 3.0 alone mixes them up under concurrency, microsoft/nni#5726)
    results = {p.parent.name: json.loads(p.read_text())
               for p in (tmp_path / 'experiments' / exp_id).glob('**/trials/*/result.json')}
    assert set(results) == {t['id'] for t in trials}
    for t in trials:
        assert results[t['id']]['sample'] == t['sample']
        assert t['metric_parameter_id'] == t['parameter_id']
    # the best trial is exported as sample JSON + state dict
    best = nt.export_best(nt.trials_dir(tmp_path / 'experiments', exp_id), tmp_path / 'export')
    assert best['value'] == pytest.approx(max(t['final'] for t in trials))
    assert (tmp_path / 'export' / 'best_model.pt').exists()
    assert json.loads((tmp_path / 'export' / 'best_sample.json').read_text()) == best['sample']
    # stopped: no manager or trial process of this experiment is left
    assert processes_mentioning(exp_id) == []
    assert processes_mentioning(f'--port {port}') == [] and processes_mentioning(str(port)) == []


def test_failing_trials_are_failed_and_experiment_ends(tmp_path):
    # cifar100 is not on this machine (no download): every trial fails with a clear error
    config = write_config(tmp_path, 2, {'dataset': 'cifar100', 'max_epochs': 1, 'data_root': str(tmp_path)},
                          tuner={'name': 'NasextReinforce', 'classArgs': {'batch_size': 2, 'seed': 0}})
    exp_id, port, trials, _ = run_experiment(config)
    assert [t['status'] for t in trials] == ['FAILED', 'FAILED']
    stderr = list((tmp_path / 'experiments' / exp_id).glob('**/trials/*/trial.stderr'))
    assert stderr and all('TRIAL FAILED' in p.read_text() and 'cifar100' in p.read_text() for p in stderr)
    assert processes_mentioning(exp_id) == []


def test_nnictl_resume_continues_the_search(tmp_path):
    """``nnictl resume`` of a stopped experiment: the tuner rebuilds its state from NNI's records and
    the search goes on to its trial number. The claim is the tuner's and NNI's, so the trials are the
    light tests/budget_trial.py (a Lightning trial killed and resumed mid-training:
    tests/oneshot/test_oneshot_nni.py)."""
    config = write_config(tmp_path, 4, {}, command=BUDGET_TRIAL,
                          concurrency=1, tuner={'name': 'NasextMetaQNN', 'classArgs': {'seed': 0}})
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(config, port)
    try:
        rest, deadline = nt.Rest(port), time.time() + 120
        while sum(t['status'] == 'SUCCEEDED' for t in rest.trials()) < 2 and time.time() < deadline:
            time.sleep(1)
        first = {t['id'] for t in rest.trials() if t['status'] == 'SUCCEEDED'}
        nt.stop(exp_id)
        nt.run_nnictl('resume', exp_id, '--port', str(port))
        trials = nt.wait(port, timeout=240, poll=2, verbose=False)
    finally:
        nt.stop(exp_id)
    assert len(first) >= 2
    assert sum(t['status'] == 'SUCCEEDED' for t in trials) >= 4
    log = (tmp_path / 'experiments' / exp_id / 'log' / 'dispatcher.log').read_text()
    imported = [int(n) for n in re.findall(r'Imported (\d+) earlier trials', log)]
    assert imported and imported[0] >= len(first)   # the tuner rebuilt its population from NNI's records
    assert processes_mentioning(exp_id) == []


def test_hyperband_budget_reaches_the_trials(tmp_path):
    # successive halving 1 -> 2 epochs, eta 2: two cells for 1 epoch, the better one for 2
    config = write_config(tmp_path, 3, {'dataset': 'digits', 'max_epochs': 5, 'limit_train_batches': 4},
                          concurrency=2, tuner={'name': 'NasextSuccessiveHalving',
                                                'classArgs': {'budgets': [1, 2], 'eta': 2, 'seed': 0}})
    exp_id, port, trials, _ = run_experiment(config)
    assert [t['status'] for t in trials] == ['SUCCEEDED'] * 3
    budgets = [t['sample']['nasext_budget'] for t in trials]   # the budget shows in the web UI's parameters
    assert sorted(budgets) == [1, 1, 2]
    for t in trials:
        assert len(t['intermediates']) == t['sample']['nasext_budget']  # trained for that many epochs
    first = [t for t in trials if t['sample']['nasext_budget'] == 1]
    promoted = next(t for t in trials if t['sample']['nasext_budget'] == 2)
    arch = lambda s: {k: v for k, v in s.items() if k != 'nasext_budget'}  # noqa: E731
    assert arch(promoted['sample']) == arch(max(first, key=lambda t: t['final'])['sample'])
    assert processes_mentioning(exp_id) == []


def test_progressive_dynamic_hurdles_under_nnictl(tmp_path):
    """PDH (So et al. 2019) as the tuner NasextPDH: every child runs 1 epoch; once 2 children have
    finished the hurdle is their mean value, and only the children at or above it run again, for 2
    epochs (one trial at a time, so the order is fixed). The trials are tests/budget_trial.py (the
    claim is the tuner's; the Lightning trial's epochs follow the budget in
    test_hyperband_budget_reaches_the_trials)."""
    config = write_config(tmp_path, 6, {}, command=BUDGET_TRIAL,
                          concurrency=1, tuner={'name': 'NasextPDH', 'classArgs': {
                              'budgets': [1, 2], 'population_size': 2, 'sample_size': 1, 'hurdle_every': 2,
                              'seed': 0}})
    exp_id, port, trials, _ = run_experiment(config)
    assert [t['status'] for t in trials] == ['SUCCEEDED'] * 6
    trials = sorted(trials, key=lambda t: int(t['parameter_id']))   # in the order the tuner generated them
    arch = lambda s: {k: v for k, v in s.items() if k != 'nasext_budget'}  # noqa: E731
    for t in trials:
        assert len(t['intermediates']) == t['sample']['nasext_budget']  # trained for that many epochs
    assert [t['sample']['nasext_budget'] for t in trials[:2]] == [1, 1]
    hurdle = (trials[0]['final'] + trials[1]['final']) / 2
    for i, t in enumerate(trials[2:-1], start=2):   # a child at or above the hurdle is promoted next
        if t['sample']['nasext_budget'] == 1:
            nxt = trials[i + 1]['sample']
            assert (nxt['nasext_budget'] == 2 and arch(nxt) == arch(t['sample'])) == (t['final'] >= hurdle)
    assert processes_mentioning(exp_id) == []


def test_successive_halving_over_optunas_tpe_under_nnictl(tmp_path):
    """Issue 15 under nnictl: the tuner NasextSuccessiveHalving takes a searcher (our `tpe`,
    Optuna's TPESampler) from the config's classArgs (the dispatcher imports Optuna and still
    connects in time); one bracket: 2 cells for 1 epoch, the better for 2 (trials of
    tests/budget_trial.py, whose values never tie)."""
    config = write_config(tmp_path, 3, {}, command=BUDGET_TRIAL,
                          concurrency=1, tuner={'name': 'NasextSuccessiveHalving', 'classArgs': {
                              'budgets': [1, 2], 'eta': 2, 'searcher': 'tpe',
                              'searcher_args': {'num_startup': 2}, 'seed': 0}})
    exp_id, port, trials, _ = run_experiment(config)
    assert [t['status'] for t in trials] == ['SUCCEEDED'] * 3
    trials = sorted(trials, key=lambda t: int(t['parameter_id']))   # one at a time: in the order asked
    assert [t['sample']['nasext_budget'] for t in trials] == [1, 1, 2]
    for t in trials:
        assert len(t['intermediates']) == t['sample']['nasext_budget']
    arch = lambda s: {k: v for k, v in s.items() if k != 'nasext_budget'}  # noqa: E731
    assert arch(trials[0]['sample']) != arch(trials[1]['sample'])
    better = max(trials[:2], key=lambda t: t['final'])     # the better of the two is trained again
    assert arch(trials[2]['sample']) == arch(better['sample'])
    assert processes_mentioning(exp_id) == []


def test_registering_again_runs_nnictl_only_where_a_record_differs(monkeypatch):
    """``nasext run`` registers before each experiment: where NNI already holds every tuner and
    assessor as it would write them, no nnictl process is started."""
    from nni_nasext import nnictl_tools as nt
    nt.register_tuners(verbose=False)
    meta = nt.tuner_meta()
    with nt.registration_lock():   # another test worker may be rewriting NNI's records
        assert nt.registered_already(meta) and nt.registered_already(nt.assessor_meta())
        assert not nt.registered_already({'algorithms': [dict(meta['algorithms'][0], className='elsewhere.Tuner')]})
        assert not nt.registered_already({'algorithms': [dict(meta['algorithms'][0], algoType='assessor')]})
        assert not nt.registered_already({'algorithms': [{'algoType': 'tuner', 'builtinName': 'TPE',  # NNI's own
                                                          'className': 'nni.algorithms.hpo.tpe_tuner.TpeTuner'}]})
    calls = []
    monkeypatch.setattr(nt, 'run_nnictl', lambda *args, **kwargs: calls.append(args))
    assert nt.register_tuners(verbose=False) == [a['builtinName'] for a in meta['algorithms']]
    assert calls == []


def test_registrations_at_the_same_time_all_succeed():
    """nnictl rewrites its algorithm records in place; registrations started together (two
    `nasext run`, or two test workers) are serialised so that none reads a half-written file."""
    import subprocess
    import sys
    code = 'from nni_nasext import nnictl_tools as nt; nt.register_tuners(verbose=False, force=True)'
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 2, '\n'.join(outs)[-3000:]
