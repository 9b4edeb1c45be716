"""The lifelong learning-curve database: records, validation, file round trip, NNI import."""
import json
import sqlite3
import sys

import numpy as np
import pytest

from conftest import REPO, shared_data
from nni_nasext.assessors.lc_database import (LCDatabase, RecordError, import_nni_experiment, make_record, nni_experiment_db,
                                    read_nni_trials)

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'none', '1_2': 'skip_connect', '0_3': 'avg_pool_3x3',
          '1_3': 'nor_conv_1x1', '2_3': 'nor_conv_3x3'}


def record(task='t1', curve=(0.2, 0.5, 0.7), **kw):
    kw.setdefault('sample', SAMPLE)
    return make_record(task=task, curve=list(curve), epoch_seconds=[1.0] * len(curve), seed=0,
                       timestamp='2026-01-01T00:00:00+00:00', **kw)


def test_round_trip_and_queries(tmp_path):
    path = tmp_path / 'sub' / 'db.jsonl'
    db = LCDatabase(path)
    assert len(db) == 0 and db.tasks() == []
    recs = [record('t1', (0.1, 0.4, 0.6)), record('t1', (0.2, 0.3, 0.5), sample={**SAMPLE, '0_2': 'skip_connect'}),
            record('t2', (0.5, 0.9), dataset='digits', task_description='digits, all classes', params=123,
                   extra={'note': 'x'})]
    for r in recs:
        assert db.append(r)
    again = LCDatabase(path)  # a fresh reader sees the same records
    assert again.records() == recs
    assert again.tasks() == ['t1', 't2']
    assert [r['final'] for r in again.records('t1')] == [0.6, 0.5]
    samples, curves = again.curves('t1')
    assert samples == [recs[0]['sample'], recs[1]['sample']]
    np.testing.assert_allclose(curves, [[0.1, 0.4, 0.6], [0.2, 0.3, 0.5]])
    _, _, seconds = again.curves('t2', with_seconds=True)
    assert seconds.shape == (1, 2)
    # duplicates (same task, space, sample, seed) are skipped on request
    assert recs[0] in again
    assert not again.append(recs[0], skip_existing=True)
    assert len(again) == 3
    assert again.extend([recs[0], record('t3')]) == 1
    # the first reader notices the file changed
    assert db.tasks() == ['t1', 't2', 't3']
    with pytest.raises(KeyError, match='No records for task'):
        db.curves('nope')


def test_curves_keeps_the_most_common_length(tmp_path):
    db = LCDatabase(tmp_path / 'db.jsonl')
    db.append(record('t', (0.1, 0.2, 0.3)))
    db.append(record('t', (0.1, 0.2, 0.4), sample={**SAMPLE, '0_1': 'none'}))
    db.append(record('t', (0.1, 0.2), sample={**SAMPLE, '0_1': 'skip_connect'}))
    assert db.curves('t')[1].shape == (2, 3)
    assert db.curves('t', epochs=2)[1].shape == (1, 2)


@pytest.mark.parametrize('change, message', [
    (lambda r: r.pop('curve'), 'misses the fields'),
    (lambda r: r.update(curve=[]), 'non-empty list of finite'),
    (lambda r: r.update(curve=[0.1, float('nan'), 0.3]), 'non-empty list of finite'),
    (lambda r: r.update(epoch_seconds=[1.0]), "'epoch_seconds' must be null or 3"),
    (lambda r: r.update(final=float('inf')), "'final' must be a finite"),
    (lambda r: r.update(task=''), "'task' must not be empty"),
    (lambda r: r.update(sample=[1, 2]), "'sample' must be dict"),
    (lambda r: r.update(seed='0'), "'seed' must be int or null"),
    (lambda r: r.update(params=True), "'params' must be int or null"),
    (lambda r: r.update(timestamp='yesterday'), 'ISO-8601'),
    (lambda r: r.update(accuracy=0.3), "unknown fields \\['accuracy'\\]"),
    (lambda r: r.update(sample={'a': object()}), 'JSON-safe'),
])
def test_bad_records_are_refused(tmp_path, change, message):
    db = LCDatabase(tmp_path / 'db.jsonl')
    rec = dict(record())
    change(rec)
    with pytest.raises(RecordError, match=message):
        db.append(rec)
    assert not (tmp_path / 'db.jsonl').exists()


def test_bad_lines_in_the_file(tmp_path):
    path = tmp_path / 'db.jsonl'
    good = json.dumps(record())
    path.write_text(good + '\n{"task": "t"}\n' + good + '\n')
    with pytest.raises(RecordError, match='line 2: Record misses'):
        LCDatabase(path).records()
    # an unterminated last line (a writer killed mid-line) is skipped, and the next append starts a new line
    path.write_text(good + '\n' + good[:40])
    db = LCDatabase(path)
    assert len(db) == 1
    db.append(record('t2'))
    assert LCDatabase(path).tasks() == ['t1', 't2']
    # a valid record without its newline (edited by hand) is kept
    path.write_text(good)
    LCDatabase(path).append(record('t3'))
    assert LCDatabase(path).tasks() == ['t1', 't3']


# ----------------------------------------------------------------------------- NNI import

#: the tables NNI 3.0's manager creates (nni_node/core/sqlDatabase.js)
NNI_SCHEMA = """
create table TrialJobEvent (timestamp integer, trialJobId text, event text, data text, logPath text,
    sequenceId integer, message text, environmentId text);
create table MetricData (timestamp integer, trialJobId text, parameterId text, type text, sequence integer, data text);
create table ExperimentProfile (params text, id text, execDuration integer, startTime integer, endTime integer,
    logDir text, nextSequenceId integer, revision integer);
"""


def make_nni_experiment(exp_dir):
    """A finished experiment as NNI writes it: hyper-parameters in the trial events, metrics as
    JSON strings of the JSON the trial sent."""
    (exp_dir / 'db').mkdir(parents=True)
    con = sqlite3.connect(exp_dir / 'db' / 'nni.sqlite')
    con.executescript(NNI_SCHEMA)

    def hp(pid, sample):
        return json.dumps({'parameter_id': pid, 'parameter_source': 'algorithm', 'parameters': sample,
                           'parameter_index': 0})

    def metric(trial, pid, kind, seq, value, t):
        con.execute('insert into MetricData values (?,?,?,?,?,?)',
                    (t, trial, str(pid), kind, seq, json.dumps(json.dumps(value))))

    trials = {  # id: (status, intermediates, final)
        'AAAAA': ('SUCCEEDED', [0.3, 0.6, 0.8], 0.8),
        'BBBBB': ('EARLY_STOPPED', [0.1, 0.2], None),
        'CCCCC': ('FAILED', [], None),
        'DDDDD': ('SUCCEEDED', [{'default': 0.4, 'loss': 1.0}, {'default': 0.7, 'loss': 0.5}],
                  {'default': 0.75, 'loss': 0.4}),
    }
    for pid, (trial, (status, inter, final)) in enumerate(trials.items()):
        t0 = 1_000_000 * (pid + 1)
        sample = {**SAMPLE, '0_1': ['none', 'skip_connect', 'nor_conv_1x1', 'avg_pool_3x3'][pid]}
        con.execute('insert into TrialJobEvent values (?,?,?,?,?,?,?,?)',
                    (t0, trial, 'WAITING', hp(pid, sample), None, pid, None, None))
        con.execute('insert into TrialJobEvent values (?,?,?,?,?,?,?,?)',
                    (t0 + 500, trial, 'RUNNING', hp(pid, sample), 'path', pid, None, 'local-env'))
        # steps reported out of order in the table still come back in sequence order
        for seq, value in sorted(enumerate(inter), reverse=True):
            metric(trial, pid, 'PERIODICAL', seq, value, t0 + 500 + 2000 * (seq + 1))
        if final is not None:
            metric(trial, pid, 'FINAL', 0, final, t0 + 500 + 2000 * len(inter) + 10)
        con.execute('insert into TrialJobEvent values (?,?,?,?,?,?,?,?)',
                    (t0 + 9000, trial, status, None, 'path', pid, None, 'local-env'))
    con.execute("insert into TrialJobEvent values (1, '', 'IMPORT_DATA', '[]', null, null, null, null)")
    con.execute('insert into ExperimentProfile values (?,?,?,?,?,?,?,?)',
                ('{}', exp_dir.name, 10, 1, 2, str(exp_dir), 4, 1))
    con.commit()
    con.close()


def test_import_nni_experiment(tmp_path):
    exp = tmp_path / 'nni-experiments' / 'abc123xy'
    make_nni_experiment(exp)
    trials = read_nni_trials(exp / 'db' / 'nni.sqlite')
    assert set(trials) == {'AAAAA', 'BBBBB', 'CCCCC', 'DDDDD'}
    assert trials['AAAAA']['intermediate'] == [0.3, 0.6, 0.8]
    assert trials['BBBBB']['status'] == 'EARLY_STOPPED'

    db = LCDatabase(tmp_path / 'db.jsonl')
    new = import_nni_experiment(exp, task='digits-nni', database=db, space='quickstart', seed=0,
                                task_description='imported', params_of=lambda s: 42)
    assert [r['extra']['nni_trial'] for r in new] == ['AAAAA', 'DDDDD']  # only complete trials
    a, d = db.records()
    assert a['curve'] == [0.3, 0.6, 0.8] and a['final'] == 0.8
    assert a['epoch_seconds'] == [2.0, 2.0, 2.0]  # from RUNNING, then between reports
    assert a['sample']['0_1'] == 'none' and a['source'] == 'nni-import' and a['params'] == 42
    assert a['extra']['nni_experiment'] == 'abc123xy' and a['space'] == 'quickstart'
    assert d['curve'] == [0.4, 0.7] and d['final'] == 0.75  # dict metrics through 'default'
    # importing again adds nothing; by experiment id under an experiments root
    assert import_nni_experiment('abc123xy', task='digits-nni', database=db,
                                 experiments_root=tmp_path / 'nni-experiments') == []
    assert len(db) == 2
    # without a database: records only; the id comes from the experiment profile, not the folder name
    (tmp_path / 'latest').symlink_to(exp)
    recs = import_nni_experiment(tmp_path / 'latest' / 'db' / 'nni.sqlite', task='x')
    assert len(recs) == 2 and recs[0]['extra']['nni_experiment'] == 'abc123xy'


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='No NNI experiment database for'):
        nni_experiment_db('nope', experiments_root=tmp_path)
    bad = tmp_path / 'bad.sqlite'
    sqlite3.connect(bad).execute('create table x (a)')
    with pytest.raises(ValueError, match='not an NNI experiment database'):
        read_nni_trials(bad)


# ----------------------------------------------------------------------------- the build script

def test_build_script_streams_and_digits_task():
    sys.path.insert(0, str(REPO / 'experiments'))
    import build_lc_database as build
    first = build.sample_stream('digits', 0, 5)
    assert build.sample_stream('digits', 0, 8)[:5] == first  # extending keeps the first architectures
    assert len({json.dumps(s) for s in first}) == 5
    assert build.sample_stream('mnist10k', 0, 5) != first
    (train, val), _, classes = build.build_loaders('digits')
    assert classes == 10 and len(train.dataset) == 1437 and len(val.dataset) == 360


def test_build_script_class_subset_task():
    root = shared_data()
    if not (root / 'fashion-mnist').exists():
        pytest.skip(f'fashion-mnist absent under {root}')
    sys.path.insert(0, str(REPO / 'experiments'))
    import build_lc_database as build
    (train, val), _, classes = build.build_loaders('fmnist-5to9')
    x, y = train.dataset[0]
    assert classes == 5 and tuple(x.shape) == (1, 12, 12)
    assert len(train.dataset) == 800 and len(val.dataset) == 400
    assert set(train.dataset.labels.tolist()) == set(range(5))
