"""A long nnictl experiment under load: thousands of NB201 lookup trials, 8 at a time.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.load`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.load import main

if __name__ == '__main__':
    sys.exit(main())
