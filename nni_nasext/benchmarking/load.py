"""A long nnictl experiment under load: thousands of NB201 lookup trials, 8 at a time.

One real ``nnictl create`` experiment (our regularized-evolution tuner, NB201 12-epoch lookup
trials through ``python3 -m nni_nasext.trial_code``, ``trialConcurrency`` 8) driven to
``--trials`` trials. While it runs, the benchmark samples every ``--every`` seconds the resident
memory of the NNI manager (node) and of the tuner (dispatcher) process and the number of
finished trials. At the end it checks that nothing was lost: every trial SUCCEEDED with a final
metric equal to the NB201 table's value for its sample, no ERROR line in the manager's log and no
traceback in the tuner's. It reports trials per minute, NNI's wall time per trial (start to end
as the manager records it), the memory curve (plotted) and its growth over the second half.

``--general-trials N`` first runs a short experiment of N trials on the general trial path
(``NASEXT_NO_FAST_LOOKUP=1``: NNI's NAS modules, PyTorch and Lightning imported in every trial),
the path every lookup trial took before, for trials per minute side by side.

    NASEXT_DATA=../shared/data python experiments/bench_load.py --trials 2000 --general-trials 100
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from nni_nasext.benchmarking import EXPERIMENTS, command_line, machine_info, markdown_table, write_results

LOOKUP = ("python3 -m nni_nasext.trial_code --space nasbench201 --evaluator nb201 "
          "--evaluator-args '{\"dataset\": \"cifar10-valid\", \"epochs\": 12}'")


def write_config(folder: Path, trials: int, concurrency: int, general: bool) -> Path:
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    from nni_nasext.space_spec import SpaceSpec
    (folder / 'space.json').write_text(json.dumps(SpaceSpec.from_space(NasBench201Space()).to_json()))
    config = {'experimentName': 'nasext-load', 'searchSpaceFile': 'space.json',
              'trialCommand': ('NASEXT_NO_FAST_LOOKUP=1 ' if general else '') + LOOKUP,
              'trialCodeDirectory': '.', 'trialConcurrency': concurrency, 'maxTrialNumber': trials,
              'maxExperimentDuration': '4h',
              'tuner': {'name': 'NasextEvolution', 'classArgs': {'population_size': 64, 'sample_size': 16, 'seed': 0}},
              'trainingService': {'platform': 'local'}, 'experimentWorkingDirectory': str(folder / 'experiments')}
    path = folder / 'config.yml'
    path.write_text(yaml.safe_dump(config))
    return path


def roles(experiment_id: str) -> dict:
    """The manager and tuner processes of the experiment."""
    from nni_nasext import nnictl_tools as nt
    out = {}
    for proc in nt.experiment_processes(experiment_id):
        try:
            cmd = proc.cmdline()
        except Exception:
            continue
        if '--experiment-id' in cmd:
            out['manager'] = proc
        elif '--exp_params' in cmd and proc.name().startswith('python'):
            out['tuner'] = proc
    return out


def run(trials: int, concurrency: int, general: bool, every: float, folder: Path) -> dict:
    """One experiment, sampled while it runs; returns what was measured."""
    from nni_nasext import nnictl_tools as nt
    from nni_nasext.adapters.tuner import metric_value
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, trials, concurrency, general)
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(config, port)
    rest, samples, start = nt.Rest(port), [], time.time()
    try:
        procs = roles(exp_id)
        while True:
            status = rest.status()
            jobs = rest.get('/trial-jobs')
            done = sum(j['status'] in nt.ENDED_STATUSES for j in jobs)
            mem = {}
            for role, proc in procs.items():
                try:
                    mem[role] = proc.memory_info().rss / 2 ** 20
                except Exception:
                    mem[role] = None
            samples.append({'t': time.time() - start, 'finished': done, **mem})
            if len(samples) % max(1, int(60 / every)) == 0:
                print(f'[load] {samples[-1]["t"]:6.0f} s: {done}/{trials} trials, manager '
                      f'{mem.get("manager") or 0:.0f} MiB, tuner {mem.get("tuner") or 0:.0f} MiB', flush=True)
            if status in ('DONE', 'ERROR', 'STOPPED') or (status == 'NO_MORE_TRIAL' and done == len(jobs)):
                break
            if time.time() - start > 4 * 3600:
                raise TimeoutError('load run longer than 4 h')
            time.sleep(every)
        wall = time.time() - start
        trial_list = rest.trials()
        jobs = {j['trialJobId']: j for j in rest.get('/trial-jobs')}
        final_status = rest.status()
    finally:
        nt.stop(exp_id)
    from nni_nasext.benchmarks import NasBench201Table
    table = NasBench201Table()
    wrong = [t['id'] for t in trial_list if t['status'] != 'SUCCEEDED' or metric_value(t['final']) is None
             or abs(metric_value(t['final']) - table.query(t['sample'], 'cifar10-valid', 12).accuracy) > 1e-9]
    logs = folder / 'experiments' / exp_id / 'log'
    manager_errors = [ln for ln in (logs / 'nnimanager.log').read_text().splitlines() if ' ERROR ' in ln]
    tuner_errors = [ln for ln in (logs / 'dispatcher.log').read_text().splitlines()
                    if 'Traceback' in ln or ' ERROR ' in ln]
    durations = [(j['endTime'] - j['startTime']) / 1000 for j in jobs.values() if j.get('endTime') and j.get('startTime')]
    distinct = len({json.dumps(t['sample'], sort_keys=True) for t in trial_list})
    return {'experiment': exp_id, 'trials': len(trial_list), 'distinct_samples': distinct, 'status': final_status, 'wall_s': wall,
            'trials_per_min': len(trial_list) / wall * 60, 'not_ok': wrong, 'manager_errors': manager_errors[:20],
            'tuner_errors': tuner_errors[:20], 'trial_duration_median_s': statistics.median(durations) if durations else None,
            'samples': samples}


def growth(samples: list, role: str, total: int) -> dict:
    """Memory at a quarter, half, three quarters and the end of the run, and its growth per
    1000 trials over the second half (a least-squares line)."""
    pts = [(s['finished'], s[role]) for s in samples if s.get(role) is not None]
    if len(pts) < 4:
        return {}
    at = {}
    for frac in (0.25, 0.5, 0.75, 1.0):
        at[str(frac)] = next((m for f, m in pts if f >= frac * total), pts[-1][1])
    half = [(f, m) for f, m in pts if f >= total / 2] or pts
    n = len(half)
    mx, my = sum(f for f, _ in half) / n, sum(m for _, m in half) / n
    var = sum((f - mx) ** 2 for f, _ in half)
    slope = sum((f - mx) * (m - my) for f, m in half) / var if var else 0.
    return {'at': at, 'max': max(m for _, m in pts), 'slope_mib_per_1000_trials_second_half': slope * 1000}


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    s = result['samples']
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for role in ('manager', 'tuner'):
        pts = [(x['t'] / 60, x[role]) for x in s if x.get(role) is not None]
        ax[0].plot([p[0] for p in pts], [p[1] for p in pts], label=f'{role} RSS')
    ax[0].set_xlabel('minutes')
    ax[0].set_ylabel('MiB')
    ax[0].set_ylim(bottom=0)
    ax[0].legend()
    ax[0].set_title('Memory of the NNI manager and of our tuner')
    ax[1].plot([x['t'] / 60 for x in s], [x['finished'] for x in s])
    ax[1].set_xlabel('minutes')
    ax[1].set_ylabel('finished trials')
    ax[1].set_title(f'{result["trials"]} trials, concurrency 8: {result["trials_per_min"]:.0f}/min')
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--trials', type=int, default=2000)
    ap.add_argument('--concurrency', type=int, default=8)
    ap.add_argument('--general-trials', type=int, default=100)
    ap.add_argument('--every', type=float, default=5.)
    ap.add_argument('--out', type=Path, default=EXPERIMENTS / 'results')
    args = ap.parse_args(argv)
    if not os.environ.get('NASEXT_DATA'):
        raise SystemExit('Set NASEXT_DATA (the NB201 12-epoch table is read from it)')
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix='nasext-load-') as tmp:
        general = run(args.general_trials, args.concurrency, True, args.every, Path(tmp) / 'general') \
            if args.general_trials else None
        fast = run(args.trials, args.concurrency, False, args.every, Path(tmp) / 'fast')
    mem = {role: growth(fast['samples'], role, args.trials) for role in ('manager', 'tuner')}
    machine = machine_info()
    res = {'command': command_line('experiments/bench_load.py', argv),
           'date': datetime.datetime.now().isoformat(timespec='seconds'),
           'machine': machine, 'runtime_s': time.time() - t0,
           'fast': fast, 'general': general, 'memory': mem}
    tag = f'load_{args.trials}'
    ok = not fast['not_ok'] and not fast['manager_errors'] and not fast['tuner_errors'] and \
        fast['trials'] == args.trials

    def row(name, r):
        return [name, r['trials'], r['status'], len(r['not_ok']), f'{r["wall_s"] / 60:.1f}', f'{r["trials_per_min"]:.1f}',
                f'{r["trial_duration_median_s"]:.2f}', f'{len(r["manager_errors"])} / {len(r["tuner_errors"])}',
                r['distinct_samples']]
    runs = ([row('general (before: NNI NAS modules, torch, Lightning per trial)', general)] if general else []) \
        + [row('fast (now)', fast)]
    memory = [[role] + [f'{g["at"][k]:.0f}' for k in ('0.25', '0.5', '0.75', '1.0')]
              + [f'{g["max"]:.0f}', f'{g["slope_mib_per_1000_trials_second_half"]:+.1f}'] for role, g in mem.items() if g]
    lines = [f'## {args.trials} NB201 lookup trials through nnictl, concurrency {args.concurrency}', '',
             *markdown_table(['trial path', 'trials', 'status', 'lost or wrong', 'minutes', 'trials/min',
                              'NNI trial time, median s', 'manager / tuner error lines', 'distinct samples'], runs),
             '', 'Memory (RSS, MiB) at a quarter / half / three quarters / all of the trials; growth over the '
             'second half (least squares):', '',
             *markdown_table(['process', '25 %', '50 %', '75 %', '100 %', 'max', 'MiB per 1000 trials'], memory)]
    lines += ['', f'![memory and progress]({tag}.png)', '',
              f'Nothing lost: {"**yes**" if ok else "**no**"} (every trial SUCCEEDED with the table value of its '
              'sample; no ERROR line in the manager log, no traceback in the tuner log).', '',
              f'Command: `{res["command"]}`; {res["runtime_s"]:.0f} s on {machine["processor"]}, '
              f'{machine["cpu_count"]} cores; {res["date"]}.', '']
    write_results(args.out, tag, res, '\n'.join(lines))
    plot(fast, args.out / f'{tag}.png')
    print('\n'.join(lines))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
