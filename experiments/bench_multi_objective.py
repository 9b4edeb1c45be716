"""Accuracy against latency on NAS-Bench-201, for six devices of different kinds.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.multi_objective`); this script runs it
(its arguments: ``--help``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.multi_objective import main

if __name__ == '__main__':
    sys.exit(main())
