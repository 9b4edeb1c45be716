"""Argument checks that report every problem at once, before any training."""
from __future__ import annotations

from typing import Iterable, Tuple

__all__ = ['require']


def require(owner: str, checks: Iterable[Tuple[bool, str]]) -> None:
    """Raise one ``ValueError('<owner> needs a, b')`` naming every ``(ok, what)`` that failed."""
    bad = [what for ok, what in checks if not ok]
    if bad:
        raise ValueError(f'{owner} needs ' + ', '.join(bad))
