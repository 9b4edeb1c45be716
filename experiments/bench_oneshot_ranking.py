"""Ranking discrepancy of weight-sharing supernets on NAS-Bench-201 (Yu et al., ICLR 2020).

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.oneshot_ranking`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.oneshot_ranking import main

if __name__ == '__main__':
    sys.exit(main())
