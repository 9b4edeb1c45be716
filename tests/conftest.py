import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings('ignore', category=RuntimeWarning, module='nni')

# a pytest worker runs autograd on several threads long before a benchmark test forks its
# children, and PyTorch then refuses autograd in a forked child: the benchmarks' fresh processes
# start from a fork server here (nni_nasext.benchmarking.oneshot_cost.fork_map)
os.environ.setdefault('NASEXT_FORK_CONTEXT', 'forkserver')

#: the tests folder (helpers such as budget_toy.py live here) and the repository
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def shared_data() -> Path:
    """The NASEXT_DATA directory, or skip the test with the reason."""
    root = os.environ.get('NASEXT_DATA')
    if not root:
        pytest.skip('NASEXT_DATA is not set (point it at ../shared/data)')
    return Path(root.split(os.pathsep)[0])


def computed_once(tmp_path_factory, name: str, compute):
    """``compute()``, computed by the first pytest-xdist worker that asks and read back by the others
    (pickled under the session's shared base temp dir, behind a file lock): a module-scoped fixture
    is otherwise computed once per worker that runs one of the module's tests."""
    import pickle
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent                       # shared by the workers of this session
    path = base / f'computed-once-{name}.pkl'
    with FileLock(str(path) + '.lock'):
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = compute()
        path.write_bytes(pickle.dumps(value))
        return value


@pytest.fixture
def nb12():
    """Skip unless the NB201 12-epoch table is reachable."""
    path = shared_data() / 'nb201_12epoch' / 'nb201_minibench_arch_cell_accs.pd'
    if not path.exists():
        pytest.skip(f'NB201 12-epoch table absent: {path}')
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Two torch threads stall badly when the other core is busy; tests use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_experiment_registry(monkeypatch, tmp_path_factory):
    """NasExperiment records every run in ~/nni-experiments/.experiment: keep tests out of it."""
    import functools
    import nni.nas.experiment.experiment as nas_exp
    from nni.tools.nnictl.config_utils import Experiments
    import nni.experiment.experiment as hpo_exp
    home = tmp_path_factory.mktemp('nni-home')
    private = functools.partial(Experiments, home_dir=str(home))
    monkeypatch.setattr(nas_exp, 'Experiments', private)
    monkeypatch.setattr(hpo_exp, 'Experiments', private)  # has_checkpoint (resume) reads it there


@pytest.fixture
def table_queries(monkeypatch):
    """Counts of ``NasBench201Table.query`` per (dataset, epochs), for the transfer tests that
    check a method never reads the target table more than allowed."""
    from nni_nasext.benchmarks import NasBench201Table
    counts = {}
    original = NasBench201Table.query

    def query(self, arch, dataset='cifar10-valid', epochs=200):
        counts[(dataset, epochs)] = counts.get((dataset, epochs), 0) + 1
        return original(self, arch, dataset, epochs)

    monkeypatch.setattr(NasBench201Table, 'query', query)
    return counts


#: test modules whose tests run whole nnictl experiments or spawn process groups (DDP, SSH hosts):
#: long and half idle (NNI's polling), so they start first and overlap with the short, busy tests
LONG_MODULES = {'test_faults.py', 'test_remote.py', 'test_netguard.py', 'test_oneshot_ddp.py', 'test_ddp.py',
                'test_oneshot_nni.py', 'test_kill_resume.py', 'test_nnictl_integration.py', 'test_nni_json.py'}


def pytest_collection_modifyitems(config, items):
    """Long tests first (a stable reordering: the same order on every run), so that under
    pytest-xdist no long test starts last and leaves the other workers idle."""
    def long(item) -> bool:
        return item.path.name in LONG_MODULES or 'nnictl' in item.name
    items.sort(key=lambda item: not long(item))
