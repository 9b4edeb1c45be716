"""The quickstart experiment on NNI's cluster training services (issue 17, part 4): each config
under experiments/cluster/ is loaded and validated by NNI's own config classes, and searches
what the local quickstart searches. They are not run here (no cluster is reachable)."""
from pathlib import Path

import pytest
import yaml

from nni_nasext import nnictl_tools as nt

HERE = Path(__file__).resolve().parent.parent / 'experiments'
CLUSTER = sorted((HERE / 'cluster').glob('*.yml'))
SERVICE_CLASS = {'kubeflow': 'KubeflowConfig', 'frameworkcontroller': 'FrameworkControllerConfig',
                 'aml': 'AmlConfig', 'openpai': 'OpenpaiConfig'}


def nni_config(path: Path, data: dict):
    import nni.experiment.config.utils as utils
    from nni.experiment.config import ExperimentConfig
    utils.set_base_path(path.parent)   # as ExperimentConfig.load does: paths relative to the file
    try:
        return ExperimentConfig(**data)
    finally:
        utils.unset_base_path()


def test_every_cluster_platform_has_a_config():
    assert {p.stem for p in CLUSTER} == set(SERVICE_CLASS)


@pytest.mark.parametrize('path', CLUSTER, ids=lambda p: p.stem)
def test_cluster_config_is_valid_for_nni_and_searches_the_quickstart(path, tmp_path):
    data = yaml.safe_load(path.read_text())
    service = data['trainingService']
    if service['platform'] == 'openpai':   # NNI checks that this directory exists on the nnictl machine
        service['localStorageMountPoint'] = str(tmp_path)
    config = nni_config(path, data)
    config.validate()                      # NNI's own checks (raises on a missing or bad field)
    canonical = config.canonical_copy()
    assert type(canonical.training_service).__name__ == SERVICE_CLASS[path.stem]

    quick_path = HERE / 'quickstart.yml'
    quick = nni_config(quick_path, yaml.safe_load(quick_path.read_text())).canonical_copy()
    assert canonical.search_space_file == quick.search_space_file       # the same space file
    assert canonical.tuner.name == quick.tuner.name and canonical.tuner.class_args == quick.tuner.class_args
    assert (canonical.trial_concurrency, canonical.max_trial_number) == (quick.trial_concurrency, quick.max_trial_number)
    if service['platform'] == 'kubeflow':
        command = canonical.training_service.master.command
    elif service['platform'] == 'frameworkcontroller':
        command = canonical.training_service.task_roles[0].command
    else:
        command = canonical.trial_command
    assert command == quick.trial_command
    nt.load_config(path)                   # and `nasext run` accepts it


def test_role_platforms_need_a_command_in_each_role(tmp_path):
    path = tmp_path / 'kf.yml'
    path.write_text(yaml.safe_dump({'trainingService': {'platform': 'kubeflow', 'worker': {'replicas': 1}}}))
    with pytest.raises(ValueError, match='master or worker role with a non-empty command'):
        nt.load_config(path)
    path.write_text(yaml.safe_dump({'trainingService': {'platform': 'local'}}))
    with pytest.raises(ValueError, match="lacks 'trialCommand'"):
        nt.load_config(path)
