"""Driving ``nnictl`` from Python: tuner registration, launch, progress, stop, export.

Everything here runs the real ``nnictl`` and talks to the NNI manager's REST API
(``http://127.0.0.1:<port>/api/v1/nni``), as a user's shell would.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import yaml




def nnictl_command() -> List[str]:
    exe = shutil.which('nnictl')
    return [exe] if exe else [sys.executable, '-m', 'nni.tools.nnictl.nnictl']


def run_nnictl(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    # a manager started by this nnictl call listens on 127.0.0.1 only (nni_nasext.netguard)
    from nni_nasext.netguard import loopback_env
    env = loopback_env(dict(os.environ, PYTHONWARNINGS='ignore'))  # nnictl's pkg_resources warning is noise
    proc = subprocess.run(nnictl_command() + list(args), text=True, env=env,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
    if check and proc.returncode != 0:
        raise RuntimeError(f'nnictl {" ".join(args)} failed (exit {proc.returncode}):\n{proc.stdout or ""}')
    return proc


def tuner_meta() -> Dict[str, Any]:
    from nni_nasext.adapters.tuner import TUNER_CLASSES
    return {'algorithms': [{'algoType': 'tuner', 'builtinName': name, 'className': cls}
                           for name, cls in TUNER_CLASSES.items()]}


def assessor_meta() -> Dict[str, Any]:
    from nni_nasext.assessors import ASSESSOR_CLASSES
    return {'algorithms': [{'algoType': 'assessor', 'builtinName': name, 'className': cls}
                           for name, cls in ASSESSOR_CLASSES.items()]}


def register_tuners(verbose: bool = True) -> List[str]:
    """Register every nasext tuner, then every nasext assessor (:func:`register_assessors`),
    with ``nnictl algo register`` under its builtin name; returns the tuners' names."""
    names = _register(tuner_meta(), 'tuners', verbose)
    register_assessors(verbose)
    return names


def register_assessors(verbose: bool = True) -> List[str]:
    """Register every nasext assessor (NasextMedianStop, NasextCurveExtrapolation) with
    ``nnictl algo register`` (algoType ``assessor``) under its builtin name."""
    return _register(assessor_meta(), 'assessors', verbose)


def _register(meta: Dict[str, Any], what: str, verbose: bool) -> List[str]:
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as fh:
        yaml.safe_dump(meta, fh)
    try:
        out = run_nnictl('algo', 'register', '--meta', fh.name).stdout
    finally:
        os.unlink(fh.name)
    names = [a['builtinName'] for a in meta['algorithms']]
    missing = [n for n in names if n.lower() not in out.lower()]
    if missing or 'error' in out.lower():
        raise RuntimeError(f'nnictl algo register did not register {missing or names}:\n{out}')
    if verbose:
        print(f'[nasext] registered {what} with nnictl: {", ".join(names)}')
    return names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def load_config(path: Path) -> Dict[str, Any]:
    """Read and check an experiment YAML; a broken one is one clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'Experiment config {path} does not exist')
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f'Experiment config {path} is not valid YAML: {err}') from None
    if not isinstance(config, dict):
        raise ValueError(f'Experiment config {path} must be a YAML mapping')
    for key in ('trialCommand', 'trainingService'):
        if key not in config:
            raise ValueError(f'Experiment config {path} lacks {key!r}')
    if not isinstance(config['trialCommand'], str) or not config['trialCommand'].strip():
        raise ValueError(f'Experiment config {path}: trialCommand must be a non-empty string')
    if not isinstance(config['trainingService'], (dict, list)):
        raise ValueError(f'Experiment config {path}: trainingService must be a mapping (e.g. {{platform: local}})')
    for key in ('experimentWorkingDirectory', 'searchSpaceFile', 'trialCodeDirectory'):
        if key in config and not isinstance(config[key], str):
            raise ValueError(f'Experiment config {path}: {key} must be a path (a string)')
    from nni_nasext.adapters.tuner import TUNER_CLASSES
    from nni_nasext.assessors import ASSESSOR_CLASSES
    for key, ours in (('tuner', TUNER_CLASSES), ('assessor', ASSESSOR_CLASSES)):
        part = config.get(key)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ValueError(f'Experiment config {path}: {key} must be a mapping with a name and classArgs')
        name = part.get('name')
        if name is not None and not isinstance(name, str):
            raise ValueError(f'Experiment config {path}: {key}.name must be a string, got {name!r}')
        if not isinstance(part.get('classArgs', {}), dict):
            raise ValueError(f'Experiment config {path}: {key}.classArgs must be a mapping')
        if name and name.lower().startswith('nasext') and name not in ours:
            raise ValueError(f'Experiment config {path}: unknown {key} {name!r}; ours are {sorted(ours)}')
    return config


class Rest:
    def __init__(self, port: int):
        self.base = f'http://127.0.0.1:{port}/api/v1/nni'

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as resp:
            return json.loads(resp.read().decode())

    def status(self) -> str:
        return self.get('/check-status')['status']

    def trials(self) -> List[Dict[str, Any]]:
        """Each trial with its id, status, sample, intermediate and final metrics."""
        metrics: Dict[str, Dict[str, list]] = {}
        metric_param: Dict[str, str] = {}
        for m in self.get('/metric-data'):
            metric_param[m['trialJobId']] = str(m['parameterId'])
            entry = metrics.setdefault(m['trialJobId'], {'PERIODICAL': [], 'FINAL': []})
            value = json.loads(m['data'])
            value = json.loads(value) if isinstance(value, str) else value
            entry.setdefault(m['type'], []).append(value)
        out = []
        for t in self.get('/trial-jobs'):
            record = json.loads(t['hyperParameters'][0]) if t.get('hyperParameters') else {}
            m = metrics.get(t['trialJobId'], {'PERIODICAL': [], 'FINAL': []})
            final = m['FINAL'][-1] if m['FINAL'] else None
            out.append({'id': t['trialJobId'], 'status': t['status'], 'sample': record.get('parameters'),
                        'parameter_id': str(record.get('parameter_id')),
                        'metric_parameter_id': metric_param.get(t['trialJobId']),
                        'intermediates': m['PERIODICAL'], 'final': final})
        return out


def create(config_path: Path, port: int) -> str:
    """``nnictl create``; returns the experiment id. nnictl's own output (the web UI
    address among it) is printed."""
    proc = run_nnictl('create', '--config', str(config_path), '--port', str(port), check=False)
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f'nnictl create failed (exit {proc.returncode})')
    for line in re.sub(r'\x1b\[[0-9;]*m', '', proc.stdout).splitlines():
        if 'experiment id' in line.lower():
            return line.split()[-1].strip()
    return Rest(port).get('/experiment')['id']


def wait(port: int, timeout: float = 600., poll: float = 3., verbose: bool = True) -> List[Dict[str, Any]]:
    """Wait for the experiment to finish (status DONE / STOPPED / ERROR), printing progress."""
    rest, start, last = Rest(port), time.time(), None
    while True:
        try:
            status, trials = rest.status(), rest.trials()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            raise RuntimeError(f'NNI manager on port {port} stopped answering: {err}') from None
        counts: Dict[str, int] = {}
        for t in trials:
            counts[t['status']] = counts.get(t['status'], 0) + 1
        line = f'[nasext] {time.time() - start:5.0f}s experiment {status}: ' + \
            ', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))
        if verbose and line.split(':', 1)[1] != last:
            print(line, flush=True)
            last = line.split(':', 1)[1]
        if status in ('DONE', 'STOPPED', 'ERROR', 'NO_MORE_TRIAL') and not any(
                t['status'] in ('WAITING', 'RUNNING', 'UNKNOWN') for t in trials):
            return trials
        if time.time() - start > timeout:
            raise TimeoutError(f'Experiment on port {port} still {status} after {timeout:.0f}s')
        time.sleep(poll)


def stop(experiment_id: str) -> None:
    run_nnictl('stop', experiment_id, check=False)


def export_best(trials_dir: Path, out_dir: Path, minimize: bool = False) -> Dict[str, Any]:
    """Copy the best trial's ``sample.json`` and ``model.pt`` (by ``result.json``) to ``out_dir``;
    where trials ran at several budgets (Hyperband, BOHB), the best at the highest budget;
    ``minimize`` for metrics where lower is better (e.g. perplexity).

    ``trials_dir`` is the experiment's directory; the local training service keeps each
    trial's output under ``environments/local-env/trials/<trial id>/``."""
    results = []
    for res in Path(trials_dir).glob('**/trials/*/result.json'):
        try:
            results.append((json.loads(res.read_text()), res.parent))
        except json.JSONDecodeError:
            continue
    if not results:
        raise FileNotFoundError(f'No finished trial with result.json under {trials_dir}')
    # multi-fidelity experiments: the best result at the highest budget (nni_nasext.fidelity.incumbent)
    def rank(r):
        budget = r[0].get('budget')
        return (float('inf') if budget is None else float(budget), -r[0]['value'] if minimize else r[0]['value'])
    best, folder = max(results, key=rank)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'best_sample.json').write_text(json.dumps(best['sample'], indent=1))
    (out_dir / 'best_result.json').write_text(json.dumps(best, indent=1))
    if (folder / 'model.pt').exists():
        shutil.copy(folder / 'model.pt', out_dir / 'best_model.pt')
    return {**best, 'export_dir': str(out_dir.resolve())}


def trials_dir(experiment_dir: Path, experiment_id: str) -> Path:
    path = Path(experiment_dir).expanduser() / experiment_id
    if not path.is_dir():
        raise FileNotFoundError(f'Experiment {experiment_id} not found: no directory {path}')
    return path
