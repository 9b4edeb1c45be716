"""NAS-Bench-Macro (Su et al., CVPR 2021): space, key bijection, network = table, lookup evaluator."""
import json
import os
import random
from pathlib import Path

import pytest
import torch

from nni_nasext.data_paths import DataNotFoundError
from nni_nasext.evaluators import macro_lookup
from nni_nasext.evaluators.macro_lookup import NasBenchMacroLookup, NasBenchMacroTable, simulate_macro_search
from nni_nasext.evaluators.nb201_lookup import simulate_search
from nni_nasext.search_spaces.nasbench_macro import (
    LABELS, OPS, NasBenchMacroSpace, all_keys, canonical_key, count_flops, key_to_sample, sample_to_key,
)
from nni_nasext.space_spec import SpaceSpec


@pytest.fixture(scope='module')
def space():
    return NasBenchMacroSpace()


@pytest.fixture
def macro_table():
    """Skip unless the NAS-Bench-Macro table is reachable; the raw JSON dict."""
    root = os.environ.get('NASEXT_DATA')
    if not root:
        pytest.skip('NASEXT_DATA is not set (point it at ../shared/data)')
    path = Path(root.split(os.pathsep)[0]) / macro_lookup.MACRO_FILE
    if not path.exists():
        pytest.skip(f'NAS-Bench-Macro table absent: {path}')
    with open(path) as fh:
        return json.load(fh)


def test_space_has_eight_layers_of_three_ops(space):
    spec = SpaceSpec.from_space(space)
    assert list(spec.dims) == LABELS == [f'layer{i}' for i in range(8)]
    assert all(list(d.values) == OPS == ['identity', 'mb_k3_e3', 'mb_k5_e6'] for d in spec.dims.values())
    assert spec.size == 3 ** 8 == 6561


def test_space_spec_json_round_trip(space):
    spec = SpaceSpec.from_space(space)
    js = spec.to_json()
    assert SpaceSpec.from_json(json.loads(json.dumps(js))) == spec
    assert js['layer0'] == {'_type': 'choice', '_value': OPS}


def test_key_sample_bijection_over_all_keys():
    keys = list(all_keys())
    assert len(set(keys)) == 6561
    samples = set()
    for key in keys:
        sample = key_to_sample(key)
        assert sample_to_key(sample) == key
        samples.add(tuple(sample.items()))
    assert len(samples) == 6561
    assert key_to_sample('02012100') == {'layer0': 'identity', 'layer1': 'mb_k5_e6', 'layer2': 'identity',
                                         'layer3': 'mb_k3_e3', 'layer4': 'mb_k5_e6', 'layer5': 'mb_k3_e3',
                                         'layer6': 'identity', 'layer7': 'identity'}


@pytest.mark.parametrize('bad', ['0201210', '020121000', '02012103', 'abcdefgh', 12345678])
def test_bad_keys_are_refused(bad):
    with pytest.raises(ValueError):
        key_to_sample(bad)


def test_bad_samples_are_refused():
    good = key_to_sample('11111111')
    with pytest.raises(ValueError, match='missing'):
        sample_to_key({k: v for k, v in good.items() if k != 'layer3'})
    with pytest.raises(ValueError, match='unknown operations'):
        sample_to_key({**good, 'layer3': 'conv_9x9'})
    with pytest.raises(ValueError, match='unknown'):
        sample_to_key({**good, 'layer8': 'identity'})


def test_canonical_key_moves_inner_identities_to_stage_end():
    # stages (2, 3, 3): "0|2" "0|1|2" -> unchanged; "1|0" ok; "2|0|1" -> "2|1|0"; "1|0|0" unchanged
    assert canonical_key('02012100') == '02012100'
    assert canonical_key('10201100') == '10210100'
    assert canonical_key('00000000') == '00000000'
    assert len({canonical_key(k) for k in all_keys()}) == 3 * 3 * 21 * 21


def test_table_covers_every_key_and_equivalent_keys_share_a_record(macro_table):
    assert set(macro_table) == set(all_keys())
    for key in all_keys():
        assert macro_table[key] == macro_table[canonical_key(key)]


def _params(net):
    return sum(p.numel() for p in net.parameters())


def test_frozen_network_matches_table_params_and_flops(space, macro_table):
    """The table's ``params`` is a plain parameter count (not millions), ``flops`` a count of
    multiply-accumulates for one 32x32 image: both must equal our frozen network's, exactly."""
    rng = random.Random(0)
    keys = ['00000000', '11111111', '22222222', '02012100'] + [''.join(rng.choice('012') for _ in range(8))
                                                               for _ in range(50)]
    for key in keys:
        net = space.freeze(key_to_sample(key))
        assert _params(net) == macro_table[key]['params'], key
    for key in keys[:4] + keys[4:14]:
        net = space.freeze(key_to_sample(key))
        assert count_flops(net) == macro_table[key]['flops'], key
    assert macro_table['00000000']['params'] == 387882  # stem + 3 projections + head, by hand


@pytest.mark.parametrize('key', ['00000000', '11111111', '22222222', '21020112'])
def test_sampled_networks_run_forward_and_backward(space, key):
    torch.manual_seed(0)
    net = space.freeze(key_to_sample(key))
    out = net(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_sample_outside_space_is_refused(space):
    with pytest.raises(Exception):
        space.freeze({**key_to_sample('00000000'), 'layer0': 'conv_9x9'})


def test_table_query_and_best(macro_table):
    table = NasBenchMacroTable()
    rec = table.query('02012100')
    assert rec == table.query(key_to_sample('02012100')) == table.query([0, 2, 0, 1, 2, 1, 0, 0])
    raw = macro_table['02012100']
    assert (rec.mean_acc, rec.std, rec.test_accs, rec.params, rec.flops) == \
        (pytest.approx(raw['mean_acc']), pytest.approx(raw['std']), tuple(raw['test_acc']), raw['params'], raw['flops'])
    best = table.best()
    assert best.mean_acc == max(v['mean_acc'] for v in macro_table.values())
    assert best.key == canonical_key(best.key) == '22212220'
    assert best.mean_acc == pytest.approx(93.13, abs=0.01)
    assert len(table) == 6561


def test_lookup_reports_mean_or_one_seed_and_counts_queries(macro_table, monkeypatch):
    reported = []
    monkeypatch.setattr(macro_lookup.nni, 'report_final_result', reported.append)
    ev = NasBenchMacroLookup()
    sample = key_to_sample('22222222')
    raw = macro_table['22222222']
    assert ev.evaluate(sample) == pytest.approx(raw['mean_acc'])
    assert reported[-1] == {'default': pytest.approx(raw['mean_acc']), 'params': pytest.approx(raw['params'] / 1e6),
                            'flops': pytest.approx(raw['flops'] / 1e6)}
    one = NasBenchMacroLookup(seed=2)
    assert one.evaluate(sample) == pytest.approx(raw['test_acc'][2])
    assert (ev.num_queries, ev.total_cost, one.num_queries) == (1, 1, 1)
    with pytest.raises(ValueError, match='seed'):
        NasBenchMacroLookup(seed=3)


def test_lookup_validates_space(space):
    from nni_nasext.search_spaces.nasbench201 import NasBench201Space
    ev = NasBenchMacroLookup()
    assert list(ev.validate_space(space)) == LABELS
    with pytest.raises(ValueError, match='NAS-Bench-Macro space'):
        ev.validate_space(NasBench201Space(num_cells=1, channels=4))


@pytest.mark.parametrize('helper', ['simulate_search', 'simulate_macro_search'])
def test_nni_random_strategy_stops_after_budget_queries(macro_table, helper):
    from nni.nas import strategy as nni_strategy
    ev = NasBenchMacroLookup()
    if helper == 'simulate_search':  # its default space is NB201's: pass ours
        engine = simulate_search(nni_strategy.Random(seed=0), ev, 20, space=NasBenchMacroSpace())
    else:
        engine = simulate_macro_search(nni_strategy.Random(seed=0), ev, 20)
    models = list(engine.list_models())
    assert ev.num_queries == ev.total_cost == len(models) == 20
    keys = [sample_to_key(m.sample) for m in models]
    assert len(set(keys)) == 20
    for model, key in zip(models, keys):
        assert model.metrics.final == pytest.approx(macro_table[key]['mean_acc'])


def test_missing_table_names_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv('NASEXT_DATA', str(tmp_path))
    macro_lookup.clear_cache()
    try:
        with pytest.raises(DataNotFoundError) as err:
            NasBenchMacroTable().query('00000000')
        assert str(tmp_path) in str(err.value) and 'NAS-Bench-Macro' in str(err.value)
    finally:
        macro_lookup.clear_cache()


def test_the_fast_lookup_trial_matches_the_general_one_without_torch(macro_table, tmp_path):
    from trial_helpers import final_result, imported_no_torch, run_trial_program
    sample = key_to_sample('02012100')
    fast, a = run_trial_program(tmp_path / 'fast', 'nasbench_macro', 'nasbench_macro', sample, True, '{"seed": 1}')
    general, b = run_trial_program(tmp_path / 'general', 'nasbench_macro', 'nasbench_macro', sample, False,
                                   '{"seed": 1}')
    assert fast.returncode == general.returncode == 0, fast.stderr[-2000:] + general.stderr[-2000:]
    assert imported_no_torch(fast) and 'TORCH True' in general.stdout
    a.pop('seconds'), b.pop('seconds')
    assert a == b and a['value'] == pytest.approx(macro_table['02012100']['test_acc'][1])
    assert final_result(fast) == final_result(general) and set(final_result(fast)) == {'default', 'params', 'flops'}


@pytest.mark.parametrize('sample,evaluator_args,match', [
    ({**key_to_sample('02012100'), 'layer3': 'conv'}, '{}', 'unknown operations'),
    ({k: v for k, v in key_to_sample('02012100').items() if k != 'layer7'}, '{}', 'missing'),
    (key_to_sample('02012100'), '{"seed": 3}', 'seed must be'),
    (key_to_sample('02012100'), '{"epochs": 3}', 'unexpected'),
    ({**key_to_sample('02012100'), 'nasext_budget': 3}, '{}', 'no fidelity'),
])
def test_the_fast_lookup_trial_fails_clearly(macro_table, tmp_path, sample, evaluator_args, match):
    from trial_helpers import run_trial_program
    proc, result = run_trial_program(tmp_path, 'nasbench_macro', 'nasbench_macro', sample, True, evaluator_args)
    assert proc.returncode == 1 and match in proc.stderr and 'TRIAL FAILED' in proc.stderr and result is None
