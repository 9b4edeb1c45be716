"""The Lightning image-classification evaluator (nni_nasext.evaluators.ImageClassification)."""
import signal

import psutil
import pytest
import torch
from torch import nn

import nni
from nni.nas.evaluator import Evaluator

from nni_nasext.evaluators import ImageClassification, TrialFailed
from nni_nasext.search_spaces import QuickstartSpace

SAMPLE_A = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_3x3', '1_2': 'skip_connect',
            '0_3': 'nor_conv_1x1', '1_3': 'nor_conv_3x3', '2_3': 'avg_pool_3x3'}
SAMPLE_B = {'0_1': 'nor_conv_1x1', '0_2': 'none', '1_2': 'nor_conv_3x3',
            '0_3': 'skip_connect', '1_3': 'avg_pool_3x3', '2_3': 'nor_conv_1x1'}


@pytest.fixture
def reports(monkeypatch):
    """Capture what the evaluator reports through NNI's trial API."""
    got = {'intermediate': [], 'final': []}
    monkeypatch.setattr(nni, 'report_intermediate_result', got['intermediate'].append)
    monkeypatch.setattr(nni, 'report_final_result', got['final'].append)
    return got


@pytest.fixture(scope='module')
def evaluator():
    return ImageClassification('digits', max_epochs=2, seed=0)


def test_is_an_nni_evaluator():
    ev = ImageClassification()
    assert isinstance(ev, Evaluator)
    assert 'digits' in repr(ev)
    copy = nni.load(nni.dump(ImageClassification('digits', max_epochs=5, seed=3)))  # as sent to a trial
    assert isinstance(copy, ImageClassification) and (copy.max_epochs, copy.seed) == (5, 3)
    with pytest.raises(ValueError, match='optimizer'):
        ImageClassification(optimizer='rmsprop')


def test_trains_and_reports_every_epoch(evaluator, reports):
    accuracy = evaluator.evaluate(QuickstartSpace().freeze(SAMPLE_A))
    assert 0.3 < accuracy <= 1.0  # chance is 0.1
    assert len(reports['intermediate']) == 2 and reports['final'] == [accuracy]
    assert all(isinstance(a, float) and 0 <= a <= 1 for a in reports['intermediate'])
    assert reports['intermediate'][-1] == accuracy
    assert evaluator.info.num_classes == 10


def test_same_seed_same_accuracy(evaluator, reports):
    model = QuickstartSpace().freeze(SAMPLE_A)
    first = evaluator.evaluate(model)
    again = evaluator.evaluate(model)  # weights are re-initialised from the seed
    torch.manual_seed(12345)  # the global RNG state when the model is built does not matter
    rebuilt = evaluator.evaluate(QuickstartSpace().freeze(SAMPLE_A))
    fresh = ImageClassification('digits', max_epochs=2, seed=0).evaluate(QuickstartSpace().freeze(SAMPLE_A))
    assert first == again == rebuilt == fresh
    assert reports['intermediate'][:2] == reports['intermediate'][2:4]


def test_two_models_in_a_row(evaluator, reports):
    """NNI's own Classification evaluator fails here with KeyError: 'val_acc'."""
    a = evaluator.evaluate(QuickstartSpace().freeze(SAMPLE_A))
    b = evaluator.evaluate(QuickstartSpace().freeze(SAMPLE_B))
    assert a > 0.3 and b > 0.3
    assert len(reports['intermediate']) == 4 and reports['final'] == [a, b]


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float('nan')


def test_nan_loss_fails_the_trial(reports):
    ev = ImageClassification('digits', max_epochs=2, limit_train_batches=3)
    with pytest.raises(TrialFailed, match=r'(?i)nan.*epoch 1, step 1'):
        ev.evaluate(NaNNet())
    assert reports['final'] == []


class InterruptedNet(NaNNet):
    def forward(self, x):
        raise KeyboardInterrupt


def test_ctrl_c_stays_a_keyboard_interrupt(reports):
    """Lightning turns Ctrl-C into sys.exit(1) and ignores SIGINT; the evaluator undoes both."""
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        ImageClassification('digits', max_epochs=1).evaluate(InterruptedNet())
    assert signal.getsignal(signal.SIGINT) is handler
    assert reports['final'] == []


def test_runs_inside_nni_nas_experiment(tmp_path, monkeypatch):
    """NasExperiment + sequential engine: trained in this process, no NNI manager, no web server."""
    from nni.nas.experiment import NasExperiment, NasExperimentConfig
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.strategies import RandomSearch

    monkeypatch.chdir(tmp_path)  # NAS requires trial_code_directory == cwd
    # (conftest keeps NNI's experiment registry out of ~/nni-experiments)
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}

    strategy = SearcherStrategy(RandomSearch(seed=0))
    config = NasExperimentConfig('sequential', 'simplified', max_trial_number=2,
                                 experiment_working_directory=str(tmp_path / 'nni-experiments'))
    evaluator = ImageClassification('digits', max_epochs=1, limit_train_batches=10)
    exp = NasExperiment(QuickstartSpace(), evaluator, strategy, config)
    try:
        exp.run()
    finally:
        exp.stop()

    history = strategy.searcher.history
    assert len(history) == 2
    for obs in history:
        assert 0 <= obs['value'] <= 1 and obs['intermediates'] == [obs['value']]
    assert history[0]['sample'] != history[1]['sample']
    best = max(history, key=lambda o: o['value'])
    assert exp.export_top_models(formatter='dict') == [best['sample']]
    assert {p.pid for p in psutil.Process().children(recursive=True)} == children_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['nni-experiments']
