"""Wall time of one lookup trial (NAS-Bench-201, -Graph, -Macro), the general path against the fast one.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.lookup_trial`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.lookup_trial import main

if __name__ == '__main__':
    sys.exit(main())
