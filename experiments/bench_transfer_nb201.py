"""Transfer NAS on NAS-Bench-201, leave one dataset out (LODO).

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.transfer_nb201`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.transfer_nb201 import main

if __name__ == '__main__':
    sys.exit(main())
