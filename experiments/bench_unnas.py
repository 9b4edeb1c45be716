"""UnNAS on NB201 cells with Fashion-MNIST: do pretext-task accuracies rank cells as the
supervised accuracy does, and does a pretext-task search pick as good a cell?

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.unnas`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.unnas import main

if __name__ == '__main__':
    sys.exit(main())
