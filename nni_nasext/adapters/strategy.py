"""Any :class:`~nni_nasext.searcher.Searcher` as an ``nni.nas.strategy.Strategy``.

Use it inside an NNI project exactly like NNI's own strategies::

    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.strategies import RegularizedEvolution
    exp = NasExperiment(space, evaluator, SearcherStrategy(RegularizedEvolution(seed=0)))

The strategy asks the searcher for a sample, freezes the model space with it and submits
the model to NNI's execution engine; when the engine reports the end of training (event
``TrainingEnd``) it tells the searcher the final metric, the intermediate metrics, or
``None`` for a failed model. It keeps going until the engine's budget (``max_trial_number``,
``max_experiment_duration``) runs out. ``state_dict`` is the searcher's, so a checkpointed
experiment resumes the search where it stopped.
"""
from __future__ import annotations

import logging
from typing import Dict

from nni.nas.execution.event import ModelEvent, ModelEventType
from nni.nas.space import ModelStatus
from nni.nas.strategy import Strategy

from nni_nasext.searcher import Searcher, SpaceExhausted
from nni_nasext.space_spec import SampleError, SpaceSpec

from nni_nasext.adapters.checkpoint import install as _install_safe_checkpoints

_install_safe_checkpoints()  # NasExperiment checkpoints load under torch >= 2.6 (weights_only kept)

_logger = logging.getLogger(__name__)


class SearcherStrategy(Strategy):
    def __init__(self, searcher: Searcher, *, max_invalid: int = 100):
        super().__init__()
        if not isinstance(searcher, Searcher):
            raise TypeError(f'SearcherStrategy needs an nni_nasext Searcher, got {type(searcher).__name__}')
        self.searcher = searcher
        self.max_invalid = max_invalid
        self._running: Dict[int, dict] = {}

    def extra_repr(self) -> str:
        return repr(self.searcher)

    def _initialize(self, model_space, engine):
        self.searcher.configure(SpaceSpec.from_space(model_space))
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        return model_space

    def _cleanup(self) -> None:
        self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)

    def _run(self) -> None:
        invalid = 0
        while self.wait_for_resource():
            try:
                sample = self.searcher.ask()
            except SpaceExhausted as err:
                _logger.info('%s', err)
                break
            try:
                model = self.model_space.freeze(sample)
            except Exception as err:  # a sample the space refuses: tell it as a failure
                invalid += 1
                _logger.warning('Sample %s cannot be frozen (%s); told as failed.', sample, err)
                self.searcher.tell(sample, None)
                if invalid >= self.max_invalid:
                    raise SampleError(f'{self.searcher!r} proposed {invalid} samples the space refuses') from err
                continue
            invalid = 0  # the bound is on refusals in a row
            self._running[id(model)] = sample
            self.engine.submit_models(model)
        self.engine.wait_models()

    def _on_training_end(self, event: ModelEvent) -> None:
        sample = self._running.pop(id(event.model), None)
        if sample is None:
            return  # not ours (another strategy on the same engine)
        model = event.model
        value = model.metric if event.status == ModelStatus.Trained else None
        intermediates = [float(x) for x in model.metrics.intermediates]
        if value is None:
            _logger.warning('Model %s failed or reported no final metric; the search goes on.', sample)
        self.searcher.tell(sample, value, intermediates=intermediates)

    def state_dict(self) -> dict:
        return {'searcher': self.searcher.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.searcher.load_state_dict(state_dict['searcher'])
