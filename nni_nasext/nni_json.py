"""Every type of NNI's search-space JSON for our searchers: nested choices, ``randint``,
``lognormal`` and ``qlognormal`` included.

Our searchers search a flat :class:`~nni_nasext.space_spec.SpaceSpec` (``choice``,
``choice_multiple``, ``uniform``/``loguniform``/``normal`` and their ``q`` forms). NNI's
``nnictl`` search-space JSON has more (NNI's "search space" reference; the shapes below are the
ones NNI 3.0's own tuners hand to trials, e.g. its Random and TPE tuners):

==============================  ============================================  =======================
NNI ``_type``                   what the searchers see                        what the trial receives
==============================  ============================================  =======================
``choice`` of options, some     the option (its ``_name``, or the plain       ``{"_name": n, k: v}``
``{"_name": n, k: {spec}}``     value) + the options' entries, each active    or the plain value
(nested, any depth)             only under its option (label ``opt/n/k``)
``randint [low, high)``         ``choice`` of the integers (up to 1,000       an ``int``
                                values), else ``quniform [low, high-1], 1``
``lognormal [mu, sigma]``       ``normal [mu, sigma]`` (of ``log x``)         ``exp(x)``
``qlognormal [mu, sigma, q]``   ``normal [mu, sigma]``                        ``round(exp(x)/q)*q``
anything else                   itself (:meth:`Dimension.from_json`)          itself
==============================  ============================================  =======================

:class:`JsonSpace` keeps the tree: :meth:`~JsonSpace.decode` turns a flat sample into NNI's
parameters, :meth:`~JsonSpace.encode` the other way (``nnictl resume`` replays parameters),
:meth:`~JsonSpace.canonical` sets the entries of options not chosen to fixed defaults (two
samples that differ only there are the same trial), and :attr:`~JsonSpace.size` counts
configurations along the tree (a sum over options, not a product). Malformed entries raise a
``ValueError`` naming the entry's path.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple

from nni_nasext.space_spec import Dimension, SpaceSpec

__all__ = ['JsonSpace']

#: ``randint`` ranges up to this many integers become a ``choice`` (else a quantised uniform)
RANDINT_CHOICE_MAX = 1000


class _Leaf:
    def __init__(self, key: str, dim: Dimension, kind: str, q: Optional[float] = None):
        self.key, self.dim, self.kind, self.q = key, dim, kind, q  # kind: plain | int | lognormal

    def decode(self, x: Any) -> Any:
        if self.kind == 'int':
            return int(round(x))
        if self.kind == 'lognormal':
            v = math.exp(x)
            return round(v / self.q) * self.q if self.q else v
        return x

    def encode(self, v: Any, path: str) -> Any:
        if self.kind == 'lognormal':
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (v == 0 and not self.q):
                raise ValueError(f'{path}: {v!r} is not a value of a log-normal entry (> 0)')
            return math.log(max(v, self.q / 2) if v == 0 else v)
        if self.kind == 'int' and self.dim.kind == 'numerical':
            return float(v)
        return v

    def size(self) -> float:
        return self.dim.size


class _Nested:
    def __init__(self, key: str, dim: Dimension, options: Dict[str, Optional[List[Any]]]):
        # options: JSON of the option value (its name, or the plain value) -> child nodes (None: plain)
        self.key, self.dim, self.options = key, dim, options

    def kids(self, value: Any) -> Tuple[bool, Optional[List[Any]]]:
        """(whether ``value`` is an option, its child nodes or None for a plain value)"""
        k = json.dumps(value, sort_keys=True)
        return k in self.options, self.options.get(k)

    def size(self) -> float:
        return sum(1 if kids is None else math.prod(k.size() for k in kids) for kids in self.options.values())


def _default(dim: Dimension) -> Any:
    """The fixed value of an entry whose option is not chosen."""
    if dim.kind == 'choice':
        return dim.values[0]
    if dim.kind == 'choice_multiple':
        return list(dim.values[:dim.n_chosen or 0])
    return dim.low  # uniform / loguniform: the lower bound; normal: mu


def _number(v, path, what) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f'{path}: {what} must be a finite number, got {v!r}')
    return float(v)


class JsonSpace:
    """NNI's search-space JSON (see the module docstring); :attr:`spec` is the flat space."""

    def __init__(self, search_space: Dict[str, Any]):
        if not isinstance(search_space, dict) or not search_space:
            raise ValueError(f'Search space must be a non-empty JSON object, got {search_space!r}')
        self._dims: List[Dimension] = []
        self._cond: Dict[str, Tuple[Tuple[str, Any], ...]] = {}
        self.roots = self._parse(search_space, '', ())
        self.spec = SpaceSpec(self._dims)
        self.nested = any(self._cond.values())
        if self.nested:
            self.spec.set_conditions(self.canonical, self.size)

    # ------------------------------------------------------------------ parsing
    def _add(self, dim: Dimension, cond) -> None:
        if dim.label in self._cond:
            raise ValueError(f'Two search-space entries have the label {dim.label!r}')
        self._dims.append(dim)
        self._cond[dim.label] = cond

    def _parse(self, entries: Dict[str, Any], prefix: str, cond) -> List[Any]:
        nodes = []
        for key, spec in entries.items():
            label = f'{prefix}{key}'
            if not isinstance(spec, dict) or '_type' not in spec or '_value' not in spec:
                raise ValueError(f'Search-space entry {label!r} needs "_type" and "_value": {spec!r}')
            typ, val = spec['_type'], spec['_value']
            if typ == 'choice':
                if not isinstance(val, list) or not val:
                    raise ValueError(f'{label}: "choice" needs a non-empty list of options, got {val!r}')
                if any(isinstance(v, dict) and '_name' in v for v in val):
                    nodes.append(self._parse_nested(label, key, val, cond))
                    continue
            if typ == 'randint':
                if not isinstance(val, list) or len(val) != 2:
                    raise ValueError(f'{label}: "randint" needs [low, high), got {val!r}')
                lo, hi = (_number(v, label, 'randint bound') for v in val)
                if lo != int(lo) or hi != int(hi) or hi <= lo:
                    raise ValueError(f'{label}: "randint" needs integers low < high, got {val!r}')
                lo, hi = int(lo), int(hi)
                if hi - lo <= RANDINT_CHOICE_MAX:
                    dim = Dimension(label, 'choice', tuple(range(lo, hi)))
                else:
                    dim = Dimension(label, 'numerical', dist='uniform', low=float(lo), high=float(hi - 1), quantize=1.0)
                self._add(dim, cond)
                nodes.append(_Leaf(key, dim, 'int'))
                continue
            if typ in ('lognormal', 'qlognormal'):
                n = 3 if typ == 'qlognormal' else 2
                if not isinstance(val, list) or len(val) != n:
                    raise ValueError(f'{label}: "{typ}" needs {"[mu, sigma, q]" if n == 3 else "[mu, sigma]"}, got {val!r}')
                mu, sigma = _number(val[0], label, 'mu'), _number(val[1], label, 'sigma')
                q = _number(val[2], label, 'q') if n == 3 else None
                if sigma <= 0 or (q is not None and q <= 0):
                    raise ValueError(f'{label}: "{typ}" needs sigma > 0{" and q > 0" if q is not None else ""}, got {val!r}')
                dim = Dimension(label, 'numerical', dist='normal', low=mu, high=sigma)
                self._add(dim, cond)
                nodes.append(_Leaf(key, dim, 'lognormal', q))
                continue
            dim = self._plain(label, typ, val, spec)
            self._add(dim, cond)
            nodes.append(_Leaf(key, dim, 'plain'))
        return nodes

    @staticmethod
    def _plain(label, typ, val, spec) -> Dimension:
        if typ in ('uniform', 'quniform', 'loguniform', 'qloguniform', 'normal', 'qnormal'):
            n = 3 if typ.startswith('q') else 2
            if not isinstance(val, list) or len(val) != n:
                raise ValueError(f'{label}: "{typ}" needs {n} numbers, got {val!r}')
            a, b = _number(val[0], label, 'the first value'), _number(val[1], label, 'the second value')
            if 'normal' in typ and b <= 0:
                raise ValueError(f'{label}: "{typ}" needs sigma > 0, got {val!r}')
            if 'normal' not in typ and a > b:
                raise ValueError(f'{label}: "{typ}" needs low <= high, got {val!r}')
            if 'log' in typ and a <= 0:
                raise ValueError(f'{label}: "{typ}" needs low > 0, got {val!r}')
            if n == 3 and _number(val[2], label, 'q') <= 0:
                raise ValueError(f'{label}: "{typ}" needs q > 0, got {val!r}')
        elif typ == 'choice_multiple':
            if not isinstance(val, list) or not val:
                raise ValueError(f'{label}: "choice_multiple" needs a non-empty list, got {val!r}')
            k = spec.get('n_chosen')
            if k is not None and (not isinstance(k, int) or not 0 <= k <= len(val)):
                raise ValueError(f'{label}: n_chosen must be an integer in [0, {len(val)}], got {k!r}')
        elif typ != 'choice':
            raise ValueError(f'Search-space entry {label!r} has unsupported _type {typ!r}')
        return Dimension.from_json(label, spec)

    def _parse_nested(self, label, key, options, cond) -> _Nested:
        names, kids = [], {}
        for i, opt in enumerate(options):
            if isinstance(opt, dict):
                if '_name' not in opt:
                    raise ValueError(f'{label}: option {i} of a nested choice is an object without "_name": {opt!r}')
                name = opt['_name']
                if not isinstance(name, (str, int, float)) or isinstance(name, bool):
                    raise ValueError(f'{label}: option {i} has a "_name" that is not a string or number: {name!r}')
            else:
                name = opt
            if any(json.dumps(name) == json.dumps(n) for n in names):
                raise ValueError(f'{label}: two options are named {name!r}; nested options need distinct "_name"s')
            names.append(name)
        dim = Dimension(label, 'choice', tuple(names))
        self._add(dim, cond)
        for name, opt in zip(names, options):
            if isinstance(opt, dict):
                sub = {k: v for k, v in opt.items() if k != '_name'}
                kids[json.dumps(name, sort_keys=True)] = self._parse(sub, f'{label}/{name}/', cond + ((label, name),))
            else:
                kids[json.dumps(name, sort_keys=True)] = None
        return _Nested(key, dim, kids)

    # ------------------------------------------------------------------ conversions
    @property
    def size(self) -> float:
        return math.prod(n.size() for n in self.roots)

    def active(self, flat: Dict[str, Any], label: str) -> bool:
        return all(flat.get(parent) == value for parent, value in self._cond[label])

    def canonical(self, flat: Dict[str, Any]) -> Dict[str, Any]:
        """``flat`` with the entries of options not chosen set to their defaults."""
        out = dict(flat)
        for dim in self._dims:  # parents come before their children
            if not self.active(out, dim.label):
                out[dim.label] = _default(dim)
        return out

    def decode(self, flat: Dict[str, Any]) -> Dict[str, Any]:
        """A flat sample of :attr:`spec` as the parameters NNI's tuners give a trial. Keys
        outside the space (a multi-fidelity searcher's ``nasext_budget``) pass through."""
        out = self._decode(self.roots, flat)
        out.update({k: v for k, v in flat.items() if k not in self.spec.dims})
        return out

    def _decode(self, nodes, flat) -> Dict[str, Any]:
        out = {}
        for node in nodes:
            value = flat[node.dim.label]
            if isinstance(node, _Nested):
                _, kids = node.kids(value)
                out[node.key] = value if kids is None else {'_name': value, **self._decode(kids, flat)}
            else:
                out[node.key] = node.decode(value)
        return out

    def encode(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """NNI parameters (e.g. replayed by ``nnictl resume``) as a canonical flat sample of
        :attr:`spec`; a ``ValueError`` names what does not fit."""
        if not isinstance(params, dict):
            raise ValueError(f'Parameters must be a JSON object, got {params!r}')
        roots = {n.key for n in self.roots}
        extra = {k: v for k, v in params.items() if k not in roots}
        flat: Dict[str, Any] = {}
        self._encode(self.roots, {k: v for k, v in params.items() if k in roots}, flat, '')
        out = self.canonical(flat)
        self.spec.validate(out)
        out.update(extra)  # keys outside the space (e.g. the budget) pass through, as in decode
        return out

    def _encode(self, nodes, params, flat, path) -> None:
        keys = {n.key for n in nodes}
        extra = [k for k in params if k not in keys]
        if extra:
            raise ValueError(f'{path or "parameters"}: unknown keys {extra}')
        for node in nodes:
            where = f'{path}{node.key}'
            if node.key not in params:
                raise ValueError(f'{where}: missing')
            value = params[node.key]
            if isinstance(node, _Nested):
                if isinstance(value, dict):
                    name = value.get('_name')
                    known, kids = node.kids(name)
                    if not known or kids is None:
                        raise ValueError(f'{where}: {value!r} names no nested option of {list(node.dim.values)}')
                    flat[node.dim.label] = name
                    self._encode(kids, {k: v for k, v in value.items() if k != '_name'}, flat, f'{where}/{name}/')
                else:
                    known, kids = node.kids(value)
                    if not known or kids is not None:
                        raise ValueError(f'{where}: {value!r} is not a plain option of {list(node.dim.values)}')
                    flat[node.dim.label] = value
            else:
                flat[node.dim.label] = node.encode(value, where)
