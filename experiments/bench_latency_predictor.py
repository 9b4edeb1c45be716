"""The latency predictor (:mod:`nni_nasext.hardware.latency_predictor`) against measured latency, four spaces.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.latency_predictor`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.latency_predictor import main

if __name__ == '__main__':
    sys.exit(main())
