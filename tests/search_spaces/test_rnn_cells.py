"""Recurrent-cell space (search_spaces/rnn_cells.py) and the language-model evaluator."""
import json
import math
import random

import pytest
import torch
from torch import nn

import nni

from nni_nasext.data_paths import DataNotFoundError
from nni_nasext.evaluators.classification import TrialFailed
from nni_nasext.evaluators.language_model import LanguageModel
from nni_nasext.space_spec import SpaceSpec

from nni_nasext.search_spaces.rnn_cells import (GENOTYPES, RecurrentCell, RNNCellSpace, genotype_to_sample,
                                                loose_ends, sample_to_genotype, space_size)

from conftest import shared_data

TINY = dict(num_nodes=4, vocab_size=11, embed_size=6, hidden_size=8)


def tiny_sample(**changes):
    sample = {'activation_1': 'tanh', 'input_2': 1, 'activation_2': 'relu', 'input_3': 1,
              'activation_3': 'sigmoid', 'input_4': 2, 'activation_4': 'identity'}
    sample.update(changes)
    return sample


def test_labels_and_spacespec_round_trip():
    spec = SpaceSpec.from_space(RNNCellSpace(**TINY))
    assert list(spec.dims) == ['activation_1', 'input_2', 'activation_2', 'input_3', 'activation_3',
                               'input_4', 'activation_4']
    assert all(d.kind == 'choice' for d in spec.dims.values())
    assert spec.dims['input_4'].values == (0, 1, 2, 3)
    text = json.dumps(spec.to_json())
    assert SpaceSpec.from_json(json.loads(text)) == spec
    assert spec.size == space_size(4, 4) == 4 ** 4 * 24
    assert SpaceSpec.from_space(RNNCellSpace()).size == space_size() == 4 ** 8 * math.factorial(8)
    spec.validate(tiny_sample())


def test_random_samples_freeze_forward_backward():
    space = RNNCellSpace(**TINY)
    spec = SpaceSpec.from_space(space)
    rng = random.Random(0)
    tokens = torch.randint(0, 11, (3, 5))
    for _ in range(3):
        model = space.freeze(spec.random(rng))
        logits, hidden = model(tokens)
        assert logits.shape == (3, 5, 11) and hidden.shape == (3, 8)
        logits2, _ = model(tokens, hidden.detach())  # a carried state changes the output
        assert not torch.allclose(logits, logits2)
        logits.logsumexp(-1).sum().backward()
        assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(NotImplementedError):
        space(tokens)


def test_named_genotypes():
    for name in ('darts_v1', 'darts_v2'):
        sample = genotype_to_sample(name)
        SpaceSpec.from_space(RNNCellSpace()).validate(sample)
        assert sample_to_genotype(sample, 8) == GENOTYPES[name][0]
    v2 = genotype_to_sample('darts_v2')
    assert v2['activation_1'] == 'sigmoid' and v2['input_6'] == 5 and v2['activation_8'] == 'relu'
    enas_space = RNNCellSpace(num_nodes=11, output='loose_ends', vocab_size=11, embed_size=4, hidden_size=4)
    SpaceSpec.from_space(enas_space).validate(genotype_to_sample('enas'))
    cell = enas_space.freeze(genotype_to_sample('enas')).net.cell
    assert cell.concat == loose_ends(GENOTYPES['enas'][0]) == [2, 5, 6, 9, 10, 11]  # as in DARTS' genotypes.py
    with pytest.raises(ValueError, match='input_3'):
        RNNCellSpace(**TINY).freeze(tiny_sample(input_3=3))
    with pytest.raises(ValueError, match='activation_2'):
        RNNCellSpace(**TINY).freeze(tiny_sample(activation_2='gelu'))
    with pytest.raises(ValueError, match='tie_weights'):
        RNNCellSpace(tie_weights=True, embed_size=8, hidden_size=16)
    tied = RNNCellSpace(num_nodes=2, vocab_size=5, embed_size=4, hidden_size=4, tie_weights=True)
    net = tied.freeze({'activation_1': 'tanh', 'input_2': 0, 'activation_2': 'relu'}).net
    assert net.decoder.weight is net.embedding.weight


def test_cell_follows_the_formula():
    """One step computed by hand: highway node 0, then node 1 <- 0 (relu), node 2 <- 0 (sigmoid)."""
    torch.manual_seed(0)
    cell = RecurrentCell(3, 4, [('relu', 0), ('sigmoid', 0)], output='all')
    x, h = torch.randn(2, 3), torch.randn(2, 4)

    def highway(prev, pre, act):
        return prev + torch.sigmoid(pre[:, :4]) * (act(pre[:, 4:]) - prev)

    s0 = highway(h, torch.cat([x, h], 1) @ cell.w0, torch.tanh)
    s1 = highway(s0, s0 @ cell.ws[0], torch.relu)
    s2 = highway(s0, s0 @ cell.ws[1], torch.sigmoid)
    assert torch.allclose(cell(x, h), (s1 + s2) / 2, atol=1e-6)
    loose = RecurrentCell(3, 4, [('relu', 0), ('sigmoid', 1)], output='loose_ends')
    loose.load_state_dict(cell.state_dict())
    s2b = highway(s1, s1 @ cell.ws[1], torch.sigmoid)
    assert loose.concat == [2] and torch.allclose(loose(x, h), s2b, atol=1e-6)


def test_wiring_follows_the_sample():
    space = RNNCellSpace(**TINY)
    base = space.freeze(tiny_sample())
    tokens = torch.randint(0, 11, (2, 6))

    def out(sample):
        model = space.freeze(sample)
        model.load_state_dict(base.state_dict())  # same weights, only the wiring differs
        return model(tokens)[0]

    reference = out(tiny_sample())
    assert torch.equal(reference, out(tiny_sample()))
    assert not torch.allclose(reference, out(tiny_sample(input_3=0)))
    assert not torch.allclose(reference, out(tiny_sample(input_4=0)))
    assert not torch.allclose(reference, out(tiny_sample(activation_2='tanh')))
    everything = RNNCellSpace(**TINY, output='loose_ends').freeze(tiny_sample())
    everything.load_state_dict(base.state_dict())
    assert not torch.allclose(reference, everything(tokens)[0])


# ----------------------------------------------------------------------------- evaluator

@pytest.fixture
def reports(monkeypatch):
    got = {'intermediate': [], 'final': []}
    monkeypatch.setattr(nni, 'report_intermediate_result', got['intermediate'].append)
    monkeypatch.setattr(nni, 'report_final_result', got['final'].append)
    return got


@pytest.fixture(scope='module')
def evaluator():
    shared_data()
    if not (shared_data() / 'text' / 'tinyshakespeare.txt').exists():
        pytest.skip('text/tinyshakespeare.txt is absent from NASEXT_DATA')
    return LanguageModel('tinyshakespeare', seq_len=32, batch_size=16, max_epochs=2,
                         limit_train_batches=40, limit_val_batches=10, seed=0)


def small_space(ev, **kw):
    return RNNCellSpace(vocab_size=ev.vocab_size, embed_size=32, hidden_size=64, **kw)


def test_evaluator_is_an_nni_evaluator():
    from nni.nas.evaluator import Evaluator
    ev = LanguageModel(seq_len=16, max_epochs=3, seed=4)
    assert isinstance(ev, Evaluator) and 'tinyshakespeare' in repr(ev) and ev.optimize_mode == 'minimize'
    copy = nni.load(nni.dump(ev))
    assert isinstance(copy, LanguageModel) and (copy.seq_len, copy.max_epochs, copy.seed) == (16, 3, 4)
    assert ev.with_budget(2).max_epochs == 2 and ev.with_budget(2).seq_len == 16
    with pytest.raises(ValueError, match='whole numbers'):
        ev.with_budget(1.5)
    assert LanguageModel(metric='neg_perplexity').optimize_mode == 'maximize'
    for bad in (dict(corpus='ptb'), dict(metric='bpc'), dict(optimizer='rmsprop')):
        with pytest.raises(ValueError):
            LanguageModel(**bad)


def test_trains_on_tinyshakespeare(evaluator, reports):
    assert evaluator.vocab_size == 65
    model = small_space(evaluator).freeze(genotype_to_sample('darts_v2'))
    ppl = evaluator.evaluate(model)
    print(f'tinyshakespeare darts_v2 val perplexity after 2x40 batches: {ppl:.3f} (per epoch {reports["intermediate"]})')
    assert math.isfinite(ppl) and 1 < ppl < evaluator.vocab_size  # uniform guessing scores 65
    assert len(reports['intermediate']) == 2 and reports['final'] == [ppl] == reports['intermediate'][-1:]
    assert reports['intermediate'][1] < reports['intermediate'][0]
    again = evaluator.evaluate(small_space(evaluator).freeze(genotype_to_sample('darts_v2')))
    assert again == ppl  # seeded: a function of the architecture and the seed


def test_budget_and_negated_metric(evaluator, reports):
    model = small_space(evaluator).freeze(genotype_to_sample('darts_v1'))
    one = evaluator.with_budget(1)
    ppl = one.evaluate(model)
    assert one._corpus is evaluator._corpus and len(reports['intermediate']) == 1
    neg = LanguageModel(**{**evaluator._dump(), 'max_epochs': 1, 'metric': 'neg_perplexity'})
    neg._corpus = evaluator._corpus
    assert neg.evaluate(model) == -ppl and reports['final'] == [ppl, -ppl]
    print(f'darts_v1 val perplexity after 40 batches: {ppl:.3f}')


def test_vocab_mismatch_is_explained(evaluator, reports):
    model = RNNCellSpace(num_nodes=2, vocab_size=50, embed_size=4, hidden_size=4).freeze(
        {'activation_1': 'tanh', 'input_2': 0, 'activation_2': 'relu'})
    with pytest.raises(ValueError, match='vocab_size=65'):
        evaluator.evaluate(model)
    assert reports['final'] == []


class NaNLM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab, vocab)

    def forward(self, tokens, hidden=None):
        return self.embedding(tokens) * float('nan'), None


def test_nan_loss_fails_the_trial(evaluator, reports):
    with pytest.raises(TrialFailed, match=r'(?i)nan.*epoch 1, step 1'):
        evaluator.evaluate(NaNLM(evaluator.vocab_size))
    assert reports['final'] == [] and reports['intermediate'] == []


def test_missing_corpus_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv('NASEXT_DATA', str(tmp_path))
    monkeypatch.setenv('HOME', str(tmp_path))
    ev = LanguageModel()
    with pytest.raises(DataNotFoundError, match=r'tinyshakespeare[\s\S]*text/tinyshakespeare.txt'):
        ev.vocab_size
