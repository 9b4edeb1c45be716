"""The one registry (nni_nasext/registry.py): every part has a kind and an NNI face, lives in the
folder of its kind, and shows in `nasext list`; the tuner, assessor and one-shot lookups are
generated from it."""
import re

import pytest

from nni_nasext import registry
from nni_nasext.cli import main as nasext

FOLDER = {'searcher': 'nni_nasext.strategies.searchers.', 'oneshot': 'nni_nasext.strategies.oneshot.',
          'zero_shot': 'nni_nasext.strategies.zero_shot.', 'transfer': 'nni_nasext.strategies.transfer.',
          'space': 'nni_nasext.search_spaces.', 'evaluator': 'nni_nasext.evaluators.', 'assessor': 'nni_nasext.assessors'}


@pytest.mark.parametrize('entry', registry.ENTRIES, ids=lambda e: f'{e.kind}:{e.name}')
def test_every_entry_loads_from_the_folder_of_its_kind(entry):
    assert entry.kind in FOLDER and entry.face in ('tuner', 'oneshot', 'trial', 'space', 'evaluator', 'assessor')
    assert entry.target.startswith(FOLDER[entry.kind]), entry.target
    obj = entry.load()
    assert callable(obj)
    if entry.kind in registry.METHOD_KINDS:   # every method cites its paper
        assert re.search(r'(19|20)\d\d', entry.summary + entry.paper), entry.name


def test_faces_match_the_classes():
    from nni_nasext.searcher import Searcher
    from nni_nasext.strategies.oneshot import OneShotModule
    for e in registry.ENTRIES:
        if e.face == 'tuner':
            assert issubclass(e.load(), Searcher) and e.extra['tuner'].startswith('Nasext'), e.name
        elif e.face == 'oneshot':
            assert issubclass(e.load(), OneShotModule), e.name
        elif e.face == 'trial':
            assert 'nnictl: python3 -m nni_nasext.trial_code.' in e.extra['nni'], e.name


def test_every_kind_of_method_is_there():
    counts = {k: len(registry.methods(k)) for k in registry.METHOD_KINDS}
    assert all(n >= 3 for n in counts.values()), counts
    assert {'tnas', 'ofa', 'te_nas', 'darts', 'tpe', 'optuna_gp', 'tapas', 'zen_nas'} <= {e.name for e in registry.ENTRIES}
    with pytest.raises(ValueError, match='kind of method'):
        registry.methods('bayesian')


def test_views_and_generated_classes_agree():
    from nni_nasext.adapters.tuner import TUNER_CLASSES
    from nni_nasext.assessors import ASSESSOR_CLASSES
    assert set(TUNER_CLASSES) == {e.extra['tuner'] for e in registry.STRATEGIES.values()}
    assert set(ASSESSOR_CLASSES) == {e.extra['assessor'] for e in registry.ASSESSORS.values()}
    assert set(registry.STRATEGIES) == {e.name for e in registry.ENTRIES if e.face == 'tuner'}
    assert registry.lookup('oneshot', 'te_nas').kind == 'zero_shot'
    assert registry.lookup('strategy', 'Regularized-Evolution').name == 'regularized_evolution'
    with pytest.raises(KeyError, match='Known strategy names'):
        registry.lookup('strategy', 'darts')         # one-shot methods are not tuners


def test_nasext_list_shows_every_entry_with_its_face(capsys):
    assert nasext(['list']) == 0
    out = capsys.readouterr().out
    for section in ('spaces:', 'searchers:', 'oneshot:', 'zero-shot:', 'transfer:', 'evaluators:', 'assessors:'):
        assert section in out
    lines = out.splitlines()
    for e in registry.ENTRIES:   # a name may be a space and a method (metaqnn, mnasnet, ofa)
        assert any(line.startswith(f'  {e.name} ') and (e.kind == 'space' or e.nni_face() in line)
                   for line in lines), e.name
    assert nasext(['list', 'transfer']) == 0
    out = capsys.readouterr().out
    assert 'tnas' in out and 'zen_nas' not in out and 'python3 -m nni_nasext.trial_code.tnas' in out
