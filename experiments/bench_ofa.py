"""Once-for-All measured: progressive shrinking vs. no shrinking vs. training from scratch, and
the constrained sub-network search without retraining.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.ofa`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.ofa import main

if __name__ == '__main__':
    sys.exit(main())
