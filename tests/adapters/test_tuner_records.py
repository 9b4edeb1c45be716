"""The tuner after ``nnictl resume``: samples with a result are answered from NNI's records, and
samples of trials NNI reruns (read from the manager's REST API) are not asked again meanwhile.
(The real-process version of these cases is in test_faults.py.)"""
import http.server
import json
import threading

import nni
import pytest

from nni_nasext.adapters import SearcherTuner
from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import SpaceSpec

SPACE = {'a': {'_type': 'choice', '_value': [0, 1, 2]}, 'b': {'_type': 'choice', '_value': ['x', 'y']}}


def value(params):
    return params['a'] + (params['b'] == 'y') / 10


def tuner(**kw):
    t = SearcherTuner('random', seed=0, **kw)
    t.update_search_space(SPACE)
    return t


def first_run(n):
    """``n`` trials of a first tuner: NNI's records of them."""
    t = tuner()
    records = []
    for pid in range(n):
        params = t.generate_parameters(pid)
        t.receive_trial_result(pid, params, value(params))
        records.append({'parameter': params, 'value': value(params)})
    return records


def test_finished_samples_are_not_trained_again_after_a_resume():
    records = first_run(3)
    resumed = tuner()
    resumed.import_data(records)
    rest = [resumed.generate_parameters(pid) for pid in range(3, 6)]
    key = SpaceSpec.key
    assert {key(p) for p in rest}.isdisjoint(key(r['parameter']) for r in records)
    assert len({key(p) for p in rest}) == 3
    assert resumed.answered_from_records >= 1   # the same seed proposes the recorded samples first
    with pytest.raises(nni.NoMoreTrialError):   # all 6 samples asked or recorded: the search ends
        resumed.generate_parameters(6)


def test_repeat_finished_trains_repeats_when_asked():
    records = first_run(2)
    resumed = tuner(repeat_finished=True)
    resumed.import_data(records)
    assert resumed.generate_parameters(2) == records[0]['parameter']
    with pytest.raises(ValueError, match='repeat_finished'):
        SearcherTuner('random', repeat_finished='yes')


def test_a_nan_result_is_told_as_failed_and_not_recorded():
    t = tuner()
    params = t.generate_parameters(0)
    t.receive_trial_result(0, params, {'default': float('nan')})
    assert t.searcher.history[-1]['value'] is None and t._finished == {}


class _Jobs(http.server.BaseHTTPRequestHandler):
    jobs = []

    def do_GET(self):
        body = json.dumps(self.jobs if self.path == '/api/v1/nni/trial-jobs' else {}).encode()
        self.send_response(200 if self.path == '/api/v1/nni/trial-jobs' else 404)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_samples_of_trials_nni_reruns_wait_for_their_result(monkeypatch):
    records = first_run(4)
    rerun = records.pop()  # running when the manager died: NNI reruns it, with no record yet
    _Jobs.jobs = [{'trialJobId': f't{i}', 'status': 'SUCCEEDED',
                   'hyperParameters': [json.dumps({'parameter_id': i, 'parameters': r['parameter']})]}
                  for i, r in enumerate(records)]
    _Jobs.jobs.append({'trialJobId': 't3', 'status': 'ADD_RESUMED',
                       'hyperParameters': [json.dumps({'parameter_id': 3, 'parameters': rerun['parameter']})]})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Jobs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv('NNI_TUNER_COMMAND_CHANNEL', f'ws://localhost:{server.server_address[1]}/tuner')
        resumed = tuner()
        resumed.import_data(records)
        asked = [resumed.generate_parameters(4), resumed.generate_parameters(5)]
    finally:
        server.shutdown()
        server.server_close()
    assert rerun['parameter'] not in asked    # the same seed proposed it: it waits for the rerun trial
    assert SpaceSpec.key(rerun['parameter']) in resumed._resumed
    told = len(resumed.searcher.history)
    resumed.import_data([rerun])              # NNI imports the rerun trial's result when it ends
    assert len(resumed.searcher.history) == told + 2   # its own result and the ask that waited
    assert resumed._resumed == {}
    with pytest.raises(nni.NoMoreTrialError):
        resumed.generate_parameters(6)


class _Cycle(Searcher):
    """Asks the same two samples forever: a converged search."""
    def __init__(self):
        super().__init__(seed=0)
        self.told = 0

    def _ask(self):
        return [{'a': 0, 'b': 'x'}, {'a': 1, 'b': 'x'}][self.num_asked % 2]

    def _tell(self, obs):
        self.told += 1


def test_known_samples_are_replayed_without_growing_the_history():
    """The load run's leak (bench_load.py: the tuner process grew 0.5 MiB a trial): a converged
    evolution asks finished samples up to MAX_KNOWN_IN_A_ROW times per trial, and each answer
    from the records used to add an observation to the searcher's history."""
    t = tuner()
    t.searcher = _Cycle().configure(t.codec.spec)
    for pid in range(2):
        params = t.generate_parameters(pid)
        t.receive_trial_result(pid, params, value(params))
    fresh = t.generate_parameters(2)             # only known samples: replays, then a random unseen one
    assert t.answered_from_records == SearcherTuner.MAX_KNOWN_IN_A_ROW
    assert t.searcher.told == 2 + SearcherTuner.MAX_KNOWN_IN_A_ROW   # the searcher learnt each answer
    assert len(t.searcher.history) == 2                               # one entry per trial
    assert t.random_instead_of_repeat == 1 and fresh not in ({'a': 0, 'b': 'x'}, {'a': 1, 'b': 'x'})
    t.receive_trial_result(2, fresh, value(fresh))
    assert len(t.searcher.history) == 3 and t.searcher.history[-1]['sample'] == fresh


def test_a_replay_joins_the_evolution_population_but_not_the_history():
    from nni_nasext.strategies import RegularizedEvolution
    rea = RegularizedEvolution(population_size=2, sample_size=1, seed=0).configure(tuner().codec.spec)
    a, b = {'a': 0, 'b': 'x'}, {'a': 2, 'b': 'y'}
    rea.tell(a, 1.0)
    rea.tell(b, 2.0)
    rea.tell(a, 1.0, replay=True)
    assert [o['sample'] for o in rea.population] == [b, a]   # the oldest left, the replayed child joined
    assert [o['sample'] for o in rea.history] == [a, b]


def test_inside_nni_dispatcher_the_searcher_is_built_while_it_connects(monkeypatch):
    """NNI 3.0's manager waits 10 s for the dispatcher to connect, and the dispatcher creates its
    tuner first: there (SDK_PROCESS=dispatcher) the searcher is built in the background, the first
    command waits for it, and the search is the one the same tuner makes elsewhere."""
    space = {'a': {'_type': 'choice', '_value': list(range(6))}, 'b': {'_type': 'uniform', '_value': [0, 1]}}

    def asked(tuner):
        tuner.update_search_space(space)
        out = []
        for i in range(8):
            out.append(tuner.generate_parameters(i))
            tuner.receive_trial_result(i, out[-1], float(out[-1]['a']))
        return out

    eager = SearcherTuner('regularized_evolution', population_size=4, sample_size=2, seed=3)
    assert eager._builder is None
    monkeypatch.setenv('SDK_PROCESS', 'dispatcher')
    background = SearcherTuner('regularized_evolution', population_size=4, sample_size=2, seed=3)
    assert background._builder is not None
    assert asked(background) == asked(eager)
    # a wrong argument fails the first command, with the error the tuner gives elsewhere
    wrong = SearcherTuner('reinforce', hidden_size=0)
    with pytest.raises(ValueError) as err:
        wrong.update_search_space(space)
    monkeypatch.delenv('SDK_PROCESS')
    with pytest.raises(ValueError) as same:
        SearcherTuner('reinforce', hidden_size=0)
    assert str(err.value) == str(same.value) and 'hidden_size' in str(err.value)
    monkeypatch.setenv('SDK_PROCESS', 'dispatcher')
    with pytest.raises(KeyError, match='regularised_evolution'):   # an unknown name fails at once
        SearcherTuner('regularised_evolution')
