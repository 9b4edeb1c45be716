"""Every NAS-Bench-201 cell scored end to end by synflow (or NASWOT): build the network, score it.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.synflow_all`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.synflow_all import main

if __name__ == '__main__':
    sys.exit(main())
