"""Every registered space, end to end: searched by our strategy under NNI's engine (as
NasExperiment runs it), and trained-and-scored by the nnictl trial program."""
import json
import random

import pytest
from nni.nas.execution import SequentialExecutionEngine
from nni.nas.space import RawFormatModelSpace

from nni_nasext import registry
from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators.params import ParameterCount
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch
from nni_nasext.trial_code.run import main as trial

SMALL = {'nasbench201': {'num_cells': 1, 'channels': 4}, 'nasbench101': {'stem_channels': 8, 'num_stacks': 1, 'cells_per_stack': 1},
         'proxylessnas': {'width_mult': 0.25, 'num_classes': 5}, 'mnasnet': {'width_mult': 0.25, 'num_classes': 5},
         'ofa': {'width_mult': 0.25, 'num_classes': 5}, 'efficientnet_scaling': {'base': 'tiny', 'num_classes': 5},
         'randwire': {'channels': 8, 'nodes': 8, 'head_channels': 32},
         'rnn_cells': {'embed_size': 8, 'hidden_size': 8}, 'enas_macro': {'num_layers': 4, 'width': 8}, 'nasrl': {'num_layers': 4}, 'metaqnn': {'max_layers': 6},
         **{n: {'channels': 4, 'num_cells': 1} for n in ('nasnet_cells', 'darts_cells', 'enas_micro', 'amoebanet_cells',
                                                          'pnas_cells')}}
SPACES = sorted(registry.SPACES)


class Engine(SequentialExecutionEngine):
    def __init__(self, n):
        super().__init__(continue_on_failure=True)
        self.n = n

    def budget_available(self):
        return len(list(self.list_models())) < self.n


@pytest.mark.parametrize('name', SPACES)
def test_space_searched_under_nni_engine(name):
    space = registry.build('space', name, **SMALL.get(name, {}))
    strategy = SearcherStrategy(RandomSearch(seed=0))
    engine = Engine(3)
    strategy(RawFormatModelSpace.from_model(space, ParameterCount()), engine)
    models = list(engine.list_models())
    assert len(models) == 3 and len(strategy.searcher.history) == 3
    # a sample the space refuses at freeze (NB101 invalid cells, infeasible EfficientNet scalings)
    # is a failed model, told to the searcher; the others are scored
    scored = [m.metric for m in models if m.metric is not None]
    assert all(v > 0 for v in scored)
    assert len(scored) + strategy.searcher.num_failed >= 3


@pytest.mark.parametrize('name', SPACES)
def test_space_runs_in_the_trial_program(name, tmp_path):
    space = registry.build('space', name, **SMALL.get(name, {}))
    spec = SpaceSpec.from_space(space)
    rng = random.Random(1)
    for attempt in range(50):  # a sample the space accepts at freeze
        sample = spec.random(rng)
        try:
            space.freeze(sample)
            break
        except ValueError:
            continue
    rc = trial(['--space', name, '--space-args', json.dumps(SMALL.get(name, {})), '--evaluator', 'params',
                '--sample', json.dumps(sample), '--output-dir', str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['value'] > 0 and result['params'] == pytest.approx(result['value'] * 1e6, rel=1e-6)


@pytest.mark.parametrize('name', SPACES)
def test_sample_outside_the_space_is_refused_by_name(name, tmp_path, capsys):
    spec = SpaceSpec.from_space(registry.build('space', name, **SMALL.get(name, {})))
    sample = spec.random(random.Random(0))
    label, dim = next((label, d) for label, d in spec.dims.items() if d.kind == 'choice')
    bad = {**sample, label: 'no_such_op'}
    rc = trial(['--space', name, '--space-args', json.dumps(SMALL.get(name, {})), '--evaluator', 'params',
                '--sample', json.dumps(bad), '--output-dir', str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and repr(label) in err and 'no_such_op' in err and repr(list(dim.values)[0]) in err
    rc = trial(['--space', name, '--space-args', json.dumps(SMALL.get(name, {})), '--evaluator', 'params',
                '--sample', json.dumps({**sample, 'no_such_label': 1}), '--output-dir', str(tmp_path)])
    assert rc == 1 and 'no_such_label' in capsys.readouterr().err
