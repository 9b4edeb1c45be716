"""Draw the README's cells as PNGs under experiments/results/cells/.

    python experiments/draw_cells.py [--out DIR]

NAS-Bench-201 best cell, DARTS-V2 normal and reduction cells, NASNet-A normal cell, the
DARTS-V2 recurrent cell, the NAS-Bench-101 Inception-like cell and the NAS-Bench-Macro best
architecture '22212220'.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from nni_nasext.draw import draw_darts_like, draw_macro, draw_nasbench101, draw_nb201, draw_rnn
from nni_nasext.search_spaces import cells, nasbench101, nasbench201, nasbench_macro, rnn_cells

NB201_BEST = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
MACRO_BEST = '22212220'
OUT = Path(__file__).resolve().parent / 'results' / 'cells'


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    jobs.append(('nb201_best.png', draw_nb201, nasbench201.cellstr_to_sample(NB201_BEST), {},
                 'NAS-Bench-201 best cell (CIFAR-10)'))
    _, darts = cells.published('darts_v2')
    jobs.append(('darts_v2_normal.png', draw_darts_like, darts, dict(cell='normal', family='darts'),
                 'DARTS-V2 normal cell'))
    jobs.append(('darts_v2_reduce.png', draw_darts_like, darts, dict(cell='reduce', family='darts'),
                 'DARTS-V2 reduction cell'))
    _, nasnet = cells.published('nasnet_a')
    jobs.append(('nasnet_a_normal.png', draw_darts_like, nasnet, dict(cell='normal', family='nasnet'),
                 'NASNet-A normal cell'))
    genotype, rule = rnn_cells.GENOTYPES['darts_v2']
    jobs.append(('darts_v2_rnn.png', draw_rnn, rnn_cells.RNNCellSpace.named_sample('darts_v2'), dict(output=rule),
                 'DARTS-V2 recurrent cell (PTB)'))
    jobs.append(('nb101_inception_like.png', draw_nasbench101, nasbench101.spec_to_sample(*nasbench101.INCEPTION_LIKE),
                 {}, 'NAS-Bench-101 Inception-like cell'))
    jobs.append(('macro_best_22212220.png', draw_macro, nasbench_macro.key_to_sample(MACRO_BEST), {},
                 f'NAS-Bench-Macro best architecture {MACRO_BEST}'))
    for name, fn, sample, kwargs, title in jobs:
        n = fn(sample, out / name, title=title, **kwargs)
        print(f'{out / name}  ({n} labelled edges / layers)')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=OUT)
    main(parser.parse_args().out)
