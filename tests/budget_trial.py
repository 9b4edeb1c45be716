"""A trial program for the nnictl tests whose claim is about a budgeted tuner (Progressive Dynamic
Hurdles, successive halving over a searcher), not about training: it reports one value per epoch
of its budget (``nasext_budget``, default 1) and the last as the final result, in about a second
(no torch). The value depends on the cell, never ties between two cells, and rises with the
epochs. The Lightning trial's handling of the budget is tested with real training
(``test_hyperband_budget_reaches_the_trials``).

    trialCommand: python3 tests/budget_trial.py
"""
import nni

from nni_nasext.fidelity import split_budget

SCORE = {'none': 0, 'skip_connect': 1, 'avg_pool_3x3': 2, 'nor_conv_1x1': 3, 'nor_conv_3x3': 4}


def value(arch, epoch: int) -> float:
    """The cell read as a base-5 number (more convolution in the later edges is better), scaled
    into [0, 1) and by ``1 - 1 / (epoch + 1)``."""
    code = sum(SCORE[v] * 5 ** i for i, (_, v) in enumerate(sorted(arch.items())))
    return code / 5 ** len(arch) * (1 - 1 / (epoch + 1))


def main() -> None:
    arch, budget = split_budget(nni.get_next_parameter())
    epochs = int(budget or 1)
    for epoch in range(1, epochs + 1):
        nni.report_intermediate_result(value(arch, epoch))
    nni.report_final_result(value(arch, epochs))


if __name__ == '__main__':
    main()
