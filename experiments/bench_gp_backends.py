"""Would GPyTorch replace the hand-written GP of TransferGP? Both backends on the same posteriors.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.gp_backends`); this script runs it
(its arguments: ``--help``; needs ``pip install gpytorch``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.gp_backends import main

if __name__ == '__main__':
    sys.exit(main())
