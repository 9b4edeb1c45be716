"""The benchmark scripts' shared runner (nni_nasext/benchmarking.py)."""
from nni_nasext.benchmarking import run_tasks


def square(x):
    return x * x


def test_serial_and_worker_processes_give_every_result_once():
    seen = []
    serial = run_tasks(square, range(6), jobs=1, on_result=seen.append)
    assert serial == seen == [0, 1, 4, 9, 16, 25]            # serial: in task order
    pooled = run_tasks(square, range(6), jobs=2)
    assert sorted(pooled) == serial                           # workers: completion order, each once
