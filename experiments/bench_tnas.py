"""T-NAS against MAML (4-conv) on few-shot episodes of real images, in one run.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.tnas`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.tnas import main

if __name__ == '__main__':
    sys.exit(main())
