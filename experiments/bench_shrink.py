"""Shrinking a trained network to a budget: NetAdapt vs. uniform width scaling at the same predicted
latency, AMC vs. uniform width scaling at the same MACs (strategies/oneshot/shrink.py).

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.shrink`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.shrink import main

if __name__ == '__main__':
    sys.exit(main())
