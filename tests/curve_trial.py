"""A trial program for the assessor's nnictl test, whose claim is about the assessor and NNI's
manager, not about training: it reports a learning curve of EPOCHS values, one every EPOCH_SECONDS
(so that a kill lands part-way), with no torch. The curve depends on the trial's sequence number:
trials 0-3 rise from about 0.5, trial 4 stays at chance level (0.1). Lightning's per-epoch reports
are tested with real training (``test_hyperband_budget_reaches_the_trials``).

    trialCommand: python3 tests/curve_trial.py
"""
import time

import nni

EPOCHS = 10
EPOCH_SECONDS = 0.6
#: the trial (sequence number) whose curve stays at chance level
BAD = 4


def curve(seq: int, epoch: int) -> float:
    return 0.1 if seq == BAD else 0.5 + 0.03 * epoch + 0.01 * seq


def main() -> None:
    nni.get_next_parameter()
    seq = nni.get_sequence_id()
    for epoch in range(1, EPOCHS + 1):
        time.sleep(EPOCH_SECONDS)
        nni.report_intermediate_result(curve(seq, epoch))
    nni.report_final_result(curve(seq, EPOCHS))


if __name__ == '__main__':
    main()
