"""A whole one-shot NAS search as one NNI trial (``python3 -m nni_nasext.trial_code.oneshot``).

Under ``nnictl create`` the experiment has one trial: this program trains the weight-sharing
NB201 supernet with one method of :mod:`nni_nasext.strategies.oneshot` (DARTS, Liu et al.,
ICLR 2019; GDAS, Dong & Yang, CVPR 2019; SNAS, Xie et al., ICLR 2019; PC-DARTS, Xu et al.,
ICLR 2020; Fair DARTS, Chu et al., ECCV 2020; RSPS, Li & Talwalkar, UAI 2019; SPOS, Guo et
al., ECCV 2020), reports the supernet validation accuracy of every epoch with
``nni.report_intermediate_result`` (the web UI's learning curve) and the last one with
``nni.report_final_result({'default': ..., ...})``, and writes into its output directory
(``--output-dir``, else ``NNI_OUTPUT_DIR``, else the current directory):

``derived_sample.json``
    the derived architecture: a sample of ``NasBench201Space`` (edge label -> op name);
``oneshot_history.json``
    method, per-epoch ``val_acc``, ``alpha`` (6 x 5 op strengths), ``train_loss``,
    ``seconds`` and the settings used;
``result.json``
    ``{'sample': derived sample, 'value': last supernet val acc, ...}``, the record that
    ``nasext run`` / ``nasext export`` read to export the best architecture.

The parameters NNI hands the trial (``nni.get_next_parameter()``, from the experiment's
search space, typically one point) override the command-line arguments of the same name
(``method``, ``seed``, ``epochs``, ``num_cells`` ...); any other key is a method argument
(``arch_lr``, ``weight_lr``, ``tau_max`` ...), so an HPO tuner can also tune those. Bad
arguments fail the trial (exit status 1) with one clear message, before any training.
``--module-cls package.module:Class`` runs a method that a subclass of
:class:`~nni_nasext.strategies.oneshot.OneShotModule` adds (``--method`` one of its ``methods``).

    python3 -m nni_nasext.trial_code.oneshot --method darts --dataset digits --epochs 3 \\
        --num-cells 1 --channels 8 --output-dir out/
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

_logger = logging.getLogger('nni_nasext.trial.oneshot')


class _Parser(argparse.ArgumentParser):
    """Argument errors raise ``ValueError`` (exit status 1: the trial FAILED), not SystemExit(2)."""

    def error(self, message):
        raise ValueError(f'{self.prog}: {message}')


def _optional_int(text: str) -> Optional[int]:
    return None if str(text).lower() in ('none', 'null', '') else int(text)


def _optional_str(text: str) -> Optional[str]:
    return None if str(text).lower() in ('none', 'null', '') else str(text)


def load_module_cls(path: Optional[str]):
    """``'package.module:Class'`` -> that subclass of ``OneShotModule`` (``None`` -> ``None``)."""
    if path is None:
        return None
    import importlib

    from nni_nasext.strategies.oneshot import OneShotModule
    module, sep, attr = path.partition(':')
    if not sep or not module or not attr:
        raise ValueError(f"--module-cls must be 'package.module:Class', got {path!r}")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f'--module-cls {path!r} cannot be imported: {err}') from None
    if not (isinstance(cls, type) and issubclass(cls, OneShotModule)):
        raise ValueError(f'--module-cls {path!r} is not a subclass of nni_nasext.strategies.oneshot.OneShotModule')
    return cls


#: argument -> converter; the names a received parameter may override
_SETTINGS = {'method': str, 'dataset': str, 'epochs': int, 'num_cells': int, 'channels': int, 'limit': _optional_int,
             'image_size': _optional_int, 'batch_size': int, 'seed': int, 'num_candidates': int, 'accelerator': str,
             'module_cls': _optional_str}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog='python3 -m nni_nasext.trial_code.oneshot', description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--method', default='darts', help='darts, darts2, gdas, snas, pcdarts, fairdarts, rsps or spos')
    p.add_argument('--dataset', default='digits', help='a name of nni_nasext.datasets.DATASETS')
    p.add_argument('--epochs', type=int, default=3, help='supernet training epochs')
    p.add_argument('--num-cells', type=int, default=1, help='N: cells per stage')
    p.add_argument('--channels', type=int, default=8, help='C: width of the first stage')
    p.add_argument('--limit', type=_optional_int, default=None, help='training examples kept (default: all)')
    p.add_argument('--image-size', type=_optional_int, default=None, help='resize the images (default: as they are)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-candidates', type=int, default=100, help='cells scored by the supernet (rsps, spos)')
    p.add_argument('--accelerator', default='auto', help="Lightning accelerator ('auto', 'cpu', 'gpu')")
    p.add_argument('--module-cls', default=None, help="a subclass of OneShotModule that adds methods, as "
                                                      "'package.module:Class' (e.g. the DARTS remedies)")
    p.add_argument('--method-args', default='{}', help='JSON object of method arguments (arch_lr, weight_lr, ...)')
    p.add_argument('--output-dir', default=None, help='where to write the JSON files (default: NNI_OUTPUT_DIR, '
                                                      'else the current directory)')
    return p


def resolve(args: argparse.Namespace, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The search settings: the arguments, overridden by NNI's ``params``; checked."""
    from nni_nasext.adapters.oneshot_strategy import check_method_args
    from nni_nasext.datasets import DATASETS

    settings = {name: getattr(args, name) for name in _SETTINGS}
    try:
        method_args = json.loads(args.method_args)
    except json.JSONDecodeError as err:
        raise ValueError(f'--method-args is not valid JSON ({err}): {args.method_args!r}') from None
    if not isinstance(method_args, dict):
        raise ValueError(f'--method-args must be a JSON object, got {args.method_args!r}')
    for key, value in (params or {}).items():
        name = key.replace('-', '_')
        if name in _SETTINGS:
            settings[name] = convert_parameter(key, value, name, _SETTINGS)
        elif name == 'method_args':
            if not isinstance(value, dict):
                raise ValueError(f'NNI parameter {key!r} must be an object, got {value!r}')
            method_args.update(value)
        else:
            method_args[name] = value
    if settings['dataset'] not in DATASETS:
        raise ValueError(f'Unknown dataset {settings["dataset"]!r}; known datasets: {", ".join(DATASETS)}')
    for name in ('epochs', 'num_cells', 'channels', 'batch_size', 'num_candidates'):
        if settings[name] is None or settings[name] < 1:
            raise ValueError(f'{name} must be a positive whole number, got {settings[name]!r}')
    if settings['limit'] is not None and settings['limit'] < 2:
        raise ValueError(f'limit must be at least 2 (the data is halved), got {settings["limit"]}')
    if settings['image_size'] is not None and settings['image_size'] < 1:
        raise ValueError(f'image_size must be positive, got {settings["image_size"]}')
    check_method_args(settings['method'], method_args, load_module_cls(settings['module_cls']))
    settings['method_args'] = method_args
    return settings


def _json_safe(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def convert_parameter(key: str, value: Any, name: str, types: Dict[str, Any], allow_none: bool = True) -> Any:
    """NNI parameter ``key`` = ``value`` as the setting ``name`` of type ``types[name]``; a clear
    ``ValueError`` when it is not one (``None`` stays ``None`` when ``allow_none``)."""
    if value is None and allow_none:
        return None
    try:
        return types[name](value)
    except (TypeError, ValueError):
        raise ValueError(f'NNI parameter {key!r} = {value!r} is not a valid {name}') from None


def apply_parameters(settings: Dict[str, Any], params: Optional[Dict[str, Any]], types: Dict[str, Any],
                     trial: str, *, allow_none: bool = True) -> Dict[str, Any]:
    """NNI's ``params`` override the ``settings`` of the same name (dashes read as underscores),
    converted by ``types``; a name that is not a setting of this ``trial`` fails it."""
    for key, value in (params or {}).items():
        name = key.replace('-', '_')
        if name not in types:
            raise ValueError(f'NNI parameter {key!r} is not a setting of the {trial}; known: '
                             f'{", ".join(sorted(types))}')
        settings[name] = convert_parameter(key, value, name, types, allow_none)
    return settings


def trial_parameters() -> Optional[Dict[str, Any]]:
    """Under nnictl: the settings NNI hands this trial (taken first, as NNI requires), and one torch
    thread unless ``NASEXT_TRIAL_THREADS`` says otherwise (as ``trial_code.run``: two threads on two
    cores shared with the NNI manager and other jobs run several times slower here). Else ``None``."""
    if not os.environ.get('NNI_PLATFORM'):
        return None
    import torch

    from nni_nasext.trial_code.run import next_sample
    params = next_sample()
    if params is not None and not isinstance(params, dict):
        raise ValueError(f'NNI handed this trial {params!r}; expected an object of settings')
    torch.set_num_threads(int(os.environ.get('NASEXT_TRIAL_THREADS', '1')))
    return params


def output_dir(args: argparse.Namespace) -> Path:
    """``--output-dir``, else ``NNI_OUTPUT_DIR``, else the current directory (created)."""
    out = Path(args.output_dir or os.environ.get('NNI_OUTPUT_DIR') or '.')
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_trial(args: argparse.Namespace) -> Dict[str, Any]:
    import nni

    from nni_nasext.search_spaces.nasbench201 import sample_to_cellstr, sample_to_ops
    from nni_nasext.strategies.oneshot import search

    params = trial_parameters()
    s = resolve(args, params)
    out = output_dir(args)
    print(f'[nasext] one-shot trial {nni.get_trial_id()}: {s["method"]} on {s["dataset"]}, N={s["num_cells"]}, '
          f'C={s["channels"]}, {s["epochs"]} epochs, seed {s["seed"]}'
          + (f', method args {json.dumps(s["method_args"])}' if s['method_args'] else ''), flush=True)

    result = search(s['method'], dataset=s['dataset'], limit=s['limit'], image_size=s['image_size'],
                    epochs=s['epochs'], batch_size=s['batch_size'], num_cells=s['num_cells'], channels=s['channels'],
                    seed=s['seed'], num_candidates=s['num_candidates'], accelerator=s['accelerator'], verbose=True,
                    module_cls=load_module_cls(s['module_cls']), **s['method_args'])
    result.pop('module', None)  # the trained LightningModule: not JSON
    val_acc = [float(a) for a in result['val_acc']]
    if not val_acc or val_acc[-1] != val_acc[-1]:
        raise RuntimeError(f'{s["method"]}: no usable supernet validation accuracy ({val_acc})')
    sample = dict(result['sample'])
    sample_to_ops(sample)  # a sample of NasBench201Space (raises on anything else)

    history = {k: _json_safe(v) for k, v in result.items()}
    history.update(settings=s, trial_id=nni.get_trial_id(), cell=sample_to_cellstr(sample),
                   parameters=_json_safe(params))
    (out / 'derived_sample.json').write_text(json.dumps(sample, indent=1))
    (out / 'oneshot_history.json').write_text(json.dumps(history, indent=1))
    record = {'sample': sample, 'value': val_acc[-1], 'metric': 'supernet validation accuracy',
              'space': 'nasbench201', 'space_args': {'num_cells': s['num_cells'], 'channels': s['channels']},
              'method': s['method'], 'dataset': s['dataset'], 'seconds': round(float(result['seconds']), 3),
              'trial_id': nni.get_trial_id()}
    (out / 'result.json').write_text(json.dumps(record, indent=1))
    print(f'[nasext] derived {sample_to_cellstr(sample)}; wrote {out / "derived_sample.json"}, '
          f'{out / "oneshot_history.json"} and {out / "result.json"}', flush=True)

    final = {'default': val_acc[-1], 'best_val_acc': max(val_acc), 'epochs': len(val_acc),
             'seconds': round(float(result['seconds']), 3)}
    nni.report_final_result(final)
    print(f'[nasext] final supernet validation accuracy {val_acc[-1]:.4f}', flush=True)
    return {'sample': sample, 'history': history, 'final': final, 'output_dir': str(out)}


def run_main(run, parser: argparse.ArgumentParser, argv: Optional[List[str]] = None) -> int:
    """Run one trial program: exit status 0, or 1 with the error printed (NNI marks the trial FAILED)."""
    logging.basicConfig(level=logging.INFO, format='[%(asctime)s] %(levelname)s %(name)s: %(message)s')
    try:
        run(parser.parse_args(argv))
    except Exception as err:  # the trial fails visibly; the experiment records it as FAILED
        traceback.print_exc()
        print(f'[nasext] TRIAL FAILED: {type(err).__name__}: {err}', file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(run_trial, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
