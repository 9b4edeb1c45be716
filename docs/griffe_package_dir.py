"""A griffe extension: the packages that ``setup.cfg`` maps with ``package_dir``, under their
installed names.

griffe finds ``nni_nasext`` by walking ``nni_nasext/``, but ``nni_nasext.search_spaces``,
``nni_nasext.strategies`` and ``nni_nasext.trial_code`` live in ``search_spaces/``,
``strategies/`` and ``trial_code/`` at the top of the repository (setuptools maps them at
install time). Once griffe has loaded the top-level package, this extension loads each mapped
directory, with its sub-packages, as the member of its installed parent, so that
``::: nni_nasext.strategies.searchers.optuna_sampler`` resolves whether or not the project is installed.
The mapping is read from ``setup.cfg`` (``docs/package_map.py``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from griffe import Extension, GriffeLoader, Module

_spec = importlib.util.spec_from_file_location('nasext_docs_package_map', Path(__file__).with_name('package_map.py'))
package_map = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_map)


class PackageDirExtension(Extension):
    """Attach ``package_dir`` packages to their parents when a top-level package is loaded."""

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs) -> None:
        mapped = {name: path for name, path in package_map.package_roots().items()
                  if '.' in name and name.split('.', 1)[0] == pkg.name}
        for name in sorted(mapped, key=lambda n: n.count('.')):   # parents before children
            init = mapped[name] / '__init__.py'
            parent_name, _, short = name.rpartition('.')
            parent = pkg if parent_name == pkg.name else pkg.get_member(parent_name.split('.', 1)[1])
            if short in parent.members and parent.members[short].is_module or not init.is_file():
                continue
            # griffe has no public call for "load this directory as a submodule named X";
            # _load_module is what its own loader uses for every submodule
            module = loader._load_module(short, init, submodules=True, parent=parent)
            parent.set_member(short, module)
            loader.expand_exports(module)
            loader.expand_wildcards(module, external=False)
