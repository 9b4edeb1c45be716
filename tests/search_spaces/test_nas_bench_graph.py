"""NAS-Bench-Graph (Qin et al., NeurIPS 2022 D&B): space, sample <-> benchmark key, the GNN
network on synthetic graphs, the lookup evaluator under NNI's engine and NasExperiment, and a
real nnictl experiment of a few lookup trials."""
import atexit
import itertools
import json
import sys
import time

import pytest
import torch
import yaml

from nni_nasext import registry
from nni_nasext.search_spaces.nas_bench_graph import (
    DATASETS, LABELS, OPS, OPS_PROTEINS, GNNNetwork, NasBenchGraphSpace, all_samples, arch_to_sample, make_op,
    sample_to_arch,
)
from nni_nasext.space_spec import SpaceSpec

from conftest import REPO
from trial_helpers import final_result, imported_no_torch, run_trial_program
from toy_cost import SMALL_MODELS

nbg = pytest.importorskip('nas_bench_graph', reason='the nas-bench-graph package is not installed')

from nni_nasext.evaluators import nas_bench_graph_lookup as lookup  # noqa: E402
from nni_nasext.evaluators.nas_bench_graph_lookup import (  # noqa: E402
    NasBenchGraphLookup, NasBenchGraphTable, bench_key, simulate_graph_search,
)


def test_ops_and_datasets_are_the_packages():
    assert OPS == tuple(nbg.gnn_list) and OPS_PROTEINS == tuple(nbg.gnn_list_proteins)
    for name in DATASETS:
        assert len(NasBenchGraphTable(name)) == (2021 if name == 'proteins' else 26206)


@pytest.mark.parametrize('dataset,ops,json_file', [('cora', OPS, 'nas_bench_graph.json'),
                                                   ('proteins', OPS_PROTEINS, 'nas_bench_graph_proteins.json')])
def test_space_decisions_size_and_its_nnictl_json(dataset, ops, json_file):
    spec = SpaceSpec.from_space(NasBenchGraphSpace(dataset=dataset))
    assert list(spec.dims) == LABELS
    assert [list(spec.dims[f'input_{i}'].values) for i in (2, 3, 4)] == [[0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert all(list(spec.dims[f'op_{i}'].values) == list(ops) for i in range(1, 5))
    assert spec.size == 24 * len(ops) ** 4
    assert json.loads((REPO / 'experiments' / 'spaces' / json_file).read_text()) == spec.to_json()
    with pytest.raises(ValueError, match='Unknown NAS-Bench-Graph dataset'):
        NasBenchGraphSpace(dataset='mnist')


def test_sample_arch_bijection_and_bad_samples():
    sample = arch_to_sample([0, 1, 2, 1], ['gcn', 'gin', 'fc', 'cheb'])
    assert sample == {'input_2': 1, 'input_3': 2, 'input_4': 1, 'op_1': 'gcn', 'op_2': 'gin', 'op_3': 'fc',
                      'op_4': 'cheb'}
    assert sample_to_arch(sample) == ([0, 1, 2, 1], ['gcn', 'gin', 'fc', 'cheb'])
    with pytest.raises(ValueError, match='earlier node'):
        sample_to_arch({**sample, 'input_3': 3})
    with pytest.raises(ValueError, match='earlier node'):
        sample_to_arch({**sample, 'input_2': True})
    with pytest.raises(ValueError, match='missing'):
        sample_to_arch({k: v for k, v in sample.items() if k != 'op_4'})
    with pytest.raises(ValueError, match='outside'):
        sample_to_arch(sample, OPS_PROTEINS)  # gin is not a proteins op
    with pytest.raises(ValueError):
        arch_to_sample([1, 0, 0, 0], ['gcn'] * 4)


def test_bench_key_is_the_packages_hash_and_isomorphic_cells_share_it():
    # one architecture in two node orders: gcn(input) feeds gin -> fc and, in parallel, cheb
    a = bench_key(arch_to_sample([0, 1, 2, 1], ['gcn', 'gin', 'fc', 'cheb']))
    b = bench_key(([0, 1, 1, 2], ['gcn', 'gin', 'cheb', 'fc']))
    assert a == b == nbg.Arch([0, 1, 2, 1], ['gcn', 'gin', 'fc', 'cheb']).valid_hash()
    # fc after cheb instead of after gin is another architecture (the package README lists this
    # order as the same one; its own hash, rightly, does not)
    assert bench_key(([0, 1, 1, 2], ['gcn', 'cheb', 'gin', 'fc'])) != a
    # four parallel operations: any order is one architecture
    assert len({bench_key(([0, 0, 0, 0], list(p))) for p in itertools.permutations(['gat', 'gcn', 'sage', 'fc'])}) == 1
    raw = nbg.light_read('cora')[a]
    rec = NasBenchGraphTable('cora').query(arch_to_sample([0, 1, 1, 2], ['gcn', 'gin', 'cheb', 'fc']))
    assert (rec.key, rec.valid, rec.test, rec.latency, rec.params) == (
        a, pytest.approx(100 * raw['valid_perf']), pytest.approx(100 * raw['perf']), raw['latency'], raw['para'])
    # a chain gcn -> gcn and two parallel gcn are different architectures
    assert bench_key(([0, 1, 2, 3], ['gcn'] * 4)) != bench_key(([0, 0, 0, 0], ['gcn'] * 4))
    with pytest.raises(ValueError, match='all-skip'):
        bench_key(([0, 1, 2, 3], ['skip'] * 4))


@pytest.mark.parametrize('dataset,ops,distinct', [('cora', OPS, 26206), ('proteins', OPS_PROTEINS, 2021)])
def test_every_sample_is_in_the_table_or_refused(dataset, ops, distinct):
    table = nbg.light_read(dataset)
    keys, refused = set(), 0
    for sample in all_samples(ops):
        try:
            key = bench_key(sample, dataset)
        except ValueError as err:
            assert 'all-skip' in str(err)
            assert all(sample[f'op_{i}'] == 'skip' for i in range(1, 5))
            refused += 1
            continue
        assert key in table
        keys.add(key)
    assert refused == 24 and len(keys) == len(table) == distinct


def test_lookup_reports_reward_and_extras(monkeypatch):
    reported = []
    monkeypatch.setattr(lookup.nni, 'report_final_result', reported.append)
    sample = arch_to_sample([0, 0, 1, 2], ['gat', 'sage', 'gcn', 'fc'])
    raw = nbg.light_read('citeseer')[nbg.Arch([0, 0, 1, 2], ['gat', 'sage', 'gcn', 'fc']).valid_hash()]
    ev = NasBenchGraphLookup('citeseer')
    assert ev.evaluate(sample) == pytest.approx(100 * raw['valid_perf'])
    assert reported[-1] == {'default': pytest.approx(100 * raw['valid_perf']), 'valid': pytest.approx(100 * raw['valid_perf']),
                            'test': pytest.approx(100 * raw['perf']), 'latency_ms': pytest.approx(1e3 * raw['latency']),
                            'params': pytest.approx(raw['para'])}
    assert NasBenchGraphLookup('citeseer', metric='test').evaluate(sample) == pytest.approx(100 * raw['perf'])
    assert (ev.num_queries, ev.total_cost) == (1, 1)
    with pytest.raises(ValueError, match='all-skip'):
        ev.evaluate(arch_to_sample([0, 0, 0, 0], ['skip'] * 4))
    assert ev.num_queries == 1  # a refused sample costs no query
    with pytest.raises(ValueError, match='Unknown NAS-Bench-Graph dataset'):
        NasBenchGraphLookup('imagenet')
    with pytest.raises(ValueError, match='metric'):
        NasBenchGraphLookup('cora', metric='train')
    with pytest.raises(ValueError, match='outside'):   # cheb was not trained on proteins
        NasBenchGraphLookup('proteins').evaluate(arch_to_sample([0, 0, 0, 0], ['cheb'] * 4))


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'nas_bench_graph', None)
    with pytest.raises(ImportError, match='pip install nas-bench-graph'):
        NasBenchGraphLookup('cora')


def test_best_records():
    table = NasBenchGraphTable('cora')
    by_valid, by_test = table.best('valid'), table.best('test')
    assert by_valid.valid == max(r.valid for r in table.records())
    assert by_test.test == max(r.test for r in table.records()) >= by_valid.test


def test_lookup_validates_the_datasets_space():
    assert list(NasBenchGraphLookup('cora').validate_space(NasBenchGraphSpace())) == LABELS
    with pytest.raises(ValueError, match='NAS-Bench-Graph space'):
        NasBenchGraphLookup('proteins').validate_space(NasBenchGraphSpace('cora'))
    with pytest.raises(ValueError, match='NAS-Bench-Graph space'):
        NasBenchGraphLookup('cora').validate_space(NasBenchGraphSpace('proteins'))


def _trial(tmp_path, name, sample, fast, evaluator_args='{"dataset": "citeseer"}', space_args='{}'):
    return run_trial_program(tmp_path / name, 'nas_bench_graph', 'nas_bench_graph', sample, fast, evaluator_args,
                             space_args)


def test_the_fast_lookup_trial_matches_the_general_one_without_torch(tmp_path):
    sample = arch_to_sample([0, 0, 1, 2], ['gat', 'sage', 'gcn', 'fc'])
    (fast, a), (general, b) = _trial(tmp_path, 'fast', sample, True), _trial(tmp_path, 'general', sample, False)
    assert fast.returncode == general.returncode == 0, fast.stderr[-2000:] + general.stderr[-2000:]
    assert imported_no_torch(fast) and 'TORCH True' in general.stdout
    a.pop('seconds'), b.pop('seconds')
    assert a == b and a['value'] == pytest.approx(NasBenchGraphTable('citeseer').query(sample).valid)
    assert final_result(fast) == final_result(general)
    assert set(final_result(fast)) == {'default', 'valid', 'test', 'latency_ms', 'params'}


@pytest.mark.parametrize('sample,evaluator_args,space_args,match', [
    (arch_to_sample([0, 0, 0, 0], ['skip'] * 4), '{}', '{}', 'all-skip'),
    ({**arch_to_sample([0, 0, 1, 2], ['gat'] * 4), 'op_1': 'mlp'}, '{}', '{}', 'outside'),
    ({**arch_to_sample([0, 0, 1, 2], ['gat'] * 4), 'input_3': 3}, '{}', '{}', 'earlier node'),
    (arch_to_sample([0, 0, 1, 2], ['cheb'] * 4), '{}', '{"dataset": "proteins"}', 'outside'),
    (arch_to_sample([0, 0, 1, 2], ['gat'] * 4), '{"dataset": "imagenet"}', '{}', 'Unknown NAS-Bench-Graph dataset'),
    (arch_to_sample([0, 0, 1, 2], ['gat'] * 4), '{"metric": "train"}', '{}', 'metric'),
    ({**arch_to_sample([0, 0, 1, 2], ['gat'] * 4), 'nasext_budget': 3}, '{}', '{}', 'no fidelity'),
])
def test_the_fast_lookup_trial_fails_clearly(tmp_path, sample, evaluator_args, space_args, match):
    proc, result = _trial(tmp_path, 'bad', sample, True, evaluator_args, space_args)
    assert proc.returncode == 1 and match in proc.stderr and 'TRIAL FAILED' in proc.stderr and result is None


def _search(make, dataset, budget=25):
    ev = NasBenchGraphLookup(dataset)
    engine = simulate_graph_search(make(), ev, budget)
    models = [m for m in engine.list_models() if m.metrics.final is not None]
    return ev, models


@pytest.mark.parametrize('strategy', ['random', 'regularized_evolution', 'tpe', 'pnas', 'neural_predictor'])
@pytest.mark.parametrize('dataset', ['cora', 'proteins'])
def test_our_strategies_search_the_table_through_nni_engine_deterministically(strategy, dataset):
    from nni_nasext.adapters import SearcherStrategy
    args = {'neural_predictor': {'num_initial': 5, 'pool_size': 200, **SMALL_MODELS['neural_predictor']},
            'pnas': {'beam_size': 4, **SMALL_MODELS['pnas']}, 'tpe': {'num_startup': 5}}.get(strategy, {})

    def make():
        return SearcherStrategy(registry.build('strategy', strategy, seed=1, **args))
    ev, models = _search(make, dataset)
    assert ev.num_queries == ev.total_cost == len(models) == 25
    table = NasBenchGraphTable(dataset)
    for m in models:
        assert m.metrics.final == pytest.approx(table.query(m.sample).valid)
    _, again = _search(make, dataset)
    assert [m.sample for m in again] == [m.sample for m in models]


def test_nas_experiment_with_our_strategy(tmp_path):
    from nni.nas.experiment import NasExperiment, NasExperimentConfig
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.strategies import RegularizedEvolution
    strategy = SearcherStrategy(RegularizedEvolution(population_size=5, sample_size=2, seed=0))
    config = NasExperimentConfig('sequential', 'raw', max_trial_number=12, experiment_working_directory=str(tmp_path))
    exp = NasExperiment(NasBenchGraphSpace('photo'), NasBenchGraphLookup('photo'), strategy, config)
    exp.run()
    atexit.unregister(exp.stop)
    history = strategy.searcher.history
    assert len(history) == 12 and all(o['value'] is not None for o in history)
    top = exp.export_top_models(formatter='dict')[0]
    assert max(o['value'] for o in history) == pytest.approx(NasBenchGraphTable('photo').query(top).valid)


# ----------------------------------------------------------------------------- the network

def _graph(n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, n, (2, 12), generator=g)
    pairs = pairs[:, pairs[0] != pairs[1]]
    edge_index = torch.unique(torch.cat([pairs, pairs.flip(0)], dim=1), dim=1)  # undirected, no repeated edge
    return torch.randn(n, 5, generator=g), edge_index


@pytest.mark.parametrize('op', OPS)
def test_every_operation_runs_forward_and_backward(op):
    torch.manual_seed(0)
    x, edge_index = _graph()
    space = NasBenchGraphSpace(in_features=5, num_classes=3, hidden=8)
    net = space.freeze(arch_to_sample([0, 1, 1, 2], [op, op, 'skip', op]))
    out = net(x, edge_index)
    assert out.shape == (7, 3) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_gcn_equals_its_dense_formula_and_gat_weights_sum_to_one():
    torch.manual_seed(0)
    x, edge_index = _graph()
    h = torch.randn(7, 8)
    gcn = make_op('gcn', 8)
    a = torch.zeros(7, 7)
    a[edge_index[1], edge_index[0]] = 1
    a = a + torch.eye(7)
    d = a.sum(1).pow(-0.5)
    with torch.no_grad():
        gcn.bias.normal_()
    dense = (d[:, None] * a * d[None, :]) @ h @ gcn.lin.weight.T + gcn.bias
    assert torch.allclose(gcn(h, edge_index), dense, atol=1e-5)
    # GAT on constant values per head returns those values (a convex combination)
    gat = make_op('gat', 8)
    with torch.no_grad():
        gat.lin.weight.copy_(torch.eye(8))
    const = torch.ones(7, 8) * torch.arange(8.)
    assert torch.allclose(gat(const, edge_index), const, atol=1e-5)


def test_network_leaves_and_message_passing():
    torch.manual_seed(0)
    net = GNNNetwork([0, 1, 1, 2], ['fc', 'gcn', 'sage', 'gin'], in_features=5, num_classes=3, hidden=8, dropout=0.)
    assert net.cell.leaves == [3, 4]
    x, edge_index = _graph()
    isolated = torch.empty(2, 0, dtype=torch.long)
    # with graph layers, the edges change the output; without edges the fc-only path does not care
    assert not torch.allclose(net(x, edge_index), net(x, isolated))
    fc = GNNNetwork([0, 1, 2, 3], ['fc'] * 4, in_features=5, num_classes=3, hidden=8, dropout=0.)
    assert torch.allclose(fc(x, edge_index), fc(x, isolated))
    with pytest.raises(ValueError, match='edge_index'):
        net(x, edge_index[0])


# ----------------------------------------------------------------------------- nnictl

def test_nnictl_experiment_of_lookup_trials(tmp_path):
    import psutil
    from nni_nasext import nnictl_tools as nt
    base = yaml.safe_load((REPO / 'experiments' / 'nas_bench_graph_tpe.yml').read_text())
    (tmp_path / 'space.json').write_text((REPO / 'experiments' / 'spaces' / 'nas_bench_graph.json').read_text())
    config = {**base, 'searchSpaceFile': 'space.json', 'trialCodeDirectory': str(REPO), 'maxTrialNumber': 4,
              'maxExperimentDuration': '3m', 'experimentWorkingDirectory': str(tmp_path / 'experiments'),
              'trialCommand': base['trialCommand'].replace('"cora"', '"pubmed"'),
              'tuner': {'name': 'NasextTPE', 'classArgs': {'num_startup': 2, 'seed': 0}}}
    path = tmp_path / 'config.yml'
    path.write_text(yaml.safe_dump(config))
    nt.register_tuners(verbose=False)
    port = nt.free_port()
    exp_id = nt.create(path, port)
    try:
        trials = nt.wait(port, timeout=180, poll=2, verbose=False)
    finally:
        nt.stop(exp_id)

    def left():
        found = []
        for p in psutil.process_iter(['cmdline']):
            try:
                if any(exp_id in part for part in (p.info['cmdline'] or [])):
                    found.append(p)
            except psutil.Error:
                pass
        return found
    deadline = time.time() + 30
    while left() and time.time() < deadline:
        time.sleep(1)
    assert left() == []
    table = NasBenchGraphTable('pubmed')
    assert len(trials) == 4
    for t in trials:
        assert t['status'] == 'SUCCEEDED', t
        rec = table.query(t['sample'])
        assert t['final']['default'] == pytest.approx(rec.valid) and t['final']['test'] == pytest.approx(rec.test)
        assert t['final']['params'] == pytest.approx(rec.params)
