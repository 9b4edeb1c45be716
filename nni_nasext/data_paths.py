"""Where nni-nasext looks for data that it may not ship: tables, datasets.

Every lookup goes through :func:`find_data`, which tries, in order, each directory of the
``NASEXT_DATA`` environment variable (``os.pathsep``-separated), then ``~/.cache/nasext``,
and raises :class:`DataNotFoundError` naming the thing and every place it looked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional


class DataNotFoundError(FileNotFoundError):
    """A dataset or benchmark table is missing; the message says what and where we looked."""

    def __init__(self, what: str, looked: Iterable[str], hint: str = ''):
        self.what, self.looked = what, list(looked)
        lines = [f'{what} not found. Looked in:'] + [f'  - {p}' for p in self.looked]
        if hint:
            lines.append(hint)
        super().__init__('\n'.join(lines))


def data_roots() -> List[Path]:
    roots = [Path(p).expanduser() for p in os.environ.get('NASEXT_DATA', '').split(os.pathsep) if p]
    roots.append(Path('~/.cache/nasext').expanduser())
    return roots


def find_data(relative: str, what: Optional[str] = None, hint: str = '', extra: Iterable[Path] = ()) -> Path:
    """Return the first existing ``root / relative`` over :func:`data_roots` and ``extra``."""
    candidates = [r / relative for r in data_roots()] + [Path(e) for e in extra]
    for cand in candidates:
        if cand.exists():
            return cand
    if 'NASEXT_DATA' not in os.environ:
        hint = (hint + '\n' if hint else '') + 'Set NASEXT_DATA to the directory that holds it.'
    raise DataNotFoundError(what or relative, [str(c) for c in candidates], hint)
