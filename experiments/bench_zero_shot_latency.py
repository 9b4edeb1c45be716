"""Zero-shot NAS under a latency budget on NAS-Bench-201 (no network trained).

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.zero_shot_latency`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.zero_shot_latency import main

if __name__ == '__main__':
    sys.exit(main())
