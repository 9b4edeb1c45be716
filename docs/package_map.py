"""Where each package of nni-nasext lives in the repository, read from ``setup.cfg``.

``nni_nasext/`` is a normal package, but ``search_spaces/``, ``strategies/`` and ``trial_code/``
sit at the top of the repository and install as ``nni_nasext.search_spaces`` and so on, through
``package_dir`` in ``setup.cfg``. The API reference (``docs/gen_ref_pages.py``) and the griffe
extension that lets mkdocstrings find those packages under their installed names
(``docs/griffe_package_dir.py``) both read the mapping here, so a change to ``setup.cfg``
(a new sub-package, a moved directory) reaches the documentation without editing it.
"""
from __future__ import annotations

import configparser
from pathlib import Path
from typing import Dict, Iterator, Tuple

REPO = Path(__file__).resolve().parents[1]


def _lines(value: str):
    for line in value.splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            yield line


def package_roots(repo: Path = REPO) -> Dict[str, Path]:
    """``{installed package name: directory}`` of every top-level package and every package
    that ``package_dir`` places elsewhere, e.g. ``{'nni_nasext': .../nni_nasext,
    'nni_nasext.strategies': .../strategies, ...}``."""
    config = configparser.ConfigParser()
    config.read(repo / 'setup.cfg', encoding='utf-8')
    options = config['options']
    mapped: Dict[str, Path] = {}
    for line in _lines(options.get('package_dir', '')):
        name, _, directory = line.partition('=')
        mapped[name.strip()] = repo / directory.strip()
    base = mapped.pop('', repo)          # `package_dir = = src`: every package under src/
    roots: Dict[str, Path] = {}
    for package in _lines(options.get('packages', '')):
        top = package.split('.', 1)[0]
        roots.setdefault(top, mapped.get(top, base / top))
    roots.update(mapped)
    return dict(sorted(roots.items()))


def iter_modules(repo: Path = REPO) -> Iterator[Tuple[str, Path]]:
    """``(dotted module name, file)`` of every documented module, found by walking the package
    directories: ``__init__.py`` gives the package itself; ``__pycache__``, directories without
    ``__init__.py`` and modules whose names start with ``_`` (``__main__``, private helpers) are
    skipped. A directory mapped to its own name in ``setup.cfg`` is walked under that name only."""
    roots = package_roots(repo)
    claimed = {path.resolve() for path in roots.values()}
    seen = set()
    for root_name, root in roots.items():
        if not (root / '__init__.py').is_file():
            continue
        for path in sorted(root.rglob('*.py')):
            rel = path.relative_to(root)
            if '__pycache__' in rel.parts:
                continue
            # every directory between the root and the module must be a package, and not one
            # that setup.cfg maps under another name (it is walked from its own root)
            parents = [root.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts))]
            if any(not (p / '__init__.py').is_file() or p.resolve() in claimed for p in parents):
                continue
            parts = list(rel.with_suffix('').parts)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            elif parts[-1].startswith('_'):
                continue
            name = '.'.join([root_name, *parts])
            if name not in seen:
                seen.add(name)
                yield name, path
