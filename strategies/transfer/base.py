"""What the transfer searchers share: the NB201 source and target datasets, the NB201 cell, and
the leave-one-dataset-out run on the tables.

:class:`TransferSearcher` is the public base of the ask/tell transfer methods (TAPAS,
TransferGP, XferNAS, RapidNAS): a ``target`` NB201 dataset and the ``sources`` whose tables are
the metadata (default: the other NB201 datasets; the target is never among them), the check that
the space is the NB201 cell, and :meth:`TransferSearcher.on_table`, the ``k``-evaluation protocol
of the transfer benchmarks (``k`` ask/tell rounds against the target's 200-epoch table; ``k = 0``
is the method's prediction without a target evaluation).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from nni_nasext.searcher import NoRepeatSearcher, Searcher
from nni_nasext.space_spec import Dimension, SpaceSpec

__all__ = ['TransferSearcher', 'ask_tell_on_table', 'check_transfer_args', 'is_nb201', 'nb201_spec', 'top_quantile',
           'with_context']


def nb201_spec() -> SpaceSpec:
    """The NB201 cell space as a :class:`SpaceSpec` (6 edges x 5 ops), without building a network."""
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
    return SpaceSpec([Dimension(label, 'choice', tuple(OPS)) for label in EDGE_LABELS])


def is_nb201(space: SpaceSpec) -> bool:
    from nni_nasext.search_spaces.nasbench201 import EDGE_LABELS, OPS
    return (set(space.dims) == set(EDGE_LABELS)
            and all(d.kind == 'choice' and sorted(d.values) == sorted(OPS) for d in space.dims.values()))


def check_transfer_args(target: str, sources: Optional[Sequence[str]] = None, k: int = 0) -> List[str]:
    """Validate a leave-one-dataset-out split; returns the sources (default: the other NB201 datasets)."""
    from nni_nasext.benchmarks import NB201_DATASETS
    if target not in NB201_DATASETS:
        raise ValueError(f'Unknown NB201 target dataset {target!r}; expected one of {NB201_DATASETS}')
    sources = [d for d in NB201_DATASETS if d != target] if sources is None else list(sources)
    bad = [s for s in sources if s not in NB201_DATASETS]
    if bad:
        raise ValueError(f'Unknown NB201 source dataset(s) {bad}; expected among {NB201_DATASETS}')
    if target in sources:
        raise ValueError(f'The target {target!r} is among the sources {sources}: its metadata would leak '
                         'into the predictor (leave-one-dataset-out needs disjoint target and sources)')
    if not sources or len(set(sources)) != len(sources):
        raise ValueError(f'Need at least one source dataset, each once; got {sources}')
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f'The number of target evaluations k must be an integer >= 0, got {k!r}')
    return sources


def with_context(err, why: str):
    from nni_nasext.data_paths import DataNotFoundError
    return DataNotFoundError(f'{err.what} (needed for {why})', err.looked)


def top_quantile(acc: np.ndarray) -> np.ndarray:
    """``-log(1 - q)`` of each cell's quantile ``q = (rank - 1/2) / n`` within its dataset: a
    monotone transform of the accuracy that stretches the top tail (q = 0.9 -> 2.3, 0.99 -> 4.6)."""
    from scipy.stats import rankdata
    q = (rankdata(acc) - 0.5) / len(acc)
    return -np.log1p(-q)


def ask_tell_on_table(searcher: Searcher, target: str, rounds: int) -> dict:
    """``rounds`` ask/tell rounds of ``searcher`` (configured on the NB201 cell) against the
    200-epoch validation accuracy of ``target``'s NB201 table: ``{'cell', 'accuracy',
    'evaluated'}`` with the best cell and every ``(cellstr, accuracy)`` in order (``rounds >= 1``)."""
    from nni_nasext.benchmarks import NasBench201Table, to_cellstr
    table, evaluated = NasBench201Table(), []
    for _ in range(rounds):
        sample = searcher.ask()
        cell = to_cellstr(sample)
        evaluated.append((cell, table.query(cell, target, 200).accuracy))
        searcher.tell(sample, evaluated[-1][1])
    best = max(evaluated, key=lambda t: t[1])
    return {'cell': best[0], 'accuracy': best[1], 'evaluated': evaluated}


class TransferSearcher(NoRepeatSearcher):
    """Base of the ask/tell transfer searchers (see the module docstring).

    Parameters
    ----------
    target
        NB201 dataset searched (``cifar10-valid``, ``cifar100``, ``ImageNet16-120``); only the told
        values are read of it. ``None`` where the subclass allows it (:attr:`needs_target`).
    sources
        NB201 datasets whose tables are the metadata (default: the NB201 datasets but the target).
    seed
        Seed of the searcher.
    """

    #: whether a target must be given (a subclass that can run on sources alone sets it False)
    needs_target = True

    def __init__(self, *, target: Optional[str] = None, sources: Optional[Sequence[str]] = None,
                 seed: Optional[int] = None):
        super().__init__(seed=seed)
        name = type(self).__name__
        if target is not None:
            sources = check_transfer_args(target, sources)
        elif self.needs_target:
            raise ValueError(f'{name} needs a target: one of the NB201 datasets (its sources are the others)')
        elif sources is not None:
            from nni_nasext.benchmarks import NB201_DATASETS
            sources = list(sources)
            bad = [s for s in sources if s not in NB201_DATASETS]
            if bad or not sources:
                raise ValueError(f'{name} sources must be NB201 datasets {NB201_DATASETS}, got {sources}')
        self.target: Optional[str] = target
        self.sources: Optional[List[str]] = sources

    def require_nb201(self, why: str, hint: str = '') -> None:
        """Refuse a space that is not the NB201 cell, before any table is read."""
        if not is_nb201(self.space):
            raise ValueError(f'{type(self).__name__} {why}: the space must be the NB201 cell (6 edges over the 5 '
                             f'NB201 ops), got labels {list(self.space.dims)[:8]}{hint}')

    # ------------------------------------------------------------------ the k-evaluation protocol
    @classmethod
    def on_table(cls, target: str, sources: Optional[Sequence[str]] = None, k: int = 0, seed: int = 0,
                 **kwargs) -> Dict[str, Any]:
        """Leave-one-dataset-out run on the NB201 tables: ``k`` ask/tell rounds against the target's
        200-epoch validation accuracy (``{'cell', 'accuracy', 'evaluated'}``); ``k = 0``: the
        method's prediction (``{'cell', 'evaluated': [], ...}``), no target lookup."""
        sources = check_transfer_args(target, sources, k)
        searcher = cls(target=target, sources=sources, seed=int(seed), **cls._protocol_args(k, kwargs))
        searcher.configure(nb201_spec())
        if k == 0:
            return {'evaluated': [], **searcher.prediction(), **searcher.result_extra()}
        return {**ask_tell_on_table(searcher, target, searcher.rounds(k)), **searcher.result_extra()}

    @classmethod
    def _protocol_args(cls, k: int, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The constructor's arguments for a run of ``k`` evaluations (a subclass may add some)."""
        return kwargs

    def prediction(self) -> Dict[str, Any]:
        """The cell the method predicts with no target evaluation (``k = 0``): ``{'cell': cellstr, ...}``."""
        from nni_nasext.benchmarks import to_cellstr
        return {'cell': to_cellstr(self.ask())}

    def rounds(self, k: int) -> int:
        """How many of the ``k`` evaluations the method makes (fewer when it runs out of cells)."""
        return k

    def result_extra(self) -> Dict[str, Any]:
        """Anything the method adds to a run's result."""
        return {}
