"""Generate the API reference (``reference/``) at build time (mkdocs-gen-files).

The modules are found by walking the package directories that ``setup.cfg`` names
(``docs/package_map.py``), not from a list: a module added, moved into a sub-package or
removed changes the reference on the next build. One page per module, under its installed
name (``nni_nasext.strategies...`` for ``strategies/...``); ``reference/SUMMARY.md`` is the
navigation for mkdocs-literate-nav.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import mkdocs_gen_files

_spec = importlib.util.spec_from_file_location('nasext_docs_package_map', Path(__file__).with_name('package_map.py'))
package_map = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_map)

nav = mkdocs_gen_files.Nav()
for name, path in package_map.iter_modules():
    parts = tuple(name.split('.'))
    is_package = path.name == '__init__.py'
    doc_path = Path(*parts, 'index.md') if is_package else Path(*parts[:-1], f'{parts[-1]}.md')
    nav[parts] = doc_path.as_posix()
    with mkdocs_gen_files.open(Path('reference', doc_path), 'w') as fd:
        fd.write(f'# `{name}`\n\n')
        fd.write(f'Source: `{path.relative_to(package_map.REPO).as_posix()}`\n\n')
        fd.write(f'::: {name}\n')

with mkdocs_gen_files.open('reference/SUMMARY.md', 'w') as nav_file:
    nav_file.writelines(nav.build_literate_nav())
