"""A search space as a flat list of decisions, and its nnictl search-space JSON.

:class:`SpaceSpec` is what every searcher sees: the space's simplified mutables
(``model_space.simplify()``) as an ordered dict ``label -> Dimension``. It samples, mutates,
validates and hashes samples, and converts to and from nnictl's search-space JSON:

===========================  =====================================================================
NNI mutable                  JSON
===========================  =====================================================================
``Categorical``              ``{"_type": "choice", "_value": [v, ...]}`` (NNI's legacy format)
``CategoricalMultiple``      ``{"_type": "choice_multiple", "_value": [v, ...], "n_chosen": k}``
                             (``n_chosen`` null = any subset); NNI's own TPE cannot read it, ours can
``Numerical``                ``uniform``/``quniform``/``loguniform``/``qloguniform`` ``[low, high(, q)]``
                             or ``normal``/``qnormal`` ``[mu, sigma(, q)]`` (NNI's legacy formats)
===========================  =====================================================================

Round trip is exact: ``SpaceSpec.from_json(spec.to_json()) == spec``; values that JSON would
change (tuples, objects) are refused when the spec is built, so nothing is lost silently.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
from typing import Any, Dict, List, Optional

__all__ = ['Dimension', 'SpaceSpec', 'SampleError']


class SampleError(ValueError):
    """A sample that is not in the space (missing label, unknown value, extra label)."""


@dataclasses.dataclass(frozen=True)
class Dimension:
    label: str
    kind: str                       # 'choice' | 'choice_multiple' | 'numerical'
    values: tuple = ()              # choice / choice_multiple
    n_chosen: Optional[int] = None  # choice_multiple
    dist: str = ''                  # numerical: uniform | loguniform | normal
    low: float = 0.
    high: float = 0.
    quantize: Optional[float] = None

    # ------------------------------------------------------------------ sampling
    def random(self, rng: random.Random) -> Any:
        if self.kind == 'choice':
            return self.values[rng.randrange(len(self.values))]
        if self.kind == 'choice_multiple':
            k = self.n_chosen if self.n_chosen is not None else rng.randint(0, len(self.values))
            idx = sorted(rng.sample(range(len(self.values)), k))
            return [self.values[i] for i in idx]
        if self.dist == 'uniform':
            x = rng.uniform(self.low, self.high)
        elif self.dist == 'loguniform':
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.gauss(self.low, self.high)
        if self.quantize:
            x = round(x / self.quantize) * self.quantize
        if self.dist != 'normal':  # exp(log(x)) may land one ulp outside (found by test_fuzz_json)
            x = min(max(x, self.low), self.high)
        return x

    def mutate(self, value: Any, rng: random.Random) -> Any:
        """A value different from ``value`` where the dimension has more than one."""
        for _ in range(100):
            new = self.random(rng)
            if new != value:
                return new
        return value

    def contains(self, value: Any) -> Optional[str]:
        if self.kind == 'choice':
            return None if value in self.values else f'{value!r} is not one of {list(self.values)}'
        if self.kind == 'choice_multiple':
            if not isinstance(value, (list, tuple)):
                return f'{value!r} must be a list of chosen values'
            if any(v not in self.values for v in value) or len(set(map(json.dumps, value))) != len(value):
                return f'{value!r} must be distinct values from {list(self.values)}'
            if self.n_chosen is not None and len(value) != self.n_chosen:
                return f'{value!r} must choose exactly {self.n_chosen}'
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f'{value!r} is not a number'
        if self.dist != 'normal' and not self.low <= value <= self.high:
            return f'{value!r} is outside [{self.low}, {self.high}]'
        return None

    def grid(self, num_bins: int) -> list:
        """``num_bins`` values of a numerical dimension spread by its distribution: evenly on
        ``[low, high]`` (uniform), evenly in log space (loguniform), evenly on ``mu +- 2 sigma``
        (normal); rounded to ``quantize`` where given (and clipped), duplicates dropped. The
        discrete searchers (REINFORCE, MetaQNN) choose among these."""
        if self.kind != 'numerical':
            raise ValueError(f'{self.label!r} is not numerical')
        lo, hi = (self.low - 2 * self.high, self.low + 2 * self.high) if self.dist == 'normal' else (self.low, self.high)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f'Cannot discretise {self.label!r}: range [{lo}, {hi}] is not a finite interval')
        if self.dist == 'loguniform':
            if lo <= 0:
                raise ValueError(f'Log-uniform {self.label!r} needs low > 0, got {lo}')
            xs = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (num_bins - 1)) for i in range(num_bins)]
            xs[0], xs[-1] = lo, hi  # exact ends, no rounding past the bounds
        else:
            xs = [lo + (hi - lo) * i / (num_bins - 1) for i in range(num_bins)]
        out = []
        for x in xs:
            if self.quantize:
                x = round(x / self.quantize) * self.quantize
                if self.dist != 'normal':
                    x = min(max(x, self.low), self.high)
            if x not in out:
                out.append(x)
        return out

    @functools.cached_property  # frozen dataclass: cached in the instance __dict__, not a field
    def size(self) -> float:
        if self.kind == 'choice':
            return len(self.values)
        if self.kind == 'choice_multiple':
            n = len(self.values)
            return math.comb(n, self.n_chosen) if self.n_chosen is not None else 2 ** n
        if self.dist != 'normal' and self.low == self.high:
            return 1  # a degenerate range has one value
        if self.quantize and self.dist != 'normal':
            # the values random() can give: multiples of quantize, clipped into [low, high]
            first, last = round(self.low / self.quantize), round(self.high / self.quantize)
            if last - first > 1_000_000:
                return last - first + 1
            return len({min(max(k * self.quantize, self.low), self.high) for k in range(first, last + 1)})
        return math.inf

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> Dict[str, Any]:
        if self.kind == 'choice':
            return {'_type': 'choice', '_value': list(self.values)}
        if self.kind == 'choice_multiple':
            return {'_type': 'choice_multiple', '_value': list(self.values), 'n_chosen': self.n_chosen}
        name = ('q' if self.quantize else '') + self.dist
        value = [self.low, self.high] + ([self.quantize] if self.quantize else [])
        return {'_type': name, '_value': value}

    @classmethod
    def from_json(cls, label: str, spec: Dict[str, Any]) -> 'Dimension':
        if not isinstance(spec, dict) or '_type' not in spec or '_value' not in spec:
            raise ValueError(f'Search-space entry {label!r} needs "_type" and "_value": {spec!r}')
        typ, val = spec['_type'], spec['_value']
        if typ == 'choice':
            return cls(label, 'choice', tuple(val))
        if typ == 'choice_multiple':
            return cls(label, 'choice_multiple', tuple(val), n_chosen=spec.get('n_chosen'))
        base = typ[1:] if typ.startswith('q') else typ
        if base not in ('uniform', 'loguniform', 'normal'):
            raise ValueError(f'Search-space entry {label!r} has unsupported _type {typ!r}')
        q = float(val[2]) if typ.startswith('q') else None
        return cls(label, 'numerical', dist=base, low=float(val[0]), high=float(val[1]), quantize=q)


def _json_exact(label: str, values) -> tuple:
    for v in values:
        if json.loads(json.dumps(v)) != v or type(json.loads(json.dumps(v))) is not type(v):
            raise ValueError(f'Choice {label!r} has a value that JSON cannot carry exactly: {v!r}')
    return tuple(values)


class SpaceSpec:
    """Ordered decisions of a search space (see module docstring)."""

    def __init__(self, dims: List[Dimension]):
        self.dims: Dict[str, Dimension] = {d.label: d for d in dims}
        if len(self.dims) != len(dims):
            raise ValueError('Duplicate labels in search space')
        self._canonical = None
        self._conditional_size: Optional[float] = None
        #: NNI constraints (``ExpressionConstraint`` ...) a sample must satisfy, by label
        self.constraints: Dict[str, Any] = {}

    def set_conditions(self, canonical, size: float) -> 'SpaceSpec':
        """Decisions that only count under others (NNI's nested choices,
        :class:`nni_nasext.nni_json.JsonSpace`): ``canonical(sample)`` fixes the inactive ones,
        and ``size`` counts configurations along the tree. :meth:`random` and :meth:`mutate`
        then return canonical samples, and every searcher's asks are made canonical."""
        self._canonical, self._conditional_size = canonical, float(size)
        return self

    def canonical(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        return self._canonical(sample) if self._canonical is not None and isinstance(sample, dict) else sample

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_space(cls, space) -> 'SpaceSpec':
        """From an NNI model space (or anything with ``simplify()``) or a dict of mutables."""
        from nni.mutable import Categorical, CategoricalMultiple, MutableAnnotation, Numerical
        mutables = space if isinstance(space, dict) else space.simplify()
        dims, constraints = [], {}
        for label, m in mutables.items():
            label = str(label)  # NNI's labels are a str subclass; samples and states keep plain str
            if isinstance(m, Categorical):
                dims.append(Dimension(label, 'choice', _json_exact(label, m.values)))
            elif isinstance(m, CategoricalMultiple):
                dims.append(Dimension(label, 'choice_multiple', _json_exact(label, m.values), n_chosen=m.n_chosen))
            elif isinstance(m, Numerical):
                bounded = m.low is not None and m.high is not None and math.isfinite(m.low) and math.isfinite(m.high)
                if m.mu is not None and m.sigma is not None and not bounded:  # NNI leaves low/high at +-inf
                    dims.append(Dimension(label, 'numerical', dist='normal', low=float(m.mu),
                                          high=float(m.sigma), quantize=m.quantize))
                else:
                    dims.append(Dimension(label, 'numerical', dist='loguniform' if m.log_distributed else 'uniform',
                                          low=float(m.low), high=float(m.high), quantize=m.quantize))
            elif isinstance(m, MutableAnnotation):
                if not hasattr(m, 'check_contains'):
                    raise ValueError(f'Unsupported annotation {label!r}: {type(m).__name__}')
                constraints[label] = m
            else:
                raise ValueError(f'Unsupported mutable {label!r}: {type(m).__name__}')
        spec = cls(dims)
        spec.constraints = constraints
        return spec

    @classmethod
    def from_json(cls, search_space: Dict[str, Any]) -> 'SpaceSpec':
        if not isinstance(search_space, dict) or not search_space:
            raise ValueError(f'Search space must be a non-empty JSON object, got {search_space!r}')
        return cls([Dimension.from_json(k, v) for k, v in search_space.items()])

    def to_json(self) -> Dict[str, Any]:
        if self.constraints:
            raise ValueError(f'The constraints {sorted(self.constraints)} cannot be written in nnictl search-space '
                             'JSON; search this space with NasExperiment (SearcherStrategy), which checks them')
        return {label: d.to_json() for label, d in self.dims.items()}

    def violated(self, sample: Dict[str, Any]) -> Optional[str]:
        """The first constraint ``sample`` breaks (its label and NNI's message), or None."""
        for label, c in self.constraints.items():
            try:
                problem = c.check_contains(sample)
            except Exception as err:  # noqa: BLE001 - a constraint that cannot be evaluated on it
                problem = err
            if problem is not None:
                return f'{label}: {problem}'
        return None

    # ------------------------------------------------------------------ samples
    def __eq__(self, other) -> bool:
        return isinstance(other, SpaceSpec) and list(self.dims.values()) == list(other.dims.values())

    def __len__(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> float:
        if self._conditional_size is not None:
            return self._conditional_size
        if getattr(self, '_size_of', None) is not self.dims or len(self.dims) != self._size_n:
            self._size_of, self._size_n = self.dims, len(self.dims)
            self._size = math.prod(d.size for d in self.dims.values())
        return self._size

    def random(self, rng: random.Random) -> Dict[str, Any]:
        return self.canonical({label: d.random(rng) for label, d in self.dims.items()})

    def mutate(self, sample: Dict[str, Any], rng: random.Random, num: int = 1) -> Dict[str, Any]:
        """Change ``num`` decisions (chosen uniformly among those with >1 value) of a copy."""
        child = dict(sample)
        mutable = [label for label, d in self.dims.items() if d.size > 1]
        for label in rng.sample(mutable, min(num, len(mutable))):
            child[label] = self.dims[label].mutate(child[label], rng)
        return self.canonical(child)

    def validate(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        if not isinstance(sample, dict):
            raise SampleError(f'A sample must be a dict label -> value, got {type(sample).__name__}')
        missing = [k for k in self.dims if k not in sample]
        extra = [k for k in sample if k not in self.dims]
        if missing or extra:
            raise SampleError(f'Sample does not fit the space: missing {missing}, unknown {extra}')
        for label, d in self.dims.items():
            problem = d.contains(sample[label])
            if problem:
                raise SampleError(f'Sample value for {label!r}: {problem}')
        return sample

    @staticmethod
    def key(sample: Dict[str, Any]) -> str:
        """Canonical hashable form of a sample (for deduplication and lookup)."""
        return json.dumps(sample, sort_keys=True)
