"""NAS-Bench-201 black-box search, the paper's protocol: every sample-based strategy, ours and NNI's.

The benchmark lives in the package (:mod:`nni_nasext.benchmarking.nb201_search`: the protocol,
the methods compared, the tables and the plot); this script runs it. From the repository root::

    NASEXT_DATA=../shared/data python experiments/bench_nb201_search.py --datasets cifar10-valid cifar100 \
        ImageNet16-120 --jobs 2                                                          # 100 seeds
    NASEXT_DATA=../shared/data python experiments/bench_nb201_search.py --quick    # 5 seeds
    NASEXT_DATA=../shared/data python experiments/bench_nb201_search.py --methods ours-TPE ours-SH-TPE --stem x

Writes ``nb201_search.md`` (also printed), ``.json`` and ``.png`` under ``--out`` (default
``experiments/results``).
"""
import sys
from pathlib import Path

from nni_nasext.benchmarking.nb201_search import main

if __name__ == '__main__':
    sys.exit(main(default_out=Path(__file__).resolve().parent / 'results'))
