"""Once-for-All specialised to a latency budget on this CPU: the evolutionary sub-network search
constrained by the latency predictor, against random search and against a search constrained by
MACs instead.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.ofa_latency`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.ofa_latency import main

if __name__ == '__main__':
    sys.exit(main())
