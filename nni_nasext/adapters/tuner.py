"""Any :class:`~nni_nasext.searcher.Searcher` as an ``nni.tuner.Tuner``, for ``nnictl create``.

NNI 3.0 launches NAS only from Python; behind ``nnictl`` the manager talks to a *tuner*. This
adapter is that tuner: NNI sends the search-space JSON (``update_search_space``; the lossless
encoding of :mod:`nni_nasext.space_spec`, ``InputChoice`` included), asks for parameters
(``generate_parameters`` -> ``searcher.ask()``), and reports final results
(``receive_trial_result`` -> ``searcher.tell``) and trial ends (``trial_end``: a trial that
failed, or ended without a final result, is told as ``None`` and the search goes on).
``nnictl resume`` replays finished trials through ``import_data``, which rebuilds the
searcher's state from them. A sample the searcher proposes again after it has a final result
(an imported one after a resume, or a repeat of evolution) is not trained again: the tuner
answers it from the record and asks for another (``repeat_finished=True`` trains repeats, for
noisy evaluations where a second measurement is wanted). Each registered strategy gets a class here,
e.g. :class:`RegularizedEvolutionTuner`, registered under a builtin name by ``nasext register``.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Optional

import nni
from nni.tuner import Tuner

from nni_nasext import registry
from nni_nasext.nni_json import JsonSpace
from nni_nasext.searcher import SpaceExhausted
from nni_nasext.space_spec import SpaceSpec

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
    ``repeat_finished``: train a sample again when the searcher proposes it after it has a final
    result (default: answer it from that result, and ask again, up to :attr:`MAX_KNOWN_IN_A_ROW`
    times in a row; a search that keeps proposing known samples, e.g. a converged evolution, then
    trains a random sample not evaluated yet, or a repeat where none is found).
    """

    #: proposals in a row answered from finished results before a repeat is trained anyway
    MAX_KNOWN_IN_A_ROW = 1000

    def __init__(self, strategy: str = 'regularized_evolution', optimize_mode: str = 'maximize',
                 repeat_finished: bool = False, **strategy_args):
        if optimize_mode not in ('maximize', 'minimize'):
            raise ValueError(f"optimize_mode must be 'maximize' or 'minimize', got {optimize_mode!r}")
        if not isinstance(repeat_finished, bool):
            raise ValueError(f'repeat_finished must be true or false, got {repeat_finished!r}')
        self.sign = 1. if optimize_mode == 'maximize' else -1.
        self._searcher = self._build_error = self._builder = None
        if os.environ.get('SDK_PROCESS') == 'dispatcher' and strategy in registry.STRATEGIES:
            # NNI 3.0's manager gives up on a dispatcher that has not connected 10 s after it was
            # started, and the dispatcher creates its tuner before it connects: the strategy's
            # module (torch, Optuna, ...) is imported while it connects, and the first command waits
            # for it; a wrong argument fails that command (dispatcher.log has the traceback)
            self._builder = threading.Thread(target=self._build, args=(strategy, strategy_args),
                                             name='nasext-searcher', daemon=True)
            self._builder.start()
        else:
            self._searcher = registry.build('strategy', strategy, **strategy_args)
        self.strategy_name = strategy
        self.repeat_finished = repeat_finished
        #: searcher-signed final value of every sample with a result (key: SpaceSpec.key)
        self._finished: Dict[str, float] = {}
        #: proposals answered from ``_finished`` instead of a trial
        self.answered_from_records = 0
        #: asks answered with a random unseen sample after MAX_KNOWN_IN_A_ROW finished ones in a row
        self.random_instead_of_repeat = 0
        #: samples of trials NNI reruns after a resume (not asked by this process), with the number of
        #: this searcher's asks for the same sample that wait for their result
        self._resumed: Dict[str, int] = {}
        self._told_keys: set = set()
        self._pending: Dict[int, dict] = {}
        self._ended_without_result: Dict[int, Any] = {}
        self.codec: Optional[JsonSpace] = None

    def _build(self, strategy: str, strategy_args: Dict[str, Any]) -> None:
        try:
            self._searcher = registry.build('strategy', strategy, **strategy_args)
        except BaseException as err:  # raised where the searcher is first needed
            self._build_error = err

    @property
    def searcher(self):
        """The strategy's searcher (inside NNI's dispatcher: once its background build is done)."""
        if self._searcher is None and self._builder is not None:
            self._builder.join()
            if self._build_error is not None:
                raise self._build_error
        return self._searcher

    @searcher.setter
    def searcher(self, value) -> None:
        self._searcher = value

    def update_search_space(self, search_space: Dict[str, Any]) -> None:
        """Any NNI search-space JSON (:mod:`nni_nasext.nni_json`: nested choices, ``randint``,
        ``lognormal``, ``qlognormal`` ...): the searcher searches its flat form."""
        self.codec = JsonSpace(search_space)
        self.searcher.configure(self.codec.spec)
        _logger.info('%s searches %d decisions', self.searcher, len(self.searcher.space))

    def generate_parameters(self, parameter_id: int, **kwargs) -> Dict[str, Any]:
        if self.codec is None:
            raise RuntimeError('The tuner has no search space yet (update_search_space first)')
        for _ in range(self.MAX_KNOWN_IN_A_ROW):
            try:  # the flat space carries the JSON's conditions: asks are canonical, sizes count the tree
                sample = self.searcher.ask()
            except SpaceExhausted as err:  # NNI's dispatcher answers NO_MORE_TRIAL_JOBS to this
                raise nni.NoMoreTrialError(str(err)) from err
            key = SpaceSpec.key(sample)
            if self.repeat_finished:
                break
            if key in self._finished:
                # finished before (or imported on resume): a replay, so the history does not grow
                self.searcher.tell(sample, self._finished[key], replay=True)
                self.answered_from_records += 1
            elif key in self._resumed:  # NNI is rerunning it: that trial's result answers this ask too
                self._resumed[key] += 1
            else:
                break
        else:   # the search has converged on what it knows
            fresh = self._unseen_random()
            if fresh is None:
                _logger.warning('%s proposed %d finished samples in a row and no unseen sample was drawn at '
                                'random; training a repeat.', self.searcher, self.MAX_KNOWN_IN_A_ROW)
            else:
                _logger.info('%s proposed %d finished samples in a row; training a random sample not evaluated '
                             'yet instead of a repeat.', self.searcher, self.MAX_KNOWN_IN_A_ROW)
                sample = fresh
                self.random_instead_of_repeat += 1
        self._pending[parameter_id] = sample
        return self.codec.decode(sample)

    def _unseen_random(self, tries: int = 1000) -> Optional[dict]:
        """A random sample of the space with no result yet, not rerun, and within its constraints
        (``None`` if ``tries`` draws find none)."""
        space, rng = self.searcher.space, self.searcher.rng
        pending = {SpaceSpec.key(s) for s in self._pending.values() if isinstance(s, dict)}
        for _ in range(tries):
            sample = space.canonical(space.random(rng))
            key = SpaceSpec.key(sample)
            if key in self._finished or key in self._resumed or key in self._told_keys or key in pending:
                continue
            if space.constraints and space.violated(sample) is not None:
                continue
            return sample
        return None

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
        if score is None:  # NNI shows such a trial as SUCCEEDED with its NaN: the search does not rank it
            _logger.warning('Trial of parameter %s reported %r as its final result, not a number: told as failed.',
                            parameter_id, value)
        self._told(sample, score)

    def _told(self, sample: Any, score: Optional[float]) -> None:
        value = None if score is None else self.sign * score
        self.searcher.tell(sample, value)
        if isinstance(sample, dict):
            key = SpaceSpec.key(sample)
            self._told_keys.add(key)
            if value is not None:
                self._finished[key] = value
            for _ in range(self._resumed.pop(key, 0)):  # asks that waited for this rerun trial
                self.searcher.tell(sample, value)

    def _note_rerun_trials(self) -> None:
        """After ``nnictl resume`` NNI reruns the trials that were running, with their old
        parameters (status ADD_RESUMED, then RUNNING), and tells this (new) tuner nothing of them
        until they end: read them from the
        manager's REST API (its port is in ``NNI_TUNER_COMMAND_CHANNEL``) so that no second trial of
        the same sample starts meanwhile."""
        import json
        import os
        import urllib.parse
        import urllib.request

        from nni_nasext.nnictl_tools import ENDED_STATUSES
        channel = urllib.parse.urlparse(os.environ.get('NNI_TUNER_COMMAND_CHANNEL', ''))
        if not channel.port:
            return
        host = '127.0.0.1' if channel.hostname in (None, 'localhost') else channel.hostname
        try:
            with urllib.request.urlopen(f'http://{host}:{channel.port}/api/v1/nni/trial-jobs', timeout=10) as resp:
                jobs = json.loads(resp.read().decode())
        except Exception as err:  # best effort: without it a rerun sample may be trained twice
            _logger.warning('Could not read the running trials from the NNI manager (%s).', err)
            return
        for job in jobs:
            if job.get('status') not in ENDED_STATUSES and job.get('hyperParameters'):
                try:
                    sample = self._flat(json.loads(job['hyperParameters'][-1])['parameters'])
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(sample, dict) and SpaceSpec.key(sample) not in self._told_keys:  # not a stale status
                    self._resumed.setdefault(SpaceSpec.key(sample), 0)
        if self._resumed:
            _logger.info('%d trial(s) rerun by NNI after the resume: their samples are not asked again.',
                         len(self._resumed))

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
            self._told(self._flat(record['parameter']), score)
        _logger.info('Imported %d earlier trials into %s', len(data), self.searcher)
        self._note_rerun_trials()

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
