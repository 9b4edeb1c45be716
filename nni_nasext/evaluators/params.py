"""Parameter count as an NNI evaluator: the cheapest baseline, and a smoke test for any space.

:class:`ParameterCount` scores a frozen network by its number of trainable parameters in
millions (no data, no training). It is the baseline every zero-cost proxy must beat
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021), and it lets a search
run on any space of this project in seconds, e.g. to check a space end to end under ``nnictl``.
"""
from __future__ import annotations

import nni
from nni.nas.evaluator import Evaluator
from torch import nn

__all__ = ['ParameterCount']


class ParameterCount(Evaluator):
    """Score = trainable parameters of the network, in millions (reported as the final result).

    Parameters
    ----------
    negate
        Report ``-millions`` so that maximising searchers look for the smallest network.
    """

    def __init__(self, negate: bool = False):
        self.negate = bool(negate)

    def _dump(self) -> dict:
        return {'negate': self.negate}

    @classmethod
    def _load(cls, **arguments) -> 'ParameterCount':
        return cls(**arguments)

    def extra_repr(self) -> str:
        return f'negate={self.negate}'

    def evaluate(self, model: nn.Module) -> float:
        millions = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
        value = -millions if self.negate else millions
        nni.report_final_result(value)
        return value
