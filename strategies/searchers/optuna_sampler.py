"""Every Optuna sampler as a NAS searcher: one ask/tell adapter over Optuna's define-and-run API.

Optuna (Akiba et al., "Optuna: A Next-generation Hyperparameter Optimization Framework",
KDD 2019) keeps its samplers behind one interface: a study asks a trial for a fixed set of
distributions and is told its value. :class:`OptunaSearcher` maps each decision of a
:class:`~nni_nasext.space_spec.SpaceSpec` to Optuna distributions, so the sampler searches any
NNI model space that our own searchers search, under ``NasExperiment``
(:class:`~nni_nasext.adapters.SearcherStrategy`) and as an nnictl tuner:

=====================================  ===============================================================
decision                               Optuna parameter(s)
=====================================  ===============================================================
choice of ``n`` values                 ``CategoricalDistribution(range(n))`` (the value's index)
multiple choice, any subset            one ``CategoricalDistribution([False, True])`` per value
multiple choice of exactly ``k``       one ``FloatDistribution(0, 1)`` priority per value; the ``k``
                                       highest are chosen
uniform / loguniform ``[low, high]``   ``FloatDistribution(low, high, log=...)``, rounded to ``q``
normal ``(mu, sigma)``                 ``FloatDistribution`` over the quantile ``u`` in (0, 1);
                                       the value is ``mu + sigma * Phi^-1(u)``, so random draws keep
                                       the normal prior
=====================================  ===============================================================

A told sample that the searcher did not ask (an imported history, a resumed search) joins the
study as a finished trial with the same encoding. A failed trial is told to Optuna as
``FAIL``. Optuna's samplers do not know which configurations were tried: TPE on a small
categorical space proposes repeats. With ``repeats='skip'`` (the default) a proposal of a
configuration already evaluated is answered from the record (the trial is told that value, no
training) and the sampler asks again; after ``max_repeats`` such answers in a row a random
configuration not yet asked is tried instead. CMA-ES and QMC handle numerical parameters only:
Optuna samples their categorical ones with its independent (random) sampler, so on an
all-categorical space such as NAS-Bench-201 they search at random (Optuna says so in a warning).

Samplers (``sampler=``): ``tpe`` (Bergstra et al. 2011; Optuna's ``TPESampler``), ``cmaes``
(Hansen 2016), ``nsga2`` (Deb et al. 2002), ``gp`` (Optuna's ``GPSampler``, Bayesian optimisation
with a Matern-5/2 Gaussian process), ``qmc`` (Sobol' points), ``random``.
"""
from __future__ import annotations

import logging
import statistics
import warnings
from typing import Any, Dict, List, Optional

from nni_nasext.searcher import Observation, Searcher
from nni_nasext.space_spec import Dimension, SampleError, SpaceSpec

__all__ = ['OptunaSearcher', 'OptunaTPE', 'TPE', 'OptunaCmaEs', 'OptunaNSGAII', 'OptunaGP', 'OptunaQMC', 'OptunaRandom',
           'SAMPLERS', 'SpaceCodec', 'DecisionCodec']

_logger = logging.getLogger(__name__)

#: sampler name -> Optuna class name (in ``optuna.samplers``)
SAMPLERS = {'tpe': 'TPESampler', 'cmaes': 'CmaEsSampler', 'nsga2': 'NSGAIISampler', 'gp': 'GPSampler',
            'qmc': 'QMCSampler', 'random': 'RandomSampler'}
_EPS = 1e-9     # quantile bounds of a normal decision: (EPS, 1 - EPS)
_NORMAL = statistics.NormalDist()


def _optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - optuna is in install_requires
        raise ImportError('The Optuna searchers need optuna (pip install optuna)') from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class DecisionCodec:
    """Decision <-> Optuna parameters for one :class:`Dimension`."""

    def __init__(self, dim: Dimension, optuna):
        d = optuna.distributions
        self.dim = dim
        if dim.kind == 'choice':
            self.names = [dim.label]
            self.dists = [d.CategoricalDistribution(list(range(len(dim.values))))]
        elif dim.kind == 'choice_multiple':
            self.names = [f'{dim.label}[{i}]' for i in range(len(dim.values))]
            one = d.CategoricalDistribution([False, True]) if dim.n_chosen is None else d.FloatDistribution(0., 1.)
            self.dists = [one] * len(dim.values)
        elif dim.dist == 'normal':
            if not dim.high > 0:
                raise ValueError(f'Decision {dim.label!r}: a normal distribution needs sigma > 0, got {dim.high}')
            self.names = [dim.label]
            self.dists = [d.FloatDistribution(_EPS, 1 - _EPS)]
        else:
            if dim.dist == 'loguniform' and not dim.low > 0:
                raise ValueError(f'Decision {dim.label!r}: log-uniform needs low > 0, got {dim.low}')
            self.names = [dim.label]
            if dim.low == dim.high:
                self.dists = [d.FloatDistribution(dim.low, dim.high)]
            else:
                self.dists = [d.FloatDistribution(dim.low, dim.high, log=dim.dist == 'loguniform')]

    def decode(self, params: Dict[str, Any]) -> Any:
        dim, xs = self.dim, [params[n] for n in self.names]
        if dim.kind == 'choice':
            return dim.values[xs[0]]
        if dim.kind == 'choice_multiple':
            if dim.n_chosen is None:
                return [v for v, keep in zip(dim.values, xs) if keep]
            top = sorted(sorted(range(len(xs)), key=lambda i: -xs[i])[:dim.n_chosen])
            return [dim.values[i] for i in top]
        x = dim.low + dim.high * _NORMAL.inv_cdf(xs[0]) if dim.dist == 'normal' else xs[0]
        if dim.quantize:
            x = round(x / dim.quantize) * dim.quantize
        if dim.dist != 'normal':
            x = min(max(x, dim.low), dim.high)
        return x

    def encode(self, value: Any) -> Dict[str, Any]:
        dim = self.dim
        if dim.kind == 'choice':
            return {self.names[0]: dim.values.index(value)}
        if dim.kind == 'choice_multiple':
            chosen = [v in value for v in dim.values]
            return {n: (c if dim.n_chosen is None else float(c)) for n, c in zip(self.names, chosen)}
        if dim.dist == 'normal':
            u = _NORMAL.cdf((value - dim.low) / dim.high)
            return {self.names[0]: min(max(u, _EPS), 1 - _EPS)}
        return {self.names[0]: float(value)}


class SpaceCodec:
    """A whole :class:`SpaceSpec` <-> Optuna parameters (see the module docstring's table)."""

    def __init__(self, space: SpaceSpec):
        optuna = _optuna()
        self.codecs = [DecisionCodec(dim, optuna) for dim in space.dims.values()]
        self.distributions = {n: d for c in self.codecs for n, d in zip(c.names, c.dists)}

    def encode(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for codec in self.codecs:
            out.update(codec.encode(sample[codec.dim.label]))
        return out

    def decode(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {c.dim.label: c.decode(params) for c in self.codecs}

    def categorical_labels(self) -> List[str]:
        """Decisions that Optuna sees as categorical."""
        return [c.dim.label for c in self.codecs
                if c.dim.kind == 'choice' or (c.dim.kind == 'choice_multiple' and c.dim.n_chosen is None)]


class OptunaSearcher(Searcher):
    """An Optuna sampler as a :class:`~nni_nasext.searcher.Searcher` (see the module docstring).

    Parameters
    ----------
    sampler
        ``'tpe'``, ``'cmaes'``, ``'nsga2'``, ``'gp'``, ``'qmc'`` or ``'random'``.
    sampler_args
        Keyword arguments of the Optuna sampler (e.g. ``{'n_startup_trials': 20,
        'multivariate': True}`` for TPE); ``seed`` is set from ``seed``.
    repeats
        ``'skip'``: a proposal of a configuration already evaluated is answered from the record
        and the sampler asks again (the default); ``'allow'``: it is trained again.
    max_repeats
        Repeats answered in a row before a random configuration not yet asked is tried.
    seed
        Seed of the sampler and of the fallback draws.
    """

    sampler_name: Optional[str] = None  # fixed by the subclasses below

    def __init__(self, sampler: Optional[str] = None, *, sampler_args: Optional[Dict[str, Any]] = None,
                 repeats: str = 'skip', max_repeats: int = 100, seed: Optional[int] = None):
        super().__init__(seed=seed)
        sampler = sampler or self.sampler_name or 'tpe'
        if self.sampler_name is not None and sampler != self.sampler_name:
            raise ValueError(f'{type(self).__name__} is the {self.sampler_name!r} sampler; use OptunaSearcher for another')
        if sampler not in SAMPLERS:
            raise ValueError(f'Unknown Optuna sampler {sampler!r}; known: {", ".join(SAMPLERS)}')
        if repeats not in ('skip', 'allow'):
            raise ValueError(f"repeats must be 'skip' or 'allow', got {repeats!r}")
        if not isinstance(max_repeats, int) or isinstance(max_repeats, bool) or max_repeats < 0:
            raise ValueError(f'max_repeats must be an int >= 0, got {max_repeats!r}')
        self.sampler = sampler
        self.sampler_args = dict(sampler_args or {})
        if 'seed' in self.sampler_args:
            raise ValueError('Give the seed as seed=, not in sampler_args')
        optuna = _optuna()
        try:  # bad sampler arguments fail here, before any training
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
                getattr(optuna.samplers, SAMPLERS[sampler])(**self._sampler_kwargs())
        except TypeError as err:
            raise TypeError(f'Bad sampler_args for Optuna {SAMPLERS[sampler]}: {err}') from None
        self.repeats = repeats
        self.max_repeats = max_repeats
        self.num_answered = 0   # proposals answered from the record (repeats='skip')
        self.study = None
        self.codec: Optional[SpaceCodec] = None
        self._pending: Dict[str, List[int]] = {}   # sample key -> Optuna trial numbers in flight
        self._values: Dict[str, Optional[float]] = {}   # sample key -> last told value

    # ------------------------------------------------------------------ set-up
    def configure(self, space) -> 'OptunaSearcher':
        super().configure(space)
        self.codec = SpaceCodec(self.space)
        if self.sampler in ('cmaes', 'qmc'):
            categorical = self.codec.categorical_labels()
            if categorical:
                warnings.warn(f'Optuna\'s {SAMPLERS[self.sampler]} samples categorical decisions at random '
                              f'({len(categorical)} of {len(self.codec.codecs)} here, e.g. {categorical[0]!r})',
                              stacklevel=2)
        self._rebuild()
        return self

    def _new_study(self):
        optuna = _optuna()
        # a resumed search must not replay the same random stream: the seed moves with the history
        seed = None if self.seed is None else self.seed + 7919 * len(self.history)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
            sampler = getattr(optuna.samplers, SAMPLERS[self.sampler])(seed=seed, **self._sampler_kwargs())
        return optuna.create_study(direction='maximize', sampler=sampler)

    def _sampler_kwargs(self) -> Dict[str, Any]:
        kwargs = dict(self.sampler_args)
        if self.sampler in ('cmaes', 'qmc'):
            # said once, in configure(), instead of once per categorical parameter per trial
            kwargs.setdefault('warn_independent_sampling', False)
        return kwargs

    @property
    def distributions(self) -> Dict[str, Any]:
        return self.codec.distributions

    def encode(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        return self.codec.encode(sample)

    def decode(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return self.codec.decode(params)

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        for _ in range(self.max_repeats + 1):
            trial = self.study.ask(self.distributions)
            sample = self.decode(trial.params)
            key = SpaceSpec.key(sample)
            if self.repeats == 'allow' or (key not in self._values and key not in self._pending):
                self._pending.setdefault(key, []).append(trial.number)
                return sample
            self._answer_repeat(trial, key)
        # the sampler keeps proposing known configurations: try one not asked yet
        for _ in range(1000):
            sample = self.space.random(self.rng)
            key = SpaceSpec.key(sample)
            if key not in self._values and key not in self._pending:
                break
        self._pending.setdefault(key, [])  # told later through add_trial (not an Optuna proposal)
        return sample

    def _answer_repeat(self, trial, key: str) -> None:
        optuna = _optuna()
        value = self._values.get(key)
        self.num_answered += 1
        trial.set_user_attr('answered', True)   # told from the record, never trained
        if value is None:  # in flight, or failed before: no value to give
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def _tell(self, obs: Observation) -> None:
        if self.study is None:
            return  # no space yet: configure() rebuilds from the history
        sample, value = obs['sample'], obs['value']
        try:
            self.space.validate(sample)
        except (SampleError, TypeError, ValueError, KeyError) as err:
            _logger.warning('Told sample is not in the space (%s); the Optuna study does not get it.', err)
            return
        key = SpaceSpec.key(sample)
        self._values[key] = value
        optuna = _optuna()
        numbers = self._pending.get(key)
        if numbers:
            number = numbers.pop(0)
            if not numbers:
                del self._pending[key]
            if value is None:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(number, value)
            return
        self._pending.pop(key, None)
        state = optuna.trial.TrialState.FAIL if value is None else optuna.trial.TrialState.COMPLETE
        self.study.add_trial(optuna.trial.create_trial(params=self.encode(sample), distributions=self.distributions,
                                                       value=value, state=state))

    def _rebuild(self) -> None:
        if self.space is None:
            return
        self.study = self._new_study()
        self._pending, self._values = {}, {}
        for obs in self.history:
            self._tell(obs)

    def best_params(self) -> Optional[Dict[str, Any]]:
        """The best sample the study has been told, decoded (``None`` before the first success)."""
        done = [t for t in self.study.trials if t.value is not None] if self.study is not None else []
        return self.decode(max(done, key=lambda t: t.value).params) if done else None

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state['num_answered'] = self.num_answered
        state['in_flight'] = sorted(self._pending)   # asked, not told yet: never proposed again
        if self.space is not None:
            state['space'] = self.space.to_json()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._configure_from_state(state)
        super().load_state_dict(state)   # rebuilds the study from the history
        self.num_answered = state.get('num_answered', 0)
        for key in state.get('in_flight', ()):
            if key not in self._values:
                self._pending.setdefault(key, [])   # its result, when told, joins the study as a new trial

    def __repr__(self) -> str:
        args = f', sampler_args={self.sampler_args}' if self.sampler_args else ''
        return f'{type(self).__name__}(sampler={self.sampler!r}{args}, repeats={self.repeats!r}, seed={self.seed})'


def _fixed(name: str, sampler: str, paper: str) -> type:
    def __init__(self, *, sampler_args: Optional[Dict[str, Any]] = None, repeats: str = 'skip',
                 max_repeats: int = 100, seed: Optional[int] = None):
        OptunaSearcher.__init__(self, sampler, sampler_args=sampler_args, repeats=repeats, max_repeats=max_repeats,
                                seed=seed)
    doc = (f"Optuna's ``{SAMPLERS[sampler]}`` ({paper}) as a searcher: :class:`OptunaSearcher` with "
           f"``sampler={sampler!r}``; the same arguments otherwise.")
    return type(name, (OptunaSearcher,), {'__init__': __init__, 'sampler_name': sampler, '__doc__': doc,
                                           '__module__': __name__})


OptunaCmaEs = _fixed('OptunaCmaEs', 'cmaes', 'Hansen, arXiv 1604.00772, 2016')
OptunaNSGAII = _fixed('OptunaNSGAII', 'nsga2', 'Deb et al., IEEE TEC 2002')
OptunaGP = _fixed('OptunaGP', 'gp', 'Gaussian-process Bayesian optimisation')
OptunaQMC = _fixed('OptunaQMC', 'qmc', "Sobol' quasi-Monte Carlo points")
OptunaRandom = _fixed('OptunaRandom', 'random', 'uniform random sampling')


class OptunaTPE(OptunaSearcher):
    """Tree-structured Parzen estimator (Bergstra et al., NeurIPS 2011) as Optuna's ``TPESampler``:
    the project's ``tpe`` strategy (tuner ``NasextTPE``).

    Optuna's TPE replaced our own implementation after a side-by-side measurement on
    NAS-Bench-201 and NAS-Bench-Macro (``experiments/results/tpe_decision.md``). The arguments
    of that implementation are kept and passed on: ``num_startup`` (random results before the
    model, Optuna's ``n_startup_trials``) and ``num_candidates`` (``n_ei_candidates``); its
    ``gamma`` and ``prior_weight`` are not (Optuna deprecated both arguments in 4.9: the share of
    good results is at most 10 %, capped at 25, and the prior's weight is 1). Anything else of
    ``TPESampler`` goes in ``sampler_args`` (e.g. ``{'multivariate': False}``; Optuna 5's default
    is the multivariate estimator).
    """

    sampler_name = 'tpe'

    def __init__(self, *, num_startup: Optional[int] = None, num_candidates: Optional[int] = None,
                 sampler_args: Optional[Dict[str, Any]] = None, repeats: str = 'skip', max_repeats: int = 100,
                 seed: Optional[int] = None):
        args = dict(sampler_args or {})
        for name, value, optuna_name, check in (
                ('num_startup', num_startup, 'n_startup_trials', lambda v: isinstance(v, int) and v >= 0),
                ('num_candidates', num_candidates, 'n_ei_candidates', lambda v: isinstance(v, int) and v >= 1)):
            if value is None:
                continue
            if isinstance(value, bool) or not check(value):
                raise ValueError(f'{name} has a bad value: {value!r}')
            if optuna_name in args:
                raise ValueError(f'Give {name} or sampler_args[{optuna_name!r}], not both')
            args[optuna_name] = value
        self.tpe_args = {k: v for k, v in (('num_startup', num_startup), ('num_candidates', num_candidates))
                         if v is not None}
        super().__init__('tpe', sampler_args=args, repeats=repeats, max_repeats=max_repeats, seed=seed)

    def __repr__(self) -> str:
        args = ''.join(f', {k}={v}' for k, v in self.tpe_args.items())
        return f'OptunaTPE(repeats={self.repeats!r}{args}, seed={self.seed})'


#: the project's ``tpe`` (``from nni_nasext.strategies import TPE``): Optuna's TPESampler
TPE = OptunaTPE
