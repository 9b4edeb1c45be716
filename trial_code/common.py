"""What the trial programs (``oneshot``, ``ofa``, ``tnas``) share: argument parsing that fails
the trial instead of exiting with status 2, NNI parameters overriding arguments, the output
directory, and the run-and-report wrapper."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ['ArgParser', 'DDP_PARAMETERS', 'apply_parameters', 'convert_parameter', 'ddp_helper', 'json_arg', 'json_safe',
           'optional_int', 'optional_str', 'output_dir', 'run_main', 'shared_trial_parameters', 'trial_parameters']

#: the NNI parameters of a DDP trial, handed by its first process to the processes Lightning starts
DDP_PARAMETERS = 'NASEXT_DDP_PARAMETERS'


class ArgParser(argparse.ArgumentParser):
    """Argument errors raise ``ValueError`` (exit status 1: the trial FAILED), not SystemExit(2)."""

    def error(self, message):
        raise ValueError(f'{self.prog}: {message}')


def optional_int(text: str) -> Optional[int]:
    return None if str(text).lower() in ('none', 'null', '') else int(text)


def optional_str(text: str) -> Optional[str]:
    return None if str(text).lower() in ('none', 'null', '') else str(text)


def json_safe(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def json_arg(text: str, what: str) -> Dict[str, Any]:
    """A JSON object given on the command line; a clear ``ValueError`` otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{what} is not valid JSON ({err}): {text!r}') from None
    if not isinstance(value, dict):
        raise ValueError(f'{what} must be a JSON object, got {text!r}')
    return value


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
    thread unless ``NASEXT_TRIAL_THREADS`` says otherwise (two threads on two cores shared with the
    NNI manager and other jobs run several times slower here). Else ``None``."""
    if not os.environ.get('NNI_PLATFORM'):
        return None
    import torch

    from nni_nasext.trial_code.run import next_sample
    params = next_sample()
    if params is not None and not isinstance(params, dict):
        raise ValueError(f'NNI handed this trial {params!r}; expected an object of settings')
    torch.set_num_threads(int(os.environ.get('NASEXT_TRIAL_THREADS', '1')))
    return params


def ddp_helper(key: str) -> bool:
    """Whether this process is one that Lightning's DDP launcher started for a trial: local rank
    above 0, and what the first process handed it (environment variable ``key``) present."""
    return key in os.environ and int(os.environ.get('LOCAL_RANK', '0') or 0) > 0


def shared_trial_parameters() -> Tuple[Optional[Dict[str, Any]], bool]:
    """``(parameters, helper)``: :func:`trial_parameters` in a trial's first process, which also
    hands them on (Lightning's DDP runs the trial program again in each further process, with
    this environment); in such a further process (``helper``) the first one's, never asking NNI
    (that would take another trial's parameters)."""
    if ddp_helper(DDP_PARAMETERS):
        if os.environ.get('NNI_PLATFORM'):
            import torch
            torch.set_num_threads(int(os.environ.get('NASEXT_TRIAL_THREADS', '1')))
        return json.loads(os.environ[DDP_PARAMETERS]), True
    params = trial_parameters()
    os.environ[DDP_PARAMETERS] = json.dumps(params)
    return params, False


def output_dir(args: argparse.Namespace) -> Path:
    """``--output-dir``, else ``NNI_OUTPUT_DIR``, else the current directory (created)."""
    out = Path(args.output_dir or os.environ.get('NNI_OUTPUT_DIR') or '.')
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_main(run: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
             argv: Optional[List[str]] = None) -> int:
    """Run one trial program: exit status 0, or 1 with the error printed (NNI marks the trial FAILED)."""
    logging.basicConfig(level=logging.INFO, format='[%(asctime)s] %(levelname)s %(name)s: %(message)s')
    try:
        run(parser.parse_args(argv))
    except Exception as err:  # the trial fails visibly; the experiment records it as FAILED
        traceback.print_exc()
        print(f'[nasext] TRIAL FAILED: {type(err).__name__}: {err}', file=sys.stderr, flush=True)
        return 1
    return 0
