"""ProxylessNAS to a latency budget with the latency predictor: does the derived network meet the
target on this CPU?

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.proxyless_latency`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.proxyless_latency import main

if __name__ == '__main__':
    sys.exit(main())
