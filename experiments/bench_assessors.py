"""Early-stopping assessors side by side: ours against NNI 3.0's built-ins, on real curves.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.assessors`); this script runs it
(its arguments: ``--help``; the recorded curves and the results under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.assessors import main

if __name__ == '__main__':
    sys.exit(main())
