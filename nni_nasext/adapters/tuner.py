"""Any :class:`~nni_nasext.searcher.Searcher` as an ``nni.tuner.Tuner``, for ``nnictl create``.

NNI 3.0 launches NAS only from Python; behind ``nnictl`` the manager talks to a *tuner*. This
adapter is that tuner: NNI sends the search-space JSON (``update_search_space``; the lossless
encoding of :mod:`nni_nasext.space_spec`, ``InputChoice`` included), asks for parameters
(``generate_parameters`` -> ``searcher.ask()``), and reports final results
(``receive_trial_result`` -> ``searcher.tell``) and trial ends (``trial_end``: a trial that
failed, or ended without a final result, is told as ``None`` and the search goes on).
``nnictl resume`` replays finished trials through ``import_data``, which rebuilds the
searcher's state from them. Each registered strategy gets a class here,
e.g. :class:`RegularizedEvolutionTuner`, registered under a builtin name by ``nasext register``.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import nni
from nni.tuner import Tuner

from nni_nasext import registry
from nni_nasext.nni_json import JsonSpace
from nni_nasext.searcher import SpaceExhausted

_logger = logging.getLogger(__name__)


def metric_value(value: Any) -> Optional[float]:
    """NNI final metric (number or dict with ``default``) -> float, or None if unusable."""
    if isinstance(value, dict):
        value = value.get('default')
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


class SearcherTuner(Tuner):
    """Generic tuner: ``strategy`` is a registered strategy name, the rest its arguments.

    ``optimize_mode='minimize'`` negates the metric, since searchers maximise.
    """

    def __init__(self, strategy: str = 'regularized_evolution', optimize_mode: str = 'maximize', **strategy_args):
        if optimize_mode not in ('maximize', 'minimize'):
            raise ValueError(f"optimize_mode must be 'maximize' or 'minimize', got {optimize_mode!r}")
        self.sign = 1. if optimize_mode == 'maximize' else -1.
        self.searcher = registry.build('strategy', strategy, **strategy_args)
        self.strategy_name = strategy
        self._pending: Dict[int, dict] = {}
        self._ended_without_result: Dict[int, Any] = {}
        self.codec: Optional[JsonSpace] = None

    def update_search_space(self, search_space: Dict[str, Any]) -> None:
        """Any NNI search-space JSON (:mod:`nni_nasext.nni_json`: nested choices, ``randint``,
        ``lognormal``, ``qlognormal`` ...): the searcher searches its flat form."""
        self.codec = JsonSpace(search_space)
        self.searcher.configure(self.codec.spec)
        _logger.info('%s searches %d decisions', self.searcher, len(self.searcher.space))

    def generate_parameters(self, parameter_id: int, **kwargs) -> Dict[str, Any]:
        if self.codec is None:
            raise RuntimeError('The tuner has no search space yet (update_search_space first)')
        try:  # the flat space carries the JSON's conditions: asks are canonical, sizes count the tree
            sample = self.searcher.ask()
        except SpaceExhausted as err:  # NNI's dispatcher answers NO_MORE_TRIAL_JOBS to this
            raise nni.NoMoreTrialError(str(err)) from err
        self._pending[parameter_id] = sample
        return self.codec.decode(sample)

    def _flat(self, parameters: Any) -> Any:
        """NNI's parameters as the searcher's flat sample (unchanged where they do not fit)."""
        try:
            return self.codec.encode(parameters) if self.codec is not None else parameters
        except (ValueError, TypeError, KeyError):
            return parameters

    def receive_trial_result(self, parameter_id: int, parameters: Dict[str, Any], value: Any, **kwargs) -> None:
        sample = self._pending.pop(parameter_id, None)
        if sample is None:
            sample = self._flat(parameters)
        early = self._ended_without_result.pop(parameter_id, None)
        if early is not None:  # the end event overtook the result: undo the failure
            self.searcher.history.remove(early)
            self.searcher.num_failed -= 1
            self.searcher._rebuild()
        score = metric_value(value)
        self.searcher.tell(sample, None if score is None else self.sign * score)

    def trial_end(self, parameter_id: int, success: bool, **kwargs) -> None:
        sample = self._pending.pop(parameter_id, None)
        if sample is not None:  # no final result arrived: failed, killed or silent trial
            _logger.warning('Trial of parameter %s ended (success=%s) without a final result; told as failed.',
                            parameter_id, success)
            self.searcher.tell(sample, None)
            self._ended_without_result[parameter_id] = self.searcher.history[-1]

    def import_data(self, data) -> None:
        for record in data:
            score = metric_value(record.get('value'))
            sample = self._flat(record['parameter'])
            self.searcher.tell(sample, None if score is None else self.sign * score)
        _logger.info('Imported %d earlier trials into %s', len(data), self.searcher)

    def save_checkpoint(self) -> None:  # state is rebuilt from NNI's own records via import_data
        pass

    def load_checkpoint(self) -> None:
        pass


def _tuner_class(entry: registry.Entry):
    def __init__(self, optimize_mode: str = 'maximize', **strategy_args):
        SearcherTuner.__init__(self, entry.name, optimize_mode, **strategy_args)
    name = entry.target.rpartition(':')[2] + 'Tuner'
    return name, type(name, (SearcherTuner,), {'__init__': __init__, '__module__': __name__,
                                               '__doc__': f'{entry.summary}, as an NNI tuner.'})


TUNER_CLASSES = {}
for _entry in registry.STRATEGIES.values():
    _name, _cls = _tuner_class(_entry)
    globals()[_name] = _cls
    TUNER_CLASSES[_entry.extra['tuner']] = f'{__name__}.{_name}'
