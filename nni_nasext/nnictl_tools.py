"""Driving ``nnictl`` from Python: tuner registration, launch, progress, stop, export.

Everything here runs the real ``nnictl`` and talks to the NNI manager's REST API
(``http://127.0.0.1:<port>/api/v1/nni``), as a user's shell would.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml




def nnictl_command() -> List[str]:
    exe = shutil.which('nnictl')
    return [exe] if exe else [sys.executable, '-m', 'nni.tools.nnictl.nnictl']


def run_nnictl(*args: str, check: bool = True, capture: bool = True,
               also_bind: Sequence[str] = ()) -> subprocess.CompletedProcess:
    # a manager started by this nnictl call listens on 127.0.0.1 only (nni_nasext.netguard), and on
    # ``also_bind`` (the nniManagerIp of a remote or cluster training service) where given
    from nni_nasext.netguard import loopback_env
    env = loopback_env(dict(os.environ, PYTHONWARNINGS='ignore'), also=also_bind)  # nnictl's pkg_resources warning is noise
    if env.get('NASEXT_DATA'):  # trials run in their own directories: a relative data path would miss
        env['NASEXT_DATA'] = os.pathsep.join(str(Path(part).expanduser().resolve()) if part else part
                                             for part in env['NASEXT_DATA'].split(os.pathsep))
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


def register_tuners(verbose: bool = True, force: bool = False) -> List[str]:
    """Register every nasext tuner, then every nasext assessor (:func:`register_assessors`),
    with ``nnictl algo register`` under its builtin name; returns the tuners' names. Where NNI
    already holds every one of them with the same class, nothing is run (``force``: register
    anyway, as ``nasext register`` does)."""
    names = _register(tuner_meta(), 'tuners', verbose, force)
    register_assessors(verbose, force)
    return names


def register_assessors(verbose: bool = True, force: bool = False) -> List[str]:
    """Register every nasext assessor (NasextMedianStop, NasextCurveExtrapolation) with
    ``nnictl algo register`` (algoType ``assessor``) under its builtin name (``force``: as
    in :func:`register_tuners`)."""
    return _register(assessor_meta(), 'assessors', verbose, force)


def registered_already(meta: Dict[str, Any]) -> bool:
    """Whether NNI's algorithm records hold every algorithm of ``meta`` as ``nnictl algo
    register`` would write it (same class, type and validator; not one of NNI's builtins)."""
    try:
        from nni.tools.package_utils.config_manager import get_all_algo_meta
        held = {a.name.lower(): a for a in get_all_algo_meta()}
    except Exception:  # no such NNI, or an unreadable record: register again
        return False
    for algo in meta['algorithms']:
        found = held.get(algo['builtinName'].lower())
        if found is None or found.is_builtin or found.name != algo['builtinName'] or \
                found.class_name != algo['className'] or found.algo_type != algo['algoType'] or \
                found.validator_class_name != algo.get('classArgsValidator'):
            return False
    return True


@contextlib.contextmanager
def registration_lock():
    """One ``nnictl algo register`` at a time on this machine: nnictl rewrites its
    ``registered_algorithms.yml`` in place, and a second register reading it half-written fails
    (``'NoneType' object has no attribute 'get'``), e.g. two ``nasext run`` started together."""
    import fcntl
    with open(Path(tempfile.gettempdir()) / 'nasext-nnictl-algo-register.lock', 'a') as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _register(meta: Dict[str, Any], what: str, verbose: bool, force: bool = False) -> List[str]:
    names = [a['builtinName'] for a in meta['algorithms']]
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as fh:
        yaml.safe_dump(meta, fh)
    try:
        with registration_lock():
            if not force and registered_already(meta):
                if verbose:
                    print(f'[nasext] {len(names)} {what} already registered with nnictl', flush=True)
                return names
            out = run_nnictl('algo', 'register', '--meta', fh.name).stdout
    finally:
        os.unlink(fh.name)
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
    if 'trainingService' not in config:
        raise ValueError(f'Experiment config {path} lacks \'trainingService\'')
    if not isinstance(config['trainingService'], (dict, list)):
        raise ValueError(f'Experiment config {path}: trainingService must be a mapping (e.g. {{platform: local}})')
    services = config['trainingService'] if isinstance(config['trainingService'], list) else [config['trainingService']]
    # Kubeflow and FrameworkController run the command of each role (worker, master, task roles)
    role_commands = all(isinstance(s, dict) and s.get('platform') in ('kubeflow', 'frameworkcontroller')
                        for s in services)
    if role_commands:
        for service in services:
            roles = ([service.get(r) for r in ('master', 'worker', 'ps') if service.get(r) is not None]
                     if service['platform'] == 'kubeflow' else service.get('taskRoles'))
            if not isinstance(roles, list) or not roles or not all(
                    isinstance(r, dict) and isinstance(r.get('command'), str) and r['command'].strip() for r in roles):
                raise ValueError(f'Experiment config {path}: a {service["platform"]} trainingService needs '
                                 + ('a master or worker role' if service['platform'] == 'kubeflow' else 'taskRoles')
                                 + ' with a non-empty command each')
    if 'trialCommand' in config or not role_commands:
        if 'trialCommand' not in config:
            raise ValueError(f'Experiment config {path} lacks \'trialCommand\'')
        if not isinstance(config['trialCommand'], str) or not config['trialCommand'].strip():
            raise ValueError(f'Experiment config {path}: trialCommand must be a non-empty string')
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
    manager_addresses(config, f'Experiment config {path}')
    return config


#: statuses of an NNI trial that has ended
ENDED_STATUSES = ('SUCCEEDED', 'FAILED', 'USER_CANCELED', 'SYS_CANCELED', 'EARLY_STOPPED')


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


def manager_addresses(config: Dict[str, Any], where: str = 'Experiment config') -> List[str]:
    """Where the machines of the config's non-local training services reach the NNI manager: each
    one's ``nniManagerIp`` (or the experiment's). Our manager listens on 127.0.0.1 and on these
    only, so a non-local service without one is an error before anything starts (NNI would guess
    an address of this machine and give it to the remote side, where nothing answers)."""
    services = config.get('trainingService')
    services = services if isinstance(services, list) else [services]
    out: List[str] = []
    for service in services:
        if not isinstance(service, dict) or service.get('platform', 'local') == 'local':
            continue
        address = service.get('nniManagerIp') or config.get('nniManagerIp')
        if not isinstance(address, str) or not address.strip():
            raise ValueError(f'{where}: the {service.get("platform")} trainingService needs nniManagerIp (the address '
                             'of this machine that its machines reach): the NNI manager that nasext starts listens on '
                             '127.0.0.1 and on that address only')
        if service.get('reuseMode') and service.get('nniManagerIp') and config.get('nniManagerIp') != service['nniManagerIp']:
            raise ValueError(f'{where}: with reuseMode: true NNI 3.0 reads nniManagerIp at the top level of the config '
                             '(its trial runners ignore the one inside trainingService and never reach the manager): '
                             f'add nniManagerIp: {service["nniManagerIp"]} at the top level')
        if address not in out:
            out.append(address.strip())
    return out


def stored_config(experiment_id: str) -> Dict[str, Any]:
    """The config NNI recorded for an experiment (its database's latest profile), or ``{}``."""
    import sqlite3
    try:
        from nni.tools.nnictl.config_utils import Experiments
        log_dir = Experiments().get_all_experiments()[experiment_id]['logDir']
        db = Path(log_dir) / experiment_id / 'db' / 'nni.sqlite'
        with contextlib.closing(sqlite3.connect(f'file:{db}?mode=ro', uri=True)) as conn:
            row = conn.execute('SELECT params FROM ExperimentProfile ORDER BY revision DESC LIMIT 1').fetchone()
        return json.loads(row[0]) if row else {}
    except Exception:  # an unknown id or a database NNI has not written yet
        return {}


def create(config_path: Path, port: int) -> str:
    """``nnictl create``; returns the experiment id. nnictl's own output (the web UI
    address among it) is printed. The manager listens on 127.0.0.1, and on the
    ``nniManagerIp`` of a remote or cluster training service (:func:`manager_addresses`)."""
    config_path = Path(config_path)
    also = manager_addresses(load_config(config_path), str(config_path)) if config_path.exists() else []
    proc = run_nnictl('create', '--config', str(config_path), '--port', str(port), check=False, also_bind=also)
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f'nnictl create failed (exit {proc.returncode})')
    for line in re.sub(r'\x1b\[[0-9;]*m', '', proc.stdout).splitlines():
        if 'experiment id' in line.lower():
            return line.split()[-1].strip()
    return Rest(port).get('/experiment')['id']


class ManagerGone(RuntimeError):
    """The NNI manager stopped answering (its process died or was killed)."""


class DiskFull(RuntimeError):
    """The experiment directory's disk is full: NNI stopped recording (a resume would fail too)."""


def _experiment_dir(port: int) -> Optional[Path]:
    try:
        profile = Rest(port).get('/experiment')
        return Path(profile['logDir'])
    except Exception:  # best effort, for an error message
        return None


def wait(port: int, timeout: float = 600., poll: float = 3., verbose: bool = True,
         reap: bool = True) -> List[Dict[str, Any]]:
    """Wait for the experiment to finish (status DONE / STOPPED / ERROR), printing progress;
    ``reap``: end the processes that ended trials leave behind (:func:`reap_ended_trials`)."""
    rest, start, last = Rest(port), time.time(), None
    experiment_id = None
    while True:
        try:
            status, trials = rest.status(), rest.trials()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            raise ManagerGone(f'NNI manager on port {port} stopped answering: {err}') from None
        if reap:
            try:
                experiment_id = experiment_id or rest.get('/experiment')['id']
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                pass
            else:
                for trial_id in reap_ended_trials(experiment_id, trials):
                    print(f'[nasext] trial {trial_id} has ended but left processes running: ended them', flush=True)
        counts: Dict[str, int] = {}
        for t in trials:
            counts[t['status']] = counts.get(t['status'], 0) + 1
        line = f'[nasext] {time.time() - start:5.0f}s experiment {status}: ' + \
            ', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))
        if verbose and line.split(':', 1)[1] != last:
            print(line, flush=True)
            last = line.split(':', 1)[1]
        if status == 'ERROR':  # NNI records no trial end after this: nothing more to wait for
            return trials
        if status in ('DONE', 'STOPPED', 'NO_MORE_TRIAL') and not any(
                t['status'] in ('WAITING', 'RUNNING', 'UNKNOWN') for t in trials):
            if reap and experiment_id:  # NNI may record a cancel before its kill lands: look again
                for _ in range(5):         # until a look finds nothing left (a busy machine is slow to show it)
                    time.sleep(1.)
                    if not reap_ended_trials(experiment_id, trials):
                        break
            return trials
        if time.time() - start > timeout:
            raise TimeoutError(f'Experiment on port {port} still {status} after {timeout:.0f}s')
        time.sleep(poll)


def stop(experiment_id: str, timeout: float = 60.) -> int:
    """What ``nnictl stop`` does, without starting a Python process for it: the manager's pid from
    NNI's experiment registry (``~/nni-experiments/.experiment``, read as nnictl reads it, a few
    tries while another process writes it), SIGTERM, and a wait of up to ``timeout`` seconds for
    it to end (the manager stops its tuner and trials and records the experiment as stopped). Then
    whatever it leaves is ended (the children of a trial whose command is not one program, e.g.
    ``cd src && python3 train.py``, outlive it with NNI 3.0). Returns how many processes were left."""
    import psutil
    from nni.tools.nnictl.config_utils import Experiments
    info = None
    for _ in range(10):
        info = Experiments().get_all_experiments().get(experiment_id)
        if info is not None:
            break
        time.sleep(0.5)
    pid = (info or {}).get('pid')
    if pid:
        try:
            manager = psutil.Process(pid)
            if experiment_id in manager.cmdline():   # not another process that took an ended manager's pid
                manager.terminate()
                manager.wait(timeout)
        except psutil.TimeoutExpired:
            print(f'[nasext] the NNI manager of {experiment_id} (pid {pid}) has not ended {timeout:.0f} s after SIGTERM; '
                  'ending it and its processes', flush=True)
        except psutil.Error:   # ended already
            pass
    return kill_leftovers(experiment_id)


def reap_ended_trials(experiment_id: str, trials: List[Dict[str, Any]]) -> List[str]:
    """End the processes left by trials that NNI shows as ended. NNI 3.0 ends a trial (cancel,
    ``maxTrialDuration``, an assessor's stop) by ending the shell that runs its command; programs
    that shell started live on, holding cores or a GPU. Returns the ids of the trials reaped."""
    import psutil
    ended = {t['id'] for t in trials if t['status'] in ENDED_STATUSES}
    if not ended:
        return []
    victims, reaped = [], set()
    for proc in experiment_processes(experiment_id):
        try:
            trial = proc.environ().get('NNI_TRIAL_JOB_ID')
        except psutil.Error:
            continue
        if trial in ended:
            victims.append(proc)
            reaped.add(trial)
    _end_processes(victims, grace=0.)
    return sorted(reaped)


def experiment_processes(experiment_id: str) -> list:
    """Every live process of one experiment, with its children: the manager (``--experiment-id``
    on its command line), the tuner (its ``NNI_LOG_DIRECTORY`` is ``<experiment>/log``) and the
    trials (``NNI_EXP_ID``)."""
    import psutil
    found: Dict[int, Any] = {}
    for proc in psutil.process_iter(['pid', 'cmdline']):
        try:
            cmd = proc.info['cmdline'] or []
            mine = any(a == '--experiment-id' and b == experiment_id for a, b in zip(cmd, cmd[1:]))
            if not mine and proc.pid != os.getpid():
                env = proc.environ()
                mine = env.get('NNI_EXP_ID') == experiment_id or \
                    Path(env.get('NNI_LOG_DIRECTORY', '/')).parent.name == experiment_id
            if mine:
                found[proc.pid] = proc
                found.update((c.pid, c) for c in proc.children(recursive=True))
        except psutil.Error:
            continue
    return list(found.values())


def kill_leftovers(experiment_id: str, grace: float = 5.) -> int:
    """End every process of the experiment (SIGTERM, then SIGKILL after ``grace`` seconds);
    returns how many there were. After a manager is killed its tuner lives on and reconnects to
    whatever listens on the port: a resumed manager then fails (found here with NNI 3.0)."""
    procs = experiment_processes(experiment_id)
    _end_processes(procs, grace)
    return len(procs)


def _end_processes(procs: list, grace: float) -> None:
    """SIGTERM, then SIGKILL for those alive after ``grace`` seconds (``grace=0``: SIGKILL at once)."""
    import psutil
    alive = procs
    if grace > 0:
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def resume(experiment_id: str, port: int) -> None:
    """``nnictl resume`` that also works after a crash: the manager is stopped if it still runs
    (e.g. in ERROR after its tuner died), the experiment's leftover processes are ended, then
    ``nnictl resume`` starts a manager and a tuner, which rebuilds its state from NNI's records
    (``import_data``). NNI reruns the trials that were running, under the same ids."""
    also = manager_addresses(stored_config(experiment_id), f'Experiment {experiment_id}')
    stop(experiment_id)
    kill_leftovers(experiment_id)
    run_nnictl('resume', experiment_id, '--port', str(port), also_bind=also)


def supervise(experiment_id: str, port: int, timeout: float = 600., restarts: int = 2, poll: float = 3.,
              verbose: bool = True) -> List[Dict[str, Any]]:
    """:func:`wait`, resuming the experiment (:func:`resume`) when its manager dies or it ends in
    ERROR (NNI 3.0 sets ERROR about 25 s after its tuner process dies and starts no trial
    after that), at most ``restarts`` times; ``timeout`` counts over all of it."""
    deadline, used = time.time() + timeout, 0
    while True:
        try:
            trials = wait(port, timeout=max(deadline - time.time(), 1.), poll=poll, verbose=verbose)
            check = Rest(port).get('/check-status')
            if check.get('status') != 'ERROR':
                return trials
            errors = '; '.join(str(e.get('message', e) if isinstance(e, dict) else e)
                               for e in check.get('errors') or []).strip()[:300]
            reason = f'the experiment is in ERROR ({errors})'
            if any(k in errors for k in ('SQLITE_FULL', 'ENOSPC', 'disk is full', 'No space left')):
                where = _experiment_dir(port)
                free = f', {shutil.disk_usage(where).free / 2**20:.1f} MiB free' if where and where.exists() else ''
                raise DiskFull(f'The disk of the experiment directory {where or "(unknown)"} is full{free}; NNI '
                               f'stopped recording ({errors}). The trials finished so far are kept in its '
                               f'database. Free some space, then `nasext resume {experiment_id}`.')
        except ManagerGone as err:
            reason = str(err)
        if used >= restarts:
            raise RuntimeError(f'{reason}; gave up after {restarts} restart(s). Logs: '
                               f'the experiment directory\'s log/nnimanager.log and log/dispatcher.log')
        used += 1
        print(f'[nasext] {reason}; resuming experiment {experiment_id} (restart {used} of {restarts})', flush=True)
        resume(experiment_id, port)


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
    onnx = None
    if (folder / 'model.pt').exists():
        shutil.copy(folder / 'model.pt', out_dir / 'best_model.pt')
        if best.get('input') and best.get('space'):   # the input a trial fed it: also ONNX
            from nni_nasext.onnx_export import OnnxExportWarning, export_onnx, rebuild_model
            try:
                model = rebuild_model(best, folder / 'model.pt')
            except Exception as err:   # e.g. the space's code changed since the trial ran
                warnings.warn(f'best_model.onnx not written: the network could not be rebuilt ({err})',
                              OnnxExportWarning, stacklevel=2)
            else:
                onnx = export_onnx(model, best['input'], out_dir / 'best_model.onnx')
    return {**best, 'export_dir': str(out_dir.resolve()), 'onnx': str(onnx) if onnx else None}


def remote_machines(config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ``machineList`` of the config's remote training service(s), in order."""
    services = config.get('trainingService')
    services = services if isinstance(services, list) else [services]
    return [m for s in services if isinstance(s, dict) and s.get('platform') == 'remote'
            for m in (s.get('machineList') or []) if isinstance(m, dict)]


def fetch_remote_outputs(config: Dict[str, Any], experiment_id: str, experiment_dir: Path,
                         timeout: float = 300.) -> Dict[str, str]:
    """Copy what our trial program wrote on each remote host (``result.json``, ``sample.json``,
    ``model.pt`` of every trial) into the local experiment directory, under
    ``environments/<env>/trials/<trial>/`` as the local service keeps them, so that the best
    is exported as in local mode. NNI 3.0's remote service leaves trial outputs on the hosts,
    under ``~/nni-experiments/<id>/environments/<env>/trials/<trial>/``; it downloads only logs.

    Uses the machine's ``sshKeyFile`` with the ``ssh`` client (host keys are not checked, as NNI's
    own SSH client does not check them). Returns ``{trial id: host}``, also written to
    ``remote_hosts.json`` in the experiment directory. A machine with a password only is
    skipped with a warning."""
    where: Dict[str, str] = {}
    # which NNI environment (``remote-worker<N>``) ran on which host: the manager's log says
    # "(RemoteV3.Worker.<N>) Initializing SSH worker <host>" (hosts may share a filesystem)
    envs: Dict[str, List[str]] = {}
    for log in sorted((Path(experiment_dir) / 'log').glob('nnimanager*.log')):
        for n, host in re.findall(r'\(RemoteV3\.Worker\.(\d+)\) Initializing SSH worker (\S+)',
                                  log.read_text(errors='replace')):
            envs.setdefault(host, []).append(f'remote-worker{n}')
    # reuseMode: true (NNI's TrialDispatcher): one environment per machine; the log says which trial
    # went to which environment ("assigning environment E to trial T"), not which host runs E
    services = config.get('trainingService')
    reuse = any(isinstance(s, dict) and s.get('platform') == 'remote' and s.get('reuseMode')
                for s in (services if isinstance(services, list) else [services]))
    reuse_env: Dict[str, str] = {}
    for log in sorted((Path(experiment_dir) / 'log').glob('nnimanager*.log')):
        for env, trial in re.findall(r'assigning environment (\S+) to trial (\S+?)\.?$',
                                     log.read_text(errors='replace'), flags=re.M):
            reuse_env[trial] = env
    dest = Path(experiment_dir) / 'environments'
    dest.mkdir(parents=True, exist_ok=True)
    for machine in remote_machines(config):
        host, key = machine.get('host'), machine.get('sshKeyFile') or '~/.ssh/id_rsa'
        if machine.get('password') is not None:
            print(f'[nasext] {host}: password login; fetch its trial outputs yourself from '
                  f'~/nni-experiments/{experiment_id}/environments on that host', file=sys.stderr)
            continue
        ssh = ['ssh', '-i', str(Path(key).expanduser()), '-p', str(machine.get('port', 22)), '-o', 'BatchMode=yes',
               '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
               f'{machine.get("user", "root")}@{host}']
        if reuse:   # NNI's TrialDispatcher keeps trials in /tmp/nni-experiments/<id>/trials/<trial>/nnioutput
            remote = (f'cd /tmp/nni-experiments/{experiment_id}/trials 2>/dev/null || exit 0; '
                      r"find . -path '*/nnioutput/*' \( -name result.json -o -name sample.json -o -name model.pt \) "
                      '-print0 2>/dev/null | tar czf - --null -T -')
        else:
            if envs and not envs.get(str(host)):
                continue   # the log names the hosts, and no environment started on this one
            folders = ' '.join(f'./{e}' for e in envs.get(str(host), ['.']))
            remote = (f'cd ~/nni-experiments/{experiment_id}/environments 2>/dev/null || exit 0; '
                      f"find {folders} -path '*/trials/*' " r"\( -name result.json -o -name sample.json -o -name model.pt \) "
                      '-print0 2>/dev/null | tar czf - --null -T -')
        with tempfile.TemporaryFile() as tar:
            proc = subprocess.run(ssh + [remote], stdout=tar, stderr=subprocess.PIPE, timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f'Fetching trial outputs from {host} failed: {proc.stderr.decode().strip()}')
            tar.seek(0)
            if not tar.read(1):
                continue   # no trial ran there
            tar.seek(0)
            with tarfile.open(fileobj=tar, mode='r:gz') as archive:
                members = [m for m in archive.getmembers() if m.isfile() and '..' not in Path(m.name).parts]
                for m in members:
                    parts = Path(m.name).parts   # (env, 'trials', trial, file), or (trial, 'nnioutput', file)
                    if reuse:   # laid out as the local service does: environments/reuse/trials/<trial>/<file>
                        m.name = str(Path('reuse', 'trials', parts[0], parts[-1]))
                        parts = Path(m.name).parts
                    if parts[-1] == 'result.json' and len(parts) >= 2 and (not reuse or parts[-2] not in where):
                        where[parts[-2]] = str(host) if not reuse else 'environment ' + reuse_env.get(parts[-2], '?')
                archive.extractall(dest, members=members, filter='data')
    (Path(experiment_dir) / 'remote_hosts.json').write_text(json.dumps(where, indent=1, sort_keys=True))
    return where


def trials_dir(experiment_dir: Path, experiment_id: str) -> Path:
    path = Path(experiment_dir).expanduser() / experiment_id
    if not path.is_dir():
        raise FileNotFoundError(f'Experiment {experiment_id} not found: no directory {path}')
    return path
