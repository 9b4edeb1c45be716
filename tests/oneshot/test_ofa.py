"""Once-for-All: the elastic supernet, progressive shrinking and the constrained sub-network search."""
import json

import pytest
import torch

from nni_nasext.evaluators.proxies import score_flops
from nni_nasext.search_spaces.mobile import OFASpace, ofa_max_sample
from nni_nasext.strategies.oneshot.ofa import (
    OFAModule, evaluate_subnet, evolve_subnet, phase_choices, random_subnets, search_ofa,
)
from net_helpers import randomize_batch_norm
from nni_nasext.strategies.oneshot.ofa_supernet import ElasticMBConv, OFASupernet, calibrate_bn, ofa_min_sample
from conftest import REPO

RES = (8, 12, 16)


def _supernet(seed=0):
    torch.manual_seed(seed)
    net = OFASupernet(num_classes=5, resolutions=RES, width_mult=0.25, in_channels=1, dropout=0.0)
    with torch.no_grad():  # non-trivial kernel transforms and BN statistics
        for m in net.modules():
            if isinstance(m, ElasticMBConv):
                for p in m.transform.values():
                    p.add_(0.1 * torch.randn_like(p))
    return randomize_batch_norm(net).eval()


def _batches(n=3, size=16, seed=0, classes=5):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 16, 16, generator=g), torch.randint(classes, (size,), generator=g))
            for _ in range(n)]


def test_export_computes_what_the_supernet_computes():
    net = _supernet()
    x = torch.randn(4, 1, 16, 16)
    gen = torch.Generator().manual_seed(1)
    samples = [ofa_max_sample(16), ofa_min_sample(8)] + [net.random_sample(gen) for _ in range(4)]
    for sample in samples:
        net.set_active(sample)
        frozen = net.export(sample).eval()
        assert type(frozen).__name__ == 'MobileNetwork'
        assert torch.allclose(net(x), frozen(x), atol=1e-5)
    # and the frozen network is exactly the space's network for that sample
    space_net = OFASpace(num_classes=5, resolutions=RES, width_mult=0.25, in_channels=1, dropout=0.0).freeze(sample).net
    assert [k for k in space_net.state_dict()] == [k for k in frozen.state_dict()]


def test_macs_match_the_hook_count_of_the_exported_network():
    net = _supernet()
    gen = torch.Generator().manual_seed(2)
    for sample in [ofa_max_sample(16), ofa_min_sample(8), net.random_sample(gen), net.random_sample(gen)]:
        frozen = net.export(sample)
        assert net.macs(sample) == round(score_flops(frozen, torch.randn(1, 1, 16, 16)) * 1e6)
    assert net.macs(ofa_min_sample(8)) < net.macs(ofa_max_sample(16))


def test_elastic_kernel_is_the_transformed_centre():
    block = ElasticMBConv(8, 8, 1, 'relu', se=False)
    w7 = block.depthwise.weight
    assert torch.equal(block.kernel_weight(7), w7)
    # identity transforms: the 5x5 and 3x3 kernels are the centres of the 7x7 one
    assert torch.allclose(block.kernel_weight(5), w7[:, :, 1:6, 1:6])
    assert torch.allclose(block.kernel_weight(3), w7[:, :, 2:5, 2:5])
    with torch.no_grad():
        block.transform['5'].mul_(2.0)
    assert torch.allclose(block.kernel_weight(5), 2 * w7[:, :, 1:6, 1:6])
    assert torch.allclose(block.kernel_weight(3), 2 * w7[:, :, 2:5, 2:5])   # 3x3 comes from the transformed 5x5


def test_narrow_blocks_use_only_the_first_hidden_channels():
    block = ElasticMBConv(8, 8, 1, 'hswish', se=True).eval()
    block.expansion, block.kernel = 3, 5
    x = torch.randn(2, 8, 6, 6)
    before = block(x)
    h = block.hidden(3)
    with torch.no_grad():
        block.expand.weight[h:].normal_()
        block.depthwise.weight[h:].normal_()
        block.project.weight[:, h:].normal_()
    assert torch.equal(block(x), before)
    block.expansion = 6
    assert not torch.allclose(block(x), before)


def test_channel_sorting_keeps_the_largest_network_and_ranks_channels():
    net = _supernet()
    x = torch.randn(3, 1, 16, 16)
    net.set_active(ofa_max_sample(16))
    before = net(x)
    net.sort_channels()
    assert torch.allclose(net(x), before, atol=1e-5)
    block = net.stages[1][0]
    importance = block.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_calibrate_bn_restores_statistics_and_mode():
    net = _supernet().train()
    bn = net.stages[0][0].expand_bn
    mean = bn.running_mean.clone()
    with calibrate_bn(net, _batches()) as calibrated:
        assert not calibrated.training
        assert not torch.allclose(bn.running_mean, mean)
    assert torch.equal(bn.running_mean, mean) and net.training


def test_phase_choices_follow_progressive_shrinking():
    assert phase_choices('full', False) == {'kernels': (7,), 'depths': (4,), 'expansions': (6,)}
    assert phase_choices('kernel', False) == {'kernels': (3, 5, 7), 'depths': (4,), 'expansions': (6,)}
    assert phase_choices('depth', False)['depths'] == (3, 4)
    assert phase_choices('depth', True)['depths'] == (2, 3, 4)
    assert phase_choices('expand', False)['expansions'] == (4, 6)
    assert phase_choices('expand', True) == {'kernels': (3, 5, 7), 'depths': (2, 3, 4), 'expansions': (3, 4, 6)}
    # without progressive shrinking everything is elastic right after the full phase
    assert phase_choices('kernel', False, progressive=False)['expansions'] == (3, 4, 6)
    with pytest.raises(ValueError, match='phase'):
        phase_choices('width', False)


def test_search_respects_the_budget_and_is_deterministic():
    net = _supernet()
    calib, held = _batches(2, seed=1), _batches(2, seed=2)
    budget = sorted(net.macs(s) for s in random_subnets(net, 30, seed=0))[10]
    a = evolve_subnet(net, calib, held, max_macs=budget, population=5, generations=3, parents=2, seed=3)
    b = evolve_subnet(net, calib, held, max_macs=budget, population=5, generations=3, parents=2, seed=3)
    assert a['sample'] == b['sample'] and a['accuracy'] == b['accuracy']
    assert a['macs'] <= budget and net.macs(a['sample']) == a['macs']
    assert a['curve'] == sorted(a['curve'])   # elitist: the best never gets worse
    assert a['accuracy'] == evaluate_subnet(net, a['sample'], calib, held)
    net.check_sample(a['sample'])
    OFASpace(num_classes=5, resolutions=RES, width_mult=0.25, in_channels=1).freeze(a['sample'])
    with pytest.raises(ValueError, match='No sub-network'):   # refused at once: the smallest is over
        random_subnets(net, 5, max_macs=1, tries=50)
    with pytest.raises(ValueError, match='Found only'):
        random_subnets(net, 10 ** 6, tries=50)


def test_bad_samples_and_settings_are_refused():
    net = _supernet()
    sample = ofa_max_sample(16)
    with pytest.raises(ValueError, match='not allowed'):
        net.check_sample({**sample, 'stage0_depth': 5})
    with pytest.raises(ValueError, match='misses'):
        net.export({k: v for k, v in sample.items() if k != 'resolution'})
    with pytest.raises(ValueError, match='schedule'):
        OFAModule(schedule={'full': 1, 'width': 2})
    with pytest.raises(ValueError, match='schedule'):
        OFAModule(schedule={'full': 0})


def test_progressive_shrinking_trains_and_searches_on_digits():
    torch.set_num_threads(1)
    result = search_ofa(dataset='digits', limit=160, batch_size=32, resolutions=(8, 12),
                        schedule={'full': 1, 'kernel': 1, 'depth': 1, 'expand': 1}, max_macs=3e5,
                        population=3, generations=1, seed=0, verbose=False, accelerator='cpu', val_batches=1)
    module = result['module']
    assert result['phase'] == ['full', 'kernel', 'depth', 'expand']
    assert len(result['val_acc']) == 4 and len(result['val_acc_min']) == 4
    assert all(l == l for l in result['train_loss'])
    assert module.teacher is not None and module._sorted   # KD teacher from the full phase; channels sorted
    assert result['macs'] <= 3e5
    assert 0.0 <= result['val_acc_subnet'] <= 1.0
    json.dumps({k: v for k, v in result.items() if k not in ('module', 'calibration')})


def test_trial_program_writes_the_sub_network(tmp_path):
    from nni_nasext.trial_code import ofa as trial
    code = trial.main(['--dataset', 'digits', '--limit', '300', '--full', '1', '--shrink', '0', '--resolutions', '8',
                       '12', '--population', '3', '--generations', '1', '--max-macs', '4e5', '--accelerator', 'cpu',
                       '--output-dir', str(tmp_path)])
    assert code == 0
    sample = json.loads((tmp_path / 'derived_sample.json').read_text())
    record = json.loads((tmp_path / 'result.json').read_text())
    assert record['space'] == 'ofa' and record['macs'] <= 4e5 and record['sample'] == sample
    net = OFASpace(**record['space_args']).freeze(sample).net
    net.load_state_dict(torch.load(tmp_path / 'subnet.pt'))
    assert trial.main(['--dataset', 'nope', '--output-dir', str(tmp_path)]) == 1
    assert trial.main(['--full', '0', '--shrink', '0', '--output-dir', str(tmp_path)]) == 1


def test_ofa_strategy_under_nas_experiment(tmp_path):
    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters import OFAStrategy
    from nni_nasext.evaluators.classification import ImageClassification

    torch.set_num_threads(1)
    with pytest.raises(ValueError, match='Unknown OFA arguments'):
        OFAStrategy(colour=1)
    with pytest.raises(ValueError, match='latency budget'):   # a budget without its predictor, before training
        OFAStrategy(max_latency=1.0)
    space = OFASpace(num_classes=10, resolutions=(8, 12), width_mult=0.25, in_channels=1)
    strategy = OFAStrategy(full=1, shrink=0, max_macs=4e5, population=3, generations=1, verbose=False)
    exp = NasExperiment(space, ImageClassification('digits', limit=300, batch_size=32, accelerator='cpu'), strategy)
    assert exp.config.execution_engine.name == 'sequential'
    exp.config.experiment_working_directory = str(tmp_path)
    try:
        exp.run()
        (sample,) = exp.export_top_models(formatter='dict')
    finally:
        exp.stop()
    assert sample == strategy.sample and strategy.result['macs'] <= 4e5
    net = strategy.subnet()
    assert type(net).__name__ == 'MobileNetwork'
    x = torch.randn(2, 1, 8, 8)
    assert net(x).shape == (2, 10)
    assert 'module' not in json.dumps(strategy.state_dict())


def test_shipped_nnictl_config_resolves():
    """experiments/oneshot/ofa.yml: its trial command and its one-point space give valid settings."""
    import shlex

    from nni_nasext import nnictl_tools as nt
    from nni_nasext.trial_code import ofa as trial
    shipped = REPO / 'experiments' / 'oneshot' / 'ofa.yml'
    config = nt.load_config(shipped)
    assert config['maxTrialNumber'] == 1 and config['trialConcurrency'] == 1
    words = shlex.split(config['trialCommand'])
    assert words[:3] == ['python3', '-m', 'nni_nasext.trial_code.ofa']
    space = json.loads((shipped.parent / config['searchSpaceFile']).read_text())
    params = {k: v['_value'][0] for k, v in space.items()}
    settings = trial.resolve(trial.build_parser().parse_args(words[3:]), params)
    assert settings['max_macs'] == params['max_macs'] and settings['dataset'] == 'digits'


# ------------------------------------------------------------------ under a latency budget (issue 18, part 4)

def _fake_predictor(input_shape):
    """A latency predictor whose operation 'timings' are a deterministic function of the operation."""
    import math

    from nni_nasext.hardware.latency_predictor import LatencyPredictor
    p = LatencyPredictor(input_shape)
    p._profile = lambda module, shape: 1e-3 * (1 + sum(w.numel() for w in module.parameters(recurse=False))) * \
        math.prod(shape[2:]) ** 0.5
    return p


def test_search_under_a_latency_budget_keeps_every_candidate_within_it():
    from nni_nasext.strategies.oneshot.ofa import latency_cost
    net = _supernet()
    calib, held = _batches(2, seed=1), _batches(2, seed=2)
    pred = _fake_predictor((1, 1, max(RES), max(RES)))
    cost = latency_cost(net, pred)
    pool = random_subnets(net, 30, seed=0)
    budget = sorted(cost(s) for s in pool)[10]
    seen = []
    counted = lambda s: (seen.append(s), cost(s))[1]  # noqa: E731
    a = evolve_subnet(net, calib, held, population=5, generations=3, parents=2, seed=3, cost=counted, max_cost=budget)
    assert a['cost'] <= budget and a['cost'] == pred.predict(net.export(a['sample']))
    # the constraint is the predictor's latency, not MACs: the largest sub-network's MACs are not a bound
    assert cost(ofa_max_sample(max(RES))) > budget
    assert seen  # the search priced its candidates with the given cost
    with pytest.raises(ValueError, match='go together'):
        evolve_subnet(net, calib, held, population=5, generations=1, max_cost=1.0)
    with pytest.raises(ValueError, match='max_cost'):
        random_subnets(net, 5, cost=cost, max_cost=0.0, tries=50)


def test_trial_program_searches_under_a_latency_budget(tmp_path):
    from nni_nasext.hardware.latency_predictor import LatencyPredictor
    from nni_nasext.trial_code import ofa as trial
    pred = LatencyPredictor((1, 1, 12, 12))
    pred.coef = (0.0, 0.0, 1.5)  # every sub-network 'costs' 1.5 ms: the budget below admits all
    path = tmp_path / 'predictor.json'
    path.write_text(json.dumps(pred.state_dict()))
    common = ['--dataset', 'digits', '--limit', '300', '--full', '1', '--shrink', '0', '--resolutions', '8', '12',
              '--population', '3', '--generations', '1', '--accelerator', 'cpu', '--output-dir', str(tmp_path)]
    assert trial.main(common + ['--max-latency', '2.0', '--latency-predictor', str(path)]) == 0
    record = json.loads((tmp_path / 'result.json').read_text())
    assert record['latency_ms'] == pytest.approx(1.5)
    assert trial.main(common + ['--max-latency', '2.0']) == 1                       # a budget needs its predictor
    assert trial.main(common + ['--max-latency', '1.0', '--latency-predictor', str(path)]) == 1   # nothing fits
    assert trial.main(common + ['--max-latency', '2.0', '--latency-predictor', str(tmp_path / 'nope.json')]) == 1
