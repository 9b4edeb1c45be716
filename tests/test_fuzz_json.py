"""Property-based tests (Hypothesis) of what users type as JSON: search spaces for our tuners and
samples for our spaces. Whatever the input, the answer is the space, or a ``ValueError`` (or
``SampleError``) whose message names the offending entry: never another exception, a hang, or a
silently changed value."""
import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nni_nasext.nni_json import JsonSpace
from nni_nasext.space_spec import SampleError, SpaceSpec

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

labels = st.text(alphabet='abcdefgh_0123456789', min_size=1, max_size=6)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-10, 10, allow_nan=False),
                         st.text(max_size=4))
junk = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                    max_leaves=6)
TYPES = ['choice', 'randint', 'uniform', 'quniform', 'loguniform', 'qloguniform', 'normal', 'qnormal', 'lognormal',
         'qlognormal', 'choice_multiple', 'gaussian', '']


@st.composite
def maybe_bad_entry(draw, depth=0):
    """An entry of NNI's search-space JSON: often valid, often broken in one place."""
    typ = draw(st.sampled_from(TYPES))
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(junk)                                      # not even an entry
    if typ == 'choice' and depth < 2 and draw(st.booleans()):
        options = draw(st.lists(st.one_of(
            st.builds(lambda name, sub: {'_name': name, **sub}, st.one_of(labels, st.integers(0, 3)),
                      st.dictionaries(labels, maybe_bad_entry(depth + 1), max_size=2)),
            json_scalars), min_size=0, max_size=4))
        return {'_type': 'choice', '_value': options}
    n = 3 if typ.startswith('q') else 2
    value = draw(st.one_of(st.lists(st.one_of(st.integers(-3, 9), st.floats(-3, 9, allow_nan=False)),
                                    min_size=n - 1, max_size=n + 1), junk))
    entry = {'_type': typ, '_value': value}
    if typ == 'choice_multiple':
        entry['n_chosen'] = draw(st.one_of(st.none(), st.integers(-1, 4), junk))
    return entry


@st.composite
def valid_entry(draw, depth=0):
    """A well-formed entry of every NNI type, nested choices included."""
    typ = draw(st.sampled_from(['choice', 'nested', 'randint', 'uniform', 'quniform', 'loguniform', 'qloguniform',
                                'normal', 'qnormal', 'lognormal', 'qlognormal', 'choice_multiple']))
    lo = draw(st.integers(1, 5))
    hi = lo + draw(st.integers(0, 6))
    if typ == 'choice' or (typ == 'nested' and depth >= 2):
        return {'_type': 'choice', '_value': draw(st.lists(st.integers(0, 9), min_size=1, max_size=4, unique=True))}
    if typ == 'nested':
        names = draw(st.lists(labels, min_size=1, max_size=3, unique=True))
        options = [{'_name': n, **draw(st.dictionaries(labels, valid_entry(depth + 1), max_size=2))} for n in names]
        return {'_type': 'choice', '_value': options + draw(st.lists(st.integers(100, 103), max_size=2, unique=True))}
    if typ == 'randint':
        return {'_type': 'randint', '_value': [lo, hi + 1]}
    if typ == 'choice_multiple':
        values = list(range(draw(st.integers(1, 4))))
        return {'_type': 'choice_multiple', '_value': values, 'n_chosen': draw(st.one_of(
            st.none(), st.integers(0, len(values))))}
    if 'normal' in typ:
        return {'_type': typ, '_value': [float(lo), float(hi - lo + 1)] + ([0.5] if typ.startswith('q') else [])}
    return {'_type': typ, '_value': [float(lo), float(hi)] + ([1.0] if typ.startswith('q') else [])}


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b and type(a) is type(b)


spaces = st.dictionaries(labels, st.one_of(valid_entry(), maybe_bad_entry()), min_size=0, max_size=4)


@SETTINGS
@given(spaces)
def test_any_search_space_json_is_the_space_or_a_clear_error(space):
    try:
        js = JsonSpace(space)
    except ValueError as err:
        message = str(err)
        assert message and (not space or any(label in message for label in space) or 'label' in message
                            or 'Search space' in message), message
        return
    rng = random.Random(0)
    for _ in range(5):                                          # it searches, and decodes back exactly
        flat = js.canonical(js.spec.random(rng))
        params = js.decode(flat)
        assert set(params) == set(space)
        assert close(js.decode(js.encode(params)), params)     # log-normal values up to float error
    assert js.size > 0


space_nb = SpaceSpec.from_json({'op': {'_type': 'choice', '_value': ['a', 'b']},
                                'n': {'_type': 'quniform', '_value': [0, 4, 1]},
                                'ins': {'_type': 'choice_multiple', '_value': [0, 1, 2], 'n_chosen': 2}})


@SETTINGS
@given(st.one_of(junk, st.dictionaries(st.sampled_from(['op', 'n', 'ins', 'x']), junk, max_size=4)))
def test_any_sample_is_accepted_only_if_it_is_in_the_space(sample):
    try:
        space_nb.validate(sample)
    except SampleError as err:
        assert str(err)
        return
    assert set(sample) == {'op', 'n', 'ins'} and sample['op'] in ('a', 'b')
    assert 0 <= sample['n'] <= 4 and len(sample['ins']) == 2 and set(sample['ins']) <= {0, 1, 2}


@SETTINGS
@given(st.text(max_size=30))
def test_trial_program_json_arguments_are_objects_or_clear_errors(text):
    from nni_nasext.trial_code.run import _json_arg
    try:
        value = _json_arg(text, '--evaluator-args')
    except ValueError as err:
        assert '--evaluator-args' in str(err)
        return
    assert isinstance(value, dict) and value == json.loads(text)


def test_a_huge_randint_is_a_quantised_range_not_a_giant_list():
    js = JsonSpace({'x': {'_type': 'randint', '_value': [0, 10 ** 9]}})
    assert js.spec.dims['x'].kind == 'numerical' and js.size == 10 ** 9
    v = js.decode(js.spec.random(random.Random(0)))['x']
    assert isinstance(v, int) and 0 <= v < 10 ** 9


@pytest.mark.parametrize('value', [math.inf, -math.inf])
def test_infinite_bounds_are_refused(value):
    with pytest.raises(ValueError, match='finite'):
        JsonSpace({'x': {'_type': 'uniform', '_value': [0, value]}})


config_keys = st.sampled_from(['trialCommand', 'trainingService', 'tuner', 'assessor', 'searchSpaceFile',
                               'experimentWorkingDirectory', 'trialConcurrency', 'maxTrialNumber'])
good_parts = {'trialCommand': st.just('python3 -m nni_nasext.trial_code --space quickstart --evaluator nb201'),
              'trainingService': st.just({'platform': 'local'}),
              'tuner': st.builds(lambda n, a: {'name': n, 'classArgs': a},
                                 st.sampled_from(['NasextRandom', 'NasextNope', 'TPE']), st.just({'seed': 0}))}


@st.composite
def configs(draw):
    config = {k: draw(v) for k, v in good_parts.items() if draw(st.booleans()) or k != 'tuner'}
    for key in draw(st.lists(config_keys, max_size=3)):
        config[key] = draw(junk)
    return config


@SETTINGS
@given(st.one_of(configs(), junk))
def test_any_experiment_yaml_is_the_config_or_one_clear_error(tmp_path_factory, config):
    import yaml

    from nni_nasext import nnictl_tools as nt
    path = tmp_path_factory.mktemp('cfg') / 'config.yml'
    path.write_text(yaml.safe_dump(config))
    try:
        loaded = nt.load_config(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    assert loaded == config
    assert isinstance(loaded.get('trialCommand'), str) or loaded['trainingService']['platform'] in (
        'kubeflow', 'frameworkcontroller')   # those run their roles' commands
    assert not isinstance(loaded.get('tuner'), str)


def test_the_cli_prints_one_line_for_a_broken_config(tmp_path, capsys):
    from nni_nasext.cli import main
    path = tmp_path / 'bad.yml'
    path.write_text('trialCommand: [1, 2]\ntrainingService: {platform: local}\ntuner: NasextRandom\n')
    assert main(['run', str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'trialCommand' in err and 'Traceback' not in err


@SETTINGS
@given(st.sampled_from(['classification', 'nb201', 'zero_cost']),
       st.dictionaries(st.sampled_from(['dataset', 'max_epochs', 'batch_size', 'learning_rate', 'momentum',
                                        'weight_decay', 'epochs', 'proxy', 'optimizer', 'bogus']), junk, max_size=2))
def test_any_evaluator_arguments_build_it_or_fail_clearly_before_training(name, kwargs):
    """What ``--evaluator-args`` can hold: the evaluator is built (nothing trains yet) or the
    answer is one ValueError / TypeError that names the argument or the evaluator."""
    from nni_nasext import registry
    try:
        registry.build('evaluator', name, **kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert any(k in message for k in kwargs) or name in message or 'dataset' in message.lower() or \
            'proxy' in message.lower(), message


@pytest.mark.parametrize('kwargs,match', [({'dataset': 'nope'}, 'Unknown dataset'),
                                          ({'learning_rate': -0.1}, 'learning_rate'),
                                          ({'momentum': 1.0}, 'momentum'),
                                          ({'max_epochs': 2.5}, 'max_epochs'),
                                          ({'batch_size': '64'}, 'batch_size')])
def test_classification_refuses_bad_recipes_when_built(kwargs, match):
    from nni_nasext.evaluators.classification import ImageClassification
    with pytest.raises(ValueError, match=match):
        ImageClassification(**kwargs)


def test_a_degenerate_log_uniform_range_samples_inside_itself():
    """Found by the fuzz test above: exp(log(3.0)) is 3.0000000000000004, outside [3, 3]."""
    js = JsonSpace({'x': {'_type': 'loguniform', '_value': [3.0, 3.0]}})
    rng = random.Random(0)
    for _ in range(20):
        js.spec.validate(js.spec.random(rng))
