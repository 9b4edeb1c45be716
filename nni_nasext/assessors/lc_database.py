"""A lifelong learning-curve database: one JSON line per trained architecture.

Learning-curve rankers such as LCRankNet (M. Wistuba, T. Pedapati, "Learning to Rank Learning
Curves", ICML 2020; :mod:`nni_nasext.assessors.lcranknet`) transfer knowledge from the learning curves of
*earlier* tasks to a new one. This module keeps those curves: every architecture ever trained
(by ``experiments/build_lc_database.py``, or by any finished NNI experiment through
:func:`import_nni_experiment`) becomes one record appended to a JSON-lines file, so the
database grows over the lifetime of a project ("lifelong") and any user can add tasks.

A record is a JSON object with the fields of :data:`FIELDS`:

``task``             name of the task (a dataset, or a dataset restricted to some classes), e.g. ``fmnist-0to4``
``task_description`` free text, e.g. ``"fashion-mnist classes 0-4, 2000 train / 1000 val, 16x16"``
``dataset``          the underlying dataset name (:func:`nni_nasext.datasets.load_dataset`)
``space``            name of the search space (registry name, e.g. ``nasbench201``)
``sample``           the architecture in NNI's freeze format (a JSON dict label -> value)
``curve``            per-epoch validation metric (what the trial reported with ``nni.report_intermediate_result``)
``epoch_seconds``    per-epoch wall seconds (same length as ``curve``), or ``null`` when unknown
``final``            the final metric (``nni.report_final_result``; usually ``curve[-1]``)
``params``           trainable parameters (an int), or ``null`` when unknown
``seed``             training seed (int), or ``null``
``source``           where it came from: ``'lifelong-db-script'``, ``'nni-import'`` or any other name
``timestamp``        ISO-8601 time the record was made
``metric``           (optional) name of the metric, default ``'val_accuracy'`` (higher is better)
``extra``            (optional) a dict for anything else (training settings, NNI experiment/trial ids)

:meth:`LCDatabase.append` validates a record and refuses a bad one with a
:class:`RecordError` that names the field; a malformed line in the file is reported with its
line number when the file is read (except an unterminated last line, the trace of a writer
that was killed mid-line, which is skipped with a warning).
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

__all__ = ['FIELDS', 'LCDatabase', 'RecordError', 'import_nni_experiment', 'read_nni_trials', 'make_record',
           'nni_experiment_db']

_logger = logging.getLogger(__name__)

#: required fields -> accepted types (None: the value may be null)
FIELDS: Dict[str, tuple] = {
    'task': (str,), 'task_description': (str,), 'dataset': (str,), 'space': (str,), 'sample': (dict,),
    'curve': (list,), 'epoch_seconds': (list, type(None)), 'final': (int, float),
    'params': (int, type(None)), 'seed': (int, type(None)), 'source': (str,), 'timestamp': (str,),
}
OPTIONAL_FIELDS: Dict[str, tuple] = {'metric': (str,), 'extra': (dict,)}

PathLike = Union[str, Path]


class RecordError(ValueError):
    """A learning-curve record that does not follow the schema of :data:`FIELDS`."""


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(record: Dict[str, Any]) -> Dict[str, Any]:
    """Check ``record`` against the schema; returns it, or raises :class:`RecordError`."""
    if not isinstance(record, dict):
        raise RecordError(f'A record is a dict, got {type(record).__name__}')
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise RecordError(f'Record misses the fields {missing} (required: {list(FIELDS)})')
    unknown = [k for k in record if k not in FIELDS and k not in OPTIONAL_FIELDS]
    if unknown:
        raise RecordError(f"Record has unknown fields {unknown}; put additional information under 'extra'")
    for key, types in {**FIELDS, **OPTIONAL_FIELDS}.items():
        if key in record and (not isinstance(record[key], types) or isinstance(record[key], bool)):
            names = ' or '.join('null' if t is type(None) else t.__name__ for t in types)
            raise RecordError(f'Field {key!r} must be {names}, got {record[key]!r}')
    for key in ('task', 'space', 'source', 'dataset'):
        if not record[key].strip():
            raise RecordError(f'Field {key!r} must not be empty')
    curve = record['curve']
    if not curve or not all(_finite(v) for v in curve):
        raise RecordError(f'Field \'curve\' must be a non-empty list of finite numbers, got {curve!r}')
    seconds = record['epoch_seconds']
    if seconds is not None and (len(seconds) != len(curve) or not all(_finite(s) and s >= 0 for s in seconds)):
        raise RecordError(f"Field 'epoch_seconds' must be null or {len(curve)} non-negative numbers "
                          f'(one per epoch of the curve), got {seconds!r}')
    if not _finite(record['final']):
        raise RecordError(f"Field 'final' must be a finite number, got {record['final']!r}")
    if record['params'] is not None and record['params'] < 0:
        raise RecordError(f"Field 'params' must be a non-negative int, got {record['params']!r}")
    if not all(isinstance(k, str) for k in record['sample']):
        raise RecordError(f"Field 'sample' must map string labels to values, got {record['sample']!r}")
    try:
        json.dumps(record['sample'], allow_nan=False)
        json.dumps(record.get('extra', {}), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise RecordError(f"Fields 'sample' and 'extra' must be JSON-safe: {err}") from None
    try:
        datetime.datetime.fromisoformat(record['timestamp'])
    except ValueError:
        raise RecordError(f"Field 'timestamp' must be ISO-8601, got {record['timestamp']!r}") from None
    return record


def make_record(*, task: str, sample: Dict[str, Any], curve: Iterable[float], dataset: Optional[str] = None,
                task_description: str = '', space: str = 'nasbench201', epoch_seconds: Optional[Iterable[float]] = None,
                final: Optional[float] = None, params: Optional[int] = None, seed: Optional[int] = None,
                source: str = 'lifelong-db-script', timestamp: Optional[str] = None, **optional) -> Dict[str, Any]:
    """A validated record with defaults: ``dataset`` = ``task``, ``final`` = last of ``curve``, ``timestamp`` = now."""
    try:
        curve = [float(v) for v in curve]
        epoch_seconds = None if epoch_seconds is None else [float(v) for v in epoch_seconds]
    except (TypeError, ValueError) as err:
        raise RecordError(f"'curve' and 'epoch_seconds' must be sequences of numbers: {err}") from None
    if not isinstance(sample, dict):
        raise RecordError(f"Field 'sample' must be dict, got {sample!r}")
    record = {
        'task': task, 'task_description': task_description, 'dataset': dataset or task, 'space': space,
        'sample': dict(sample), 'curve': curve,
        'epoch_seconds': epoch_seconds,
        'final': float(final) if final is not None else (curve[-1] if curve else float('nan')),
        'params': None if params is None else int(params), 'seed': None if seed is None else int(seed),
        'source': source,
        'timestamp': timestamp or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        **optional,
    }
    return validate(record)


def record_key(record: Dict[str, Any]) -> str:
    """Identity of a record, used to skip duplicates: the NNI experiment and trial for imports,
    else (task, space, sample, seed)."""
    extra = record.get('extra') or {}
    if 'nni_experiment' in extra and 'nni_trial' in extra:
        return json.dumps(['nni', extra['nni_experiment'], extra['nni_trial']])
    return json.dumps([record['task'], record['space'], record['sample'], record['seed']], sort_keys=True)


class LCDatabase:
    """Learning curves in a JSON-lines file at ``path`` (created on the first :meth:`append`).

    The file is re-read when it changed on disk, so two processes may append to the same
    file (each line is written with one ``write`` call in append mode).
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self._records: List[Dict[str, Any]] = []
        self._keys: set = set()
        self._stamp: Optional[Tuple[float, int]] = None

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        if not self.path.exists():
            self._records, self._keys, self._stamp = [], set(), None
            return
        stat = self.path.stat()
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        text = self.path.read_text(encoding='utf-8')
        lines = text.split('\n')
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = validate(json.loads(line))
            except (json.JSONDecodeError, RecordError) as err:
                if number == len(lines) and not text.endswith('\n'):
                    _logger.warning('%s: skipping the unterminated last line %d (%s)', self.path, number, err)
                    continue
                raise RecordError(f'{self.path}, line {number}: {err}') from None
            records.append(record)
        self._records, self._stamp = records, stamp
        self._keys = {record_key(r) for r in records}

    def __len__(self) -> int:
        self._load()
        return len(self._records)

    def __contains__(self, record: Dict[str, Any]) -> bool:
        self._load()
        return record_key(record) in self._keys

    def records(self, task: Optional[str] = None) -> List[Dict[str, Any]]:
        """All records (copies), or those of ``task``, in file order."""
        self._load()
        return [json.loads(json.dumps(r)) for r in self._records if task is None or r['task'] == task]

    def tasks(self) -> List[str]:
        """Task names, sorted."""
        self._load()
        return sorted({r['task'] for r in self._records})

    def curves(self, task: str, epochs: Optional[int] = None, with_seconds: bool = False):
        """``(samples, curves)`` of ``task``: a list of samples and an ``(n, epochs)`` array.

        Only curves of length ``epochs`` are kept (default: the most common length in the
        task). With ``with_seconds=True`` also an ``(n, epochs)`` array of per-epoch seconds
        (NaN where unknown).
        """
        rows = self.records(task)
        if not rows:
            raise KeyError(f'No records for task {task!r}; tasks in {self.path}: {self.tasks()}')
        if epochs is None:
            epochs = Counter(len(r['curve']) for r in rows).most_common(1)[0][0]
        rows = [r for r in rows if len(r['curve']) == epochs]
        samples = [r['sample'] for r in rows]
        curves = np.array([r['curve'] for r in rows], dtype=float).reshape(len(rows), epochs)
        if not with_seconds:
            return samples, curves
        seconds = np.array([r['epoch_seconds'] if r['epoch_seconds'] is not None else [np.nan] * epochs
                            for r in rows], dtype=float).reshape(len(rows), epochs)
        return samples, curves, seconds

    # ------------------------------------------------------------------ writing
    def append(self, record: Dict[str, Any], skip_existing: bool = False) -> bool:
        """Validate and append one record; returns False (and writes nothing) when
        ``skip_existing`` and a record with the same :func:`record_key` is already there."""
        validate(record)
        self._load()
        key = record_key(record)
        if skip_existing and key in self._keys:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, allow_nan=False, separators=(',', ':')) + '\n'
        prefix = self._repair_last_line()
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(prefix + line)
            f.flush()
        self._load()
        return True

    def extend(self, records: Iterable[Dict[str, Any]], skip_existing: bool = True) -> int:
        """Append many records; returns how many were written."""
        return sum(self.append(r, skip_existing=skip_existing) for r in records)

    def _repair_last_line(self) -> str:
        """Before appending to a file whose last line is unterminated: a valid record there gets
        its newline (returned as a prefix); a broken one (a writer killed mid-line) is cut off."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return ''
        data = self.path.read_bytes()
        if data.endswith(b'\n'):
            return ''
        cut = data.rfind(b'\n') + 1
        try:
            validate(json.loads(data[cut:].decode('utf-8')))
            return '\n'
        except (ValueError, RecordError):
            _logger.warning('%s: removing the broken unterminated last line %r', self.path, data[cut:][:80])
            with open(self.path, 'r+b') as f:
                f.truncate(cut)
            return ''


# ============================================================================ NNI import

def nni_experiment_db(experiment: PathLike, experiments_root: Optional[PathLike] = None) -> Path:
    """The ``nni.sqlite`` of an NNI experiment given as its directory, the sqlite file itself,
    or its id (looked up under ``experiments_root``, default ``~/nni-experiments``, and in
    nnictl's list ``~/nni-experiments/.experiment``)."""
    looked = []
    path = Path(experiment).expanduser()
    for candidate in (path, path / 'db' / 'nni.sqlite'):
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate
    root = Path(experiments_root or '~/nni-experiments').expanduser()
    exp_id = str(experiment)
    dirs = [root / exp_id]
    manifest = root / '.experiment'
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_text()).get(exp_id) or {}
            if info.get('logDir'):
                dirs += [Path(info['logDir']), Path(info['logDir']) / exp_id]
        except (ValueError, AttributeError):
            pass
    for d in dirs:
        candidate = d / 'db' / 'nni.sqlite'
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'No NNI experiment database for {experiment!r}; looked in: '
                            + ', '.join(dict.fromkeys(looked)))


def _decode_metric(text: Optional[str]) -> Any:
    """MetricData.data holds the JSON of the string the trial sent (itself JSON): decode both."""
    value: Any = text
    for _ in range(2):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                break
    return value


def read_nni_trials(db_path: PathLike) -> Dict[str, Dict[str, Any]]:
    """Trials of an NNI experiment from its sqlite database (NNI 3.0 schema, written by the NNI
    manager's ``SqlDB``: tables ``TrialJobEvent(timestamp, trialJobId, event, data, ...)`` and
    ``MetricData(timestamp, trialJobId, parameterId, type, sequence, data)``).

    Returns ``{trial id: {'parameters', 'parameter_id', 'status', 'start', 'end', 'intermediate',
    'intermediate_times', 'final'}}``: the hyper-parameters of the trial (NNI's
    ``{"parameter_id", "parameters", ...}`` JSON in the event data), its last event, the
    start (first RUNNING, else WAITING) and end times in ms, its PERIODICAL metrics in
    sequence order with their timestamps, and its FINAL metric (or None).
    """
    con = sqlite3.connect(f'file:{Path(db_path)}?mode=ro', uri=True, timeout=10)
    try:
        events = con.execute('SELECT timestamp, trialJobId, event, data FROM TrialJobEvent '
                             'ORDER BY timestamp, rowid').fetchall()
        metrics = con.execute('SELECT timestamp, trialJobId, type, sequence, data FROM MetricData '
                              'ORDER BY timestamp, rowid').fetchall()
    except sqlite3.DatabaseError as err:
        raise ValueError(f'{db_path} is not an NNI experiment database ({err})') from None
    finally:
        con.close()
    trials: Dict[str, Dict[str, Any]] = {}
    for timestamp, trial_id, event, data in events:
        if not trial_id:  # IMPORT_DATA / ADD_CUSTOMIZED events belong to no trial
            continue
        trial = trials.setdefault(trial_id, {'parameters': None, 'parameter_id': None, 'status': None,
                                             'waiting': None, 'running': None, 'end': None, 'periodical': {},
                                             'final': None})
        if data and trial['parameters'] is None:
            try:
                hp = json.loads(data)
            except ValueError:
                hp = None
            if isinstance(hp, dict) and isinstance(hp.get('parameters'), dict):
                trial['parameters'], trial['parameter_id'] = hp['parameters'], hp.get('parameter_id')
        if event in ('WAITING', 'RUNNING') and trial[event.lower()] is None:
            trial[event.lower()] = timestamp
        if event not in ('WAITING', 'RUNNING', 'UNKNOWN'):
            trial['end'] = timestamp
        trial['status'] = event
    for timestamp, trial_id, kind, sequence, data in metrics:
        trial = trials.get(trial_id)
        if trial is None:
            continue
        if kind == 'PERIODICAL':
            trial['periodical'][int(sequence)] = (timestamp, _decode_metric(data))  # a re-sent step replaces
        elif kind == 'FINAL':
            trial['final'] = _decode_metric(data)
    for trial in trials.values():
        waiting, running = trial.pop('waiting'), trial.pop('running')
        trial['start'] = running if running is not None else waiting
        steps = sorted(trial.pop('periodical').items())
        trial['intermediate'] = [v for _, (_, v) in steps]
        trial['intermediate_times'] = [t for _, (t, _) in steps]
    return trials


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec='seconds')


def _experiment_id(db_path: Path) -> Optional[str]:
    """The id in the experiment's ExperimentProfile table (None when there is none)."""
    con = sqlite3.connect(f'file:{db_path}?mode=ro', uri=True, timeout=10)
    try:
        row = con.execute('SELECT id FROM ExperimentProfile ORDER BY revision DESC LIMIT 1').fetchone()
    except sqlite3.DatabaseError:
        row = None
    finally:
        con.close()
    return row[0] if row and row[0] else None


def import_nni_experiment(experiment: PathLike, task: str, database: Optional[Union[LCDatabase, PathLike]] = None,
                          *, task_description: str = '', dataset: Optional[str] = None, space: str = 'unknown',
                          seed: Optional[int] = None, experiments_root: Optional[PathLike] = None,
                          params_of=None) -> List[Dict[str, Any]]:
    """Turn the finished trials of an NNI experiment into records (and append them to ``database``).

    ``experiment`` is the experiment directory (``<dir>/db/nni.sqlite``), the sqlite file, or
    an experiment id (see :func:`nni_experiment_db`). Only trials that ``SUCCEEDED`` with at
    least one intermediate result are imported (early-stopped, failed and cancelled trials
    have no final value to learn from). The curve is the PERIODICAL metrics in sequence
    order (dict metrics through their ``'default'``), ``final`` the FINAL metric (else the
    last intermediate), ``epoch_seconds`` the gaps between the metric timestamps (the first
    from the trial's start). ``params_of(sample)``, when given, fills ``params``.
    Records already in ``database`` (same experiment and trial) are skipped.
    Returns the records that are new.
    """
    from nni_nasext.assessors import scalar
    db_path = nni_experiment_db(experiment, experiments_root)
    exp_dir = db_path.parent.parent
    exp_id = _experiment_id(db_path) or exp_dir.name
    if isinstance(database, (str, Path)):
        database = LCDatabase(database)
    new, skipped = [], Counter()
    for trial_id, trial in read_nni_trials(db_path).items():
        curve = [scalar(v) for v in trial['intermediate']]
        if trial['status'] != 'SUCCEEDED' or not curve or trial['parameters'] is None:
            skipped[trial['status'] if trial['status'] != 'SUCCEEDED' else 'no curve or parameters'] += 1
            continue
        if not all(math.isfinite(v) for v in curve):
            skipped['non-finite metric'] += 1
            continue
        final = scalar(trial['final']) if trial['final'] is not None else curve[-1]
        times = trial['intermediate_times']
        start = trial['start'] if trial['start'] is not None else times[0]
        seconds = [max(t - p, 0) / 1000.0 for p, t in zip([start] + times[:-1], times)]
        extra = {'nni_experiment': exp_id, 'nni_trial': trial_id, 'nni_parameter_id': trial['parameter_id'],
                 'experiment_dir': str(exp_dir)}
        record = make_record(task=task, task_description=task_description, dataset=dataset or task, space=space,
                             sample=trial['parameters'], curve=curve, epoch_seconds=seconds,
                             final=final if math.isfinite(final) else curve[-1],
                             params=None if params_of is None else params_of(trial['parameters']), seed=seed,
                             source='nni-import', extra=extra,
                             timestamp=_iso((trial['end'] or times[-1]) / 1000.0))
        if database is not None and not database.append(record, skip_existing=True):
            skipped['already in the database'] += 1
            continue
        new.append(record)
    if skipped:
        _logger.info('import of %s: %d new records; skipped %s', exp_id, len(new), dict(skipped))
    return new
