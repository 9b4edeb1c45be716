"""A whole one-shot NAS search as one NNI trial (``python3 -m nni_nasext.trial_code.oneshot``).

Under ``nnictl create`` the experiment has one trial: this program builds a registered space
(``--space``, ``--space-args``) and evaluator (``--evaluator``, ``--evaluator-args``; any
evaluator of ``nasext list evaluators`` that trains with Lightning), runs one method of
``nasext list oneshot`` on the weight-sharing supernet of that space
(:func:`nni_nasext.strategies.oneshot.search`), and writes into its output directory
(``--output-dir``, else ``NNI_OUTPUT_DIR``, else the current directory):

``derived_sample.json``
    the derived architecture: a sample of the space (``space.freeze(sample)`` builds it);
``oneshot_history.json``
    method, per-epoch supernet validation metric (``val``), training loss, architecture
    strengths, the method's own records, seconds and the settings used;
``result.json``
    ``{'sample', 'value' (last supernet validation metric), 'space', 'space_args', ...}``, the
    record that ``nasext run`` / ``nasext export`` read;
``checkpoints/last.ckpt``
    the search after its last epoch. Run the trial again with the same output directory (NNI's
    trial rerun, or by hand) and it **resumes** from there: it continues the same search and
    ends with the same architecture as a run never stopped.

The evaluator's own Lightning module reports the supernet's validation metric of every epoch
(``nni.report_intermediate_result``: the web UI's learning curve); this program reports the
last one with ``nni.report_final_result({'default': ..., ...})``.

The parameters NNI hands the trial (``nni.get_next_parameter()``, typically one point of the
experiment's search space) override the arguments of the same name (``method``, ``seed``,
``epochs``, ``arch_data``); any other key is a method argument (``arch_lr``, ``tau_max``, ...),
so an HPO tuner can tune those too. Bad arguments fail the trial (exit status 1) with one
clear message, before any training.

    python3 -m nni_nasext.trial_code.oneshot --method darts --space quickstart \\
        --evaluator classification --evaluator-args '{"dataset": "digits", "max_epochs": 3}' --output-dir out/
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional

from nni_nasext.trial_code.common import (
    ArgParser, json_arg, json_safe, optional_int, optional_str, output_dir, run_main, shared_trial_parameters,
)

__all__ = ['build_parser', 'main', 'resolve', 'run_trial']

#: argument -> converter; the names a received parameter may override
SETTINGS = {'method': str, 'epochs': optional_int, 'seed': optional_int, 'arch_data': optional_str}


def build_parser() -> ArgParser:
    import argparse
    p = ArgParser(prog='python3 -m nni_nasext.trial_code.oneshot', description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--method', default='darts', help='a one-shot method (nasext list oneshot)')
    p.add_argument('--space', default='quickstart', help='a registered space (nasext list spaces)')
    p.add_argument('--space-args', default='{}', help='JSON object of keyword arguments for the space')
    p.add_argument('--evaluator', default='classification', help='a registered evaluator with a Lightning module')
    p.add_argument('--evaluator-args', default='{"dataset": "digits"}',
                   help='JSON object of keyword arguments for the evaluator (dataset, max_epochs, batch_size, ...)')
    p.add_argument('--epochs', type=optional_int, default=None, help="supernet epochs (default: the evaluator's)")
    p.add_argument('--seed', type=optional_int, default=None, help="the search's seed (default: the evaluator's)")
    p.add_argument('--arch-data', type=optional_str, default=None,
                   help="'split' (halve the training data) or 'val' (default: the evaluator's)")
    p.add_argument('--method-args', default='{}', help='JSON object of method arguments (arch_lr, tau_max, ...)')
    p.add_argument('--no-resume', action='store_true', help='start afresh even if a checkpoint exists')
    p.add_argument('--output-dir', default=None, help='where to write the files (default: NNI_OUTPUT_DIR, else .)')
    return p


def resolve(args, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings: the arguments, overridden by NNI's ``params``; everything checked (the
    space built, the evaluator built, the method and its arguments known)."""
    from nni_nasext import registry
    from nni_nasext.strategies.oneshot import check_method_args

    settings = {name: getattr(args, name) for name in SETTINGS}
    method_args = json_arg(args.method_args, '--method-args')
    space_args = json_arg(args.space_args, '--space-args')
    evaluator_args = json_arg(args.evaluator_args, '--evaluator-args')
    for key, value in (params or {}).items():
        name = key.replace('-', '_')
        if name in SETTINGS:
            try:
                settings[name] = SETTINGS[name](value) if value is not None else None
            except (TypeError, ValueError):
                raise ValueError(f'NNI parameter {key!r} = {value!r} is not a valid {name}') from None
        elif name == 'method_args':
            if not isinstance(value, dict):
                raise ValueError(f'NNI parameter {key!r} must be an object, got {value!r}')
            method_args.update(value)
        else:
            method_args[name] = value
    if settings['epochs'] is not None and settings['epochs'] < 1:
        raise ValueError(f'epochs must be a positive whole number, got {settings["epochs"]!r}')
    if settings['arch_data'] not in (None, 'split', 'val'):
        raise ValueError(f"arch_data must be 'split' or 'val', got {settings['arch_data']!r}")
    check_method_args(settings['method'], method_args)
    registry.lookup('space', args.space)
    registry.lookup('evaluator', args.evaluator)
    return {**settings, 'method_args': method_args, 'space': args.space, 'space_args': space_args,
            'evaluator': args.evaluator, 'evaluator_args': evaluator_args}


def run_trial(args) -> Dict[str, Any]:
    import nni

    from nni_nasext import registry
    from nni_nasext.strategies.oneshot import search

    params, helper = shared_trial_parameters()   # helper: a further process of a DDP search (devices > 1)
    s = resolve(args, params)
    out = output_dir(args)
    import torch
    torch.manual_seed(0 if s['seed'] is None else s['seed'])  # the space's initial weights: seeded
    space = registry.build('space', s['space'], **s['space_args'])
    evaluator = registry.build('evaluator', s['evaluator'], **s['evaluator_args'])
    print(f'[nasext] one-shot trial {nni.get_trial_id()}: {s["method"]} on {s["space"]} with {s["evaluator"]} '
          f'{json.dumps(s["evaluator_args"])}' + (f', method args {json.dumps(s["method_args"])}' if s['method_args']
                                                 else ''), flush=True)
    result = search(space, evaluator, s['method'], epochs=s['epochs'], seed=s['seed'], arch_data=s['arch_data'],
                    output_dir=str(out), resume=not args.no_resume, verbose=True, **s['method_args'])
    if helper:   # trained its share of every batch; the first process writes and reports
        return {'sample': dict(result.sample), 'helper': True}
    val = [float(v) for v in result.history.get('val', [])]
    value = val[-1] if val else None
    if not getattr(result.module, 'training_free', False) and (value is None or not math.isfinite(value)):
        raise RuntimeError(f'{s["method"]}: no usable supernet validation metric ({val})')
    sample = dict(result.sample)
    history = {k: json_safe(v) for k, v in result.to_json().items()}
    history.update(settings=json_safe({k: v for k, v in s.items()}), trial_id=nni.get_trial_id(),
                   parameters=json_safe(params))
    (out / 'derived_sample.json').write_text(json.dumps(sample, indent=1))
    (out / 'oneshot_history.json').write_text(json.dumps(history, indent=1))
    record = {'sample': sample, 'value': value if value is not None else 0.0,
              'metric': f'supernet {result.module.metric}', 'space': s['space'], 'space_args': s['space_args'],
              'method': s['method'], 'evaluator': s['evaluator'], 'seconds': round(float(result.seconds), 3),
              'resumed_from': result.resumed_from, 'trial_id': nni.get_trial_id()}
    (out / 'result.json').write_text(json.dumps(record, indent=1))
    print(f'[nasext] derived {json.dumps(sample)}; wrote {out / "derived_sample.json"}, '
          f'{out / "oneshot_history.json"} and {out / "result.json"}', flush=True)
    final = {'default': record['value'], 'epochs': len(val), 'seconds': record['seconds']}
    if val:
        final['best'] = max(val) if result.module.mode == 'max' else min(val)
    nni.report_final_result(final)
    return {'sample': sample, 'history': history, 'final': final, 'output_dir': str(out)}


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(run_trial, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
