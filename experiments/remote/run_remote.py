"""The quickstart on NNI's remote training service, against the same experiment run locally.

Runs, one after another and with the same concurrency: the local quickstart
(``experiments/quickstart.yml``), then ``experiments/remote/remote.yml`` (the same config, only
``trainingService`` changed to ``platform: remote`` with two SSH hosts) with ``reuseMode`` off and
on. For each: wall time, trial statuses, which host ran which trial (remote), the best
architecture exported as in local mode. Expects the hosts of ``hosts.sh up``; ``run.sh`` sets
them up and tears them down around this script. Exit status 1 when a trial did not succeed or a
host ran no trial.

    bash experiments/remote/run.sh               # 10 trials each (results/remote.md)
    bash experiments/remote/run.sh --trials 4 --no-local --no-reuse   # the test's short version
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))


def absolute(config: dict, base: Path) -> dict:
    """The config with its paths made absolute (it is written elsewhere to change one field)."""
    out = dict(config)
    for key in ('searchSpaceFile', 'trialCodeDirectory', 'experimentWorkingDirectory'):
        if key in out:
            out[key] = str((base / out[key]).resolve())
    return out


def run_one(name: str, config: dict, trials: int, folder: Path, timeout: float) -> dict:
    from nni_nasext import nnictl_tools as nt
    from nni_nasext.adapters.tuner import metric_value
    config = dict(config, maxTrialNumber=trials, experimentName=f'nasext-{name}')
    path = folder / f'{name}.yml'
    path.write_text(yaml.safe_dump(config))
    port = nt.free_port()
    start = time.time()
    exp_id = nt.create(path, port)
    try:
        rows = nt.supervise(exp_id, port, timeout=timeout, restarts=0, verbose=False)
        wall = time.time() - start
    finally:
        nt.stop(exp_id)
    exp_dir = nt.trials_dir(config['experimentWorkingDirectory'], exp_id)
    hosts = nt.fetch_remote_outputs(config, exp_id, exp_dir) if nt.remote_machines(config) else {}
    best = nt.export_best(exp_dir, folder / f'export-{name}')
    ok = [t for t in rows if t['status'] == 'SUCCEEDED' and metric_value(t['final']) is not None]
    return {'name': name, 'experiment': exp_id, 'reuse': (config['trainingService'] or {}).get('reuseMode'),
            'trials': len(rows), 'succeeded': len(ok), 'wall_s': wall,
            'statuses': sorted({t['status'] for t in rows}),
            'hosts': {t['id']: hosts.get(t['id']) for t in rows} if hosts else {},
            'best': {'value': best['value'], 'trial': best['trial_id'], 'sample': best['sample'],
                     'exported': sorted(p.name for p in Path(best['export_dir']).iterdir())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--trials', type=int, default=10)
    ap.add_argument('--no-local', action='store_true', help='skip the local run')
    ap.add_argument('--no-reuse', action='store_true', help='skip the reuseMode: true run')
    ap.add_argument('--timeout', type=float, default=900.)
    ap.add_argument('--out', type=Path, default=None, help='write <out>/remote.{json,md}')
    args = ap.parse_args(argv)
    from nni_nasext import nnictl_tools as nt
    nt.register_tuners(verbose=False)
    local = absolute(yaml.safe_load((ROOT / 'experiments' / 'quickstart.yml').read_text()), ROOT / 'experiments')
    remote = absolute(yaml.safe_load((HERE / 'remote.yml').read_text()), HERE)
    plan = [] if args.no_local else [('local', local)]
    plan.append(('remote', remote))
    if not args.no_reuse:
        # NNI's reuse path reads the manager's address at the top level only (nnictl_tools.manager_addresses)
        plan.append(('remote-reuse', dict(remote, nniManagerIp=remote['trainingService']['nniManagerIp'],
                                          trainingService=dict(remote['trainingService'], reuseMode=True))))
    results, failures = [], []
    with tempfile.TemporaryDirectory(prefix='nasext-remote-') as tmp:
        for name, config in plan:
            print(f'[remote] {name}: {args.trials} trials ...', flush=True)
            r = run_one(name, config, args.trials, Path(tmp), args.timeout)
            results.append(r)
            per_host = {}
            for host in r['hosts'].values():
                per_host[host] = per_host.get(host, 0) + 1
            r['per_host'] = per_host
            print(f'[remote] {name}: {r["succeeded"]}/{r["trials"]} SUCCEEDED in {r["wall_s"]:.0f} s'
                  + (f', trials per host {per_host}' if per_host else '') + f', best {r["best"]["value"]:.4f} '
                  f'(trial {r["best"]["trial"]}, exported {", ".join(r["best"]["exported"])})', flush=True)
            if r['succeeded'] != args.trials:
                failures.append(f'{name}: {r["succeeded"]}/{args.trials} trials succeeded ({r["statuses"]})')
            machines = nt.remote_machines(config)
            if name.startswith('remote') and r['reuse']:   # NNI logs environments (one per machine), not hosts
                if len(per_host) < len(machines):
                    failures.append(f'{name}: trials ran in {len(per_host)} environments for {len(machines)} hosts')
            elif name.startswith('remote'):
                for m in machines:
                    if not per_host.get(m['host']):
                        failures.append(f'{name}: host {m["host"]} ran no trial')
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {'command': 'bash experiments/remote/run.sh ' + ' '.join(sys.argv[1:] if argv is None else argv),
                'date': datetime.datetime.now().isoformat(timespec='seconds'),
                'machine': f'{platform.machine()}, {os.cpu_count()} cores'}
        (args.out / 'remote.json').write_text(json.dumps({**meta, 'runs': results}, indent=1))
        lines = ['| run | training service | trials SUCCEEDED | wall s | trials per host | best value (trial) | exported |',
                 '|---|---|---|---|---|---|---|']
        for r in results:
            service = 'local' if r['name'] == 'local' else f'remote, reuseMode {str(bool(r["reuse"])).lower()}'
            hosts = ', '.join(f'{h}: {n}' for h, n in sorted(r['per_host'].items())) or '-'
            hosts = hosts.replace('environment ', 'env ')
            lines.append(f'| {r["name"]} | {service} | {r["succeeded"]}/{r["trials"]} | {r["wall_s"]:.0f} | {hosts} | '
                         f'{r["best"]["value"]:.4f} ({r["best"]["trial"]}) | {", ".join(r["best"]["exported"])} |')
        lines += ['', f'Command: `{meta["command"]}`; {meta["machine"]}; {meta["date"]}.', '']
        (args.out / 'remote.md').write_text('\n'.join(lines))
        print('\n'.join(lines))
    for f in failures:
        print(f'[remote] FAILED: {f}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    raise SystemExit(main())
