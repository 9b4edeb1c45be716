"""NAS-Bench-Graph black-box search: our sample-based strategies on all 9 datasets.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.nas_bench_graph`); this script runs it
(its arguments: ``--help``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.nas_bench_graph import main

if __name__ == '__main__':
    sys.exit(main())
