"""nni_nasext.draw: every drawing function writes a non-empty PNG and draws the right edges."""
import re

import matplotlib.image as mpimg
import pytest

from nni_nasext import draw
from nni_nasext.search_spaces import cells, nasbench101, nasbench201, nasbench_macro, rnn_cells

NB201_BEST = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'


def _png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    img = mpimg.imread(path)
    assert img.shape[0] > 50 and img.shape[1] > 50
    return img


def test_nb201_counts_non_none_edges(tmp_path):
    sample = nasbench201.cellstr_to_sample(NB201_BEST)
    assert draw.draw_nb201(sample, tmp_path / 'a.png', title='best') == 6
    _png(tmp_path / 'a.png')
    sample = nasbench201.cellstr_to_sample('|none~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|')
    assert draw.draw_nb201(sample, tmp_path / 'b.png') == 3
    assert draw.draw_nb201(sample, tmp_path / 'c.png', show_none=False) == 3
    _png(tmp_path / 'b.png'), _png(tmp_path / 'c.png')


def test_nb201_rejects_incomplete_sample(tmp_path):
    with pytest.raises(ValueError):
        draw.draw_nb201({'0_1': 'skip_connect'}, tmp_path / 'x.png')


@pytest.mark.parametrize('name,family,cell', [('darts_v2', 'darts', 'normal'), ('darts_v2', 'darts', 'reduce'),
                                               ('nasnet_a', 'nasnet', 'reduce'), ('enas_micro', 'enas', 'normal')])
def test_darts_like(tmp_path, name, family, cell):
    _, sample = cells.published(name)
    ops = [k for k in sample if re.match(rf'{cell}/op_', k) and sample[k] != 'none']
    n = draw.draw_darts_like(sample, tmp_path / 'c.png', cell=cell, family=family, title=name)
    assert n == len(ops) == 2 * cells.FAMILIES[family]['num_blocks']
    _png(tmp_path / 'c.png')


def test_darts_like_pnas_and_missing_cell(tmp_path):
    _, sample = cells.published('pnasnet_5')
    assert draw.draw_darts_like(sample, tmp_path / 'p.png', cell='cell', family='pnas') == 10
    with pytest.raises(ValueError):
        draw.draw_darts_like(sample, tmp_path / 'q.png', cell='normal')


def test_rnn(tmp_path):
    sample = rnn_cells.RNNCellSpace.named_sample('darts_v2')
    assert draw.draw_rnn(sample, tmp_path / 'r.png', title='DARTS-V2') == 8
    _png(tmp_path / 'r.png')
    enas = rnn_cells.genotype_to_sample('enas')
    assert draw.draw_rnn(enas, tmp_path / 'e.png', output='loose_ends') == 11
    _png(tmp_path / 'e.png')


def test_nasbench101(tmp_path):
    sample = nasbench101.spec_to_sample(*nasbench101.INCEPTION_LIKE)
    n_edges = sum(sample[k] for k in nasbench101.EDGE_LABELS)
    assert draw.draw_nasbench101(sample, tmp_path / 'n.png') == n_edges == 9
    _png(tmp_path / 'n.png')
    small = nasbench101.spec_to_sample(*nasbench101.RESNET_LIKE)  # unused vertices pruned away
    assert draw.draw_nasbench101(small, tmp_path / 's.png') == 4
    _png(tmp_path / 's.png')


def test_macro_and_chain(tmp_path):
    assert draw.draw_macro(nasbench_macro.key_to_sample('22212220'), tmp_path / 'm.png', title='macro') == 8
    _png(tmp_path / 'm.png')
    assert draw.draw_chain({'b': 'conv', 'a': 'identity'}, tmp_path / 'c.png') == 2
    _png(tmp_path / 'c.png')


def test_deterministic(tmp_path):
    sample = cells.published('darts_v2')[1]
    draw.draw_darts_like(sample, tmp_path / '1.png')
    draw.draw_darts_like(sample, tmp_path / '2.png')
    assert (tmp_path / '1.png').read_bytes() == (tmp_path / '2.png').read_bytes()


def test_cycle_rejected(tmp_path):
    with pytest.raises(ValueError):
        draw.draw_dag([draw.Node(0, 'a'), draw.Node(1, 'b')], [draw.Edge(0, 1), draw.Edge(1, 0)], tmp_path / 'x.png')
