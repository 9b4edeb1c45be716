"""A one-shot search (DARTS) with one process against two (Lightning DDP, gloo on this CPU).

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.oneshot_ddp`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.oneshot_ddp import main

if __name__ == '__main__':
    sys.exit(main())
