"""Zero-shot and proxy-assisted searches on NAS-Bench-201, beside REA and the optimal cell.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.zero_shot_search`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.zero_shot_search import main

if __name__ == '__main__':
    sys.exit(main())
