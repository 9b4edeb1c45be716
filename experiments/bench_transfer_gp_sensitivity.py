"""How much TransferGP's result depends on its settings, and what an honest choice of them gives.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.transfer_gp_sensitivity`); this script
runs it (its arguments: ``--help``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.transfer_gp_sensitivity import main

if __name__ == '__main__':
    sys.exit(main())
