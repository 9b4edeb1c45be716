"""Kendall tau of the neural predictor's two regressors on held-out NB201 cells vs training cells.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.predictor_encoders`); this script runs
it (its arguments: ``--help``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.predictor_encoders import main

if __name__ == '__main__':
    sys.exit(main())
