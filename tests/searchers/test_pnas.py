import collections
import json
import pickle
import random

import numpy as np
import pytest
import torch

from nni_nasext.adapters import SearcherStrategy
from nni_nasext.evaluators.nb201_lookup import NasBench201Lookup, simulate_search
from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies import RandomSearch
from nni_nasext.strategies.searchers.pnas import NB201_EDGE_LABELS, PNAS
from nni_nasext.strategies.searchers.predictors import ArchEncoder, MLPEnsemble
from test_reinforce import MIXED
from test_searchers import SPEC, drive, score

FAST = dict(epochs=60, hidden=(32, 32))  # a smaller predictor keeps the file fast
FILL = {label: 'skip_connect' for label in NB201_EDGE_LABELS}
BLOCKS = [[label] for label in NB201_EDGE_LABELS]


def decided(sample):
    """Labels where a sample differs from the all-skip fill."""
    return {label for label, v in sample.items() if v != 'skip_connect'}


def test_blocks_grow_progressively_with_beam_per_stage():
    pnas = PNAS(blocks=BLOCKS, fill=FILL, beam_size=6, seed=0, **FAST)
    asked = drive(pnas, 40)
    stages = [pnas.stage_of(s) for s in asked]
    assert stages == sorted(stages)  # stage by stage, in order
    counts = collections.Counter(stages)
    assert counts[1] == 5 and all(counts[b] == 6 for b in range(2, 7)) and counts[7] == 5  # then local search
    for s, b in zip(asked, stages):
        if b <= 6:
            assert decided(s) <= set(NB201_EDGE_LABELS[:b])
    assert {s['0_1'] for s in asked[:5]} == set(SPEC.dims['0_1'].values)
    # every stage-b architecture expands a top-beam member of stage b-1
    by_stage = collections.defaultdict(list)
    for s, b in zip(asked, stages):
        by_stage[b].append(s)
    for b in range(2, 7):
        prefixes = {json.dumps([s[label] for label in NB201_EDGE_LABELS[:b - 1]]) for s in by_stage[b]}
        parents = {json.dumps([s[label] for label in NB201_EDGE_LABELS[:b - 1]])
                   for s in asked if pnas.stage_of(s) < b}
        assert prefixes <= parents
    assert len({SpaceSpec.key(s) for s in asked}) == 40
    assert pnas.num_fits >= 5


def test_grouped_blocks_and_random_first_stage():
    blocks = [['0_1', '0_2'], ['1_2', '0_3'], ['1_3', '2_3']]
    pnas = PNAS(blocks=blocks, fill='first', beam_size=8, seed=1, **FAST)
    asked = drive(pnas, 24)
    assert [pnas.stage_of(s) for s in asked] == [1] * 8 + [2] * 8 + [3] * 8  # 25 settings > 8: a random 8
    for s in asked[:8]:
        assert all(s[label] == 'none' for label in ('1_2', '0_3', '1_3', '2_3'))  # 'first' = 'none'
    for s in asked[8:16]:
        assert s['1_3'] == s['2_3'] == 'none'
    assert len({(s['0_1'], s['0_2']) for s in asked[:8]}) == 8


def test_encoder_and_predictor_rank_a_linear_objective():
    enc = ArchEncoder(SPEC, presence=True)
    assert enc.dim == 6 * 5 + 6
    x = enc.encode({'0_1': 'nor_conv_3x3', '1_2': 'none'})
    assert x.sum() == 4 and x[3] == 1 and x[2 * 5 + 0] == 1 and x[30] == 1 and x[32] == 1 and x[31] == 0
    rng = random.Random(0)
    weights = {(label, op): rng.uniform(-1, 1) for label in SPEC.dims for op in SPEC.dims[label].values}
    linear = lambda s: sum(weights[(k, v)] for k, v in s.items())  # noqa: E731
    train = [SPEC.random(rng) for _ in range(80)]
    test = [SPEC.random(rng) for _ in range(300)]
    model = MLPEnsemble(seed=0).fit(enc.encode_many(train), [linear(s) for s in train])
    mean, std = model.predict(enc.encode_many(test))
    truth = np.array([linear(s) for s in test])
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    assert np.corrcoef(rank(mean), rank(truth))[0, 1] > 0.85  # Spearman
    assert std.shape == mean.shape and (std >= 0).all() and std.mean() > 0
    again = MLPEnsemble(seed=0).fit(enc.encode_many(train), [linear(s) for s in train])
    assert np.array_equal(again.predict(enc.encode_many(test))[0], mean)
    # inside PNAS: the search on the linear objective ends far above a random cell
    pnas = PNAS(blocks=BLOCKS, fill=FILL, beam_size=5, seed=0, **FAST)
    found = max(map(linear, drive(pnas, 30, objective=linear)))
    assert found > np.percentile([linear(SPEC.random(rng)) for _ in range(1000)], 99)


def test_beats_random_search_on_toy_objective():
    budget, seeds = 35, range(4)
    ours = [max(map(score, drive(PNAS(beam_size=5, seed=s, **FAST), budget))) for s in seeds]
    rs = [max(map(score, drive(RandomSearch(seed=s), budget))) for s in seeds]
    assert np.mean(ours) > np.mean(rs) + 2  # 24.0 vs 19.0 with these seeds


def test_mixed_space_samples_are_valid():
    pnas = PNAS(beam_size=4, num_bins=5, seed=0, **FAST)
    objective = lambda s: s['k'] + len(s['any']) + s['d'] - abs(np.log10(s['lr']) + 2)  # noqa: E731
    asked = drive(pnas, 30, objective=objective, spec=MIXED)
    for s in asked:
        MIXED.validate(s)
        assert len(s['in']) == 2
    assert len({SpaceSpec.key(s) for s in asked}) == 30
    assert {s['lr'] for s in asked} <= set(MIXED.dims['lr'].grid(5))
    assert [pnas.stage_of(s) for s in asked[:3]] == [1, 1, 1]  # k: 3 values
    first = asked[0]
    assert first['in'] == [0, 1] and first['any'] == [] and first['lr'] == pytest.approx(1e-4)  # 'first' fill


def test_same_seed_same_search_and_global_rng_untouched():
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = drive(PNAS(beam_size=4, seed=3, **FAST), 30)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    b = drive(PNAS(beam_size=4, seed=3, **FAST), 30)
    c = drive(PNAS(beam_size=4, seed=4, **FAST), 30)
    assert a == b and a != c


@pytest.mark.parametrize('told', [17, 27])  # mid-stage, and in the local search
def test_state_dict_resumes_identically(told):
    a = PNAS(beam_size=4, seed=3, **FAST)
    drive(a, told)
    state = a.state_dict()
    b = PNAS(beam_size=4, seed=99, **FAST)
    b.load_state_dict(json.loads(json.dumps(state)))  # no configure: the space comes with the state
    assert b.space == SPEC and b.stage == a.stage
    b.configure(SPEC)  # what the adapters do next: keeps the loaded search
    c = PNAS(beam_size=4, seed=42, **FAST).configure(SPEC)
    c.load_state_dict(pickle.loads(pickle.dumps(state)))
    for _ in range(8):
        sa, sb, sc = a.ask(), b.ask(), c.ask()
        assert sa == sb == sc
        for p in (a, b, c):
            p.tell(sa, score(sa))


def test_asynchronous_asks_never_repeat():
    pnas = PNAS(blocks=BLOCKS, fill=FILL, beam_size=5, seed=0, **FAST).configure(SPEC)
    pending = [pnas.ask() for _ in range(12)]  # nothing told: stage 1 (5), then speculative expansion
    assert len({SpaceSpec.key(s) for s in pending}) == 12
    assert [pnas.stage_of(s) for s in pending[:5]] == [1] * 5
    for s in reversed(pending):
        pnas.tell(s, score(s))
    more = drive(pnas, 20)
    assert len({SpaceSpec.key(s) for s in pending + more}) == 32


def test_failed_trials_are_dropped_and_search_goes_on():
    pnas = PNAS(blocks=BLOCKS, fill=FILL, beam_size=4, seed=0, **FAST)
    asked = drive(pnas, 36, fail=lambda i, s: i % 3 == 0)
    assert pnas.num_failed == 12 and len({SpaceSpec.key(s) for s in asked}) == 36
    assert max(pnas.stage_of(s) for s in asked) == 7
    assert pnas.best()['value'] == max(score(s) for i, s in enumerate(asked) if i % 3)
    pnas.tell(asked[1], float('nan'))
    assert pnas.num_failed == 13
    dead = PNAS(beam_size=4, seed=0, **FAST)
    asked = drive(dead, 15, fail=lambda i, s: True)  # nothing to expand: unseen random samples
    assert len({SpaceSpec.key(s) for s in asked}) == 15 and dead.best() is None


def test_bad_arguments():
    for kwargs in [dict(beam_size=0), dict(num_bins=1), dict(fill='last'), dict(blocks=[]), dict(blocks=[[]]),
                   dict(blocks='0_1'), dict(max_candidates=0), dict(encoding='graph'), dict(epochs=0),
                   dict(num_models=0), dict(lr=0)]:
        with pytest.raises(ValueError):
            PNAS(**kwargs)
    for kwargs in [dict(blocks=[['0_1'], ['0_1', '0_2']]), dict(blocks=[['0_1', 'x']]), dict(blocks=[['0_1']]),
                   dict(fill={'x': 'none'}), dict(fill={'0_1': 'conv_7x7'})]:
        with pytest.raises(ValueError):
            PNAS(**kwargs).configure(SPEC)
    with pytest.raises(RuntimeError, match='configure'):
        PNAS().ask()
    state = PNAS(seed=0).configure(SPEC).state_dict()
    with pytest.raises(ValueError, match='another search space'):
        PNAS().configure(MIXED).load_state_dict(state)
    with pytest.raises(ValueError):
        MLPEnsemble().fit(np.zeros((3, 2)), [1.0, 2.0])
    preset = PNAS.nb201_preset(seed=0)
    assert preset.beam_size == 20 and preset.fill == FILL and preset.blocks == BLOCKS


def test_through_nni_strategy_adapter_on_nb201_lookup(nb12):
    ev = NasBench201Lookup('cifar10-valid', 12)
    strategy = SearcherStrategy(PNAS.nb201_preset(seed=0))
    engine = simulate_search(strategy, ev, budget=3000)
    searcher = strategy.searcher
    n = len(searcher.history)
    assert n == len(list(engine.list_models())) >= 10 and searcher.num_failed == 0
    stages = [searcher.stage_of(o['sample']) for o in searcher.history]
    assert n < 45 and stages == [1] * 5 + [2] * 20 + [3] * (n - 25)  # 5 ops of edge 1, then beam 20
    state = strategy.state_dict()
    again = SearcherStrategy(PNAS.nb201_preset(seed=1))
    again.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert again.searcher.ask() == searcher.ask()
