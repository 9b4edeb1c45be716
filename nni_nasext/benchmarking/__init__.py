"""The benchmark harness: running many independent searches (serially or in worker processes),
the machine and command of a run, the statistics of a side-by-side comparison, and the
benchmarks themselves (one module each: :mod:`.nb201_search`, :mod:`.macro_search`,
:mod:`.oneshot_cost`, ...). The scripts under ``experiments/`` that run them are launchers."""
from __future__ import annotations

import math
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

__all__ = ['EXPERIMENTS', 'run_tasks', 'machine_info', 'command_line', 'mean_se', 'compare_means',
           'markdown_table', 'write_results', 'describe_machine']

#: the repository's ``experiments/`` folder (configurations, launchers, ``results/``): the default
#: place of the benchmarks' inputs and outputs when the package runs from a checkout
EXPERIMENTS = Path(__file__).resolve().parents[2] / 'experiments'


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], jobs: int = 1,
              on_result: Optional[Callable[[Any], None]] = None, context: str = 'fork') -> list:
    """``fn(task)`` for every task: in this process when ``jobs <= 1``, else in ``jobs`` worker
    processes (``multiprocessing`` start method ``context``; ``fn`` must then be a module-level
    function). ``on_result`` sees each result as it ends (in completion order with workers);
    the results are returned in that order too."""
    results = []

    def take(result):
        results.append(result)
        if on_result is not None:
            on_result(result)

    if jobs <= 1:
        for task in tasks:
            take(fn(task))
    else:
        import multiprocessing
        with multiprocessing.get_context(context).Pool(jobs) as pool:
            for result in pool.imap_unordered(fn, list(tasks)):
                take(result)
    return results


def machine_info() -> Dict[str, Any]:
    """Platform, CPU count and the versions that a figure depends on."""
    import numpy as np
    import torch
    try:
        import nni
        nni_version = nni.__version__
    except ImportError:  # pragma: no cover - NNI is a dependency
        nni_version = None
    return {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
            'cpu_count': os.cpu_count(), 'python': platform.python_version(), 'nni': nni_version,
            'torch': torch.__version__, 'numpy': np.__version__}


def describe_machine(machine: Any, versions: Sequence[str] = ()) -> str:
    """A report's machine line from a result's ``machine`` field: ``"x86_64, 2 cores"`` from a
    :func:`machine_info` dict, then ``versions`` (keys of that dict, e.g. ``('python', 'torch')``);
    a string (results written before the harness) is returned as it is."""
    if isinstance(machine, str):
        return machine
    cores = machine.get('cpu_count', machine.get('cores'))
    parts = [f'{machine.get("processor") or machine.get("platform")}, {cores} cores']
    parts += [f'{key} {machine[key]}' for key in versions if machine.get(key) is not None]
    return ', '.join(parts)


def command_line(script: str, argv: Optional[Sequence[str]] = None) -> str:
    """The command that reproduces this run: ``NASEXT_DATA=... python <script> <args>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = f'NASEXT_DATA={shlex.quote(os.environ["NASEXT_DATA"])} ' if 'NASEXT_DATA' in os.environ else ''
    return env + f'python {script}' + ''.join(' ' + shlex.quote(str(a)) for a in args)


def mean_se(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation and standard error of the mean."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError('mean_se of no values')
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.
    return {'n': n, 'mean': mean, 'std': std, 'se': std / math.sqrt(n)}


def compare_means(a: Sequence[float], b: Sequence[float]) -> Dict[str, Any]:
    """``a`` against ``b`` (independent runs): the difference of the means, its standard error
    ``sqrt(se_a^2 + se_b^2)``, Welch's t-test p-value, and whether ``a`` is better (higher) by
    more than that standard error."""
    sa, sb = mean_se(a), mean_se(b)
    diff = sa['mean'] - sb['mean']
    se = math.sqrt(sa['se'] ** 2 + sb['se'] ** 2)
    p = None
    if sa['n'] > 1 and sb['n'] > 1 and (sa['std'] > 0 or sb['std'] > 0):
        from scipy import stats
        p = float(stats.ttest_ind(list(a), list(b), equal_var=False).pvalue)
    return {'a': sa, 'b': sb, 'diff': diff, 'se_diff': se, 'welch_p': p, 'a_better_by_more_than_se': diff > se}


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]], align: Optional[str] = None) -> List[str]:
    """The lines of a Markdown table: ``header``, then one line per row (cells ``str()``-ed,
    ``|`` escaped). ``align`` is one letter per column (``l``, ``r`` or ``c``); default: left."""
    header = [str(h) for h in header]
    align = align or 'l' * len(header)
    if len(align) != len(header):
        raise ValueError(f'align has {len(align)} letters for {len(header)} columns')
    marks = {'l': '---', 'r': '---:', 'c': ':---:'}
    if set(align) - set(marks):
        raise ValueError(f'align letters are l, r or c, not {align!r}')

    def line(cells):
        return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'

    lines = [line(header), '|' + '|'.join(marks[a] for a in align) + '|']
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f'a row of {len(row)} cells under {len(header)} columns: {row}')
        lines.append(line(row))
    return lines


def write_results(out: Path, stem: str, result: Any, markdown: str) -> Dict[str, Path]:
    """Writes a benchmark's ``<stem>.json`` (``result``, indented) and ``<stem>.md`` under ``out``
    (made if missing); returns their paths by suffix."""
    import json
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'json': out / f'{stem}.json', 'md': out / f'{stem}.md'}
    paths['json'].write_text(json.dumps(result, indent=1) + '\n')
    paths['md'].write_text(markdown if markdown.endswith('\n') else markdown + '\n')
    return paths
