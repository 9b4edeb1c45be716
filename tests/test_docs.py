"""The documentation: the MkDocs site builds in strict mode with an API reference of the
installed package names, the README stays short, and every relative link of the README and
of the pages points to a file that exists."""
import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / 'docs'
README = REPO / 'README.md'
PLUGINS = {'mkdocs': 'mkdocs', 'material': 'mkdocs-material', 'mkdocstrings_handlers.python': 'mkdocstrings[python]',
           'mkdocs_gen_files': 'mkdocs-gen-files', 'mkdocs_literate_nav': 'mkdocs-literate-nav'}


def _package_map():
    spec = importlib.util.spec_from_file_location('nasext_docs_package_map', DOCS / 'package_map.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_page(module: str) -> str:
    """The site path of a module's API page, as docs/gen_ref_pages.py names it (a module's
    ``reference/a/b.md`` and a package's ``reference/a/b/index.md`` both become ``a/b/index.html``)."""
    return '/'.join(['reference', *module.split('.'), 'index.html'])


def test_site_builds_strictly_with_the_api_reference(tmp_path):
    for module, package in PLUGINS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f'{package} is not installed (pip install -e ".[docs]")')
    from nni_nasext import registry
    site = tmp_path / 'site'
    proc = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--site-dir', str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'DISABLE_MKDOCS_2_WARNING': 'true', 'NO_MKDOCS_2_WARNING': '1'})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    # a page per module, under the installed names: nni_nasext/ itself, and the packages that
    # setup.cfg maps from the top of the repository (strategies/ -> nni_nasext.strategies);
    # the TPE module is found through the registry, wherever it lives
    tpe_module = registry.STRATEGIES['tpe'].target.partition(':')[0]
    space_module = registry.SPACES['nasbench201'].target.partition(':')[0]
    for module in ('nni_nasext.registry', 'nni_nasext.searcher', 'nni_nasext.adapters.tuner', tpe_module,
                   space_module, 'nni_nasext.trial_code.run'):
        page = site / _reference_page(module)
        assert page.is_file(), f'no API page for {module} ({page.relative_to(site)})'
        html = page.read_text(encoding='utf-8')
        assert 'doc doc-object' in html, f'the API page of {module} documents nothing'
    assert (site / 'reference' / 'nni_nasext' / 'strategies' / 'index.html').is_file()
    assert '::: ' not in (site / 'reference' / 'nni_nasext' / 'registry' / 'index.html').read_text(encoding='utf-8')
    # every module the walk finds has its page: the reference follows moved and new modules
    names = [name for name, _ in _package_map().iter_modules()]
    assert tpe_module in names and len(names) > 50
    assert all((site / _reference_page(name)).is_file() for name in names)
    # the figures of experiments/results are in the site
    assert (site / 'experiments' / 'results' / 'nb201_search.png').is_file()


def test_readme_is_short():
    lines = README.read_text(encoding='utf-8').splitlines()
    assert len(lines) <= 300, f'README.md has {len(lines)} lines; move detail into docs/'


# ---------------------------------------------------------------------------------- links
_FENCE = re.compile(r'^\s*(```|~~~).*?^\s*\1\s*$', re.S | re.M)
_CODE = re.compile(r'`[^`\n]*`')
_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')


def _links(path: Path):
    text = _CODE.sub('', _FENCE.sub('', path.read_text(encoding='utf-8')))
    for match in _LINK.finditer(text):
        target = match.group(1)
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith('#'):
            continue                                   # a URL, or an anchor in the same page
        yield target


def _slug(heading: str) -> str:
    """Python-Markdown's default heading id (toc.slugify)."""
    text = re.sub(r'`|\*\*|\*|\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode('ascii')
    text = re.sub(r'[^\w\s-]', '', text).strip().lower()
    return re.sub(r'[-\s]+', '-', text)


def _anchors(page: Path):
    text = _FENCE.sub('', page.read_text(encoding='utf-8'))
    return {_slug(m.group(1)) for m in re.finditer(r'^#{1,6}\s+(.+?)\s*#*\s*$', text, re.M)}


def _docs_target_exists(rel: str, modules) -> bool:
    """A path inside the site: a page or file under docs/, a generated API page, or a figure
    that docs/gen_figures.py copies from experiments/results/."""
    if (DOCS / rel).is_file():
        return True
    if rel.startswith('reference/'):
        parts = Path(rel).with_suffix('').parts[1:]
        if parts and parts[-1] in ('index', 'SUMMARY'):
            return parts[-1] == 'SUMMARY' or '.'.join(parts[:-1]) in modules
        return '.'.join(parts) in modules
    return rel.startswith('experiments/results/') and (REPO / rel).is_file()


def test_relative_links_point_to_files_that_exist():
    modules = {name for name, _ in _package_map().iter_modules()}
    pages = [README, *sorted(DOCS.rglob('*.md'))]
    assert len(pages) > 20
    broken = []
    for page in pages:
        for target in _links(page):
            path, _, anchor = target.partition('#')
            path = path.split('?', 1)[0]
            if page == README:
                resolved = (REPO / path).resolve()
                if not resolved.exists():
                    broken.append(f'README.md: {target}')
                elif anchor and resolved.suffix == '.md' and anchor not in _anchors(resolved):
                    broken.append(f'README.md: {target} (no heading #{anchor} in {path})')
                continue
            rel = (page.parent / path).resolve()
            try:
                rel = rel.relative_to(DOCS.resolve()).as_posix()
            except ValueError:                         # outside docs/: not in the site
                broken.append(f'{page.relative_to(REPO)}: {target} (outside docs/)')
                continue
            if not _docs_target_exists(rel, modules):
                broken.append(f'{page.relative_to(REPO)}: {target}')
    assert not broken, 'broken links:\n' + '\n'.join(broken)


def test_the_measurement_of_the_strategy_guide_runs(tmp_path, nb12):
    """docs/write-your-own-strategy.md: its example class and its measurement script, with 2 seeds
    and one process, print the table the page shows (the page's figures are for 20 seeds)."""
    page = (REPO / 'docs' / 'write-your-own-strategy.md').read_text()
    blocks = re.findall(r'```python\n(.*?)```', page, re.S)
    cls = next(b for b in blocks if 'class LocalSearch' in b)
    measure = next(b for b in blocks if 'run_tasks(' in b)
    assert 'range(20)' in measure and 'jobs=2' in measure
    script = tmp_path / 'measure.py'
    script.write_text(cls + '\n' + measure.replace('range(20)', 'range(2)').replace('jobs=2', 'jobs=1'))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[:2] == ['| method | accuracy (%) | s.e. |', '|---|---:|---:|']
    assert [l.split(' | ')[0] for l in lines[2:4]] == ['| local search', '| regularized evolution']
    assert "'a_better_by_more_than_se'" in lines[4]
