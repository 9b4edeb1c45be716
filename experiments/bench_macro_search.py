"""NAS-Bench-Macro black-box search: every sample-based strategy, ours and NNI's, at a query budget.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.macro_search`); this script
runs it. From the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_macro_search.py            # 100 seeds
    NASEXT_DATA=../shared/data python experiments/bench_macro_search.py --quick    # 5 seeds

Writes ``macro_search.md`` (also printed), ``.json`` and ``.png`` under ``--out`` (default
``experiments/results``).
"""
import sys
from pathlib import Path

from nni_nasext.benchmarking.macro_search import main

if __name__ == '__main__':
    sys.exit(main(default_out=Path(__file__).resolve().parent / 'results'))
