"""PNAS: progressive (block by block) search with a learned accuracy predictor.

C. Liu, B. Zoph, M. Neumann, J. Shlens, W. Hua, L.-J. Li, L. Fei-Fei, A. Yuille, J. Huang,
K. Murphy, "Progressive Neural Architecture Search", ECCV 2018 (Section 3, Algorithm 1),
generalised from the paper's cell of B blocks to any :class:`~nni_nasext.space_spec.SpaceSpec`.

**Blocks.** The decisions are grouped into ``B`` ordered *blocks* (``blocks``: ``None`` = one
decision per block in the order of the space; or a list of lists of labels that must cover
every label exactly once). A *partial* architecture of stage ``b`` decides the labels of blocks
``1..b``; it is evaluated as a full sample whose undecided labels take the ``fill`` values
(``'first'``: each dimension's first value, the first ``n_chosen`` values of a
``choice_multiple`` (none for any subset), the first grid value of a numerical one; or a dict
label -> value, labels left out of it taking 'first'). The settings of a block are the
cartesian product of its dimensions' values (numerical ones discretised by
``Dimension.grid(num_bins)``; ``choice_multiple`` every allowed subset).

**Stages** (Algorithm 1):

1. stage 1 evaluates every setting of block 1; where there are more than ``beam_size`` of
   them, a random subset of ``beam_size`` (drawn with the searcher's ``rng``; the paper trains
   all of its 136 one-block cells, which the budgets here cannot pay for in general);
2. stage ``b > 1``: the candidates are every expansion of each of the top-``beam_size``
   evaluated partial architectures of stage ``b-1`` (ranked by their told values) by every
   setting of block ``b`` (more than ``max_candidates``: a random subset of that many). The
   predictor, refit on *all* evaluations so far (every stage together, as the paper's
   predictor is updated with each stage's results), ranks the candidates and the top
   ``beam_size`` not yet evaluated are evaluated. A candidate whose full sample (after
   ``fill``) was already evaluated, e.g. a stage-``b`` expansion setting block ``b`` to its fill
   value, is not evaluated again: its known value makes it a stage-``b`` member for free.

The paper expands all ``K`` architectures evaluated at stage ``b-1`` (``K`` = the beam); here
the top ``beam_size`` of them, which is the same set whenever a stage evaluates at most
``beam_size`` (always, without asynchrony).

**Predictor.** An :class:`~nni_nasext.strategies.searchers.predictors.MLPEnsemble` (5 MLPs, as the
paper's ensemble of 5 predictors) on :class:`~nni_nasext.strategies.searchers.predictors.ArchEncoder`
vectors of the partial architectures (undecided labels all zero, plus a presence bit per
label: ``encoding='partial'``, default, as in the paper whose LSTM reads the blocks decided so
far), or of the filled full samples (``encoding='filled'``). The paper uses an LSTM or an MLP
over block embeddings; the MLP on a fixed-length encoding is our choice. Targets are the told
values (standardised); ranking is by the ensemble mean.

**After the last stage** the budget may not be spent: the search continues as
predictor-guided local search (our addition, not in the paper): the candidates are all
one-decision changes of the top-``beam_size`` evaluated full samples, and the best-predicted
one not yet asked is proposed, refitting the predictor whenever a new result came in.
:meth:`stage_of` reports these as stage ``B + 1``. With no successful result at all the search
proposes unseen random samples.

**Asynchrony.** Asks within a stage return the stage's queue one by one. When the queue is
empty but results of the stage are still in flight, the next best-predicted unevaluated
candidate of the stage is proposed (so a stage may hold more than ``beam_size`` evaluations);
only when no candidate is left does the next stage start, from the results available then
(it expands the told members first, then the stage's architectures still in flight, up to
``beam_size``). No ask blocks, and no sample is proposed twice while unasked candidates exist.

**Failures** (``None``, NaN) never enter the ranking nor the predictor; the search goes on.
A stage with no successful result ends the stages: the search goes to local search.

**Resume.** ``state_dict`` holds the space, the stage, its candidates and queue and the
stage and partial architecture of every asked sample; the predictor is refit from the history
(deterministically: same data, same seed, same weights), so a searcher of any seed that loads
the state (through JSON or pickle) continues identically.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from nni_nasext.searcher import Searcher
from nni_nasext.space_spec import SampleError, SpaceSpec
from nni_nasext.checks import require
from .predictors import ArchEncoder, MLPEnsemble, dim_settings

__all__ = ['PNAS', 'NB201_EDGE_LABELS']

#: The NAS-Bench-201 cell's edges in the order of ``nni_nasext.search_spaces.nasbench201``.
NB201_EDGE_LABELS = ('0_1', '0_2', '1_2', '0_3', '1_3', '2_3')

_MAX_RANDOM_TRIES = 100


class PNAS(Searcher):
    """Progressive Neural Architecture Search (see the module docstring).

    Parameters
    ----------
    blocks
        ``None`` (one decision per block, in the space's order) or a list of lists of labels.
    beam_size
        ``K`` of the paper: architectures evaluated per stage and expanded into the next.
    fill
        ``'first'`` or a dict label -> value for the labels a partial architecture leaves open.
    num_bins
        Grid size of numerical dimensions.
    max_candidates
        At most this many candidates per stage (and settings per block): a random subset beyond.
    encoding
        ``'partial'`` (default) or ``'filled'``: what the predictor reads.
    num_models, hidden, epochs, lr, weight_decay
        The :class:`~nni_nasext.strategies.searchers.predictors.MLPEnsemble`.
    seed
        Seed of the searcher's ``rng`` and of the predictor.
    """

    def __init__(self, *, blocks: Optional[Sequence[Sequence[str]]] = None, beam_size: int = 8,
                 fill: Union[str, Dict[str, Any]] = 'first', num_bins: int = 10, max_candidates: int = 20000,
                 encoding: str = 'partial', num_models: int = 5, hidden: Sequence[int] = (64, 64),
                 epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4, seed: Optional[int] = None):
        super().__init__(seed=seed)
        blocks_ok = blocks is None or (isinstance(blocks, (list, tuple)) and len(blocks) > 0 and all(
            isinstance(b, (list, tuple)) and len(b) > 0 and all(isinstance(x, str) for x in b) for b in blocks))
        checks = [(isinstance(beam_size, int) and beam_size >= 1, 'beam_size >= 1'),
                  (isinstance(num_bins, int) and num_bins >= 2, 'num_bins >= 2'),
                  (isinstance(max_candidates, int) and max_candidates >= 1, 'max_candidates >= 1'),
                  (fill == 'first' or isinstance(fill, dict), "fill 'first' or a dict label -> value"),
                  (encoding in ('partial', 'filled'), "encoding 'partial' or 'filled'"),
                  (blocks_ok, 'blocks None or a non-empty list of non-empty lists of labels')]
        require('PNAS', checks)
        self.blocks = None if blocks is None else [list(b) for b in blocks]
        self.beam_size, self.num_bins, self.max_candidates = beam_size, num_bins, max_candidates
        self.fill, self.encoding = fill, encoding
        self.predictor_args = dict(num_models=num_models, hidden=tuple(hidden), epochs=epochs, lr=lr,
                                   weight_decay=weight_decay)
        MLPEnsemble(**self.predictor_args)  # bad predictor arguments raise here
        # the predictor's seed: the given one, else one drawn from the (unseeded) base generator
        self._torch_seed = seed if seed is not None else self.rng.getrandbits(63)
        self._blocks: Optional[List[List[str]]] = None
        self._reset()

    @classmethod
    def nb201_preset(cls, seed: Optional[int] = None) -> 'PNAS':
        """NAS-Bench-201: one edge per block in the order ``0_1, 0_2, 1_2, 0_3, 1_3, 2_3``, open
        edges ``skip_connect`` (a one-block cell is then a small cell, not a broken one), beam 20.

        Stage 1 costs the 5 ops of edge 1 and every later stage ``beam_size`` queries, so the six
        stages take ``5 + 5 x 20 = 105`` queries: about the ~100-110 queries that 12,000 simulated
        seconds pay for on cifar10-valid at 12 epochs; what is left goes to local search.
        """
        return cls(blocks=[[label] for label in NB201_EDGE_LABELS], beam_size=20,
                   fill={label: 'skip_connect' for label in NB201_EDGE_LABELS}, seed=seed)

    @classmethod
    def macro_preset(cls, seed: Optional[int] = None) -> 'PNAS':
        """NAS-Bench-Macro: one layer per block in order ``layer0 .. layer7``, undecided layers
        ``identity`` (a one-block network is the stem, one chosen layer and the head), beam 14:
        ``3 + 7 x 14 = 101`` queries for the eight stages."""
        labels = [f'layer{i}' for i in range(8)]
        return cls(blocks=[[label] for label in labels], beam_size=14,
                   fill={label: 'identity' for label in labels}, seed=seed)

    # ------------------------------------------------------------------ space
    def configure(self, space) -> 'PNAS':
        old = self.space
        super().configure(space)
        if self._blocks is None or old != self.space:
            try:
                self._build()
            except ValueError:
                self.space, self._blocks = old, None
                raise
        return self

    def _build(self):
        dims = self.space.dims
        blocks = [[label] for label in dims] if self.blocks is None else self.blocks
        flat = [label for b in blocks for label in b]
        unknown = [label for label in flat if label not in dims]
        twice = sorted({label for label in flat if flat.count(label) > 1})
        missing = [label for label in dims if label not in flat]
        if unknown or twice or missing:
            raise ValueError(f'PNAS blocks must cover every label of the space exactly once: unknown {unknown}, '
                             f'repeated {twice}, missing {missing}')
        fill = {}
        given = self.fill if isinstance(self.fill, dict) else {}
        extra = [label for label in given if label not in dims]
        if extra:
            raise ValueError(f'PNAS fill names labels not in the space: {extra}')
        for label, d in dims.items():
            if label in given:
                problem = d.contains(given[label])
                if problem:
                    raise ValueError(f'PNAS fill value for {label!r}: {problem}')
                fill[label] = given[label]
            else:
                fill[label] = dim_settings(d, self.num_bins, limit=1)[0]
        self._blocks, self._fill = [list(b) for b in blocks], fill
        self.encoder = ArchEncoder(self.space, presence=True)
        self._reset()

    def _reset(self):
        self._stage: Optional[int] = None       # 0-based; len(blocks) = local search
        self._candidates: List[Dict[str, Any]] = []
        self._queue: List[Dict[str, Any]] = []
        self._asked: Dict[str, list] = {}       # full key -> [stage, partial]
        self._told: set = set()
        self._values: Dict[str, float] = {}     # full key -> last successful value
        self.predictor: Optional[MLPEnsemble] = None
        self._fit_n: Optional[int] = None
        self.num_fits = 0

    # ------------------------------------------------------------------ helpers
    @property
    def num_blocks(self) -> int:
        self._require_space()
        return len(self._blocks)

    @property
    def stage(self) -> Optional[int]:
        """The current stage, 1-based (``num_blocks + 1``: local search); ``None`` before the first ask."""
        return None if self._stage is None else self._stage + 1

    def stage_of(self, sample: Dict[str, Any]) -> Optional[int]:
        """The 1-based stage at which ``sample`` was asked (``num_blocks + 1``: local search)."""
        rec = self._asked.get(SpaceSpec.key(sample))
        return None if rec is None else rec[0] + 1

    def _require_space(self):
        if self._blocks is None:
            raise RuntimeError('PNAS has no search space: call configure(space) first')

    def _full(self, partial: Dict[str, Any]) -> Dict[str, Any]:
        return {label: partial.get(label, self._fill[label]) for label in self.space.dims}

    def _key(self, partial: Dict[str, Any]) -> str:
        return SpaceSpec.key(self._full(partial))

    def _known(self, key: str) -> bool:
        return key in self._asked or key in self._told

    def _record(self, partial: Dict[str, Any], stage: int) -> Dict[str, Any]:
        full = self._full(partial)
        self._asked[SpaceSpec.key(full)] = [stage, dict(partial)]
        return full

    def _settings(self, b: int) -> List[Dict[str, Any]]:
        """Every setting of block ``b`` (a random ``max_candidates`` of them beyond that)."""
        labels = self._blocks[b]
        values = [dim_settings(self.space.dims[label], self.num_bins, limit=self.max_candidates)
                  for label in labels]
        if math.prod(len(v) for v in values) <= self.max_candidates:
            return [dict(zip(labels, combo)) for combo in itertools.product(*values)]
        out: Dict[str, Dict[str, Any]] = {}
        for _ in range(20 * self.max_candidates):
            s = {label: v[self.rng.randrange(len(v))] for label, v in zip(labels, values)}
            out.setdefault(SpaceSpec.key(s), s)
            if len(out) >= self.max_candidates:
                break
        return list(out.values())

    # ------------------------------------------------------------------ predictor
    def _training_data(self):
        xs, ys = [], []
        for obs in self.history:
            if obs['value'] is None:
                continue
            try:
                rec = self._asked.get(SpaceSpec.key(obs['sample']))
                x = self._encode(rec[1] if rec is not None else obs['sample'])
            except (TypeError, ValueError, KeyError, AttributeError):
                continue  # not a sample of this space: the predictor ignores it
            xs.append(x)
            ys.append(obs['value'])
        return xs, ys

    def _encode(self, partial: Dict[str, Any]) -> np.ndarray:
        return self.encoder.encode(self._full(partial) if self.encoding == 'filled' else partial)

    def _fitted(self) -> Optional[MLPEnsemble]:
        """The predictor fit on every successful result so far (refit only when one came in)."""
        n = sum(o['value'] is not None for o in self.history)
        if n != self._fit_n:
            xs, ys = self._training_data()
            self.predictor = MLPEnsemble(**self.predictor_args, seed=self._torch_seed).fit(
                np.stack(xs), ys) if len(xs) >= 2 else None
            self._fit_n = n
            self.num_fits += self.predictor is not None
        return self.predictor

    def _rank(self, partials: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Best predicted first (ties and no predictor yet: the given order)."""
        model = self._fitted()
        if model is None or len(partials) < 2:
            return list(partials)
        mean, _ = model.predict(np.stack([self._encode(p) for p in partials]))
        order = np.argsort(-mean, kind='stable')
        return [partials[i] for i in order]

    # ------------------------------------------------------------------ stages
    def _begin(self, b: int) -> None:
        parents = self._parents() if b > 0 else []  # of stage b-1, before it is replaced
        self._stage = b
        self._candidates, self._queue = [], []
        if b >= len(self._blocks):
            return
        if b == 0:
            cands = self._settings(0)
            if len(cands) > self.beam_size:
                cands = self.rng.sample(cands, self.beam_size)
            self._candidates = cands
            self._queue = [c for c in cands if not self._known(self._key(c))]
            return
        if not parents:  # stage b-1 produced nothing to expand
            self._stage = len(self._blocks)
            return
        settings = self._settings(b)
        seen, cands = set(), []
        for parent in parents:
            for setting in settings:
                child = {**parent, **setting}
                k = SpaceSpec.key(child)
                if k not in seen:
                    seen.add(k)
                    cands.append(child)
        if len(cands) > self.max_candidates:
            cands = self.rng.sample(cands, self.max_candidates)
        self._candidates = cands
        new = [c for c in cands if not self._known(self._key(c))]
        self._queue = self._rank(new)[:self.beam_size]

    def _members(self) -> List[Dict[str, Any]]:
        """Candidates of the current stage with a successful value, best first."""
        scored = [(self._values[k], i, c) for i, c in enumerate(self._candidates)
                  if (k := self._key(c)) in self._values]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [c for _, _, c in scored]

    def _parents(self) -> List[Dict[str, Any]]:
        """What the next stage expands: the top ``beam_size`` members, then (asynchrony) the
        candidates of this stage still in flight, in candidate order."""
        pending = [c for c in self._candidates if (k := self._key(c)) in self._asked and k not in self._told]
        return (self._members() + pending)[:self.beam_size]

    def _pending_in_stage(self) -> bool:
        return any(stage == self._stage and k not in self._told for k, (stage, _) in self._asked.items())

    # ------------------------------------------------------------------ searcher hooks
    def _ask(self):
        self._require_space()
        if self._stage is None:
            self._begin(0)
        while self._stage < len(self._blocks):
            while self._queue:
                partial = self._queue.pop(0)
                if not self._known(self._key(partial)):
                    return self._record(partial, self._stage)
            if self._pending_in_stage():
                for partial in self._rank([c for c in self._candidates if not self._known(self._key(c))]):
                    return self._record(partial, self._stage)
            self._begin(self._stage + 1)
        return self._local_step()

    def _local_step(self) -> Dict[str, Any]:
        stage = len(self._blocks)
        best: Dict[str, tuple] = {}
        for i, obs in enumerate(self.history):
            if obs['value'] is None:
                continue
            try:
                k = SpaceSpec.key(obs['sample'])
                self.space.validate(obs['sample'])
            except (TypeError, SampleError):
                continue
            if k not in best or obs['value'] > best[k][0]:
                best[k] = (obs['value'], i, obs['sample'])
        top = sorted(best.values(), key=lambda t: (-t[0], t[1]))[:self.beam_size]
        seen, cands = set(), []
        for _, _, sample in top:
            for label, d in self.space.dims.items():
                for v in dim_settings(d, self.num_bins, limit=self.max_candidates):
                    child = {**sample, label: v}
                    k = SpaceSpec.key(child)
                    if k not in seen and not self._known(k):
                        seen.add(k)
                        cands.append(child)
        ranked = self._rank(cands)
        if ranked:
            return self._record(ranked[0], stage)
        sample = self.space.random(self.rng)
        for _ in range(_MAX_RANDOM_TRIES):
            if not self._known(SpaceSpec.key(sample)):
                break
            sample = self.space.random(self.rng)
        return self._record(sample, stage)

    def _tell(self, obs):
        try:
            k = SpaceSpec.key(obs['sample'])
        except TypeError:  # not JSON: cannot be a sample of the space
            return
        self._told.add(k)
        if obs['value'] is not None:
            self._values[k] = obs['value']

    def _rebuild(self):
        self._told, self._values = set(), {}
        self.predictor, self._fit_n = None, None
        for obs in self.history:
            self._tell(obs)

    # ------------------------------------------------------------------ resume
    def state_dict(self):
        state = {**super().state_dict(), 'torch_seed': self._torch_seed}
        if self._blocks is not None:
            state.update(space=self.space.to_json(), pnas={
                'stage': self._stage, 'candidates': self._candidates, 'queue': self._queue,
                'asked': [[k, s, p] for k, (s, p) in self._asked.items()]})
        return state

    def load_state_dict(self, state):
        self._torch_seed = state.get('torch_seed', self._torch_seed)
        self._configure_from_state(state)
        self._require_space()
        self._reset()
        extra = state.get('pnas')
        if extra is not None:
            self._stage = extra['stage']
            self._candidates = [dict(c) for c in extra['candidates']]
            self._queue = [dict(c) for c in extra['queue']]
            self._asked = {k: [s, dict(p)] for k, s, p in extra['asked']}
        super().load_state_dict(state)  # history, rng, then _rebuild

    def __repr__(self):
        return (f'PNAS(beam_size={self.beam_size}, blocks={self.blocks}, fill={self.fill!r}, '
                f'encoding={self.encoding!r}, seed={self.seed})')
