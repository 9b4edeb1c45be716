"""The neural predictor's graph-convolution encoder (Wen et al., ECCV 2020): cell graphs of NB201
and NB101 samples, the GCN regressor, the searcher with encoder='gcn'."""
import json
import pickle
import random

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from nni_nasext import registry
from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.search_spaces import nasbench101 as nb101
from nni_nasext.search_spaces.nasbench201 import all_samples
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.searchers.graph_predictor import CellGraphEncoder, GCNEnsemble, graph_kind
from nni_nasext.strategies.searchers.neural_predictor import NeuralPredictor, NeuralPredictorGCN
from test_reinforce import MIXED
from test_searchers import SPEC, drive, score

NB101_SPEC = SpaceSpec.from_space(nb101.NasBench101Space(stem_channels=8, num_stacks=1, cells_per_stack=1))
FAST = dict(epochs=40, hidden=32, linear_hidden=16, lr=1e-3)  # a smaller GCN keeps the file fast

#: NB201 cell as a graph: input, the 6 edges 0_1 0_2 1_2 0_3 1_3 2_3, output (NASLib's graph, nodes in NB201 order)
NB201_ADJ = np.array([[0, 1, 1, 0, 1, 0, 0, 0],   # input -> 0_1, 0_2, 0_3
                      [0, 0, 0, 1, 0, 1, 0, 0],   # 0_1 -> 1_2, 1_3
                      [0, 0, 0, 0, 0, 0, 1, 0],   # 0_2 -> 2_3
                      [0, 0, 0, 0, 0, 0, 1, 0],   # 1_2 -> 2_3
                      [0, 0, 0, 0, 0, 0, 0, 1],   # 0_3 -> output
                      [0, 0, 0, 0, 0, 0, 0, 1],   # 1_3 -> output
                      [0, 0, 0, 0, 0, 0, 0, 1],   # 2_3 -> output
                      [0, 0, 0, 0, 0, 0, 0, 0]])


def path_score(sample):
    """A structure-aware toy target on NB201: the sum over the 4 input->output paths of the
    product of their edges' weights (a 'none' edge cuts its paths)."""
    w = {'none': 0., 'skip_connect': .5, 'avg_pool_3x3': .6, 'nor_conv_1x1': .9, 'nor_conv_3x3': 1.}
    e = {k: w[v] for k, v in sample.items()}
    return e['0_3'] + e['0_1'] * e['1_3'] + e['0_2'] * e['2_3'] + e['0_1'] * e['1_2'] * e['2_3']


def test_nb201_cell_graph_is_exact():
    enc = CellGraphEncoder(SPEC)
    assert enc.kind == 'nb201' and (enc.num_nodes, enc.num_features) == (8, 7)
    sample = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'none', '0_3': 'avg_pool_3x3',
              '1_3': 'nor_conv_1x1', '2_3': 'nor_conv_3x3'}
    adj, ops, mask = enc.graph(sample)
    assert np.array_equal(adj, NB201_ADJ)
    # features: input, none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3, output
    assert ops.argmax(1).tolist() == [0, 4, 2, 1, 5, 3, 4, 6] and ops.sum() == 8
    assert mask.tolist() == [1.] * 8
    a, o, m = enc.split(enc.encode_many([sample, sample]))  # the flat encoding splits back
    assert torch.equal(a[1], torch.as_tensor(NB201_ADJ, dtype=torch.float32))
    assert torch.equal(o[0], torch.as_tensor(ops)) and m.shape == (2, 8)
    # only the ops differ between cells: 15,625 distinct encodings
    X = enc.encode_many(all_samples())
    assert len(np.unique(X, axis=0)) == 15625 and np.all(X[:, :64] == NB201_ADJ.reshape(-1))


def test_nb101_cell_graph_is_pruned_and_padded():
    enc = CellGraphEncoder(NB101_SPEC)
    assert enc.kind == 'nb101' and (enc.num_nodes, enc.num_features) == (7, 5)
    m = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 1), (1, 2), (2, 6), (0, 3), (3, 6), (0, 4), (5, 6)]:  # 4 and 5 are on no input->output path
        m[i, j] = 1
    ops = ['input', 'conv3x3-bn-relu', 'maxpool3x3', 'conv1x1-bn-relu', 'maxpool3x3', 'conv3x3-bn-relu', 'output']
    sample = nb101.spec_to_sample(m, ops)
    adj, feat, mask = enc.graph(sample)
    expected = np.zeros((7, 7))
    for i, j in [(0, 1), (1, 2), (2, 4), (0, 3), (3, 4)]:  # vertices 0, 1, 2, 3, 6 -> slots 0..4
        expected[i, j] = 1
    assert np.array_equal(adj, expected)
    # features: input, conv3x3, conv1x1, maxpool, output; padding rows are zero
    assert feat[:5].argmax(1).tolist() == [0, 1, 3, 2, 4] and not feat[5:].any()
    assert mask.tolist() == [1, 1, 1, 1, 1, 0, 0]
    pruned = nb101.spec_to_sample(*nb101.prune(m, ops))  # the same cell without the dead vertices
    assert np.array_equal(enc.encode(pruned), enc.encode(sample))
    cut = dict(sample, edge_2_6=0, edge_3_6=0, edge_5_6=0)  # input no longer reaches output: encoded whole
    adj, feat, mask = enc.graph(cut)
    assert adj.sum() == 4 and mask.sum() == 7 and feat[6].argmax() == 4


def test_other_spaces_are_refused_at_configure_before_training():
    assert graph_kind(SPEC) == 'nb201' and graph_kind(NB101_SPEC) == 'nb101' and graph_kind(MIXED) is None
    np_ = NeuralPredictorGCN(num_initial=2, seed=0, **FAST)
    with pytest.raises(ValueError, match=r'GCN encoder needs a cell space.*decisions \[k, in, any, lr, d\]'):
        np_.configure(MIXED)
    assert np_.num_fits == 0 and np_.predictor is None
    odd = SpaceSpec.from_json({label: {'_type': 'choice', '_value': ['none', 'conv5x5']} for label in SPEC.dims})
    with pytest.raises(ValueError, match='GCN encoder'):
        NeuralPredictor(encoder='gcn').configure(odd)  # NB201 labels, foreign ops
    NeuralPredictor(encoder='mlp').configure(MIXED)  # the MLP encoder takes any space
    for kwargs in [dict(encoder='cnn'), dict(encoder='gcn', gcn_layers=0), dict(encoder='gcn', dropout=1.0),
                   dict(encoder='gcn', batch_size=0), dict(encoder='gcn', hidden=0), dict(encoder='gcn', lr=0)]:
        with pytest.raises(ValueError):
            NeuralPredictor(**kwargs)
    with pytest.raises(ValueError, match="'gcn'"):
        NeuralPredictorGCN(encoder='mlp')


def test_encoder_defaults_keep_the_mlp_and_take_the_papers_gcn():
    mlp = NeuralPredictor()
    assert mlp.encoding == 'mlp' and mlp.predictor_args == dict(num_models=5, hidden=(64, 64), epochs=100, lr=1e-2,
                                                                 weight_decay=1e-4)
    gcn = NeuralPredictorGCN()
    assert gcn.encoding == 'gcn'
    assert gcn.predictor_args == dict(num_models=1, hidden=144, num_layers=3, linear_hidden=128, dropout=0.1,
                                      epochs=300, lr=1e-4, weight_decay=1e-3, batch_size=10)
    preset = NeuralPredictorGCN.nb201_preset(seed=0)
    assert preset.encoding == 'gcn' and preset.refit_every == 10 and preset.pool_size >= SPEC.size
    assert preset.predictor_args['lr'] == 1e-3 and preset.predictor_args['epochs'] == 300
    assert NeuralPredictor.nb201_preset(seed=0).refit_every == 1  # ours-NP's results hold


def test_gcn_learns_a_structural_target_on_held_out_nb201_cells():
    rng = random.Random(0)
    cells = rng.sample(list(all_samples()), 600)
    train, test = cells[:100], cells[100:]
    enc = CellGraphEncoder(SPEC)
    model = GCNEnsemble(8, 7, num_models=2, seed=0, **FAST).fit(enc.encode_many(train), [path_score(s) for s in train])
    mean, std = model.predict(enc.encode_many(test))
    tau = kendalltau(mean, [path_score(s) for s in test])[0]
    assert tau > 0.7, tau
    assert mean.shape == std.shape == (500,) and std.max() > 0  # two members disagree somewhere
    untrained = GCNEnsemble(8, 7, seed=0, **dict(FAST, epochs=1)).fit(enc.encode_many(train[:10]), np.arange(10.))
    assert kendalltau(untrained.predict(enc.encode_many(test))[0], [path_score(s) for s in test])[0] < tau - 0.3


def test_gcn_is_deterministic_and_leaves_global_rng_alone():
    enc = CellGraphEncoder(SPEC)
    cells = random.Random(1).sample(list(all_samples()), 40)
    X, y = enc.encode_many(cells), [path_score(s) for s in cells]
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = GCNEnsemble(8, 7, num_models=2, seed=3, **FAST).fit(X, y).predict_members(X)
    assert torch.equal(torch.get_rng_state(), before)
    b = GCNEnsemble(8, 7, num_models=2, seed=3, **FAST).fit(X, y).predict_members(X)
    c = GCNEnsemble(8, 7, num_models=2, seed=4, **FAST).fit(X, y).predict_members(X)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    with pytest.raises(RuntimeError, match='before fit'):
        GCNEnsemble(8, 7).predict(X)
    with pytest.raises(ValueError, match='shape'):
        GCNEnsemble(7, 5).fit(X, y)  # NB201 graphs given to an NB101-sized model


def test_gcn_fits_and_predicts_nb101_cells():
    rng = random.Random(0)
    cells = [nb101.random_valid_sample(rng) for _ in range(40)]
    enc = CellGraphEncoder(NB101_SPEC)
    y = [sum(s[k] == nb101.CONV3X3 for k in nb101.OP_LABELS) + sum(s[k] for k in nb101.EDGE_LABELS) / 9
         for s in cells]
    model = GCNEnsemble(7, 5, seed=0, **FAST).fit(enc.encode_many(cells[:30]), y[:30])
    mean, _ = model.predict(enc.encode_many(cells[30:]))
    assert np.all(np.isfinite(mean)) and np.std(mean) > 0
    searcher = NeuralPredictorGCN(num_initial=4, pool_size=40, seed=0, **FAST)
    asked = drive(searcher, 8, objective=lambda s: float(nb101.is_valid(s)), spec=NB101_SPEC)
    assert len(asked) == 8 and searcher.num_fits == 4 and isinstance(searcher.predictor, GCNEnsemble)


def test_searcher_picks_the_best_predicted_unseen_cell_and_is_seeded():
    np_ = NeuralPredictorGCN(num_initial=8, pool_size=20000, seed=0, **FAST)
    asked = drive(np_, 8, objective=path_score)
    s = np_.ask()
    samples, keys, X = np_._whole_space()
    mean, _ = np_.predictor.predict(X)
    seen = {SpaceSpec.key(a) for a in asked}
    unseen = [i for i, k in enumerate(keys) if k not in seen]
    assert s == samples[max(unseen, key=lambda i: (mean[i], -i))] and np_.num_fits == 1
    a = drive(NeuralPredictorGCN(num_initial=5, pool_size=20000, seed=3, **FAST), 10, objective=path_score)
    b = drive(NeuralPredictorGCN(num_initial=5, pool_size=20000, seed=3, **FAST), 10, objective=path_score)
    c = drive(NeuralPredictorGCN(num_initial=5, pool_size=20000, seed=4, **FAST), 10, objective=path_score)
    assert a == b and a != c
    ours = [max(map(score, drive(NeuralPredictorGCN(num_initial=6, pool_size=20000, seed=s, **FAST), 16)))
            for s in range(3)]
    assert np.mean(ours) >= 22  # of 24; random search's best of 16 averages ~18


def test_registry_cli_and_tuner():
    from nni_nasext.adapters.tuner import TUNER_CLASSES
    entry = registry.STRATEGIES['neural_predictor_gcn']
    assert entry.extra['tuner'] == 'NasextNeuralPredictorGCN' and 'Wen et al' in entry.summary
    assert 'NasextNeuralPredictorGCN' in TUNER_CLASSES
    built = registry.build('strategy', 'neural_predictor_gcn', seed=0)
    assert isinstance(built, NeuralPredictorGCN) and built.encoding == 'gcn'


def test_through_nni_strategy_adapter_on_nb201_lookup(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(NeuralPredictorGCN(num_initial=10, pool_size=20000, seed=0, **FAST))
    engine = simulate_search(strategy, ev, budget=1500)
    searcher = strategy.searcher
    n = len(searcher.history)
    assert n == len(list(engine.list_models())) >= 12 and searcher.num_failed == 0
    assert searcher.num_fits == n - 10 and isinstance(searcher.predictor, GCNEnsemble)
    state = strategy.state_dict()
    again = SearcherStrategy(NeuralPredictorGCN(num_initial=10, pool_size=20000, seed=1, **FAST))
    again.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert again.searcher.ask() == searcher.ask()
    json.dumps(state)  # JSON-safe


def test_refit_every_k_results_proposes_the_models_next_best_and_resumes():
    np_ = NeuralPredictorGCN(num_initial=5, pool_size=20000, refit_every=3, seed=0, **FAST)
    asked = drive(np_, 12, objective=path_score)
    assert np_.num_fits == 3 and np_._fit_n == 11  # fitted on 5, 8 and 11 results: 11 told by the 12th ask
    samples, keys, X = np_._whole_space()
    mean, _ = np_.predictor.predict(X)
    seen = {SpaceSpec.key(a) for a in asked[:11]}
    unseen = sorted((i for i, k in enumerate(keys) if k not in seen), key=lambda i: (-mean[i], i))
    assert asked[11] == samples[unseen[0]]  # the freshest fit's best
    a = NeuralPredictorGCN(num_initial=5, pool_size=20000, refit_every=3, seed=0, **FAST)
    drive(a, 9, objective=path_score)  # fitted on 5 and 8; the 9th result is not fitted yet
    b = NeuralPredictorGCN(num_initial=5, pool_size=20000, refit_every=3, seed=7, **FAST)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for _ in range(4):
        sa, sb = a.ask(), b.ask()
        assert sa == sb
        a.tell(sa, path_score(sa))
        b.tell(sb, path_score(sb))
    with pytest.raises(ValueError, match='refit_every'):
        NeuralPredictor(refit_every=0)
