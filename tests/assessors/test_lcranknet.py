"""LCRankNet: pairwise training, scoring, persistence, and the NNI assessor."""
import json
import random

import numpy as np
import pytest
import torch
from nni.assessor import AssessResult

from nni_nasext import registry
from nni_nasext.assessors import lcranknet
from nni_nasext.assessors import ASSESSOR_CLASSES, replay
from nni_nasext.assessors.lc_database import LCDatabase, make_record
from nni_nasext.assessors.lcranknet import ArchVocab, LCRankNetAssessor, LCRankNetRanker, _nni_trial_sample
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from conftest import REPO

Good, Bad = AssessResult.Good, AssessResult.Bad
EPOCHS = 8


def synthetic_task(seed, n=30, epochs=EPOCHS):
    """Saturating curves y(t) = a (1 - exp(-t / tau)) + noise; the plateau a sets the final order."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    samples = [{label: pick.choice(OPS) for label in EDGE_LABELS} for _ in range(n)]
    a = rng.uniform(0.4, 0.95, n)
    tau = rng.uniform(0.8, 2.5, n)
    t = np.arange(1, epochs + 1)
    curves = a[:, None] * (1 - np.exp(-t[None, :] / tau[:, None])) + rng.normal(0, 0.005, (n, epochs))
    return samples, np.clip(curves, 0, 1)


@pytest.fixture(scope='module')
def data():
    return {f'task{k}': synthetic_task(k) for k in range(3)}


@pytest.fixture(scope='module')
def ranker(data):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before conftest's one-thread fixture
    try:
        return LCRankNetRanker.fit(data, steps=250, batch_size=64, seed=0)
    finally:
        torch.set_num_threads(before)


def saturating(a, tau=1.0, epochs=EPOCHS):
    return [float(a * (1 - np.exp(-t / tau))) for t in range(1, epochs + 1)]


def test_training_reduces_the_pairwise_loss(ranker):
    history = ranker.history
    assert len(history) == 250
    assert np.mean(history[-40:]) < np.mean(history[:20]) - 0.15
    assert np.isfinite(history).all()


def test_scores_rank_partial_curves_and_training_is_deterministic(data, ranker):
    samples, curves = data['task1']
    scores = ranker.score([list(c[:4]) for c in curves], samples, 'task1', EPOCHS)
    rho = np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(curves[:, -1])))[0, 1]
    assert rho > 0.7
    again = LCRankNetRanker.fit(data, steps=250, batch_size=64, seed=0)
    np.testing.assert_allclose(again.score([list(c[:4]) for c in curves], samples, 'task1', EPOCHS), scores,
                               rtol=1e-5, atol=1e-5)


def test_assessor_stops_a_worse_curve_and_keeps_a_better_one(ranker):
    for task in ('task0', 'an-unseen-task'):
        assessor = LCRankNetAssessor(ranker=ranker, task=task, start_step=2, min_completed=1)
        best = saturating(0.75)
        for s in range(1, EPOCHS + 1):
            assert assessor.assess_trial('ref', best[:s]) is Good  # nothing completed yet: never stop
        assessor.trial_end('ref', True)
        worse, better = saturating(0.35), saturating(0.92)
        verdicts = [assessor.assess_trial('worse', worse[:s]) for s in range(1, EPOCHS)]
        assert verdicts[0] is Good and Bad in verdicts[:3]  # not before start_step, soon after
        assert assessor.last_probability['worse'] < 0.45
        assert all(assessor.assess_trial('better', better[:s]) is Good for s in range(1, EPOCHS + 1))
        assert assessor.last_probability['better'] > 0.5
        # dict intermediates (NNI metrics with a 'default' key) go through assessors.scalar
        assert assessor.assess_trial('dict', [{'default': v, 'loss': 1.0} for v in worse[:3]]) is Bad


def test_replay_stops_most_bad_curves(ranker):
    curves = [saturating(a, tau) for a, tau in [(0.8, 1.0), (0.3, 1.2), (0.35, 1.0), (0.85, 1.5), (0.4, 2.0)]]
    stops = replay(LCRankNetAssessor(ranker=ranker, task='task2', start_step=3), curves)
    assert 0 not in stops and 3 not in stops
    assert {1, 2} <= set(stops)


def test_unseen_task_embedding_is_fitted_from_completed_trials(ranker, data):
    assessor = LCRankNetAssessor(ranker=ranker, task='new', adapt_min_trials=3)
    assert assessor.min_completed == 3  # an unseen task: nothing stopped before 3 complete curves
    samples, curves = data['task0']
    for k in range(3):
        assessor.set_sample(str(k), samples[k])
        for s in range(1, EPOCHS + 1):
            assert assessor.assess_trial(str(k), [0.01] * s) is Good
            assessor.assess_trial(str(k), list(curves[k, :s]))
        assessor.trial_end(str(k), True)
        assert (assessor.task_vec is None) == (k < 2)
    assert assessor.assess_trial('bad', [0.01] * 4) is Bad
    assert LCRankNetAssessor(ranker=ranker, task='task0').min_completed == 1
    assert not torch.allclose(assessor.task_vec, ranker.mean_embedding())
    assert torch.allclose(ranker.embedding('new'), ranker.mean_embedding())  # the shared ranker is unchanged
    assert assessor.best[0] == list(curves[int(np.argmax(curves[:3, -1]))])


def test_save_load_and_assessor_from_a_model_file(tmp_path, ranker, data):
    path = tmp_path / 'model.pt'
    ranker.save(path)
    loaded = LCRankNetRanker.load(path)
    samples, curves = data['task0']
    np.testing.assert_allclose(loaded.score(curves.tolist(), samples, 'task0', EPOCHS),
                               ranker.score(curves.tolist(), samples, 'task0', EPOCHS), rtol=1e-6)
    assessor = LCRankNetAssessor(model_path=str(path), task='task0')
    assert assessor.ranker.tasks == ranker.tasks
    (tmp_path / 'junk.pt').write_bytes(b'')
    torch.save({'a': 1}, tmp_path / 'junk.pt')
    with pytest.raises(ValueError, match='not an LCRankNet model file'):
        LCRankNetRanker.load(tmp_path / 'junk.pt')


def test_assessor_trains_from_a_database(tmp_path, data):
    db = LCDatabase(tmp_path / 'db.jsonl')
    for task, (samples, curves) in data.items():
        for s, c in zip(samples[:10], curves[:10]):
            db.append(make_record(task=task, sample=s, curve=c.tolist(), space='quickstart', seed=0))
    assessor = LCRankNetAssessor(database=str(tmp_path / 'db.jsonl'), train_steps=20, task='task1')
    assert assessor.ranker.tasks == ['task0', 'task1', 'task2'] and len(assessor.ranker.history) == 20


def test_bad_arguments(tmp_path, monkeypatch, ranker):
    with pytest.raises(ValueError, match="optimize_mode must be 'maximize'"):
        LCRankNetAssessor(ranker=ranker, optimize_mode='minimize')
    with pytest.raises(ValueError, match='threshold'):
        LCRankNetAssessor(ranker=ranker, threshold=1.5)
    with pytest.raises(ValueError, match='start_step'):
        LCRankNetAssessor(ranker=ranker, start_step=0)
    monkeypatch.setattr(lcranknet, 'DEFAULT_MODEL', tmp_path / 'none.pt')
    monkeypatch.setattr(lcranknet, 'DEFAULT_DATABASE', tmp_path / 'none.jsonl')
    with pytest.raises(ValueError, match='needs model_path'):
        LCRankNetAssessor()
    with pytest.raises(ValueError, match='at least one task with two or more curves'):
        LCRankNetRanker.fit({'t': ([{}], np.zeros((1, 3)))})


def test_lstm_architecture_component_of_the_paper(data, tmp_path):
    ranker = LCRankNetRanker.fit(data, steps=20, batch_size=16, arch_model='lstm')
    samples, curves = data['task0']
    ranker.save(tmp_path / 'lstm.pt')
    again = LCRankNetRanker.load(tmp_path / 'lstm.pt')
    assert again.net.arch_model == 'lstm'
    np.testing.assert_allclose(again.score(curves[:4].tolist(), samples[:4], 'task0', EPOCHS),
                               ranker.score(curves[:4].tolist(), samples[:4], 'task0', EPOCHS), rtol=1e-6)
    with pytest.raises(ValueError, match='arch_model'):
        LCRankNetRanker.fit(data, steps=1, arch_model='gru')


def test_vocab_unknown_values_and_labels():
    vocab = ArchVocab.from_samples([{'a': 'x', 'b': 1}, {'a': 'y', 'b': 2}])
    assert vocab.labels == ['a', 'b'] and len(vocab.tokens) == 4
    assert vocab.encode({'a': 'y', 'b': 1}) == [vocab.index['a="y"'], vocab.index['b=1']]
    assert vocab.encode({'a': 'zzz'}) == [0, 0] and vocab.encode(None) == [0, 0]


def test_registered_for_nnictl():
    assert registry.lookup('assessor', 'lcranknet').load() is LCRankNetAssessor
    assert ASSESSOR_CLASSES['NasextLCRankNet'] == 'nni_nasext.assessors.lcranknet.LCRankNetAssessor'


def test_architecture_of_an_nnictl_trial_is_read_from_the_experiment_db(tmp_path, monkeypatch, ranker):
    from test_lc_database import SAMPLE, make_nni_experiment
    exp = tmp_path / 'exp'
    make_nni_experiment(exp)
    (exp / 'log').mkdir()
    monkeypatch.setenv('NNI_LOG_DIRECTORY', str(exp / 'log'))
    assert _nni_trial_sample('AAAAA') == {**SAMPLE, '0_1': 'none'}
    assert _nni_trial_sample('unknown') is None
    assessor = LCRankNetAssessor(ranker=ranker, task='task0')
    assessor.assess_trial('AAAAA', [0.1, 0.5])
    assessor.trial_end('AAAAA', True)  # the completed trial's architecture goes with its curve
    assert assessor.best == ([0.1, 0.5], {**SAMPLE, '0_1': 'none'})
    monkeypatch.delenv('NNI_LOG_DIRECTORY')
    assert _nni_trial_sample('AAAAA') is None
    json.dumps(assessor._samples)  # samples stay JSON


def test_shipped_nnictl_config_builds_the_assessor():
    """experiments/assessor_lcranknet.yml names our registered assessor with arguments it takes."""

    from nni_nasext import nnictl_tools as nt
    path = REPO / 'experiments' / 'assessor_lcranknet.yml'
    config = nt.load_config(path)
    assert ASSESSOR_CLASSES[config['assessor']['name']].endswith('LCRankNetAssessor')
    if not lcranknet.DEFAULT_MODEL.is_file():
        pytest.skip(f'no trained LCRankNet model at {lcranknet.DEFAULT_MODEL}')
    assessor = LCRankNetAssessor(**config['assessor']['classArgs'])
    assert assessor.assess_trial('t0', [0.1, 0.2]) == AssessResult.Good   # before start_step
