"""A ``CheckpointingNasExperiment`` killed with SIGKILL in the middle of its search and resumed in
a new process loses no trained model and trains none twice (nni_nasext.adapters.experiment)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


HERE = Path(__file__).parent
SCRIPT = textwrap.dedent('''
    import atexit, json, os, sys, time
    sys.path[:0] = {tests!r}
    import nni
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperimentConfig
    from nni_nasext import registry
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.adapters.experiment import CheckpointingNasExperiment
    from test_nas_resume import Wide

    LOG = {log!r}

    def evaluate(model):
        time.sleep(0.4)
        value = float(model.fc.out_features) + model.out.out_features / 10
        with open(LOG, 'a') as fh:   # one line per trained model
            fh.write(json.dumps({{'width': model.fc.out_features, 'head': model.out.out_features,
                                  'act': type(model.act).__name__}}) + '\\n')
        nni.report_final_result(value)

    config = NasExperimentConfig('sequential', 'raw', max_trial_number=10, experiment_working_directory={work!r})
    strategy = SearcherStrategy(registry.build('strategy', 'random', seed=0))
    exp = CheckpointingNasExperiment(Wide(), FunctionalEvaluator(evaluate), strategy, config, id='killed')
    exp.resume() if sys.argv[1] == 'resume' else exp.run()
    atexit.unregister(exp.stop)
    h = exp.strategy.searcher.history
    print('HISTORY', json.dumps([[o['sample'], o['value']] for o in h]))
''')


def test_a_search_killed_mid_way_resumes_without_losing_or_repeating_a_model(tmp_path):
    log = tmp_path / 'trained.jsonl'
    script = tmp_path / 'search.py'
    script.write_text(SCRIPT.format(tests=[str(d) for d in (HERE, HERE / 'adapters', HERE / 'searchers')], log=str(log), work=str(tmp_path / 'work')))
    env = dict(os.environ, HOME=str(tmp_path))   # NNI's experiment manifest lives under HOME
    proc = subprocess.Popen([sys.executable, str(script), 'run'], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        if proc.poll() is not None:   # the search died on its own: show why
            raise AssertionError('the search ended before it was killed:\n' + proc.stdout.read()[-3000:])
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    assert 4 <= len(before) < 10, 'the search must be killed part-way'
    out = subprocess.run([sys.executable, str(script), 'resume'], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    history = json.loads(next(l for l in out.stdout.splitlines() if l.startswith('HISTORY'))[len('HISTORY '):])
    trained = log.read_text().splitlines()
    assert len(history) == 10 and all(v is not None for _, v in history)
    # every model trained before the kill is kept; at most the one in training at the kill runs again
    assert len(trained) <= 10 + 1
    assert len({json.dumps(s, sort_keys=True) for s, _ in history}) == 10    # random search: no repeats
