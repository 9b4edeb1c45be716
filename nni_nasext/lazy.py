"""Lazy package exports: a package names its public classes, each imported on first use.

A tuner process must connect to the NNI manager within 10 seconds of starting, so a package
never imports all of its modules up front; ``from nni_nasext.strategies import TPE`` imports
only the TPE module (PEP 562 module ``__getattr__``).
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, where: Dict[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` from a map of name -> module.

    A module is relative to ``package`` (``'.tpe'``) or absolute (``'nni_nasext.strategies.searchers.tpe'``).
    """
    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name], package), name)
        raise AttributeError(f'module {package!r} has no attribute {name!r}')

    def __dir__() -> List[str]:
        return sorted(where)

    return __getattr__, __dir__
