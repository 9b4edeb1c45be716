"""Hardware-aware NAS on NAS-Bench-201 (issue 18, parts 1 and 3): measured latency of every cell on
26 devices and FLOPs as data, the lookup evaluator reporting every objective, and the
constrained, MnasNet-reward and Pareto searchers (both NNI faces)."""
import math

import numpy as np
import pytest

from nni_nasext.hardware import latency as hw_latency
from nni_nasext.data_paths import DataNotFoundError
from nni_nasext.space_spec import SpaceSpec
from conftest import REPO

try:
    DEVICES = hw_latency.latency_devices()
except DataNotFoundError as err:   # pragma: no cover - CI has ../shared/data
    pytest.skip(f'NB201 latency tables not found: {err}', allow_module_level=True)

from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS, NasBench201Space   # noqa: E402
from nni_nasext.strategies.searchers.multi_objective import (  # noqa: E402
    ConstrainedEvolution, MnasNetEvolution, ParetoEvolution, hypervolume, mnasnet_reward, pareto_front,
)

NB201 = SpaceSpec.from_json({e: {'_type': 'choice', '_value': list(OPS)} for e in EDGE_LABELS})
SKIP3 = {e: 'skip_connect' for e in EDGE_LABELS}
CONV3 = {e: 'nor_conv_3x3' for e in EDGE_LABELS}


# ------------------------------------------------------------------------- latency and FLOPs as data

def test_27_device_tables_each_with_every_cell():
    assert len(DEVICES) == 27 and 'raspi4' in DEVICES   # the data's README says 26: it holds 27 tables and 'titanx_256' in DEVICES and 'fpga' in DEVICES
    for d in ('raspi4', 'titanx_256', 'pixel3'):
        table = hw_latency.latency_table(d)
        assert table.shape == (15625,) and np.all(table > 0)


def test_a_heavier_cell_is_slower_on_a_cpu_like_device():
    for d in ('raspi4', 'gold_6226', 'pixel3'):
        assert hw_latency.latency_ms(CONV3, d) > hw_latency.latency_ms(SKIP3, d)


def test_the_latency_index_agrees_with_the_12_epoch_tables_index():
    from nni_nasext.benchmarks import _index_maps
    try:
        mini, _ = _index_maps()
    except DataNotFoundError:
        pytest.skip('no 12-epoch table')
    help_index = hw_latency._index()
    assert all(help_index[cs] == i for cs, i in list(mini.items())[:2000])


def test_an_unknown_device_lists_the_known_ones():
    with pytest.raises(ValueError, match='raspi4'):
        hw_latency.latency_table('cray-1')
    with pytest.raises(ValueError, match='known devices'):
        hw_latency.cost_model('nb201_latency:cray-1')


def test_flops_per_edge_sum_equals_a_direct_count():
    import random
    rng = random.Random(0)
    for _ in range(3):
        sample = {e: rng.choice(OPS) for e in EDGE_LABELS}
        direct = hw_latency._count_macs(NasBench201Space(num_cells=5, channels=16).freeze(sample), 32) / 1e6
        assert hw_latency.nb201_flops(sample) == pytest.approx(direct, rel=1e-9)
    # NB201's CIFAR-10 FLOPs range from 7.78 M (cells without convolutions) to 220.11 M (all conv 3x3)
    assert hw_latency.nb201_flops(CONV3) == pytest.approx(220.11968)
    assert hw_latency.nb201_flops(SKIP3) == pytest.approx(7.78304)


def test_the_lookup_evaluator_reports_every_objective(monkeypatch):
    from nni_nasext.evaluators.nb201_query import NB201Query
    reported = []
    import nni
    monkeypatch.setattr(nni, 'report_final_result', reported.append)
    ev = NB201Query('cifar10-valid', 200, device='raspi4')
    value = ev.evaluate(CONV3)
    (final,) = reported
    assert set(final) == {'default', 'cost', 'params', 'latency_ms', 'flops'} and final['default'] == value
    assert final['latency_ms'] == hw_latency.latency_ms(CONV3, 'raspi4')
    with pytest.raises(ValueError, match='known devices'):
        NB201Query(device='abacus')


# ------------------------------------------------------------------------- searchers

def test_mnasnet_reward_soft_and_hard():
    assert mnasnet_reward(0.9, 10, 10) == pytest.approx(0.9)
    assert mnasnet_reward(0.9, 20, 10, 0.0, -1.0) == pytest.approx(0.45)      # hard: halved at twice the target
    assert mnasnet_reward(0.9, 5, 10, 0.0, -1.0) == pytest.approx(0.9)        # hard: no bonus below it
    assert mnasnet_reward(0.9, 5, 10) > 0.9 > mnasnet_reward(0.9, 20, 10)     # soft: both ways


def _run(searcher, n=60, device='raspi4'):
    from nni_nasext.benchmarks import NasBench201Table
    table = NasBench201Table()
    searcher.configure(NB201)
    asked = []
    for _ in range(n):
        s = searcher.ask()
        asked.append(s)
        searcher.tell(s, table.query(s, 'cifar10-valid', 200).accuracy)
    return asked


def test_constrained_evolution_never_asks_over_the_budget():
    limit = float(np.median(hw_latency.latency_table('raspi4')))
    se = ConstrainedEvolution('nb201_latency:raspi4', limit, population_size=10, sample_size=3, seed=0)
    asked = _run(se)
    assert all(hw_latency.latency_ms(s, 'raspi4') <= limit for s in asked)
    assert se.num_infeasible > 0   # it did draw some over the budget, and trained none of them
    with pytest.raises(ValueError, match='raise the limit'):
        _run(ConstrainedEvolution('nb201_latency:raspi4', 1e-6, max_tries=50, seed=0), n=1)


def test_mnasnet_evolution_compares_rewards():
    lat_fast, lat_slow = hw_latency.latency_ms(SKIP3, 'raspi4'), hw_latency.latency_ms(CONV3, 'raspi4')
    target = (lat_fast + lat_slow) / 2   # the fast cell within it, the slow one over it
    se = MnasNetEvolution('nb201_latency:raspi4', target=target, mode='hard', seed=0)
    se.configure(NB201)
    fast, slow = {'sample': SKIP3, 'value': 80.0}, {'sample': CONV3, 'value': 90.0}
    assert se._score(fast) == pytest.approx(80.0)                       # hard: no bonus within the target
    assert se._score(slow) == pytest.approx(90.0 * target / lat_slow)   # hard: w = -1 over it
    assert se._score(slow) < se._score(fast)                            # so the tournament prefers the fast one
    with pytest.raises(ValueError, match='mode'):
        MnasNetEvolution('nb201_flops', target=1.0, mode='medium')


def test_pareto_front_and_hypervolume_are_pymoos():
    pts = [(0.9, 10.0), (0.8, 5.0), (0.85, 12.0), (0.7, 6.0)]
    assert pareto_front(pts) == [0, 1]
    ref = (0.5, 20.0)
    # two rectangles: [0.5, 0.9] x [10, 20] and [0.5, 0.8] x [5, 10]
    assert hypervolume(pts, ref) == pytest.approx(0.4 * 10 + 0.3 * 5)
    assert hypervolume([(0.4, 1.0)], ref) == 0.0


def test_pareto_evolution_keeps_a_population_of_the_best_fronts():
    se = ParetoEvolution('nb201_latency:raspi4', population_size=10, seed=0)
    _run(se, n=60)
    assert len(se.population) == 10
    front = se.front()
    assert front and all(o['value'] is not None for o in front)
    pts = [(o['value'], se.cost_of(o['sample'])) for o in se.history]
    assert len(front) == len(pareto_front(pts))


def test_the_searchers_are_strategies_and_tuners():
    from nni_nasext import registry
    for name, tuner in (('constrained_evolution', 'NasextConstrainedEvolution'), ('mnasnet', 'NasextMnasNet'),
                        ('pareto_evolution', 'NasextParetoEvolution')):
        assert registry.lookup('strategy', name).extra['tuner'] == tuner
    from nni_nasext.adapters.tuner import SearcherTuner
    tuner = SearcherTuner('pareto_evolution', cost='nb201_latency:pixel3', population_size=4, seed=1)
    tuner.update_search_space({e: {'_type': 'choice', '_value': list(OPS)} for e in EDGE_LABELS})
    params = tuner.generate_parameters(0)
    assert set(params) == set(EDGE_LABELS)
    tuner.receive_trial_result(0, params, {'default': 70.0, 'latency_ms': 3.0})
    assert tuner.searcher.history[0]['value'] == 70.0 and not math.isnan(tuner.searcher.cost_of(params))


def test_pareto_search_under_nnictl_shows_every_objective(tmp_path):
    """The shipped config, shortened: every trial's final result in NNI carries the accuracy and
    the latency, FLOPs and parameters, and the latency is the device's table value."""
    import json

    import yaml
    from test_nnictl_integration import processes_mentioning, run_experiment

    from nni_nasext import nnictl_tools as nt
    shipped = REPO / 'experiments' / 'strategies' / 'pareto_evolution.yml'
    config = nt.load_config(shipped)
    config.update(searchSpaceFile=str((shipped.parent / config['searchSpaceFile']).resolve()),
                  trialCodeDirectory=str((shipped.parent / config['trialCodeDirectory']).resolve()),
                  experimentWorkingDirectory=str(tmp_path / 'experiments'), maxTrialNumber=6, maxExperimentDuration='4m')
    path = tmp_path / 'pareto.yml'
    path.write_text(yaml.safe_dump(config))
    exp_id, port, trials, _ = run_experiment(path)
    assert len(trials) == 6 and all(t['status'] == 'SUCCEEDED' for t in trials), trials
    device = config['tuner']['classArgs']['cost'].split(':')[1]
    for t in trials:
        final = t['final'] if isinstance(t['final'], dict) else json.loads(t['final'])
        assert {'default', 'latency_ms', 'flops', 'params'} <= set(final)
        assert final['latency_ms'] == pytest.approx(hw_latency.latency_ms(t['sample'], device))
    assert processes_mentioning(exp_id) == []


def test_pareto_search_as_an_nni_strategy_with_every_objective():
    """``SearcherStrategy`` (the NasExperiment face) on NNI's execution engine. NNI's engine keeps only
    a model's ``default`` metric, so the searcher takes the latency from its cost model (the same
    table the evaluator reports); its front is non-dominated."""
    from nni_nasext.adapters.strategy import SearcherStrategy
    from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
    ev = NasBench201Lookup('cifar10-valid', 200, device='pixel3')
    strategy = SearcherStrategy(ParetoEvolution('nb201_latency:pixel3', population_size=4, seed=0))
    engine = simulate_search(strategy, ev, budget=30000)
    models = list(engine.list_models())
    assert len(models) >= 10 and len(strategy.searcher.history) == len(models)
    for m, obs in zip(models, strategy.searcher.history):
        assert m.metric == pytest.approx(ev.metrics(m.sample)['default']) == pytest.approx(obs['value'])
        assert strategy.searcher.cost_of(obs['sample']) == ev.metrics(obs['sample'])['latency_ms']
    front = strategy.searcher.front()
    pts = [(o['value'], strategy.searcher.cost_of(o['sample'])) for o in front]
    assert all(not (b[0] >= a[0] and b[1] <= a[1] and b != a) for a in pts for b in pts)


def test_a_latency_budget_on_any_space_through_the_predictor():
    """``predicted_latency:<space>`` costs the networks of any registered space on this machine
    (here ProxylessNAS, small): constrained evolution asks only samples within the budget."""
    from nni_nasext import registry
    args = {'space_args': {'width_mult': 0.25, 'num_classes': 5}, 'input_shape': [1, 3, 32, 32], 'fit': 0, 'repeats': 3}
    cost = hw_latency.cost_model('predicted_latency:proxylessnas', **args)
    spec = SpaceSpec.from_space(registry.build('space', 'proxylessnas', **args['space_args']))
    import random
    rng = random.Random(0)
    costs = [cost(spec.random(rng)) for _ in range(6)]
    assert all(c > 0 for c in costs) and len(cost.predictor.table) > 10
    limit = float(np.median(costs))
    se = ConstrainedEvolution('predicted_latency:proxylessnas', limit, cost_args=args, population_size=4, sample_size=2,
                              seed=0)
    se.configure(spec)
    for i in range(8):
        s = se.ask()
        assert se.cost_of(s) <= limit
        se.tell(s, float(i))
    with pytest.raises(ValueError, match='no arguments'):
        hw_latency.cost_model('nb201_flops', fit=3)
