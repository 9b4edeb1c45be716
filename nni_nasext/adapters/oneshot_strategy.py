"""Our one-shot searches (:mod:`nni_nasext.strategies.oneshot`) as an ``nni.nas.strategy`` strategy.

Use it inside an NNI project like NNI's own one-shot strategies (``nni.nas.strategy.DARTS``
...)::

    from nni.nas.experiment import NasExperiment
    from nni_nasext.adapters.oneshot_strategy import OneShotStrategy
    from nni_nasext.evaluators.classification import ImageClassification
    from nni_nasext.search_spaces import QuickstartSpace

    strategy = OneShotStrategy('darts', epochs=3)
    exp = NasExperiment(QuickstartSpace(), ImageClassification('digits', max_epochs=3), strategy)
    exp.run()
    exp.export_top_models(formatter='dict')   # [derived sample]
    strategy.result                          # val_acc / alpha / train_loss per epoch, the trained module

The methods and their papers: DARTS first and second order (Liu, Simonyan & Yang, ICLR 2019),
GDAS (Dong & Yang, CVPR 2019), SNAS (Xie et al., ICLR 2019), PC-DARTS (Xu et al., ICLR 2020),
Fair DARTS (Chu et al., ECCV 2020), RSPS (Li & Talwalkar, UAI 2019) and SPOS (Guo et al.,
ECCV 2020); :mod:`nni_nasext.strategies.oneshot` gives the equations each one follows.

How it plugs into NNI 3.0, following NNI's own ``OneShotStrategy``
(``nni/nas/oneshot/pytorch/strategy.py``): a one-shot search is *one model* for the
execution engine. :meth:`OneShotStrategy._initialize` reads the supernet's shape from the
model space and the data recipe from the evaluator, and builds that one model: the space,
frozen as is, with an evaluator that runs :func:`~nni_nasext.strategies.oneshot.search`;
:meth:`OneShotStrategy._run` submits it to NNI's sequential engine, which runs it in this
process. The supernet validation accuracy of every epoch reaches the engine as an
intermediate metric of that model (``nni.report_intermediate_result``, as under nnictl), the
last one as its final metric. :meth:`OneShotStrategy.list_models` yields the model space
frozen with the derived sample, so ``export_top_models(formatter='dict')`` returns the
sample and ``formatter='instance'`` the network.

What differs from NNI's one-shot strategies: the supernet is our
:class:`~nni_nasext.strategies.oneshot_supernet.NB201Supernet`, not the model space mutated
in place by NNI's hooks, and the evaluator is our
:class:`~nni_nasext.evaluators.classification.ImageClassification` (its dataset, batch size,
seed, ``limit``, ``max_epochs`` and accelerator), not a Lightning evaluator whose module NNI
wraps. Its optimiser settings (``learning_rate``, ``optimizer``, ...) do not apply: the
one-shot methods have their own (``weight_lr``, ``arch_lr``, ... of
:class:`~nni_nasext.strategies.oneshot.OneShotModule`, passed as keyword arguments here). The
class derives from NNI's ``OneShotStrategy`` so that ``NasExperiment`` without a config
picks the sequential engine and the raw model format for it, as it does for NNI's own; every
method that touches NNI's supernet machinery is replaced.

Supported spaces: the NB201 family (:class:`~nni_nasext.search_spaces.nasbench201.NasBench201Space`
and its subclasses such as ``QuickstartSpace``); any other space is a clear ``TypeError``.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Dict, Iterator, Optional

import nni
from nni.nas.evaluator import Evaluator
from nni.nas.execution import SequentialExecutionEngine
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy as _NniOneShotStrategy
from nni.nas.space import ModelStatus, RawFormatModelSpace

from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.search_spaces.nasbench201 import NasBench201Space
from nni_nasext.strategies.oneshot import OneShotModule, search

__all__ = ['OneShotStrategy', 'check_method_args', 'evaluator_settings', 'space_settings']

_logger = logging.getLogger(__name__)

# OneShotModule arguments that search() sets itself: not method arguments
_SET_BY_SEARCH = ('self', 'method', 'num_cells', 'channels', 'num_classes', 'in_channels', 'epochs', 'seed')


def check_method_args(method: str, method_args: Dict[str, Any], module_cls=None) -> None:
    """Raise a ``ValueError`` naming the problem if ``method`` is not a method of
    ``module_cls`` (default :class:`OneShotModule`) or ``method_args`` holds a keyword its
    constructor does not take (or one that :func:`search` sets itself)."""
    from nni_nasext.strategies.oneshot import MODULES, module_class
    if module_cls is None and method not in MODULES:
        raise ValueError(f'Unknown one-shot method {method!r}; choose one of {", ".join(MODULES)}')
    cls = module_cls or module_class(method)
    methods = tuple(getattr(cls, 'methods', ()))
    if method not in methods:
        raise ValueError(f'Unknown one-shot method {method!r}; choose one of {", ".join(methods)}')
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = None
    else:
        accepted = sorted(n for n in params if n not in _SET_BY_SEARCH)
    for key in method_args:
        if key in _SET_BY_SEARCH:
            raise ValueError(f'{key!r} is a search setting, not a method argument: set it directly')
        if accepted is not None and key not in accepted:
            raise ValueError(f'Unknown argument {key!r} for one-shot method {method!r}; '
                             f'accepted: {", ".join(accepted)}')


def space_settings(space) -> Dict[str, int]:
    """``num_cells``, ``channels``, ``num_classes`` and ``in_channels`` of an NB201-family space."""
    if isinstance(space, RawFormatModelSpace):
        space = space.model_space
    if not isinstance(space, NasBench201Space):
        raise TypeError(f'One-shot search supports the NAS-Bench-201 space family so far (NasBench201Space, '
                        f'QuickstartSpace); got {type(space).__name__}')
    return {'num_cells': int(space.num_cells), 'channels': int(space.channels),
            'num_classes': int(space.head[-1].out_features), 'in_channels': int(space.stem[0].in_channels)}


def evaluator_settings(evaluator) -> Dict[str, Any]:
    """The data recipe of an :class:`ImageClassification` evaluator, as arguments of :func:`search`."""
    if not isinstance(evaluator, ImageClassification):
        raise TypeError('One-shot search reads its dataset, batch size, seed and epochs from '
                        'nni_nasext.evaluators.classification.ImageClassification; got '
                        f'{type(evaluator).__name__}')
    if evaluator.data_root is not None:
        raise ValueError(f'One-shot search finds datasets through NASEXT_DATA only; this evaluator has '
                         f'data_root={evaluator.data_root!r}: set NASEXT_DATA to it instead')
    return {'dataset': evaluator.dataset, 'batch_size': int(evaluator.batch_size), 'seed': int(evaluator.seed),
            'limit': evaluator.limit, 'epochs': int(evaluator.max_epochs), 'accelerator': evaluator.accelerator}


class _SearchEvaluator(Evaluator):
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
    """One-shot NAS over an NB201-family space as one model of NNI's sequential engine.

    Parameters
    ----------
    method
        One of :data:`nni_nasext.strategies.oneshot.METHODS` (``darts``, ``darts2``, ``gdas``,
        ``snas``, ``pcdarts``, ``fairdarts``, ``rsps``, ``spos``).
    epochs
        Supernet training epochs; default: the evaluator's ``max_epochs``.
    num_candidates
        Cells scored by the trained supernet (``rsps``, ``spos``).
    image_size
        Resize the images to this size (default: as they are).
    accelerator
        Lightning's accelerator; default: the evaluator's.
    verbose
        Print one summary line when the search ends.
    module_cls, callbacks
        As in :func:`~nni_nasext.strategies.oneshot.search`: a subclass of
        :class:`~nni_nasext.strategies.oneshot.OneShotModule`, Lightning callbacks.
    **method_args
        Arguments of the method (``arch_lr``, ``weight_lr``, ``tau_max``, ``partial_k``, ...).

    After the run, :attr:`result` holds what :func:`search` returned (``sample``,
    ``val_acc``, ``alpha``, ``train_loss``, ``seconds``, ``module``: the trained
    LightningModule) and :attr:`sample` the derived architecture.
    """

    def __init__(self, method: str = 'darts', *, epochs: Optional[int] = None, num_candidates: int = 100,
                 image_size: Optional[int] = None, accelerator: Optional[str] = None, verbose: bool = True,
                 module_cls=None, callbacks=None, **method_args: Any):
        super().__init__()
        check_method_args(method, method_args, module_cls)
        if epochs is not None and int(epochs) < 1:
            raise ValueError(f'epochs must be positive, got {epochs}')
        if int(num_candidates) < 1:
            raise ValueError(f'num_candidates must be positive, got {num_candidates}')
        self.method = method
        self.epochs = None if epochs is None else int(epochs)
        self.num_candidates = int(num_candidates)
        self.image_size, self.accelerator, self.verbose = image_size, accelerator, verbose
        self.module_cls, self.callbacks, self.method_args = module_cls, callbacks, dict(method_args)
        self.settings: Dict[str, Any] = {}
        self.result: Optional[Dict[str, Any]] = None
        self._search_model: Optional[RawFormatModelSpace] = None

    def extra_repr(self) -> str:
        extra = ''.join(f', {k}={v!r}' for k, v in self.method_args.items())
        return f'{self.method!r}' + (f', epochs={self.epochs}' if self.epochs is not None else '') + extra

    # ------------------------------------------------------------------ Strategy interface
    def _initialize(self, model_space, engine):
        if not isinstance(engine, SequentialExecutionEngine):
            raise TypeError(f'{type(self).__name__} runs only on NNI\'s sequential execution engine, got '
                            f'{type(engine).__name__}: leave NasExperiment\'s config out (it is inferred), or use '
                            "NasExperimentConfig('sequential', 'raw', ...)")
        if not isinstance(model_space, RawFormatModelSpace):
            raise TypeError(f'{type(self).__name__} needs the raw model format (model_format=\'raw\'), got '
                            f'{type(model_space).__name__}')
        self.settings = self._settings_for(model_space)
        # the one model of the search: the space as it is, run by the search evaluator
        self._search_model = RawFormatModelSpace(model_space.model_space, _SearchEvaluator(self))
        self._search_model.status = ModelStatus.Frozen
        return model_space

    def _settings_for(self, model_space) -> Dict[str, Any]:
        """The search settings from the space's shape and the evaluator's data recipe."""
        space = space_settings(model_space.model_space)
        data = evaluator_settings(model_space.evaluator)
        if self.epochs is not None:
            data['epochs'] = self.epochs
        if self.accelerator is not None:
            data['accelerator'] = self.accelerator
        self._space_io = (space['num_classes'], space['in_channels'])
        return {'method': self.method, **data, 'num_cells': space['num_cells'], 'channels': space['channels'],
                'image_size': self.image_size, 'num_candidates': self.num_candidates,
                'method_args': dict(self.method_args)}

    def _run(self) -> None:
        if self._search_model is None:
            raise RuntimeError('One-shot strategy is not initialized yet.')
        if self.result is not None and self.result.get('sample') is not None:
            _logger.info('The one-shot search was already done (restored from a checkpoint): %s', self.result['sample'])
            return
        if not self.wait_for_resource():
            _logger.warning('No budget left for the one-shot search (max_trial_number / max_experiment_duration).')
            return
        self.engine.submit_models(self._search_model)
        self.engine.wait_models()

    def _search(self) -> float:
        """Run the search (called by the engine, inside the model's trial): store the result,
        report the last supernet validation accuracy as the final metric, return it."""
        s = self.settings
        result = search(s['method'], dataset=s['dataset'], limit=s['limit'], image_size=s['image_size'],
                        epochs=s['epochs'], batch_size=s['batch_size'], num_cells=s['num_cells'],
                        channels=s['channels'], seed=s['seed'], num_candidates=s['num_candidates'],
                        accelerator=s['accelerator'], verbose=self.verbose, module_cls=self._checked_module(),
                        callbacks=self.callbacks, **s['method_args'])
        if not result['val_acc']:
            raise RuntimeError(f'{self.method}: the supernet was never validated (no epoch finished)')
        self.model_space.validate(result['sample'])  # a sample of the space we were given
        self.result = result
        final = float(result['val_acc'][-1])
        nni.report_final_result(final)
        return final

    def _checked_module(self):
        """The module class for :func:`search`, checking first that the dataset fits the space."""
        from nni_nasext.strategies.oneshot import module_class
        cls = self.module_cls or module_class(self.method)
        want_classes, want_channels = self._space_io

        def build(method, *, num_classes, in_channels, **kwargs):
            if (num_classes, in_channels) != (want_classes, want_channels):
                raise ValueError(f'Dataset {self.settings["dataset"]!r} has {in_channels}-channel images and '
                                 f'{num_classes} classes, but the model space expects {want_channels} and '
                                 f'{want_classes}: build the space with in_channels={in_channels}, '
                                 f'num_classes={num_classes}')
            return cls(method, num_classes=num_classes, in_channels=in_channels, **kwargs)
        return build

    def list_models(self, sort: bool = True, limit: Optional[int] = 1) -> Iterator[RawFormatModelSpace]:
        """The model space frozen with the derived sample (one model: the search's answer)."""
        if limit is not None and limit != 1:
            _logger.warning('A one-shot search derives one architecture; %s were requested.', limit)
        if self.result is None or self.result.get('sample') is None:
            _logger.warning('The one-shot search has no result (it did not run, or it failed).')
            return
        yield self.model_space.freeze(dict(self.result['sample']))

    @property
    def sample(self) -> Optional[Dict[str, str]]:
        """The derived architecture, or ``None`` before the search ends."""
        return None if self.result is None else self.result.get('sample')

    @property
    def oneshot_module(self) -> OneShotModule:
        """The trained LightningModule (supernet + architecture weights) of the search."""
        if self.result is None or 'module' not in self.result:
            raise RuntimeError('The one-shot search has not run in this process yet.')
        return self.result['module']

    @property
    def supernet(self):
        """The trained weight-sharing network (an ``NB201Supernet``)."""
        return self.oneshot_module.supernet

    def state_dict(self) -> dict:
        """The JSON-safe part of the result (the derived sample and the per-epoch history)."""
        if self.result is None:
            return {}
        return {'result': {k: v for k, v in self.result.items() if k != 'module'}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a finished search: a resumed experiment exports its sample without searching again."""
        if state_dict.get('result'):
            self.result = dict(state_dict['result'])
