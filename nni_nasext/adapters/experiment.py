"""A ``NasExperiment`` that loses nothing when its process is killed.

NNI 3.0's ``NasExperiment`` writes its checkpoint (engine and strategy state) when it starts and
when it stops. A process killed with SIGKILL in between resumes from the start state, and every
model trained since then is trained again. :class:`CheckpointingNasExperiment` also writes the
checkpoint after every model that finishes training. It registers an engine callback for
``TrainingEnd`` *after* the strategy's own, so the state it saves already holds that model's
result. Its checkpoint files are replaced atomically (written beside, then renamed): NNI's own
save truncates ``config.json`` and ``state.ckpt.torch`` in place, and a kill during that write
leaves a checkpoint that cannot be read. Resume is NNI's own: build the experiment again with the same ``id`` and
``experiment_working_directory`` and call ``resume()``. The checkpoint loads under torch ≥ 2.6
(:mod:`.checkpoint`).
"""
from __future__ import annotations

import logging
import os

import nni
from nni.nas.execution.event import ModelEvent, ModelEventType
from nni.nas.experiment import NasExperiment

from nni.nas.utils.serializer import get_default_serializer

from nni_nasext.adapters.checkpoint import install as _install_safe_checkpoints

_install_safe_checkpoints()
_logger = logging.getLogger(__name__)

__all__ = ['CheckpointingNasExperiment']


class CheckpointingNasExperiment(NasExperiment):
    """``NasExperiment`` with a checkpoint after every trained model (see the module docstring)."""

    def _start_engine_and_strategy(self) -> None:
        strategy = self.strategy
        run = strategy.run

        def run_with_checkpoints(*args, **kwargs):
            # the strategy registered its callbacks in initialize(): ours comes after them
            self._engine.register_model_event_callback(ModelEventType.TrainingEnd, self._checkpoint_after_model)
            return run(*args, **kwargs)

        strategy.run = run_with_checkpoints
        try:
            super()._start_engine_and_strategy()
        finally:
            del strategy.run  # back to the class's method

    def _checkpoint_after_model(self, event: ModelEvent) -> None:
        self.save_checkpoint()
        _logger.debug('Checkpoint written after model %s ended (%s).', event.model, event.status)

    def save_checkpoint(self) -> None:
        """The files of NNI's checkpoint (``config.json`` and the serialized state), each written
        to a ``.part`` file first and then renamed over the old one, so a reader sees the old or
        the new checkpoint and never a torn one."""
        folder = self._checkpoint_directory
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / 'config.json.part'
        with part.open('w', encoding='utf-8') as fh:
            nni.dump(self.config.json(), fp=fh, indent=2)
        os.replace(part, folder / 'config.json')
        if self._engine is not None:
            serializer = get_default_serializer()
            serializer.save(self.state_dict(), folder / 'state.part')
            os.replace(folder / f'state.part{serializer.suffix}', folder / f'state.ckpt{serializer.suffix}')
