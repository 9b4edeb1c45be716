"""Early termination in random search over recorded learning curves: regret and training time.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.early_termination`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.early_termination import main

if __name__ == '__main__':
    sys.exit(main())
