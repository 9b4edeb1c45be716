import os
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings('ignore', category=RuntimeWarning, module='nni')

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The NASEXT_DATA directory, or skip the test with the reason."""
    root = os.environ.get('NASEXT_DATA')
    if not root:
        pytest.skip('NASEXT_DATA is not set (point it at ../shared/data)')
    return Path(root.split(os.pathsep)[0])


@pytest.fixture
def nb12():
    """Skip unless the NB201 12-epoch table is reachable."""
    path = shared_data() / 'nb201_12epoch' / 'nb201_minibench_arch_cell_accs.pd'
    if not path.exists():
        pytest.skip(f'NB201 12-epoch table absent: {path}')
    return path
