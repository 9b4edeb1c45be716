"""The latency predictor (nni_nasext/hardware/latency_predictor.py): operations keyed by type, configuration
and input shape, each profiled once; the linear correction; persistence. Timings are only compared
where they differ by orders of magnitude (a 64-channel 3x3 convolution against a ReLU)."""
import pytest
import torch
from torch import nn

from nni_nasext.hardware.latency_predictor import LatencyPredictor, measure_latency


class Net(nn.Module):
    def __init__(self, width=8, twice=False):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(width, 10)
        self.twice = twice

    def forward(self, x):
        x = self.act(self.conv(x))
        if self.twice:
            x = self.act(x)
        return self.head(x.mean((2, 3)))


def test_operations_are_keyed_by_type_configuration_and_shape():
    p = LatencyPredictor((1, 3, 16, 16), repeats=3, warmup=1)
    ops = p.operations(Net(8, twice=True))
    keys = [k for k, _, _ in ops]
    assert len(keys) == 4 and keys[1] == keys[2]                     # the ReLU called twice, same key
    assert 'Conv2d(3, 8, kernel_size=(3, 3)' in keys[0] and keys[0].endswith('@(1, 3, 16, 16)')
    assert keys[-1].startswith('Linear(in_features=8') and keys[-1].endswith('@(1, 8)')
    assert p.operations(Net(16))[0][0] != keys[0]                      # another width: another operation


def test_each_operation_is_profiled_once():
    p = LatencyPredictor((1, 3, 16, 16), repeats=3, warmup=1)
    s1, n1 = p.features(Net(8, twice=True))
    size = len(p.table)
    s2, n2 = p.features(Net(8, twice=True))
    assert size == 3 and len(p.table) == 3 and (s1, n1) == (s2, n2) and n1 == 4


def test_a_big_convolution_profiles_slower_than_a_relu():
    p = LatencyPredictor((1, 64, 32, 32), repeats=5, warmup=2)
    conv = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1))
    relu = nn.Sequential(nn.ReLU())
    assert p.features(conv)[0] > 5 * p.features(relu)[0]


def test_the_correction_is_least_squares_on_measured_networks():
    p = LatencyPredictor((1, 3, 16, 16), repeats=3, warmup=1)
    nets = [Net(w, twice=t) for w in (4, 8, 16) for t in (False, True)]
    truth = [2.0 * s + 0.5 * n + 1.0 for s, n in (p.features(m) for m in nets)]
    p.fit(nets, truth)
    assert p.coef == pytest.approx((2.0, 0.5, 1.0), rel=1e-6, abs=1e-6)
    assert p.predict(nets[0]) == pytest.approx(truth[0])
    with pytest.raises(ValueError, match='at least 3'):
        p.fit(nets[:2], truth[:2])


def test_state_round_trip_and_input_shape_check():
    p = LatencyPredictor((1, 3, 16, 16), repeats=3, warmup=1)
    p.features(Net())
    q = LatencyPredictor((1, 3, 16, 16))
    q.load_state_dict(p.state_dict())
    assert q.table == p.table and q.coef == p.coef
    with pytest.raises(ValueError, match='input'):
        LatencyPredictor((1, 3, 32, 32)).load_state_dict(p.state_dict())


def test_measure_latency_is_positive_and_leaves_the_thread_count():
    before = torch.get_num_threads()
    assert measure_latency(Net(), (1, 3, 16, 16), repeats=3, warmup=1, threads=1) > 0
    assert torch.get_num_threads() == before
