"""One-shot search on DARTS' cell space, the canonical setting, sized for this CPU: search, then retrain.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.oneshot_darts_space`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.oneshot_darts_space import main

if __name__ == '__main__':
    sys.exit(main())
