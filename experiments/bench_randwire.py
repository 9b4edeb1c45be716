"""Randomly wired networks against NB201 cells found by REA, at equal parameters, on Fashion-MNIST.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.randwire`); this script runs it
(its arguments: ``--help``; outputs under ``experiments/results``, as before).
"""
import sys

from nni_nasext.benchmarking.randwire import main

if __name__ == '__main__':
    sys.exit(main())
