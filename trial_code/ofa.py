"""A whole Once-for-All search as one NNI trial (``python3 -m nni_nasext.trial_code.ofa``).

Under ``nnictl create`` the experiment has one trial: this program trains an OFA supernet over
:class:`~nni_nasext.search_spaces.mobile.OFASpace` by progressive shrinking
(:mod:`nni_nasext.strategies.oneshot.ofa`; Cai et al., ICLR 2020), reports after every epoch the
validation accuracy of the largest sub-network (``default``) and of the smallest with
``nni.report_intermediate_result``, searches the best sub-network within ``--max-macs``
without retraining, reports it with ``nni.report_final_result`` and writes into its output
directory (``--output-dir``, else ``NNI_OUTPUT_DIR``, else the current directory):

``derived_sample.json``
    the chosen sub-network: a sample of ``OFASpace`` (``OFASpace(...).freeze(sample)`` builds it);
``subnet.pt``
    the chosen sub-network's weights, inherited from the supernet (BN statistics
    re-estimated): ``torch.load`` it into ``OFASpace(**space_args).freeze(sample).net``;
``ofa_history.json``
    per-epoch phase, accuracies and training loss, the search curve and the settings;
``result.json``
    ``{'sample', 'value', 'space': 'ofa', 'space_args', ...}``, read by ``nasext run`` / ``nasext export``.

NNI parameters (``nni.get_next_parameter()``) override the command-line arguments of the same
name (``seed``, ``max_macs``, ``kd_ratio`` ...). Bad arguments fail the trial with one message.

    python3 -m nni_nasext.trial_code.ofa --dataset digits --full 2 --shrink 1 --resolutions 8 12 16 \\
        --max-macs 0.3e6 --output-dir out/
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional

from nni_nasext.trial_code.common import (
    ArgParser, apply_parameters, json_safe, optional_int, output_dir, run_main, trial_parameters,
)


def _optional_float(text: str) -> Optional[float]:
    return None if str(text).lower() in ('none', 'null', '') else float(text)


_SETTINGS = {'dataset': str, 'limit': optional_int, 'batch_size': int, 'seed': int, 'full': int, 'shrink': int,
             'max_macs': _optional_float, 'width_mult': float, 'population': int, 'generations': int,
             'progressive': lambda v: str(v).lower() in ('1', 'true', 'yes'), 'kd_ratio': float,
             'subnets_per_step': int, 'lr_full': float, 'lr_shrink': float, 'accelerator': str,
             'max_latency': _optional_float, 'latency_predictor': lambda v: None if v in (None, '') else str(v)}


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog='python3 -m nni_nasext.trial_code.ofa', description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', default='digits', help='a name of nni_nasext.datasets.DATASETS')
    p.add_argument('--limit', type=optional_int, default=None, help='training examples kept (default: all)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--full', type=int, default=4, help='epochs of the full-network phase')
    p.add_argument('--shrink', type=int, default=2, help='epochs of each shrinking phase (kernel, depth, expand)')
    p.add_argument('--max-macs', type=_optional_float, default=None, help='budget of the sub-network search')
    p.add_argument('--max-latency', type=_optional_float, default=None,
                   help='latency budget (ms) of the sub-network search, priced by --latency-predictor')
    p.add_argument('--latency-predictor', default=None,
                   help='a LatencyPredictor saved as JSON (its state_dict), for inputs of the largest resolution')
    p.add_argument('--width-mult', type=float, default=0.25)
    p.add_argument('--resolutions', type=int, nargs='+', default=[24, 28, 32])
    p.add_argument('--population', type=int, default=16)
    p.add_argument('--generations', type=int, default=6)
    p.add_argument('--progressive', default='true', help='progressive shrinking (false: all dimensions at once)')
    p.add_argument('--kd-ratio', type=float, default=1.0)
    p.add_argument('--subnets-per-step', type=int, default=2)
    p.add_argument('--lr-full', type=float, default=0.05)
    p.add_argument('--lr-shrink', type=float, default=0.02)
    p.add_argument('--accelerator', default='auto')
    p.add_argument('--output-dir', default=None)
    return p


def resolve(args: argparse.Namespace, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings: the arguments, overridden by NNI's ``params``; checked."""
    from nni_nasext.datasets import DATASETS
    s = {name: getattr(args, name) for name in _SETTINGS}
    s['progressive'] = _SETTINGS['progressive'](s['progressive'])
    s['resolutions'] = list(args.resolutions)
    apply_parameters(s, params, {**_SETTINGS, 'resolutions': lambda v: [int(r) for r in v]}, 'OFA trial')
    if s['dataset'] not in DATASETS:
        raise ValueError(f'Unknown dataset {s["dataset"]!r}; known datasets: {", ".join(DATASETS)}')
    for name in ('batch_size', 'population', 'generations', 'subnets_per_step'):
        if s[name] < 1:
            raise ValueError(f'{name} must be a positive whole number, got {s[name]!r}')
    if s['full'] < 0 or s['shrink'] < 0 or s['full'] + s['shrink'] < 1:
        raise ValueError(f'full and shrink are epochs >= 0, at least one in all; got {s["full"]}, {s["shrink"]}')
    if s['max_macs'] is not None and s['max_macs'] <= 0:
        raise ValueError(f'max_macs must be positive, got {s["max_macs"]}')
    from nni_nasext.strategies.oneshot.ofa import latency_budget
    latency_budget(s['max_latency'], s['latency_predictor'])  # a missing half or a bad file fails here, before training
    return s


def run_trial(args: argparse.Namespace) -> Dict[str, Any]:
    import nni
    import torch

    from nni_nasext.strategies.oneshot.ofa import search_ofa
    from nni_nasext.strategies.oneshot.ofa_supernet import calibrate_bn

    params = trial_parameters()
    s = resolve(args, params)
    out = output_dir(args)
    schedule = {'full': s['full'], 'kernel': s['shrink'], 'depth': s['shrink'], 'expand': s['shrink']}
    print(f'[nasext] OFA trial {nni.get_trial_id()}: {s["dataset"]}, schedule {schedule}, resolutions '
          f'{s["resolutions"]}, width {s["width_mult"]}, max_macs {s["max_macs"]}, seed {s["seed"]}', flush=True)
    result = search_ofa(dataset=s['dataset'], limit=s['limit'], batch_size=s['batch_size'], schedule=schedule,
                        max_macs=s['max_macs'], resolutions=s['resolutions'], width_mult=s['width_mult'],
                        seed=s['seed'], population=s['population'], generations=s['generations'],
                        accelerator=s['accelerator'], progressive=s['progressive'], kd_ratio=s['kd_ratio'],
                        subnets_per_step=s['subnets_per_step'], lr_full=s['lr_full'], lr_shrink=s['lr_shrink'],
                        max_latency=s['max_latency'], latency_predictor=s['latency_predictor'])
    module, calib = result.pop('module'), result.pop('calibration')
    sample = dict(result['sample'])
    net = module.supernet
    with calibrate_bn(net, calib, restore=False):
        subnet = net.export(sample).eval()
    torch.save(subnet.state_dict(), out / 'subnet.pt')
    space_args = dict(net.space_args)
    history = {k: json_safe(v) for k, v in result.items()}
    history.update(settings=s, trial_id=nni.get_trial_id(), parameters=json_safe(params), space_args=space_args)
    (out / 'derived_sample.json').write_text(json.dumps(sample, indent=1))
    (out / 'ofa_history.json').write_text(json.dumps(history, indent=1))
    record = {'sample': sample, 'value': result['val_acc_subnet'], 'metric': 'validation accuracy, inherited weights',
              'space': 'ofa', 'space_args': space_args, 'method': 'ofa', 'macs': result['macs'],
              'dataset': s['dataset'], 'seconds': round(float(result['seconds']), 3), 'trial_id': nni.get_trial_id()}
    (out / 'result.json').write_text(json.dumps(record, indent=1))
    final = {'default': result['val_acc_subnet'], 'macs': result['macs'],
             'largest_subnet': result['val_acc'][-1] if result['val_acc'] else None,
             'seconds': round(float(result['seconds']), 3)}
    if 'latency_ms' in result:  # the web UI shows the latency beside the accuracy
        final['latency_ms'] = record['latency_ms'] = round(float(result['latency_ms']), 4)
        (out / 'result.json').write_text(json.dumps(record, indent=1))
    nni.report_final_result(final)
    print(f'[nasext] sub-network with {result["macs"] / 1e6:.3f} M MACs: validation accuracy '
          f'{result["val_acc_subnet"]:.4f}; wrote derived_sample.json, subnet.pt, ofa_history.json and result.json '
          f'to {out}', flush=True)
    return {'sample': sample, 'history': history, 'final': final, 'output_dir': str(out)}


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(run_trial, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
