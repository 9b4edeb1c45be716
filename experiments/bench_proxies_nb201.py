"""Rank correlation of the zero-cost proxies with NAS-Bench-201 accuracy, and their cost.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.proxies_nb201`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.proxies_nb201 import main

if __name__ == '__main__':
    sys.exit(main())
