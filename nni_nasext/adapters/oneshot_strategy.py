"""Our one-shot methods as an ``nni.nas.strategy`` strategy, for any space and evaluator.

Use it inside an NNI project as NNI's own one-shot strategies (``nni.nas.strategy.DARTS``, ...)::

    from nni.nas.experiment import NasExperiment
    from nni.nas.evaluator.pytorch import Classification
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy

    strategy = OneShotStrategy('darts', arch_lr=3e-4)        # any name of `nasext list oneshot`
    exp = NasExperiment(my_model_space, Classification(...), strategy)
    exp.run()
    exp.export_top_models(formatter='dict')      # [the derived sample]
    exp.export_top_models(formatter='instance')  # [my_model_space.freeze(sample)]
    strategy.result                              # history, the trained supernet and module

The space is any ``nni.nas.nn.pytorch.ModelSpace`` whose choices are ``LayerChoice``,
``InputChoice``, ``Repeat``, ``Cell`` or ``nni.choice`` values of NNI's mutable layers; the
evaluator is any NNI Lightning evaluator (``Classification``, ``Regression``, ``Lightning``)
or this project's ``ImageClassification``: its Lightning module, data,
optimiser and epochs train the supernet (:mod:`nni_nasext.strategies.oneshot`).

How it plugs into NNI 3.0, following NNI's own ``OneShotStrategy``
(``nni/nas/oneshot/pytorch/strategy.py``): a one-shot search is *one model* for the execution
engine. :meth:`OneShotStrategy._initialize` checks the method's arguments and builds that one
model, the space with an evaluator that runs the search; :meth:`OneShotStrategy._run`
submits it to NNI's sequential engine, which runs it in this process. The evaluator's module
reports the supernet's validation metric per epoch; the last one is the model's final metric.
:meth:`OneShotStrategy.list_models` yields the space frozen with the derived sample. The class
derives from NNI's ``OneShotStrategy`` so that ``NasExperiment`` without a config picks the
sequential engine and the raw model format, as for NNI's own.

Checkpoints: with ``output_dir`` the search writes ``output_dir/checkpoints/last.ckpt`` every
epoch and resumes from it when it exists (``state_dict()`` holds its path as ``ckpt_path``,
as NNI's one-shot strategies do). A space, evaluator or argument the method cannot take is a
``TypeError``/``ValueError`` before any training.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, Optional, Sequence

import nni
from nni.nas.evaluator import Evaluator
from nni.nas.execution import SequentialExecutionEngine
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy as _NniOneShotStrategy
from nni.nas.space import ModelStatus, RawFormatModelSpace

from nni_nasext.adapters.checkpoint import install as _install_safe_checkpoints

_install_safe_checkpoints()  # NasExperiment checkpoints load under torch >= 2.6 (weights_only kept)

__all__ = ['OneShotStrategy']

_logger = logging.getLogger(__name__)


class SearchEvaluator(Evaluator):
    """The evaluator of the one model a one-shot strategy submits: running it runs the search."""

    def __init__(self, strategy: 'OneShotStrategy'):
        self.strategy = strategy

    def extra_repr(self) -> str:
        return repr(self.strategy)

    def _execute(self, model) -> float:
        return self.strategy._search()

    def evaluate(self, model) -> float:
        return self.strategy._search()


class OneShotStrategy(_NniOneShotStrategy):
    """One-shot NAS (``method``, a name of ``nasext list oneshot``) as one model of NNI's
    sequential engine. Keyword arguments: those of
    :func:`nni_nasext.strategies.oneshot.search` (``epochs``, ``arch_data``, ``seed``,
    ``output_dir``, ``resume``, ``verbose``, ``hooks``, ``accelerator``, ``callbacks``,
    ``num_score_batches``), then the method's own (``arch_lr``, ``tau_max``, ...).
    After the run :attr:`result` is the :class:`~nni_nasext.strategies.oneshot.OneShotResult`
    and :attr:`sample` the derived architecture."""

    def __init__(self, method: str = 'darts', *, epochs: Optional[int] = None, arch_data: Optional[str] = None,
                 seed: Optional[int] = None, output_dir: Optional[str] = None, resume: bool = True, verbose: bool = True,
                 hooks: Sequence = (), accelerator: Optional[str] = None, callbacks: Sequence = (),
                 num_score_batches: int = 4, **method_args: Any):
        super().__init__()
        from nni_nasext.strategies.oneshot import check_method_args
        check_method_args(method, method_args)
        if epochs is not None and int(epochs) < 1:
            raise ValueError(f'epochs must be positive, got {epochs}')
        self.method, self.method_args = method, dict(method_args)
        self.search_args = dict(epochs=epochs, arch_data=arch_data, seed=seed, output_dir=output_dir, resume=resume,
                                verbose=verbose, hooks=tuple(hooks), accelerator=accelerator,
                                callbacks=tuple(callbacks), num_score_batches=num_score_batches)
        self.result = None
        self._restored: Optional[Dict[str, Any]] = None
        self._search_model: Optional[RawFormatModelSpace] = None

    def extra_repr(self) -> str:
        extra = ''.join(f', {k}={v!r}' for k, v in self.method_args.items())
        return f'{self.method!r}' + extra

    # ------------------------------------------------------------------ Strategy interface
    def _initialize(self, model_space, engine):
        if not isinstance(engine, SequentialExecutionEngine):
            raise TypeError(f'{type(self).__name__} runs only on NNI\'s sequential execution engine, got '
                            f'{type(engine).__name__} (not supported): leave NasExperiment\'s config out (it is inferred), '
                            "or use NasExperimentConfig('sequential', 'raw', ...)")
        if not isinstance(model_space, RawFormatModelSpace):
            raise TypeError(f'{type(self).__name__} needs the raw model format (model_format=\'raw\'), got '
                            f'{type(model_space).__name__} (not supported)')
        self._search_model = RawFormatModelSpace(model_space.model_space, SearchEvaluator(self))
        self._search_model.status = ModelStatus.Frozen
        return model_space

    def _run(self) -> None:
        if self._search_model is None:
            raise RuntimeError('One-shot strategy is not initialized yet.')
        if self.sample is not None:
            _logger.info('The one-shot search was already done (restored): %s', self.sample)
            return
        if not self.wait_for_resource():
            _logger.warning('No budget left for the one-shot search (max_trial_number / max_experiment_duration).')
            return
        self.engine.submit_models(self._search_model)
        self.engine.wait_models()

    def _search(self) -> float:
        """Run the search (called by the engine, inside the model's trial): keep the result,
        report the last supernet validation metric as the final metric, return it."""
        from nni_nasext.strategies.oneshot import search
        space, evaluator = self.model_space.model_space, self.model_space.evaluator
        self.result = search(space, evaluator, self.method, data_parallel=False, **self.search_args, **self.method_args)
        val = self.result.history.get('val', [])
        final = float(val[-1]) if val else 0.0
        nni.report_final_result(final)
        return final

    def list_models(self, sort: bool = True, limit: Optional[int] = 1) -> Iterator[RawFormatModelSpace]:
        """The model space frozen with the derived sample (one model: the search's answer)."""
        if limit is not None and limit != 1:
            _logger.warning('A one-shot search derives one architecture; %s were requested.', limit)
        if self.sample is None:
            _logger.warning('The one-shot search has no result (it did not run, or it failed).')
            return
        yield self.model_space.freeze(dict(self.sample))

    @property
    def sample(self) -> Optional[Dict[str, Any]]:
        """The derived architecture, or ``None`` before the search ends."""
        if self.result is not None:
            return self.result.sample
        return None if self._restored is None else self._restored.get('sample')

    @property
    def oneshot_module(self):
        """The trained one-shot module (supernet, architecture parameters, the evaluator's module)."""
        if self.result is None:
            raise RuntimeError('The one-shot search has not run in this process yet.')
        return self.result.module

    @property
    def supernet(self):
        """The trained supernet (a :class:`~nni_nasext.strategies.oneshot.Supernet`)."""
        if self.result is None:
            raise RuntimeError('The one-shot search has not run in this process yet.')
        return self.result.supernet

    def state_dict(self) -> dict:
        """The derived sample and history (JSON-safe) and, with ``output_dir``, ``ckpt_path``."""
        state: Dict[str, Any] = {}
        if self.search_args.get('output_dir'):
            from pathlib import Path
            last = Path(self.search_args['output_dir']) / 'checkpoints' / 'last.ckpt'
            if last.exists():
                state['ckpt_path'] = str(last)
        if self.result is not None:
            data = self.result.to_json()
            data.pop('settings', None)
            state['result'] = data
        elif self._restored is not None:
            state['result'] = self._restored
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a finished search (a resumed experiment exports its sample without searching
        again); an unfinished one resumes from ``ckpt_path`` through ``output_dir``."""
        if state_dict.get('result'):
            self._restored = dict(state_dict['result'])
