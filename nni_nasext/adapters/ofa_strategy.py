"""Once-for-All (:mod:`nni_nasext.strategies.oneshot.ofa`) as an ``nni.nas.strategy`` strategy over
:class:`~nni_nasext.search_spaces.mobile.OFASpace`::

    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters import OFAStrategy
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces import OFASpace

    space = OFASpace(num_classes=10, resolutions=(8, 12, 16), width_mult=0.25, in_channels=1)
    strategy = OFAStrategy(full=3, shrink=1, max_macs=3e5)
    exp = NasExperiment(space, ImageClassification('digits'), strategy)
    exp.run()
    exp.export_top_models(formatter='dict')   # [the chosen sub-network's sample]
    strategy.subnet()                        # that network with the supernet's weights (no retraining)

It works as :class:`~nni_nasext.adapters.oneshot_strategy.OneShotStrategy` does (one model for
NNI's sequential engine; its evaluator runs the whole search; the supernet's per-epoch
validation accuracy is the model's intermediate metric), with Cai et al.'s progressive
shrinking (ICLR 2020) and the constrained sub-network search in place of the NB201 methods.
The evaluator gives the dataset, batch size, seed and ``limit``; the schedule comes from
``full`` (epochs of the full network; default: the evaluator's ``max_epochs``) and ``shrink``
(epochs of each shrinking phase).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import nni
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy as _NniOneShotStrategy
from nni.nas.space import RawFormatModelSpace

from nni.nas.execution import SequentialExecutionEngine
from nni.nas.space import ModelStatus

from nni_nasext.adapters.oneshot_strategy import SearchEvaluator
from nni_nasext.search_spaces.mobile import OFASpace

from nni_nasext.adapters.checkpoint import install as _install_safe_checkpoints

_install_safe_checkpoints()  # NasExperiment checkpoints load under torch >= 2.6 (weights_only kept)

__all__ = ['OFAStrategy', 'evaluator_settings']


def evaluator_settings(evaluator) -> Dict[str, Any]:
    """The data recipe of an :class:`ImageClassification` evaluator, as arguments of the OFA search."""
    from nni_nasext.evaluators.classification import ImageClassification
    if not isinstance(evaluator, ImageClassification):
        raise TypeError('The OFA search reads its dataset, batch size, seed and epochs from '
                        'nni_nasext.evaluators.classification.ImageClassification; got '
                        f'{type(evaluator).__name__} (not supported)')
    if evaluator.data_root is not None:
        raise ValueError(f'The OFA search finds datasets through NASEXT_DATA only; this evaluator has '
                         f'data_root={evaluator.data_root!r}: set NASEXT_DATA to it instead')
    return {'dataset': evaluator.dataset, 'batch_size': int(evaluator.batch_size), 'seed': int(evaluator.seed),
            'limit': evaluator.limit, 'epochs': int(evaluator.max_epochs), 'accelerator': evaluator.accelerator}


class OFAStrategy(_NniOneShotStrategy):
    """Once-for-All over an :class:`OFASpace` as one model of NNI's sequential engine.

    Parameters
    ----------
    full, shrink
        Epochs of the full-network phase (default: the evaluator's ``max_epochs``) and of each
        of the kernel, depth and expansion phases.
    max_macs
        Budget of the sub-network search, in multiply-accumulates (``None``: no budget).
    max_latency, latency_predictor
        A latency budget (ms) of the sub-network search and the
        :class:`~nni_nasext.hardware.latency_predictor.LatencyPredictor` (or the path of its saved JSON
        state) that prices the sub-networks; both or neither.
    population, generations
        Of the evolutionary sub-network search.
    **module_args
        Arguments of :class:`~nni_nasext.strategies.oneshot.ofa.OFAModule` (``progressive``,
        ``kd_ratio``, ``subnets_per_step``, ``lr_full``, ``lr_shrink`` ...).
    """

    def __init__(self, *, full: Optional[int] = None, shrink: int = 1, max_macs: Optional[float] = None,
                 population: int = 16, generations: int = 6, accelerator: Optional[str] = None,
                 verbose: bool = True, callbacks=None, max_latency: Optional[float] = None,
                 latency_predictor=None, **module_args: Any):
        _NniOneShotStrategy.__init__(self)
        import inspect

        from nni_nasext.strategies.oneshot.ofa import OFAModule, latency_budget
        accepted = set(inspect.signature(OFAModule.__init__).parameters) - {
            'self', 'num_classes', 'in_channels', 'resolutions', 'width_mult', 'dropout', 'schedule', 'seed'}
        unknown = sorted(set(module_args) - accepted)
        if unknown:
            raise ValueError(f'Unknown OFA arguments {unknown}; accepted: {", ".join(sorted(accepted))}')
        if (full is not None and int(full) < 0) or int(shrink) < 0:
            raise ValueError(f'full and shrink are epochs >= 0, got {full}, {shrink}')
        if max_macs is not None and max_macs <= 0:
            raise ValueError(f'max_macs must be positive, got {max_macs}')
        self.max_latency = max_latency
        self.latency_predictor = latency_budget(max_latency, latency_predictor)  # fails here, before training
        if population < 2 or generations < 1:
            raise ValueError(f'Need population >= 2 and generations >= 1, got {population}, {generations}')
        self.method = 'ofa'
        self.full, self.shrink, self.max_macs = full, int(shrink), max_macs
        self.population, self.generations = int(population), int(generations)
        self.accelerator, self.verbose, self.callbacks = accelerator, verbose, callbacks
        self.method_args = dict(module_args)
        self.module_cls, self.num_candidates, self.image_size = None, 0, None
        self.settings: Dict[str, Any] = {}
        self.result: Optional[Dict[str, Any]] = None
        self._search_model: Optional[RawFormatModelSpace] = None

    def extra_repr(self) -> str:
        return f'full={self.full}, shrink={self.shrink}, max_macs={self.max_macs}'

    def _initialize(self, model_space, engine):
        space = model_space.model_space if isinstance(model_space, RawFormatModelSpace) else model_space
        if not isinstance(space, OFASpace):
            raise TypeError(f'OFAStrategy searches OFASpace; got {type(space).__name__} (not supported): OFA needs the '
                            'elastic kernel, depth and expansion of OFASpace; use OneShotStrategy for other spaces')
        if not isinstance(engine, SequentialExecutionEngine):
            raise TypeError(f'OFAStrategy runs only on NNI\'s sequential execution engine, got {type(engine).__name__}')
        if not isinstance(model_space, RawFormatModelSpace):
            raise TypeError('OFAStrategy needs the raw model format (model_format=\'raw\')')
        self.settings = self._settings_for(model_space)
        self._search_model = RawFormatModelSpace(model_space.model_space, SearchEvaluator(self))
        self._search_model.status = ModelStatus.Frozen
        return model_space

    def _run(self) -> None:
        if self._search_model is None:
            raise RuntimeError('OFA strategy is not initialized yet.')
        if self.result is not None and self.result.get('sample') is not None:
            return
        if not self.wait_for_resource():
            return
        self.engine.submit_models(self._search_model)
        self.engine.wait_models()

    def list_models(self, sort: bool = True, limit: Optional[int] = 1):
        """The space frozen with the chosen sub-network (one model)."""
        if self.result is None or self.result.get('sample') is None:
            return
        yield self.model_space.freeze(dict(self.result['sample']))

    @property
    def sample(self) -> Optional[Dict[str, Any]]:
        return None if self.result is None else self.result.get('sample')

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get('result'):
            self.result = dict(state_dict['result'])

    def _space_settings(self, space) -> Dict[str, Any]:
        kw = space.net._kwargs
        return {'num_classes': kw['num_classes'], 'in_channels': kw['in_channels'], 'width_mult': kw['width_mult'],
                'dropout': kw['dropout'], 'resolutions': list(space.resolutions)}

    def _settings_for(self, model_space) -> Dict[str, Any]:
        data = evaluator_settings(model_space.evaluator)
        full = data['epochs'] if self.full is None else int(self.full)
        if full + 3 * self.shrink < 1:
            raise ValueError('The OFA schedule has no epoch: give full or shrink > 0')
        return {'method': 'ofa', **data, 'schedule': {'full': full, 'kernel': self.shrink, 'depth': self.shrink,
                                                      'expand': self.shrink},
                'max_macs': self.max_macs, 'population': self.population, 'generations': self.generations,
                'accelerator': self.accelerator or data['accelerator'], 'method_args': dict(self.method_args),
                **self._space_settings(model_space.model_space)}

    def _search(self) -> float:
        from nni_nasext.datasets import load_dataset
        from nni_nasext.strategies.oneshot.ofa import search_ofa
        s = self.settings
        _, _, info = load_dataset(s['dataset'], limit=8)
        if (info.num_classes, info.in_channels) != (s['num_classes'], s['in_channels']):
            raise ValueError(f'Dataset {s["dataset"]!r} has {info.in_channels}-channel images and {info.num_classes} '
                             f'classes, but the OFA space expects {s["in_channels"]} and {s["num_classes"]}: build it '
                             f'with in_channels={info.in_channels}, num_classes={info.num_classes}')
        result = search_ofa(dataset=s['dataset'], limit=s['limit'], batch_size=s['batch_size'],
                            schedule=s['schedule'], max_macs=s['max_macs'], resolutions=s['resolutions'],
                            width_mult=s['width_mult'], seed=s['seed'], population=s['population'],
                            generations=s['generations'], accelerator=s['accelerator'], verbose=self.verbose,
                            callbacks=self.callbacks, dropout=s['dropout'], max_latency=self.max_latency,
                            latency_predictor=self.latency_predictor, **s['method_args'])
        self.model_space.validate(result['sample'])
        self.result = result
        final = float(result['val_acc_subnet'])
        nni.report_final_result(final)
        return final

    def subnet(self):
        """The chosen sub-network with the supernet's weights and re-estimated BN statistics."""
        from nni_nasext.strategies.oneshot.ofa_supernet import calibrate_bn
        if self.result is None or 'module' not in self.result:
            raise RuntimeError('The OFA search has not run in this process yet.')
        net = self.result['module'].supernet
        with calibrate_bn(net, self.result['calibration']):
            return net.export(self.result['sample']).eval()

    def state_dict(self) -> dict:
        if self.result is None:
            return {}
        return {'result': {k: v for k, v in self.result.items() if k not in ('module', 'calibration')}}
