"""``nasext``: the command line of nni-nasext.

    nasext list [spaces|strategies|evaluators|assessors]
    nasext space NAME [--json] [--arg key=value ...]
    nasext arch [NAME] [--json]         published architectures: sample and parameter count
    nasext register                     register our tuners and assessors with nnictl (builtin names)
    nasext run CONFIG.yml [--port P] [--expose [HOST]]
                                        nnictl create + wait + best architecture + export + stop;
                                        the manager listens on 127.0.0.1 only (--expose: a token-checked
                                        address for the network while the command runs)
    nasext quickstart [--port P]        nasext run experiments/quickstart.yml
    nasext export EXP_ID [--experiment-dir DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from nni_nasext import registry


def _kv(items: List[str]) -> dict:
    out = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--arg needs key=value, got {item!r}')
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


#: ``nasext list`` sections: plural name -> which entries
LIST_SECTIONS = {'spaces': ('kind', 'space'), 'searchers': ('kind', 'searcher'), 'oneshot': ('kind', 'oneshot'),
                 'zero-shot': ('kind', 'zero_shot'), 'transfer': ('kind', 'transfer'),
                 'evaluators': ('kind', 'evaluator'), 'assessors': ('kind', 'assessor'),
                 'strategies': ('face', 'tuner')}   # every nnictl tuner, any kind (not shown by default)


def cmd_list(args) -> int:
    for plural, (attr, value) in LIST_SECTIONS.items():
        if (args.kind and args.kind != plural) or (not args.kind and plural == 'strategies'):
            continue
        print(f'{plural}:')
        for e in registry.ENTRIES:
            if getattr(e, attr) != value:
                continue
            if e.kind == 'space':
                size = f"{e.extra['size']:,}" if 'size' in e.extra else f"10^{e.extra['size_log10']:.1f}"
                extra = f"  [{size} architectures; {e.paper}; benchmark: {e.extra.get('benchmark', '-')}]"
            else:
                cite = f'{e.paper}; ' if e.paper and e.paper not in e.summary else ''
                kind = f'{e.kind}; ' if plural == 'strategies' else ''
                extra = f'  [{kind}{cite}{e.nni_face()}]'
            print(f'  {e.name:24s} {e.summary}{extra}')
    return 0


def cmd_arch(args) -> int:
    from nni_nasext.search_spaces import cells
    if not args.name:
        for name, (factory, kwargs, _, paper_m, cite) in cells.PUBLISHED.items():
            print(f'  {name:14s} {factory.__name__}({", ".join(f"{k}={v}" for k, v in kwargs.items())})  '
                  f'[paper: {paper_m}M params; {cite}]')
        return 0
    if args.name not in cells.PUBLISHED:
        raise ValueError(f'Unknown architecture {args.name!r}; known: {", ".join(sorted(cells.PUBLISHED))}')
    factory, kwargs, sample, paper_m, cite = cells.PUBLISHED[args.name]
    params = cells.count_params(args.name)
    if args.json:
        print(json.dumps({'name': args.name, 'space': factory.__name__, 'space_args': kwargs, 'sample': sample,
                          'params': params, 'paper_params_millions': paper_m, 'source': cite}, indent=1))
        return 0
    print(f'{args.name}: {factory.__name__}({", ".join(f"{k}={v}" for k, v in kwargs.items())}), {cite}')
    for label, value in sample.items():
        print(f'  {label:20s} {value}')
    print(f'parameters: {params:,} ({params / 1e6:.2f}M; paper {paper_m}M; auxiliary head excluded)')
    return 0


def cmd_space(args) -> int:
    from nni_nasext.space_spec import SpaceSpec
    space = registry.build('space', args.name, **_kv(args.arg))
    spec = SpaceSpec.from_space(space)
    if args.json:
        print(json.dumps(spec.to_json(), indent=2))
    else:
        size = spec.size
        print(f'{args.name}: {len(spec)} decisions, '
              + (f'{size:,} architectures' if math.isfinite(size) else 'continuous'))
        for label, d in spec.dims.items():
            print(f'  {label}: {d.to_json()}')
    return 0


def cmd_register(args) -> int:
    from nni_nasext.nnictl_tools import register_tuners
    register_tuners(force=True)
    return 0


def cmd_run(args) -> int:
    from nni_nasext import nnictl_tools as nt
    config_path = Path(args.config)
    config = nt.load_config(config_path)
    nt.register_tuners()
    port = args.port or nt.free_port()
    proxy = None
    if args.expose_port is not None and not args.expose:
        raise SystemExit('error: --expose-port needs --expose')
    exp_id = nt.create(config_path, port)
    print(f'[nasext] experiment {exp_id}: web UI at http://127.0.0.1:{port} (this machine only; '
          f'watch trials there; `nnictl stop {exp_id}` to stop)', flush=True)
    try:
        if args.expose:
            from nni_nasext.netguard import TokenProxy
            proxy = TokenProxy(port, host=args.expose, port=args.expose_port or 0).start()
            print(f'[nasext] exposed to the network, with a token, while this command runs: {proxy.url}', flush=True)
        return _finish(args, config, config_path, exp_id, port)
    finally:
        if proxy is not None:
            proxy.stop()
        _stop_unless_kept(args, exp_id)


def _stop_unless_kept(args, exp_id: str) -> None:
    from nni_nasext import nnictl_tools as nt
    if args.keep:
        print(f'[nasext] experiment left running for the web UI: nnictl stop {exp_id}')
    else:
        nt.stop(exp_id)
        print(f'[nasext] experiment {exp_id} stopped; `nnictl view {exp_id}` shows it again')


def _finish(args, config, config_path, exp_id, port) -> int:
    from nni_nasext import nnictl_tools as nt
    trials = nt.supervise(exp_id, port, timeout=args.timeout, restarts=args.restarts)
    from nni_nasext.adapters.tuner import metric_value
    done = [t for t in trials if metric_value(t['final']) is not None]
    unusable = [t for t in trials if t['final'] is not None and metric_value(t['final']) is None]
    failed = [t for t in trials if t['status'] == 'FAILED']
    # an assessor's stop shows as EARLY_STOPPED, or USER_CANCELED with NNI 3.0's local service
    stopped = [t for t in trials if t['status'] in ('EARLY_STOPPED', 'USER_CANCELED')]
    print(f'[nasext] {len(trials)} trials: {len(done)} with a final result, {len(failed)} failed'
          + (f', {len(stopped)} stopped early' if stopped else '')
          + (f', {len(unusable)} reported a final value that is not a number (NaN): not ranked' if unusable else ''))
    if config_path is None:  # nasext resume: the experiment as the manager reports it
        profile = nt.Rest(port).get('/experiment')
        config, workdir = profile.get('params') or {}, Path(profile['logDir']).parent
    else:
        workdir = Path(config.get('experimentWorkingDirectory', '~/nni-experiments'))
        if not workdir.expanduser().is_absolute():
            workdir = config_path.parent / workdir
    out = Path(args.export or f'exports/{exp_id}')
    minimize = ((config.get('tuner') or {}).get('classArgs') or {}).get('optimize_mode') == 'minimize'
    if nt.remote_machines(config):   # trial outputs stay on the hosts: fetch them first
        hosts = nt.fetch_remote_outputs(config, exp_id, nt.trials_dir(workdir, exp_id))
        per_host = {h: sum(v == h for v in hosts.values()) for h in sorted(set(hosts.values()))}
        print(f'[nasext] trial outputs fetched from the remote hosts (trials per host: {per_host})')
    try:
        best = nt.export_best(nt.trials_dir(workdir, exp_id), out, minimize=minimize)
    except FileNotFoundError:
        if not done:
            raise
        # a cluster service keeps trial outputs on its own storage: the best from NNI's records
        sign = -1. if minimize else 1.
        top = max(done, key=lambda t: sign * metric_value(t['final']))
        out.mkdir(parents=True, exist_ok=True)
        (out / 'best_sample.json').write_text(json.dumps(top['sample'], indent=1))
        best = {'value': metric_value(top['final']), 'trial_id': top['id'], 'sample': top['sample'],
                'export_dir': str(out.resolve())}
        print(f'[nasext] no trial output on this machine (the training service keeps it on its storage): '
              f'the best sample is taken from NNI\'s records; its model.pt is with trial {top["id"]} there')
    print(f'[nasext] best architecture (value {best["value"]:.4f}, trial {best["trial_id"]}):')
    print(json.dumps(best['sample'], indent=1))
    written = ', '.join(n for n in ('best_sample.json', 'best_model.pt', 'best_model.onnx', 'best_result.json')
                        if (Path(best['export_dir']) / n).exists())
    print(f'[nasext] exported to {best["export_dir"]} ({written})')
    return 0


def cmd_resume(args) -> int:
    """``nnictl resume`` after a crash (manager or tuner killed, machine rebooted): leftover
    processes of the experiment are ended first (a surviving tuner breaks a plain ``nnictl
    resume``), then the search goes on under supervision and the best is exported."""
    from nni_nasext import nnictl_tools as nt
    nt.register_tuners(verbose=False)
    port = args.port or nt.free_port()
    nt.resume(args.experiment_id, port)
    print(f'[nasext] experiment {args.experiment_id} resumed: web UI at http://127.0.0.1:{port} (this machine only)',
          flush=True)
    try:
        return _finish(args, {}, None, args.experiment_id, port)
    finally:
        _stop_unless_kept(args, args.experiment_id)


def cmd_quickstart(args) -> int:
    args.config = args.config or 'experiments/quickstart.yml'
    if not Path(args.config).exists():
        print(f'error: {args.config} not found: run `nasext quickstart` from the nni-nasext repository root '
              'or pass --config', file=sys.stderr)
        return 2
    return cmd_run(args)


def cmd_export(args) -> int:
    from nni_nasext import nnictl_tools as nt
    best = nt.export_best(nt.trials_dir(Path(args.experiment_dir), args.experiment_id),
                          Path(args.out or f'exports/{args.experiment_id}'), minimize=args.minimize)
    print(json.dumps(best['sample'], indent=1))
    written = ', '.join(n for n in ('best_sample.json', 'best_model.pt', 'best_model.onnx', 'best_result.json')
                        if (Path(best['export_dir']) / n).exists())
    print(f'[nasext] exported to {best["export_dir"]} ({written})')
    return 0


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a whole number: {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {value}')
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='nasext', description='nni-nasext: NAS methods for NNI 3.0')
    sub = p.add_subparsers(dest='command', required=True)
    s = sub.add_parser('list', help='list spaces, strategies and evaluators')
    s.add_argument('kind', nargs='?', choices=list(LIST_SECTIONS))
    s.set_defaults(func=cmd_list)
    s = sub.add_parser('space', help='show a space, or its nnictl search-space JSON')
    s.add_argument('name')
    s.add_argument('--json', action='store_true')
    s.add_argument('--arg', action='append', help='space argument key=value')
    s.set_defaults(func=cmd_space)
    s = sub.add_parser('arch', help='published architectures (NASNet-A, AmoebaNet-A, PNASNet-5, ENAS, DARTS-V1/V2)')
    s.add_argument('name', nargs='?')
    s.add_argument('--json', action='store_true')
    s.set_defaults(func=cmd_arch)
    s = sub.add_parser('register', help='register nasext tuners and assessors with nnictl')
    s.set_defaults(func=cmd_register)
    for name, func in (('run', cmd_run), ('quickstart', cmd_quickstart)):
        s = sub.add_parser(name, help='launch an nnictl experiment, wait, export the best')
        if name == 'run':
            s.add_argument('config')
        else:
            s.add_argument('--config', default=None)
        s.add_argument('--port', type=int, default=None, help='web UI port (default: a free one)')
        s.add_argument('--timeout', type=float, default=900.)
        s.add_argument('--export', default=None, help='export directory (default exports/<id>)')
        s.add_argument('--keep', action='store_true', help='leave the experiment running after it is done')
        s.add_argument('--expose', nargs='?', const='0.0.0.0', default=None, metavar='HOST',
                       help='also serve the web UI / REST API to the network (on HOST, default all interfaces) '
                            'behind a random token, while this command runs; without it the manager listens '
                            'on 127.0.0.1 only')
        s.add_argument('--expose-port', type=int, default=None, help='port of the exposed, token-checked address')
        s.add_argument('--restarts', type=_non_negative_int, default=2,
                       help='resume the experiment at most this many times when its NNI manager dies or its '
                            'tuner crashes (default 2)')
        s.set_defaults(func=func)
    s = sub.add_parser('resume', help='resume an experiment after a crash (ends its leftover processes first), '
                                      'wait, export the best')
    s.add_argument('experiment_id')
    s.add_argument('--port', type=int, default=None, help='web UI port (default: a free one)')
    s.add_argument('--timeout', type=float, default=900.)
    s.add_argument('--export', default=None, help='export directory (default exports/<id>)')
    s.add_argument('--keep', action='store_true', help='leave the experiment running after it is done')
    s.add_argument('--restarts', type=_non_negative_int, default=2)
    s.set_defaults(func=cmd_resume)
    s = sub.add_parser('export', help='export the best architecture of an experiment')
    s.add_argument('experiment_id')
    s.add_argument('--experiment-dir', default='~/nni-experiments')
    s.add_argument('--out', default=None)
    s.add_argument('--minimize', action='store_true', help='lower metric is better (e.g. perplexity)')
    s.set_defaults(func=cmd_export)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    warnings.filterwarnings('ignore', category=UserWarning)
    warnings.filterwarnings('ignore', category=RuntimeWarning, module='nni')
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError, TimeoutError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
