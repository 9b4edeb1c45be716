import random

import pytest
import torch

from nni_nasext.benchmarks import NasBench201Table, to_cellstr, to_index, to_sample
from nni_nasext.search_spaces.nasbench201 import (
    EDGE_LABELS, OPS, NasBench201Space, QuickstartSpace, all_samples, cellstr_to_sample, sample_to_cellstr,
)
from nni_nasext.space_spec import SpaceSpec


def test_space_has_six_edges_of_five_ops():
    spec = SpaceSpec.from_space(NasBench201Space(num_cells=1, channels=4))
    assert list(spec.dims) == EDGE_LABELS
    assert all(list(d.values) == OPS for d in spec.dims.values())
    assert spec.size == 15625


def test_cellstr_bijection_over_all_cells():
    seen = set()
    for sample in all_samples():
        cs = sample_to_cellstr(sample)
        assert cellstr_to_sample(cs) == sample
        seen.add(cs)
    assert len(seen) == 15625


def test_cellstr_format_matches_nb201():
    sample = dict(zip(EDGE_LABELS, ['nor_conv_3x3', 'nor_conv_3x3', 'nor_conv_3x3', 'skip_connect',
                                    'nor_conv_3x3', 'nor_conv_1x1']))
    assert sample_to_cellstr(sample) == \
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|'


@pytest.mark.parametrize('bad', ['', '|none~0|', '|none~0|+|none~0|none~1|+|none~0|none~1|bogus~2|',
                                 '|none~1|+|none~0|none~1|+|none~0|none~1|none~2|'])
def test_bad_cellstr_is_refused(bad):
    with pytest.raises(ValueError):
        cellstr_to_sample(bad)


def test_index_bijection_over_all_cells(nb12):
    indices = set()
    for sample in all_samples():
        idx = to_index(sample)
        assert to_sample(idx) == sample
        indices.add(idx)
    assert indices == set(range(15625))
    # the paper's best CIFAR-10 cell, as the data README names it
    assert to_cellstr(6111) == NasBench201Table().best('cifar10-valid', 200).cellstr


def test_table_optimal_rows():
    t = NasBench201Table()
    assert t.best('cifar10-valid').accuracy == pytest.approx(91.61, abs=0.01)
    assert t.best('cifar100').accuracy == pytest.approx(73.49, abs=0.01)
    assert t.best('ImageNet16-120').accuracy == pytest.approx(46.73, abs=0.01)
    with pytest.raises(ValueError, match='Unknown NB201 dataset'):
        t.query(sample_to_cellstr(next(all_samples())), 'cifar11')


def test_twelve_epoch_query_and_cost(nb12):
    t = NasBench201Table()
    r12, r200 = t.query(6111, 'cifar10-valid', 12), t.query(6111, 'cifar10-valid', 200)
    assert r12.accuracy < r200.accuracy
    assert r12.cost == pytest.approx(r200.cost * 12 / 200)


def test_missing_12_epoch_table_names_where_it_looked(monkeypatch, tmp_path):
    from nni_nasext import benchmarks
    from nni_nasext.data_paths import DataNotFoundError
    monkeypatch.setenv('NASEXT_DATA', str(tmp_path))
    benchmarks._mini_bench.cache_clear()
    benchmarks.nb201_table.cache_clear()
    try:
        with pytest.raises(DataNotFoundError) as err:
            NasBench201Table().query(next(all_samples()), 'cifar10-valid', 12)
        assert str(tmp_path) in str(err.value) and '12-epoch' in str(err.value)
    finally:
        benchmarks._mini_bench.cache_clear()
        benchmarks.nb201_table.cache_clear()


def test_frozen_network_parameter_count_matches_benchmark():
    """Our network, in the paper's configuration, has the parameter count NB201 lists."""
    t = NasBench201Table()
    space = NasBench201Space(num_cells=5, channels=16, num_classes=10)
    rng = random.Random(0)
    for _ in range(3):
        sample = {k: rng.choice(OPS) for k in EDGE_LABELS}
        net = space.freeze(sample)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        assert params == pytest.approx(t.query(sample, 'cifar10-valid', 200).params, abs=0.002)


@pytest.mark.parametrize('ops', [('none',) * 6, ('nor_conv_3x3',) * 6, ('skip_connect', 'avg_pool_3x3', 'nor_conv_1x1',
                                                                         'none', 'nor_conv_3x3', 'skip_connect')])
def test_sampled_networks_run_forward_and_backward(ops):
    torch.manual_seed(0)
    net = QuickstartSpace().freeze(dict(zip(EDGE_LABELS, ops)))
    out = net(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 10)
    out.sum().backward()
    big = NasBench201Space(num_cells=1, channels=8).freeze(dict(zip(EDGE_LABELS, ops)))
    assert big(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_sample_outside_space_is_refused():
    space = QuickstartSpace()
    with pytest.raises(Exception):
        space.freeze({**dict.fromkeys(EDGE_LABELS, 'none'), '0_1': 'conv_9x9'})


def test_nni_database_is_used_first_when_the_user_has_it(monkeypatch, tmp_path):
    """A small database in NNI's own schema stands in for the user's nasbench201 database."""
    from playhouse.sqlite_ext import SqliteExtDatabase
    import nni.nas.benchmark.constants as constants
    import nni.nas.benchmark.utils as bench_utils
    from nni.nas.benchmark.nasbench201.schema import Nb201TrialConfig, Nb201TrialStats, proxy
    from nni_nasext import benchmarks

    path = tmp_path / 'nasbench201-b2b60732.db'
    db = SqliteExtDatabase(str(path))
    old_proxy = proxy.obj
    proxy.initialize(db)
    db.create_tables([Nb201TrialConfig, Nb201TrialStats])
    cell = dict(zip(EDGE_LABELS, ['conv_3x3', 'conv_3x3', 'conv_3x3', 'skip_connect', 'conv_3x3', 'conv_1x1']))
    for epochs, accs, seconds in ((12, (80., 82.), 150.), (200, (91., 92.), 2500.)):
        config = Nb201TrialConfig.create(arch=cell, num_epochs=epochs, num_channels=16, num_cells=5,
                                         dataset='cifar10-valid')
        for seed, acc in enumerate(accs):
            Nb201TrialStats.create(config=config, seed=seed, train_acc=99., valid_acc=acc, test_acc=acc,
                                   ori_test_acc=acc, parameters=1.07, latency=0.02, flops=150.,
                                   training_time=seconds, valid_evaluation_time=1., test_evaluation_time=1.,
                                   ori_test_evaluation_time=1.)
    monkeypatch.setattr(constants, 'DATABASE_DIR', str(tmp_path))
    monkeypatch.setitem(bench_utils._loaded_benchmarks, 'nasbench201', db)
    benchmarks.nb201_table.cache_clear()
    try:
        table = NasBench201Table()
        ours = {k: {'conv_3x3': 'nor_conv_3x3', 'conv_1x1': 'nor_conv_1x1'}.get(v, v) for k, v in cell.items()}
        r12, r200 = table.query(ours, 'cifar10-valid', 12), table.query(ours, 'cifar10-valid', 200)
        assert (r12.accuracy, r12.cost, r200.accuracy, r200.cost) == (81., 150., 91.5, 2500.)
        assert 'NNI database' in table.source('cifar10-valid', 12)
        with pytest.raises(KeyError, match='no 200-epoch record'):
            table.query(next(all_samples()), 'cifar10-valid', 200)
    finally:
        benchmarks.nb201_table.cache_clear()
        proxy.initialize(old_proxy)


def test_fast_freeze_builds_exactly_the_network_nni_freeze_builds():
    """``NasBench201Space.freeze`` copies only the chosen candidates: same modules, names, weights
    and attributes as NNI's recursive freeze (which copies every candidate), and NNI's error for a
    bad sample."""
    import random

    import torch
    from nni.mutable import SampleValidationError
    from nni.nas.nn.pytorch.base import recursive_freeze

    from nni_nasext.search_spaces.nasbench201 import NasBench201Space, QuickstartSpace, distinct_random_samples
    for space in (NasBench201Space(num_cells=1, channels=4), QuickstartSpace()):
        for cell in distinct_random_samples(8, random.Random(0)):
            a, b = recursive_freeze(space, cell, include_root=False)[0], space.freeze(cell)
            assert type(a) is type(b) and [n for n, _ in a.named_modules()] == [n for n, _ in b.named_modules()]
            assert [type(m) for m in a.modules()] == [type(m) for m in b.modules()]
            sa, sb = a.state_dict(), b.state_dict()
            assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
            assert a.__dict__.keys() == b.__dict__.keys() and not b.simplify()
            x = torch.randn(2, space.stem[0].in_channels, 8, 8)
            assert torch.equal(a.eval()(x), b.eval()(x))
            assert all(p.data_ptr() != q.data_ptr() for p, q in zip(space.parameters(), b.parameters()))
    with pytest.raises(SampleValidationError):
        NasBench201Space(num_cells=1, channels=4).freeze({'0_1': 'conv_7x7'})
