"""Search quality of the one-shot methods on NAS-Bench-201: derived cells, their NB201 accuracy, collapse.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.oneshot_nb201`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.oneshot_nb201 import main

if __name__ == '__main__':
    sys.exit(main())
