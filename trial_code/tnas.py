"""T-NAS as one NNI trial (``python3 -m nni_nasext.trial_code.tnas``).

Under ``nnictl create`` the experiment has one trial: this program meta-trains T-NAS
(:class:`~nni_nasext.strategies.transfer.tnas.TNAS`; Lian et al., ICLR 2020: MAML over the weights and
the architecture ``alpha`` of an NB201 supernet) on N-way K-shot episodes of the meta-training
classes, reports every ``--report-every`` meta-iterations the 5-shot accuracy after adaptation on
a fixed set of ``--monitor-episodes`` meta-test episodes (a curve to watch in the web UI; no
decision uses it), then meta-trains the derived cell as a fixed network with MAML
(:class:`~nni_nasext.strategies.transfer.tnas.DerivedCellMAML`, ``--derived-iterations``; 0 skips it),
and reports the meta-test accuracy of both on ``--episodes`` fresh episodes per setting
(1-shot and K-shot) with ``nni.report_final_result``. Meta-test classes are never seen in
meta-training. It writes into its output directory (``--output-dir``, else ``NNI_OUTPUT_DIR``,
else the current directory):

``derived_sample.json``
    the cell of the meta-architecture (argmax of ``alpha``): a sample of the NB201 space;
``tnas_history.json``
    settings, meta-training losses, the monitor curve, the meta-test accuracies with 95 % CIs;
``result.json``
    ``{'sample', 'value', 'space': 'nasbench201', ...}``, read by ``nasext run`` / ``nasext export``.

NNI parameters (``nni.get_next_parameter()``) override the arguments of the same name.

    python3 -m nni_nasext.trial_code.tnas --iterations 20 --episodes 20 --output-dir out/
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, List, Optional

from nni_nasext.trial_code.common import (
    ArgParser, apply_parameters, json_safe, output_dir, run_main, trial_parameters,
)

_SETTINGS = {'train_classes': str, 'test_classes': str, 'n_way': int, 'k_shot': int, 'query': int,
             'test_query': int, 'iterations': int, 'meta_batch': int, 'inner_steps': int, 'test_steps': int,
             'inner_lr': float, 'meta_lr': float, 'arch_inner_lr': float, 'arch_meta_lr': float, 'channels': int,
             'image_size': int, 'per_class': int, 'episodes': int, 'monitor_episodes': int, 'report_every': int,
             'derived_iterations': int, 'seed': int}


def parse_classes(text: str) -> Dict[str, List[int]]:
    """``'mnist10k:0-9,fashion-mnist:0-4'`` -> ``{'mnist10k': [0..9], 'fashion-mnist': [0..4]}``."""
    out: Dict[str, List[int]] = {}
    for part in str(text).split(','):
        name, sep, labels = part.strip().partition(':')
        if not sep or not name:
            raise ValueError(f'classes must read "dataset:first-last[,dataset:...]", got {text!r}')
        try:
            if '-' in labels:
                a, b = labels.split('-')
                values = list(range(int(a), int(b) + 1))
            else:
                values = [int(v) for v in labels.split('+')]
        except ValueError:
            raise ValueError(f'bad class labels {labels!r} in {text!r}') from None
        if not values:
            raise ValueError(f'no class labels in {part!r}')
        out.setdefault(name, []).extend(values)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog='python3 -m nni_nasext.trial_code.tnas', description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--train-classes', default='mnist10k:0-9,fashion-mnist:0-4', help='meta-training classes')
    p.add_argument('--test-classes', default='fashion-mnist:5-9', help='meta-test classes (held out)')
    p.add_argument('--n-way', type=int, default=5)
    p.add_argument('--k-shot', type=int, default=5, help='shots of the second meta-test setting (the first is 1)')
    p.add_argument('--query', type=int, default=10, help='query images per class in meta-training')
    p.add_argument('--test-query', type=int, default=15, help='query images per class in meta-test')
    p.add_argument('--iterations', type=int, default=100, help='meta-iterations (outer updates)')
    p.add_argument('--meta-batch', type=int, default=4)
    p.add_argument('--inner-steps', type=int, default=3)
    p.add_argument('--test-steps', type=int, default=6)
    p.add_argument('--inner-lr', type=float, default=0.1)
    p.add_argument('--meta-lr', type=float, default=1e-3)
    p.add_argument('--arch-inner-lr', type=float, default=0.1)
    p.add_argument('--arch-meta-lr', type=float, default=3e-3)
    p.add_argument('--channels', type=int, default=8)
    p.add_argument('--image-size', type=int, default=16)
    p.add_argument('--per-class', type=int, default=200, help='images kept per class')
    p.add_argument('--episodes', type=int, default=100, help='meta-test episodes per setting')
    p.add_argument('--monitor-episodes', type=int, default=10)
    p.add_argument('--report-every', type=int, default=10)
    p.add_argument('--derived-iterations', type=int, default=None, help='MAML of the derived cell (default: '
                   '--iterations; 0: skip)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--output-dir', default=None)
    return p


def resolve(args: argparse.Namespace, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings: the arguments, overridden by NNI's ``params``; checked."""
    s = {name: getattr(args, name) for name in _SETTINGS}
    apply_parameters(s, params, _SETTINGS, 'T-NAS trial', allow_none=False)
    if s['derived_iterations'] is None:
        s['derived_iterations'] = s['iterations']
    train, test = parse_classes(s['train_classes']), parse_classes(s['test_classes'])
    overlap = {(d, c) for d, cs in train.items() for c in cs} & {(d, c) for d, cs in test.items() for c in cs}
    if overlap:
        raise ValueError(f'meta-test classes must be held out of meta-training; both have {sorted(overlap)}')
    for name in ('n_way', 'k_shot', 'query', 'test_query', 'iterations', 'meta_batch', 'inner_steps', 'test_steps',
                 'channels', 'per_class', 'episodes', 'monitor_episodes', 'report_every'):
        if s[name] < 1:
            raise ValueError(f'{name} must be a positive whole number, got {s[name]!r}')
    if s['derived_iterations'] < 0:
        raise ValueError(f'derived_iterations must be >= 0, got {s["derived_iterations"]}')
    if s['image_size'] % 4:
        raise ValueError(f'image_size must be divisible by 4 (two NB201 reductions), got {s["image_size"]}')
    for what, classes in (('meta-training', train), ('meta-test', test)):
        if sum(len(c) for c in classes.values()) < s['n_way']:
            raise ValueError(f'{what} has fewer classes than n_way={s["n_way"]}')
    return s


def run_trial(args: argparse.Namespace) -> Dict[str, Any]:
    import nni

    from nni_nasext.search_spaces.nasbench201 import sample_to_cellstr
    from nni_nasext.strategies.transfer.tnas import TNAS, DerivedCellMAML, EpisodeSampler, few_shot_split, mean_ci95

    params = trial_parameters()
    s = resolve(args, params)
    out = output_dir(args)
    start = time.perf_counter()
    print(f'[nasext] T-NAS trial {nni.get_trial_id()}: {s["n_way"]}-way, meta-train {s["train_classes"]}, '
          f'meta-test {s["test_classes"]}, {s["iterations"]} meta-iterations, seed {s["seed"]}', flush=True)
    split = few_shot_split(parse_classes(s['train_classes']), parse_classes(s['test_classes']), n_way=s['n_way'],
                           k_shot=s['k_shot'], query=s['query'], test_query=s['test_query'],
                           iterations=s['iterations'], meta_batch=s['meta_batch'], episodes=s['episodes'],
                           image_size=s['image_size'], per_class=s['per_class'], seed=s['seed'])
    batches, test_eps = split.batches, split.test_episodes
    ms = EpisodeSampler(split.pools, s['n_way'], s['k_shot'], s['test_query'], classes=split.test_classes,
                        seed=s['seed'] + 7)
    monitor = [ms.sample() for _ in range(s['monitor_episodes'])]

    common = dict(inner_lr=s['inner_lr'], inner_steps=s['inner_steps'], test_steps=s['test_steps'],
                  meta_lr=s['meta_lr'], first_order=True, seed=s['seed'])
    tnas = TNAS(s['n_way'], s['channels'], 1, arch_inner_lr=s['arch_inner_lr'], arch_meta_lr=s['arch_meta_lr'],
                **common)
    curve = []
    every = s['report_every']
    for first in range(0, s['iterations'], every):
        tnas.meta_train(batches[first:first + every])
        acc = sum(tnas.evaluate(ep)['acc'] for ep in monitor) / len(monitor)
        curve.append({'iteration': min(first + every, s['iterations']), 'monitor_acc': acc,
                      'query_loss': tnas.history[-1], 'cell': sample_to_cellstr(tnas.meta_cell())})
        nni.report_intermediate_result({'default': acc, 'query_loss': tnas.history[-1]})
        print(f'[nasext] meta-iteration {curve[-1]["iteration"]}: query loss {tnas.history[-1]:.3f}, '
              f'{s["k_shot"]}-shot monitor accuracy {acc:.3f}, cell {curve[-1]["cell"]}', flush=True)

    cell = tnas.meta_cell()
    accs: Dict[str, Any] = {}
    for k, eps in test_eps.items():
        rows = [tnas.evaluate(ep) for ep in eps]
        accs[f'tnas_{k}shot'] = mean_ci95([r['acc'] for r in rows])
    derived = None
    if s['derived_iterations'] > 0:
        try:
            derived = DerivedCellMAML(cell, s['n_way'], s['channels'], 1, **common)
        except ValueError as err:     # a degenerate cell: reported, not trained
            print(f'[nasext] derived cell not retrained: {err}', flush=True)
        if derived is not None:
            derived.meta_train([batches[i % len(batches)] for i in range(s['derived_iterations'])])
            for k, eps in test_eps.items():
                accs[f'derived_{k}shot'] = mean_ci95([derived.evaluate(ep)['acc'] for ep in eps])
    seconds = time.perf_counter() - start
    value = accs[f'tnas_{s["k_shot"]}shot'][0]
    history = {'settings': s, 'trial_id': nni.get_trial_id(), 'parameters': json_safe(params),
               'cell': sample_to_cellstr(cell), 'query_loss': tnas.history, 'monitor': curve,
               'derived_query_loss': derived.history if derived is not None else None,
               'meta_test': {name: {'acc': a, 'ci95': c} for name, (a, c) in accs.items()}, 'seconds': seconds}
    (out / 'derived_sample.json').write_text(json.dumps(cell, indent=1))
    (out / 'tnas_history.json').write_text(json.dumps(history, indent=1))
    record = {'sample': cell, 'value': value,
              'metric': f'{s["n_way"]}-way {s["k_shot"]}-shot meta-test accuracy of the adapted T-NAS supernet',
              'space': 'nasbench201', 'space_args': {'num_cells': 1, 'channels': s['channels']}, 'method': 'tnas',
              'dataset': s['test_classes'], 'seconds': round(seconds, 3), 'trial_id': nni.get_trial_id()}
    (out / 'result.json').write_text(json.dumps(record, indent=1))
    final = {'default': value, **{name: a for name, (a, _) in accs.items()}, 'seconds': round(seconds, 3)}
    nni.report_final_result(final)
    print('[nasext] meta-test accuracy: ' + ', '.join(f'{n} {a:.3f} ± {c:.3f}' for n, (a, c) in accs.items())
          + f'; cell {sample_to_cellstr(cell)}; wrote derived_sample.json, tnas_history.json and result.json '
          f'to {out}', flush=True)
    return {'sample': cell, 'history': history, 'final': final, 'output_dir': str(out)}


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(run_trial, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
