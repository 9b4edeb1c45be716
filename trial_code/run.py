"""One NAS trial: see the package docstring. Exit status 0 on success, 1 on failure
(NNI then shows the trial as FAILED; the tuner is told and the search goes on)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from nni_nasext.trial_code.common import ddp_helper

_logger = logging.getLogger('nni_nasext.trial')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m nni_nasext.trial_code', description=__doc__)
    p.add_argument('--space', required=True, help='registered space name (nasext list spaces)')
    p.add_argument('--space-args', default='{}', help='JSON object of keyword arguments for the space')
    p.add_argument('--evaluator', required=True, help='registered evaluator name (nasext list evaluators)')
    p.add_argument('--evaluator-args', default='{}', help='JSON object of keyword arguments for the evaluator')
    p.add_argument('--sample', default=None, help='JSON sample to use outside nnictl (default: from NNI)')
    p.add_argument('--output-dir', default=None, help='where to write sample/result/model (default: NNI_OUTPUT_DIR)')
    return p.parse_args(argv)


def _json_arg(text: str, what: str) -> Dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{what} is not valid JSON ({err}): {text!r}') from None
    if not isinstance(value, dict):
        raise ValueError(f'{what} must be a JSON object, got {text!r}')
    return value


def next_sample() -> Optional[Dict[str, Any]]:
    """``nni.get_next_parameter()``, matched to the parameters NNI recorded for this trial.

    NNI 3.0's local training service hands its queued parameters to whichever trial asks
    first, so with ``trialConcurrency > 1`` a trial may run another trial's sample while the
    web UI shows its own (microsoft/nni#5726). After taking a parameter as NNI requires, the
    trial reads the record the manager keeps for it (REST ``/trial-jobs/<id>``) and, if they
    differ, adopts the recorded one, parameter id included, so that the web UI, the reported
    metrics and the tuner all agree. Any failure to read the record keeps what was received.
    """
    import urllib.request

    import nni
    import nni.trial

    received = nni.get_next_parameter()
    channel = os.environ.get('NNI_TRIAL_COMMAND_CHANNEL', '')
    trial_id = os.environ.get('NNI_TRIAL_JOB_ID', '')
    if '/env/' not in channel or not trial_id or nni.trial._params is None:
        return received
    url = f"{channel.split('/env/')[0]}/api/v1/nni/trial-jobs/{trial_id}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            record = json.loads(json.loads(resp.read().decode())['hyperParameters'][0])
    except Exception as err:  # keep NNI's own behaviour
        _logger.warning('Could not read the recorded parameters of trial %s (%s); using the received ones.',
                        trial_id, err)
        return received
    if record.get('parameter_id') != nni.trial._params.get('parameter_id'):
        _logger.info('NNI handed this trial parameter %s but recorded %s for it (nni#5726): using the recorded one.',
                     nni.trial._params.get('parameter_id'), record.get('parameter_id'))
        nni.trial._params = record
    return record['parameters']


def _open_output(args: argparse.Namespace, sample: Dict[str, Any], budget) -> Path:
    """The trial's output folder (``--output-dir``, NNI's, or here) with ``sample.json`` written,
    and the trial's first line printed."""
    import nni
    out = Path(args.output_dir or os.environ.get('NNI_OUTPUT_DIR') or '.')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'sample.json').write_text(json.dumps(sample, indent=1))
    print(f'[nasext] trial {nni.get_trial_id()} sample {json.dumps(sample)}'
          + ('' if budget is None else f' budget {budget}'), flush=True)
    return out


def _write_result(out: Path, args: argparse.Namespace, sample: Dict[str, Any], value: float, budget, start: float,
                  **extra) -> None:
    """``result.json`` (what ``nasext export`` reads) and the trial's last line."""
    import nni
    result = {'sample': sample, 'value': float(value), 'space': args.space, 'space_args': json.loads(args.space_args),
              'evaluator': args.evaluator, 'budget': budget, 'seconds': round(time.time() - start, 3),
              'trial_id': nni.get_trial_id(), **extra}
    (out / 'result.json').write_text(json.dumps(result, indent=1))
    print(f'[nasext] final value {value}', flush=True)


#: spaces whose decisions are exactly NB201's cell (labels EDGE_LABELS over OPS, whatever the
#: space arguments, which only size the network): a lookup needs no network
NB201_CELL_SPACES = ('nasbench201', 'quickstart')


def fast_lookup(args: argparse.Namespace) -> Optional[Callable[[argparse.Namespace], float]]:
    """The runner of a table-lookup trial that needs no network, or None (the general path): an
    NB201 lookup on an NB201-cell space without space arguments (:func:`run_lookup_trial`), a
    NAS-Bench-Graph lookup on its space with at most a ``dataset`` (:func:`run_graph_lookup_trial`),
    a NAS-Bench-Macro lookup on its space without space arguments (:func:`run_macro_lookup_trial`).
    They answer without importing torch, Lightning or NNI's NAS modules, in about a second instead of
    six to eight."""
    if os.environ.get('NASEXT_NO_FAST_LOOKUP'):  # the general path (benchmarks and tests compare both)
        return None
    space_args = _json_arg(args.space_args, '--space-args')
    if args.evaluator == 'nb201' and args.space in NB201_CELL_SPACES and space_args == {}:
        return run_lookup_trial
    if args.evaluator == 'nas_bench_graph' and args.space == 'nas_bench_graph' and set(space_args) <= {'dataset'}:
        return run_graph_lookup_trial
    if args.evaluator == 'nasbench_macro' and args.space == 'nasbench_macro' and space_args == {}:
        return run_macro_lookup_trial
    return None


def _lookup_sample(args: argparse.Namespace):
    """(sample without budget, budget) of a lookup trial."""
    from nni_nasext.fidelity import split_budget
    sample = _json_arg(args.sample, '--sample') if args.sample else next_sample()
    if not sample:
        raise ValueError('No sample: run this under nnictl, or pass --sample')
    return split_budget(sample)


def run_lookup_trial(args: argparse.Namespace) -> float:
    """:func:`run_trial` for NB201 lookups (:func:`fast_lookup`): the same checks, files, report and
    value, in about a second (the sample is checked against NB201's cell directly; the table
    comes from its cache, :func:`nni_nasext.benchmarks.cache_dir`)."""

    from nni_nasext.evaluators.nb201_query import NB201Query
    from nni_nasext.nb201_cells import EDGE_LABELS, OPS

    evaluator = NB201Query(**_json_arg(args.evaluator_args, '--evaluator-args'))
    arch, budget = _lookup_sample(args)
    if set(arch) != set(EDGE_LABELS) or any(v not in OPS for v in arch.values()):
        raise ValueError(f'Sample does not fit the {args.space} space (labels {EDGE_LABELS} over {OPS}): {arch}')
    if budget is not None:
        evaluator.epochs = evaluator._epochs_of(budget)
    out = _open_output(args, arch, budget)
    start = time.time()
    value = evaluator.evaluate(arch)
    _write_result(out, args, arch, value, budget, start)
    return float(value)


def _evaluator_args(args: argparse.Namespace, evaluator: str, takes) -> Dict[str, Any]:
    """The evaluator's JSON arguments, refused where the evaluator does not take one of them."""
    evaluator_args = _json_arg(args.evaluator_args, '--evaluator-args')
    unknown = set(evaluator_args) - set(takes)
    if unknown:
        raise TypeError(f'{evaluator} got unexpected arguments {sorted(unknown)} (it takes {", ".join(takes)})')
    return evaluator_args


def _single_fidelity_lookup(args: argparse.Namespace, validate: Callable, lookup: Callable) -> float:
    """The rest of a lookup trial on a table of final figures, once the evaluator's arguments are
    checked: the sample (no budget: the table has one fidelity), ``validate(sample)`` against the
    space's decisions, then ``lookup(sample) -> (value, final result)``, reported and written as
    the general path does."""
    import nni
    sample, budget = _lookup_sample(args)
    if budget is not None:
        raise ValueError(f'The searcher asked for budget {budget} but evaluator {args.evaluator!r} has no fidelity '
                         '(its table has one: the final figures)')
    validate(sample)
    out = _open_output(args, sample, budget)
    start = time.time()
    value, final = lookup(sample)
    nni.report_final_result(final)
    _write_result(out, args, sample, value, budget, start)
    return float(value)


def run_graph_lookup_trial(args: argparse.Namespace) -> float:
    """:func:`run_trial` for NAS-Bench-Graph lookups (:func:`fast_lookup`): the sample is checked
    against the space's decisions for its dataset (:func:`~nni_nasext.nas_bench_graph_arch.sample_to_arch`),
    then looked up in the evaluator's dataset and reported as
    :class:`~nni_nasext.evaluators.nas_bench_graph_lookup.NasBenchGraphLookup` reports it."""
    from nni_nasext.evaluators.nas_bench_graph_table import (METRICS, NasBenchGraphTable, check_dataset,
                                                              load_package, record_metrics)
    from nni_nasext.nas_bench_graph_arch import ops_for, sample_to_arch

    space_ops = ops_for(_json_arg(args.space_args, '--space-args').get('dataset', 'cora'))
    evaluator_args = _evaluator_args(args, 'NasBenchGraphLookup', ('dataset', 'metric'))
    dataset, metric = check_dataset(evaluator_args.get('dataset', 'cora')), evaluator_args.get('metric', 'valid')
    if metric not in METRICS:
        raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
    load_package()
    return _single_fidelity_lookup(args, lambda sample: sample_to_arch(sample, space_ops),
                                   lambda sample: record_metrics(NasBenchGraphTable(dataset).query(sample), metric))


def run_macro_lookup_trial(args: argparse.Namespace) -> float:
    """:func:`run_trial` for NAS-Bench-Macro lookups (:func:`fast_lookup`): the sample is checked
    against the space's decisions (:func:`~nni_nasext.nasbench_macro_arch.sample_to_key`), then looked
    up and reported as :class:`~nni_nasext.evaluators.macro_lookup.NasBenchMacroLookup` reports it."""
    from nni_nasext.evaluators.macro_table import NasBenchMacroTable, check_seed, record_metrics
    from nni_nasext.nasbench_macro_arch import sample_to_key

    seed = check_seed(_evaluator_args(args, 'NasBenchMacroLookup', ('seed',)).get('seed'))
    return _single_fidelity_lookup(args, sample_to_key,
                                   lambda sample: record_metrics(NasBenchMacroTable().query(sample), seed))


#: the sample of a DDP trial, handed by its first process to the processes Lightning starts
DDP_SAMPLE = 'NASEXT_DDP_SAMPLE'


def run_trial(args: argparse.Namespace) -> float:
    runner = fast_lookup(args)
    if runner is not None:
        return runner(args)
    import torch
    from nni.nas.benchmark import BenchmarkEvaluator

    from nni_nasext import registry
    from nni_nasext.fidelity import split_budget
    from nni_nasext.space_spec import SpaceSpec

    space = registry.build('space', args.space, **_json_arg(args.space_args, '--space-args'))
    evaluator = registry.build('evaluator', args.evaluator, **_json_arg(args.evaluator_args, '--evaluator-args'))
    helper = ddp_helper(DDP_SAMPLE)
    if helper:   # a process that Lightning's DDP started: the first process's sample, no NNI parameter
        sample = json.loads(os.environ[DDP_SAMPLE])
    else:
        sample = _json_arg(args.sample, '--sample') if args.sample else next_sample()
    if not sample:
        raise ValueError('No sample: run this under nnictl, or pass --sample')
    # Lightning's DDP runs this program again in each further process (same argv, this environment):
    # they take this sample instead of asking NNI for one (which would take another trial's)
    os.environ[DDP_SAMPLE] = json.dumps(sample)
    sample, budget = split_budget(sample)  # a multi-fidelity searcher's training budget
    if budget is not None:
        if not hasattr(evaluator, 'with_budget'):
            raise ValueError(f'The searcher asked for budget {budget} but evaluator {args.evaluator!r} '
                             'has no fidelity (with_budget)')
        evaluator = evaluator.with_budget(budget)
    SpaceSpec.from_space(space).validate(sample)
    if os.environ.get('NNI_PLATFORM'):  # concurrent trials share the cores: one thread each
        torch.set_num_threads(int(os.environ.get('NASEXT_TRIAL_THREADS', '1')))
    if helper:   # trains its share; the first process writes and reports
        evaluator.evaluate(space.freeze(sample))
        return float('nan')
    out = _open_output(args, sample, budget)
    start = time.time()
    if isinstance(evaluator, BenchmarkEvaluator):
        value = evaluator.evaluate(sample)
        model = None
    else:
        model = space.freeze(sample)
        from nni_nasext.onnx_export import InputRecorder
        recorder = InputRecorder(model)   # the input's shape, for the ONNX export of the best model
        try:
            value = evaluator.evaluate(model)
        finally:
            recorder.remove()
    if value is None or value != value:
        raise RuntimeError(f'Evaluator {args.evaluator} returned no usable value ({value!r})')
    extra = {}
    if model is not None:
        torch.save(model.state_dict(), out / 'model.pt')
        extra['params'] = sum(p.numel() for p in model.parameters())
        if recorder.input is not None:
            extra['input'] = recorder.input
    if getattr(evaluator, 'epoch_seconds', None):
        extra['epoch_seconds'] = [round(t, 4) for t in evaluator.epoch_seconds]
    _write_result(out, args, sample, value, budget, start, **extra)
    return float(value)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format='[%(asctime)s] %(levelname)s %(name)s: %(message)s')
    args = parse_args(argv)
    try:
        run_trial(args)
    except Exception as err:  # the trial fails visibly; NNI and the tuner carry on
        traceback.print_exc()
        print(f'[nasext] TRIAL FAILED: {type(err).__name__}: {err}', file=sys.stderr, flush=True)
        return 1
    return 0
