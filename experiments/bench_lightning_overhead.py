"""The Lightning evaluator's overhead against a plain PyTorch training loop.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.lightning_overhead`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.lightning_overhead import main

if __name__ == '__main__':
    sys.exit(main())
