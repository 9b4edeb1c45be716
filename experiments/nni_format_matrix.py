"""The NNI test-format matrix: each searcher against each case of NNI's own tuner and strategy tests.

Runs the parametrised tests that hold our searchers to NNI v3.0's ``test_builtin_tuners.py`` and
``test_sanity.py`` cases (every search-space type alone and together, nested choices in NNI's
shape; a finite space that runs out; ``ExpressionConstraint`` never broken) and renders one row per
searcher, one column per case, from pytest's JUnit report. Nothing is re-implemented here: the
cells are the tests' own outcomes.

    python experiments/nni_format_matrix.py
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = {
    'test_every_tuner_on_every_nni_type_alone_and_together':
        'every NNI type, alone and together (choice, nested choice, randint, uniform, quniform, loguniform, '
        'qloguniform, normal, qnormal, lognormal, qlognormal), as a tuner',
    'test_every_searcher_ends_on_an_exhausted_space': 'a finite space runs out: every configuration, then the end',
    'test_no_searcher_hands_out_a_sample_that_breaks_a_constraint':
        'ExpressionConstraint: no breaking sample handed out, every feasible one, then the end',
}


def main() -> int:
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / 'junit.xml'
        subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', f'--junitxml={report}',
                        'tests/test_nni_json.py', 'tests/searchers/test_exhaustion.py', '-k', ' or '.join(CASES)],
                       cwd=REPO, check=False)
        root = ET.parse(report).getroot()
    cells = {}
    for case in root.iter('testcase'):
        m = re.match(r'(\w+)\[(\w+)\]', case.get('name', ''))
        if not m or m.group(1) not in CASES:
            continue
        outcome = 'fails' if case.find('failure') is not None or case.find('error') is not None else \
            'skipped' if case.find('skipped') is not None else 'passes'
        cells.setdefault(m.group(2), {})[m.group(1)] = outcome
    cols = list(CASES)
    lines = ['## NNI test-format matrix: each searcher, each case of NNI\'s tuner and strategy tests', '',
             'Columns: ' + '; '.join(f'({i + 1}) {CASES[c]}' for i, c in enumerate(cols)) + '.', '',
             '| searcher | ' + ' | '.join(f'({i + 1})' for i in range(len(cols))) + ' |',
             '|---|' + '---|' * len(cols)]
    for name in sorted(cells):
        lines.append(f'| {name} | ' + ' | '.join(cells[name].get(c, 'not run') for c in cols) + ' |')
    total = sum(len(v) for v in cells.values())
    passed = sum(o == 'passes' for v in cells.values() for o in v.values())
    lines += ['', f'{passed} of {total} cells pass. Not in it: the four transfer or warm-start searchers that need '
              'an NB201 target or a scorer (rapidnas, transfer_gp, xfernas, proxy_warm_start), which search only '
              'NB201, and neural_predictor_gcn, which reads every sample as an NB201 or NB101 cell graph and '
              'refuses other spaces at configure.', '',
              f'Command: `python experiments/nni_format_matrix.py`; {time.time() - start:.0f} s on '
              f'{platform.machine()}, {os.cpu_count()} cores; {datetime.datetime.now().isoformat(timespec="seconds")}.',
              '']
    out = HERE / 'results' / 'nni_format_matrix.md'
    out.write_text('\n'.join(lines))
    print('\n'.join(lines))
    return 0 if passed == total else 1


if __name__ == '__main__':
    raise SystemExit(main())
