"""``NasExperiment`` stopped and resumed from its checkpoint under torch >= 2.6 (whose
``torch.load`` is weights-only): NNI's own strategies and ours continue the search, with
``weights_only`` kept for every other load (``nni_nasext.adapters.checkpoint``)."""
import atexit
import pickle

import pytest
import torch

import nni.nas.strategy as nni_strategy
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.experiment import NasExperiment, NasExperimentConfig
from nni.nas.utils.serializer import TorchSerializer, get_default_serializer

from nni_nasext import registry
from nni_nasext.adapters import SearcherStrategy
from nni_nasext.adapters.checkpoint import SafeNasSerializer

from test_exhaustion import _evaluate

import nni
import torch.nn as nn
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear


class Wide(ModelSpace):
    """3 x 4 x 2 = 24 configurations: room for two runs without exhausting it."""

    def __init__(self):
        super().__init__()
        self.fc = MutableLinear(3, nni.choice('width', [2, 4, 8]))
        self.act = LayerChoice({'relu': nn.ReLU(), 'tanh': nn.Tanh(), 'sigmoid': nn.Sigmoid(), 'id': nn.Identity()},
                               label='act')
        self.out = MutableLinear(nni.choice('width', [2, 4, 8]), nni.choice('head', [1, 2]))


def run(strategy, tmp_path, trials, resume=False):
    config = NasExperimentConfig('sequential', 'raw', max_trial_number=trials, experiment_working_directory=str(tmp_path))
    exp = NasExperiment(Wide(), FunctionalEvaluator(_evaluate), strategy, config, id='resume-test')
    exp.resume() if resume else exp.run()
    atexit.unregister(exp.stop)
    return exp


STRATEGIES = {
    'nni-random': lambda: nni_strategy.Random(seed=0),
    'nni-evolution': lambda: nni_strategy.RegularizedEvolution(population_size=2, sample_size=1, seed=0),
    'ours-tpe': lambda: SearcherStrategy(registry.build('strategy', 'tpe', seed=0)),
    'ours-reinforce': lambda: SearcherStrategy(registry.build('strategy', 'reinforce', seed=0)),
}


@pytest.mark.parametrize('name', sorted(STRATEGIES))
def test_a_stopped_nas_experiment_resumes_under_weights_only_torch_load(name, tmp_path):
    assert isinstance(get_default_serializer(), SafeNasSerializer)
    first = run(STRATEGIES[name](), tmp_path, 3)
    before = [m.sample for m in first._engine.list_models()]
    assert len(before) == 3
    ckpt = next(tmp_path.glob('resume-test/checkpoint/state.ckpt.torch'))
    if name.startswith('nni'):
        # NNI's own loader fails on its strategies' numpy state under torch >= 2.6, and plain
        # torch.load stays weights-only outside our loader
        with pytest.raises(pickle.UnpicklingError):
            TorchSerializer().load(ckpt.with_suffix(''))
        with pytest.raises(pickle.UnpicklingError):
            torch.load(ckpt)
    else:
        TorchSerializer().load(ckpt.with_suffix(''))     # ours hold plain data: any loader reads them
    second = run(STRATEGIES[name](), tmp_path, 6, resume=True)
    models = list(second._engine.list_models())
    assert len(models) == 6                                   # 3 restored + 3 more, none lost
    assert [m.sample for m in models[:3]] == before
    assert all(m.metric is not None for m in models)
    if name.startswith('ours'):
        history = second.strategy.searcher.history
        assert len(history) == 6 and all(o['value'] is not None for o in history)
