"""Every strategy has an nnictl config under experiments/strategies/ that its tuner accepts."""
import importlib
import json

import pytest

from nni_nasext import registry
from nni_nasext.data_paths import DataNotFoundError
from nni_nasext.adapters.tuner import TUNER_CLASSES
from nni_nasext.fidelity import split_budget
from nni_nasext.nnictl_tools import load_config
from nni_nasext.space_spec import SpaceSpec
from conftest import REPO

CONFIGS = REPO / 'experiments' / 'strategies'


def test_one_config_per_registered_strategy():
    assert {p.stem for p in CONFIGS.glob('*.yml')} == set(registry.STRATEGIES)


@pytest.mark.parametrize('name', sorted(registry.STRATEGIES))
def test_config_builds_its_tuner_and_asks_valid_samples(name):
    path = CONFIGS / f'{name}.yml'
    config = load_config(path)
    tuner_name = config['tuner']['name']
    assert tuner_name == registry.STRATEGIES[name].extra['tuner']
    module, _, cls = TUNER_CLASSES[tuner_name].rpartition('.')
    space = json.loads((path.parent / config['searchSpaceFile']).read_text())
    try:   # a latency cost model reads its table when built, a transfer tuner its metadata when given the space
        tuner = getattr(importlib.import_module(module), cls)(**config['tuner'].get('classArgs', {}))
        tuner.update_search_space(space)
    except DataNotFoundError as err:   # tables under NASEXT_DATA
        pytest.skip(f'{name}: {err}')
    spec = SpaceSpec.from_json(space)
    for i in range(8):
        params = tuner.generate_parameters(i)
        arch, budget = split_budget(params)
        spec.validate(arch)
        assert budget is None or budget >= 1
        tuner.receive_trial_result(i, params, 0.5 + 0.01 * i)
    assert (path.parent / config['trialCodeDirectory']).resolve() == CONFIGS.parents[1]
    assert config['maxTrialNumber'] <= 30 and config['trainingService'] == {'platform': 'local'}
