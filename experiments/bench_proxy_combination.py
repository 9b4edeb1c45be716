"""Combined zero-cost proxy on NAS-Bench-201, validated on held-out cells.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.proxy_combination`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.proxy_combination import main

if __name__ == '__main__':
    sys.exit(main())
