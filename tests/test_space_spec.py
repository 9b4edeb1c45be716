import json
import random

import pytest

import nni
from nni.mutable import Categorical, CategoricalMultiple, Numerical
from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, MutableLinear
from torch import nn

from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SampleError, SpaceSpec


class SpaceWithInputs(ModelSpace):
    """A space with every kind of mutable: LayerChoice, InputChoice picking 2 of 3, nni.choice."""

    def __init__(self):
        super().__init__()
        self.linear = MutableLinear(4, nni.choice('width', [8, 16, 32]))
        self.op = LayerChoice([nn.Identity(), nn.ReLU()], label='op')
        self.inputs = InputChoice(3, n_chosen=2, label='inputs')

    def forward(self, x):
        return sum(self.inputs([x, self.op(x), x * 2]))


def test_all_mutable_kinds_round_trip_through_nnictl_json():
    spec = SpaceSpec.from_space(SpaceWithInputs())
    text = json.dumps(spec.to_json())
    back = SpaceSpec.from_json(json.loads(text))
    assert back == spec
    assert spec.dims['inputs'].kind == 'choice_multiple' and spec.dims['inputs'].n_chosen == 2
    rng = random.Random(0)
    for _ in range(50):
        sample = back.random(rng)
        SpaceWithInputs().freeze(sample)  # NNI accepts what the JSON side samples
        assert len(sample['inputs']) == 2


def test_numerical_round_trip():
    mutables = {'lr': Numerical(1e-4, 1e-1, log_distributed=True, label='lr'),
                'drop': Numerical(0., 0.5, quantize=0.1, label='drop'),
                'k': Categorical([3, 5, 7], label='k'),
                'any': CategoricalMultiple(['a', 'b', 'c'], label='any')}
    mutables['noise'] = Numerical(mu=0., sigma=2., label='noise')
    spec = SpaceSpec.from_space(mutables)
    assert SpaceSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.to_json()['lr'] == {'_type': 'loguniform', '_value': [1e-4, 1e-1]}
    assert spec.to_json()['noise'] == {'_type': 'normal', '_value': [0., 2.]}
    rng = random.Random(1)
    for _ in range(100):
        s = spec.random(rng)
        spec.validate(s)
        assert abs(round(s['drop'] / 0.1) * 0.1 - s['drop']) < 1e-9


def test_committed_space_json_files_are_current():
    from pathlib import Path
    from nni_nasext import registry
    folder = Path(__file__).parents[1] / 'experiments' / 'spaces'
    files = sorted(folder.glob('*.json'))
    assert {p.stem for p in files} >= {'quickstart', 'rnn_cells'}
    #: files of a space built with arguments: `nasext space <name> --arg k=v ... --json`
    with_args = {'nas_bench_graph_proteins': ('nas_bench_graph', {'dataset': 'proteins'}),
                 'randwire': ('randwire', {'nodes': 8, 'num_seeds': 20})}   # experiments/randwire.yml's space
    for path in files:  # each file is `nasext space <its name> --json`
        name, kwargs = with_args.get(path.stem, (path.stem, {}))
        assert json.loads(path.read_text()) == SpaceSpec.from_space(registry.build('space', name, **kwargs)).to_json(), path


def test_values_json_would_change_are_refused():
    with pytest.raises(ValueError, match='JSON cannot carry'):
        SpaceSpec.from_space({'t': Categorical([(1, 2), (3, 4)], label='t')})


@pytest.mark.parametrize('bad', [{}, {'x': 1}, {'_type': 'weird', '_value': [1]}])
def test_bad_search_space_json(bad):
    with pytest.raises(ValueError):
        SpaceSpec.from_json({'x': bad} if bad else bad)


def test_validate_names_the_problem():
    spec = SpaceSpec.from_space(QuickstartSpace())
    good = spec.random(random.Random(0))
    spec.validate(good)
    with pytest.raises(SampleError, match='missing'):
        spec.validate({k: v for k, v in good.items() if k != '0_1'})
    with pytest.raises(SampleError, match="'0_1'"):
        spec.validate({**good, '0_1': 'conv_9x9'})
    with pytest.raises(SampleError, match='unknown'):
        spec.validate({**good, 'extra': 1})


def test_mutate_changes_exactly_one_decision():
    spec = SpaceSpec.from_space(QuickstartSpace())
    rng = random.Random(3)
    parent = spec.random(rng)
    for _ in range(100):
        child = spec.mutate(parent, rng)
        assert sum(child[k] != parent[k] for k in parent) == 1
        spec.validate(child)


def test_quantized_size_counts_the_values_random_can_give():
    import random
    from nni_nasext.space_spec import Dimension
    for low, high, q in [(0, 0.04, 0.1), (0.04, 0.5, 0.1), (0, 1, 0.25), (1, 10, 3)]:
        d = Dimension('x', 'numerical', dist='uniform', low=low, high=high, quantize=q)
        rng = random.Random(0)
        assert d.size == len({d.random(rng) for _ in range(5000)})
