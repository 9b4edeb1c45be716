"""ENAS through the generic supernet on its own two spaces (macro and micro), against random architectures.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.enas_spaces`); this script runs it
(its arguments: ``--help``; inputs and outputs under ``experiments/``, as before).
"""
import sys

from nni_nasext.benchmarking.enas_spaces import main

if __name__ == '__main__':
    sys.exit(main())
