"""MkDocs hooks of the documentation build (``hooks:`` in ``mkdocs.yml``).

Docstrings are rendered as Markdown. A usage text such as ``nasext space NAME [--json]
[--arg key=value ...]`` (the module docstring of ``nni_nasext.cli``) reads to Markdown as a
reference link, and mkdocs-autorefs warns that it cannot find the target ``--json``; under
``--strict`` that fails the build. Such a target starts with ``-``: a command-line option,
never a Python identifier. Those warnings, and only those, are logged at INFO instead; every
other unresolved cross-reference still fails a strict build.
"""
from __future__ import annotations

import logging
import re

_TARGET = re.compile(r"Could not find cross-reference target '(?P<target>.*)'")


class _CommandLineOptionRefs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            match = _TARGET.search(record.getMessage())
            if match and match.group('target').lstrip().startswith('-'):
                record.levelno, record.levelname = logging.INFO, 'INFO'
        return True


_FILTER = _CommandLineOptionRefs()


def on_config(config, **kwargs):
    # a logger's filters see only the records logged on it, so attach to every autorefs logger
    import mkdocs_autorefs  # noqa: F401  (creates its loggers)
    names = [name for name in logging.Logger.manager.loggerDict
             if name.startswith('mkdocs.plugins.mkdocs_autorefs')]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return config
