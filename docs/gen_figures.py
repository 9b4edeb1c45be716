"""Put the figures of ``experiments/results/`` into the site (mkdocs-gen-files).

The measured results and their plots stay where the benchmark scripts write them; this copies
every image under ``experiments/results/`` to the same path inside the site, so a page links
``experiments/results/<name>.png`` relative to the site root (e.g.
``../experiments/results/nb201_search.png`` from ``results/nb201-search.md``).
"""
from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / 'experiments' / 'results'
IMAGES = {'.png', '.svg', '.jpg', '.jpeg', '.gif'}

for path in sorted(RESULTS.rglob('*')):
    if path.is_file() and path.suffix.lower() in IMAGES:
        with mkdocs_gen_files.open(path.relative_to(REPO).as_posix(), 'wb') as out:
            out.write(path.read_bytes())
