"""Cost of one supernet training step of the one-shot methods, ours beside NNI 3.0's: time and activation memory.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.oneshot_cost`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.oneshot_cost import main

if __name__ == '__main__':
    sys.exit(main())
