"""What the benchmark scripts under ``experiments/`` share (the start of the benchmark harness of
issue 15): running many independent searches, serially or in worker processes."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

__all__ = ['run_tasks']


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], jobs: int = 1,
              on_result: Optional[Callable[[Any], None]] = None, context: str = 'fork') -> list:
    """``fn(task)`` for every task: in this process when ``jobs <= 1``, else in ``jobs`` worker
    processes (``multiprocessing`` start method ``context``; ``fn`` must then be a module-level
    function). ``on_result`` sees each result as it ends (in completion order with workers);
    the results are returned in that order too."""
    results = []

    def take(result):
        results.append(result)
        if on_result is not None:
            on_result(result)

    if jobs <= 1:
        for task in tasks:
            take(fn(task))
    else:
        import multiprocessing
        with multiprocessing.get_context(context).Pool(jobs) as pool:
            for result in pool.imap_unordered(fn, list(tasks)):
                take(result)
    return results
