"""Recurrent-cell search space for language modelling (ENAS / DARTS recurrent cells).

References:

* H. Pham, M. Y. Guan, B. Zoph, Q. V. Le and J. Dean, "Efficient Neural Architecture Search via
  Parameter Sharing", ICML 2018 (ENAS), Section 2.2 "Designing Recurrent Cells";
* H. Liu, K. Simonyan and Y. Yang, "DARTS: Differentiable Architecture Search", ICLR 2019,
  Section 2.1 and Appendix A.1.2 (recurrent cell, Penn Treebank);
* the recurrent space goes back to B. Zoph and Q. V. Le, "Neural Architecture Search with
  Reinforcement Learning", ICLR 2017 (NAS-RL), whose controller designed the RNN cell as a tree.

The cell is a DAG of ``num_nodes + 1`` nodes computed once per time step:

* node 0 combines the input ``x_t`` and the previous hidden state ``h_{t-1}`` with a highway
  unit (as in DARTS and ENAS): ``[c, g] = [x_t, h_{t-1}] W_0``;
  ``s_0 = h_{t-1} + sigmoid(c) * (tanh(g) - h_{t-1})``;
* every later node ``i = 1 .. num_nodes`` reads one earlier node ``j = input_i`` (``0 <= j < i``)
  and applies a highway unit with the chosen activation ``f = activation_i``:
  ``[c, g] = s_j W_i``; ``s_i = s_j + sigmoid(c) * (f(g) - s_j)``;
* the cell output ``h_t`` (also the state carried to the next step) is the average of
  nodes ``1 .. num_nodes`` (``output='all'``, DARTS; the default) or of the *loose ends*, the
  nodes that no later node reads (``output='loose_ends'``, ENAS). The output rule is an
  argument of the space, not a decision.

Decisions (labels) of :class:`RNNCellSpace`, all ``nni.mutable.Categorical``:

===================  ====================================  =========================
label                values                                meaning
===================  ====================================  =========================
``input_{i}``        ``[0, 1, ..., i-1]`` (ints)           node that node ``i`` reads
``activation_{i}``   ``activations`` (strings)             node ``i``'s activation
===================  ====================================  =========================

for ``i = 1 .. num_nodes``, except ``input_1``, which is left out: node 1 can only read
node 0. With 8 nodes and 4 activations the space holds ``4**8 * 8! = 2.6e9`` cells (DARTS
counts the same space; ENAS's has 12 nodes). ``SpaceSpec.from_space`` encodes every decision
as a JSON ``choice``.

The network (:class:`RNNLanguageModel`): token embedding -> the cell unrolled over the
sequence -> linear decoder over the vocabulary (its weight tied to the embedding when
``tie_weights=True``, which needs ``embed_size == hidden_size``). Its ``forward(tokens,
hidden=None)`` takes ``(batch, time)`` token ids and returns ``(logits, hidden)`` with
``logits`` of shape ``(batch, time, vocab_size)``; that is the protocol of
:class:`nni_nasext.evaluators.language_model.LanguageModel`.

Named cells (:data:`GENOTYPES`, :func:`genotype_to_sample`), transcribed from the recurrent
genotypes of the official DARTS code (``rnn/genotypes.py`` of github.com/quark0/darts),
where entry ``k`` is ``(activation, input)`` of node ``k + 1``:

* ``darts_v1``: DARTS first-order search result (Liu et al. 2019), 8 nodes, output = all;
* ``darts_v2``: DARTS second-order search result, the cell of the paper's Figure 5 / Table 2,
  8 nodes, output = all;
* ``enas``: the ENAS Penn Treebank cell (Pham et al. 2018, Figure 6) as DARTS transcribed it,
  11 nodes after node 0, output = its loose ends ``[2, 5, 6, 9, 10, 11]``. Build it with
  ``RNNCellSpace(num_nodes=11, output='loose_ends')``.

Not reproduced here: the papers' regularisation (variational / embedding dropout, weight
drop, batch norm in the DARTS search cell) beyond one plain ``dropout`` argument, and the
DARTS ``none`` operation (only used by the continuous relaxation).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from nni.mutable import Categorical
from nni.nas.nn.pytorch import ModelSpace, MutableModule

__all__ = [
    'ACTIVATIONS', 'GENOTYPES', 'RecurrentCell', 'RNNLanguageModel', 'RNNCellSpace',
    'genotype_to_sample', 'sample_to_genotype', 'loose_ends', 'space_size',
]

#: The activations a node may apply, by name (DARTS' recurrent primitives without ``none``).
ACTIVATIONS = {
    'tanh': torch.tanh,
    'relu': torch.relu,
    'sigmoid': torch.sigmoid,
    'identity': lambda x: x,
}

#: ``name -> (genotype, output rule)``; a genotype lists ``(activation, input)`` for nodes 1, 2, ...
#: Source: DARTS official code, ``rnn/genotypes.py`` (Liu et al., ICLR 2019).
GENOTYPES: Dict[str, Tuple[List[Tuple[str, int]], str]] = {
    'darts_v1': ([('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), ('identity', 1),
                  ('relu', 5), ('relu', 1)], 'all'),
    'darts_v2': ([('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), ('sigmoid', 5),
                  ('tanh', 3), ('relu', 5)], 'all'),
    'enas': ([('tanh', 0), ('tanh', 1), ('relu', 1), ('tanh', 3), ('tanh', 3), ('relu', 3), ('relu', 4),
              ('relu', 7), ('relu', 8), ('relu', 8), ('relu', 8)], 'loose_ends'),
}

_OUTPUTS = ('all', 'loose_ends')


# ----------------------------------------------------------------------------- encodings

def genotype_to_sample(genotype) -> Dict[str, Any]:
    """A genotype (a name of :data:`GENOTYPES` or a list of ``(activation, input)`` for nodes
    1, 2, ...) -> the space's sample ``{'activation_1': ..., 'input_2': ..., ...}``."""
    if isinstance(genotype, str):
        if genotype not in GENOTYPES:
            raise ValueError(f'Unknown recurrent genotype {genotype!r}; known: {sorted(GENOTYPES)}')
        genotype = GENOTYPES[genotype][0]
    sample: Dict[str, Any] = {}
    for i, (act, src) in enumerate(genotype, start=1):
        if not 0 <= int(src) < i:
            raise ValueError(f'Node {i} cannot read node {src}: inputs must be earlier nodes 0..{i - 1}')
        if i > 1:
            sample[f'input_{i}'] = int(src)
        sample[f'activation_{i}'] = act
    return sample


def sample_to_genotype(sample: Dict[str, Any], num_nodes: int,
                       activations: Sequence[str] = tuple(ACTIVATIONS)) -> List[Tuple[str, int]]:
    """Inverse of :func:`genotype_to_sample`; raises ``ValueError`` on a sample outside the space."""
    genotype = []
    for i in range(1, num_nodes + 1):
        try:
            act = sample[f'activation_{i}']
            src = 0 if i == 1 else sample[f'input_{i}']
        except KeyError as err:
            raise ValueError(f'Recurrent-cell sample misses {err.args[0]!r}: {sample}') from None
        if act not in activations:
            raise ValueError(f'activation_{i}={act!r} is not one of {list(activations)}')
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < i:
            raise ValueError(f'input_{i}={src!r} must be an earlier node, 0..{i - 1}')
        genotype.append((act, src))
    return genotype


def loose_ends(genotype: Sequence[Tuple[str, int]]) -> List[int]:
    """Nodes ``1 .. len(genotype)`` that no later node reads (ENAS averages these)."""
    used = {src for _, src in genotype}
    return [i for i in range(1, len(genotype) + 1) if i not in used]


def space_size(num_nodes: int = 8, num_activations: int = 4) -> int:
    """Number of samples: ``num_activations ** num_nodes * num_nodes!``."""
    size = num_activations ** num_nodes
    for i in range(2, num_nodes + 1):
        size *= i
    return size


# ----------------------------------------------------------------------------- networks

class RecurrentCell(nn.Module):
    """One concrete cell (see the module docstring): ``forward(x_t, h_prev) -> h_t``.

    ``genotype`` lists ``(activation, input)`` for nodes 1..N; ``output`` is ``'all'`` (DARTS)
    or ``'loose_ends'`` (ENAS). Weights start uniform in ``[-init_range, init_range]`` as in
    DARTS' code (``reset_parameters`` draws them again)."""

    def __init__(self, input_size: int, hidden_size: int, genotype: Sequence[Tuple[str, int]],
                 output: str = 'all', init_range: float = 0.04):
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f'output must be one of {_OUTPUTS}, got {output!r}')
        if not genotype:
            raise ValueError('A recurrent cell needs at least one node after node 0')
        for i, (act, src) in enumerate(genotype, start=1):
            if act not in ACTIVATIONS:
                raise ValueError(f'Unknown activation {act!r} at node {i}; expected one of {list(ACTIVATIONS)}')
            if not 0 <= src < i:
                raise ValueError(f'Node {i} cannot read node {src}')
        self.input_size, self.hidden_size, self.init_range = input_size, hidden_size, init_range
        self.genotype = [(str(a), int(s)) for a, s in genotype]
        self.output = output
        self.concat = list(range(1, len(genotype) + 1)) if output == 'all' else loose_ends(self.genotype)
        self.w0 = nn.Parameter(torch.empty(input_size + hidden_size, 2 * hidden_size))
        self.ws = nn.ParameterList([nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in genotype])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.w0.uniform_(-self.init_range, self.init_range)
            for w in self.ws:
                w.uniform_(-self.init_range, self.init_range)

    @staticmethod
    def _highway(prev: torch.Tensor, pre: torch.Tensor, act) -> torch.Tensor:
        c, g = pre.chunk(2, dim=-1)
        return prev + torch.sigmoid(c) * (act(g) - prev)

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        states = [self._highway(h_prev, torch.cat([x, h_prev], dim=-1) @ self.w0, torch.tanh)]
        for (act, src), w in zip(self.genotype, self.ws):
            prev = states[src]
            states.append(self._highway(prev, prev @ w, ACTIVATIONS[act]))
        return torch.stack([states[i] for i in self.concat], dim=0).mean(dim=0)

    def extra_repr(self) -> str:
        return f'{self.input_size}, {self.hidden_size}, genotype={self.genotype}, output={self.output!r}'


class RNNLanguageModel(nn.Module):
    """Embedding -> :class:`RecurrentCell` unrolled over time -> linear decoder.

    ``forward(tokens, hidden=None)``: ``tokens`` is ``(batch, time)`` ids, ``hidden`` the
    ``(batch, hidden_size)`` state from the previous segment (zeros when ``None``); returns
    ``(logits (batch, time, vocab_size), last hidden)``. The caller detaches ``hidden`` between
    segments (truncated back-propagation through time)."""

    def __init__(self, genotype: Sequence[Tuple[str, int]], vocab_size: int, embed_size: int = 64,
                 hidden_size: int = 128, output: str = 'all', tie_weights: bool = False, dropout: float = 0.0):
        super().__init__()
        if min(vocab_size, embed_size, hidden_size) < 1:
            raise ValueError('vocab_size, embed_size and hidden_size must be positive')
        if tie_weights and embed_size != hidden_size:
            raise ValueError(f'tie_weights needs embed_size == hidden_size, got {embed_size} and {hidden_size}')
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.cell = RecurrentCell(embed_size, hidden_size, genotype, output=output)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight  # Press & Wolf 2017; Inan et al. 2017

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.decoder.weight.new_zeros(batch_size, self.hidden_size)

    def forward(self, tokens: torch.Tensor, hidden: Optional[torch.Tensor] = None):
        if tokens.dim() != 2:
            raise ValueError(f'tokens must be (batch, time) ids, got shape {tuple(tokens.shape)}')
        h = self.init_hidden(tokens.size(0)) if hidden is None else hidden
        emb = self.drop(self.embedding(tokens))
        outputs = []
        for t in range(tokens.size(1)):
            h = self.cell(emb[:, t], h)
            outputs.append(h)
        out = self.drop(torch.stack(outputs, dim=1))
        return self.decoder(out), h


# ----------------------------------------------------------------------------- the space

class _RNNCellSearchable(MutableModule):
    def __init__(self, num_nodes: int, activations: Tuple[str, ...], kwargs: Dict[str, Any]):
        super().__init__()
        self._num_nodes, self._activations, self._kwargs = num_nodes, activations, kwargs
        for i in range(1, num_nodes + 1):
            if i > 1:
                self.add_mutable(Categorical(list(range(i)), label=f'input_{i}'))
            self.add_mutable(Categorical(list(activations), label=f'activation_{i}'))

    def freeze(self, sample: Dict[str, Any]) -> nn.Module:
        genotype = sample_to_genotype(sample, self._num_nodes, self._activations)
        return RNNLanguageModel(genotype, **self._kwargs)

    def forward(self, tokens, hidden=None):
        raise NotImplementedError('Freeze the recurrent-cell space with a sample before running it')


class RNNCellSpace(ModelSpace):
    """ENAS / DARTS recurrent-cell language-model space (see the module docstring).

    ``RNNCellSpace()`` is DARTS' 8-node space at a small width for character-level text;
    ``vocab_size`` must match the evaluator's corpus (``LanguageModel(...).vocab_size``; 65 for
    tinyshakespeare). ``space.freeze(sample)`` holds an :class:`RNNLanguageModel` under ``.net``
    and runs ``forward(tokens, hidden=None) -> (logits, hidden)``.
    ``RNNCellSpace(num_nodes=11, output='loose_ends')`` is ENAS's 12-node cell layout.
    """

    def __init__(self, num_nodes: int = 8, vocab_size: int = 65, embed_size: int = 64, hidden_size: int = 128,
                 activations: Sequence[str] = ('tanh', 'relu', 'sigmoid', 'identity'), output: str = 'all',
                 tie_weights: bool = False, dropout: float = 0.0):
        super().__init__()
        if num_nodes < 1:
            raise ValueError(f'num_nodes must be positive, got {num_nodes}')
        activations = tuple(activations)
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown or not activations or len(set(activations)) != len(activations):
            raise ValueError(f'activations must be distinct names from {list(ACTIVATIONS)}, got {list(activations)}')
        if output not in _OUTPUTS:
            raise ValueError(f'output must be one of {_OUTPUTS}, got {output!r}')
        kwargs = dict(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size, output=output,
                      tie_weights=tie_weights, dropout=dropout)
        RNNLanguageModel([('tanh', 0)], **kwargs)  # validates the sizes now, not at freeze time
        self.num_nodes, self.vocab_size, self.activations, self.output = num_nodes, vocab_size, activations, output
        self.net = _RNNCellSearchable(num_nodes, activations, kwargs)

    def forward(self, tokens: torch.Tensor, hidden: Optional[torch.Tensor] = None):
        return self.net(tokens, hidden)

    @classmethod
    def named_sample(cls, name: str) -> Dict[str, Any]:
        """The sample of a named cell of :data:`GENOTYPES` (check its node count and output rule)."""
        return genotype_to_sample(name)
