"""UnNAS pretext-task evaluators (nni_nasext.evaluators.pretext): the transforms are exact, the
evaluator trains NB201 networks on them (sample-based, trial program, NasExperiment, one-shot)
and bad arguments are clear errors before training."""
import json

import pytest
import torch

from nni_nasext.datasets import DatasetInfo, ImageDataset
from nni_nasext.evaluators import pretext as pt
from nni_nasext.evaluators.pretext import (
    PretextDataset, PretextTask, colorization_targets, inverse_permutation, jigsaw_permutations, rgb_to_lab, rotate,
    shuffle_tiles,
)
from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.trial_code.run import main as trial

CELL = {'0_1': 'nor_conv_3x3', '0_2': 'skip_connect', '1_2': 'nor_conv_1x1',
        '0_3': 'avg_pool_3x3', '1_3': 'none', '2_3': 'nor_conv_3x3'}
TINY = dict(dataset='digits', max_epochs=1, limit=200, batch_size=32, limit_val_batches=1)


def _images(n=5, c=1, size=8, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- rotation

def test_rotation_examples_are_rot90_of_the_original_with_their_label():
    x = _images()
    base = ImageDataset(x, torch.zeros(len(x)))
    pairs = torch.tensor([[i, k] for i in range(len(x)) for k in range(4)])
    ds = PretextDataset(base, 'rotation', pairs)
    assert len(ds) == 20
    for idx, (i, k) in enumerate(pairs.tolist()):
        image, label = ds[idx]
        assert label == k and torch.equal(image, torch.rot90(x[i], k, dims=(1, 2)))
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up
    assert torch.equal(rotate(x[0], 1)[0, :, 0], x[0, 0, 0].flip(0))
    assert not torch.equal(ds[1][0], ds[0][0])


def test_rotation_evaluator_serves_every_rotation_of_every_validation_image():
    ev = PretextTask('rotation', **TINY)
    _, val = ev.dataloaders()
    ds = val.dataset
    base = ds.base
    assert len(ds) == 4 * len(base) and ev.num_outputs == 4 and ev.info.num_classes == 4
    seen = {}
    for idx in range(0, len(ds)):
        image, label = ds[idx]
        i = idx // 4
        assert torch.equal(image, torch.rot90(base[i][0], label, dims=(1, 2)))
        seen.setdefault(i, set()).add(label)
    assert all(v == {0, 1, 2, 3} for v in seen.values())
    # training: each epoch draws copies * n (image, rotation) pairs, anew each epoch, the same for every model
    train, _ = ev.dataloaders()
    assert train.sampler.num_samples == 4 * len(train.dataset.base) == len(train.dataset)
    first = list(train.sampler)
    train.sampler.set_epoch(1)
    assert list(train.sampler) != first
    train.sampler.set_epoch(0)
    assert list(train.sampler) == first


# ------------------------------------------------------------------------- jigsaw

def test_jigsaw_tiles_reassemble_under_the_inverse_permutation():
    x = _images(3, 2, 12)
    for grid in (2, 3):
        for perm in jigsaw_permutations(grid, None if grid == 2 else 20, seed=1):
            shuffled = shuffle_tiles(x, perm, grid)
            assert torch.equal(shuffle_tiles(shuffled, inverse_permutation(perm), grid), x)
            t = 12 // grid
            for p, tile in enumerate(perm.tolist()):   # position p holds tile perm[p] (row-major)
                r, c = divmod(p, grid)
                rt, ct = divmod(tile, grid)
                assert torch.equal(shuffled[..., r * t:(r + 1) * t, c * t:(c + 1) * t],
                                   x[..., rt * t:(rt + 1) * t, ct * t:(ct + 1) * t])
    identity = jigsaw_permutations(2)[0]
    assert identity.tolist() == [0, 1, 2, 3] and torch.equal(shuffle_tiles(x, identity, 2), x)
    with pytest.raises(ValueError, match='not a permutation'):
        shuffle_tiles(x, [0, 0, 1, 2], 2)
    with pytest.raises(ValueError, match='do not cut'):
        shuffle_tiles(_images(1, 1, 9), [0, 1, 2, 3], 2)


def test_jigsaw_permutation_sets():
    every = jigsaw_permutations(2)
    assert every.shape == (24, 4) and len({tuple(p) for p in every.tolist()}) == 24
    chosen = jigsaw_permutations(3, 30, seed=0)
    assert chosen.shape == (30, 9) and len({tuple(p) for p in chosen.tolist()}) == 30
    assert torch.equal(chosen, jigsaw_permutations(3, 30, seed=0))
    assert not torch.equal(chosen, jigsaw_permutations(3, 30, seed=1))

    def closest(perms):
        return int(((perms[:, None, :] != perms[None, :, :]).sum(-1) + 99 * torch.eye(len(perms), dtype=torch.long)).min())
    # the greedy max-min choice keeps 30 of the 9! permutations far apart; 30 random ones come closer
    g = torch.Generator().manual_seed(0)
    assert closest(chosen) >= 7 > closest(torch.stack([torch.randperm(9, generator=g) for _ in range(30)]))


def test_jigsaw_examples_reassemble_to_the_cropped_image():
    x = _images(4, 1, 9)   # 9 is not a multiple of 2: centre-cropped to 8
    perms = jigsaw_permutations(2)
    pairs = torch.tensor([[i, t] for i in range(4) for t in (0, 5, 23)])
    ds = PretextDataset(ImageDataset(x, torch.zeros(4)), 'jigsaw', pairs, grid=2, perms=perms, normalize_tiles=False)
    for idx, (i, t) in enumerate(pairs.tolist()):
        image, label = ds[idx]
        assert label == t and image.shape == (1, 8, 8)
        assert torch.equal(shuffle_tiles(image, inverse_permutation(perms[t]), 2), x[i, :, :8, :8])
    normed = PretextDataset(ImageDataset(x, torch.zeros(4)), 'jigsaw', pairs, grid=2, perms=perms)[1][0]
    for tile in pt._tiles(normed, 2):   # each tile standardised on its own
        assert abs(tile.mean().item()) < 1e-5 and abs(tile.std().item() - 1) < 1e-4


# ------------------------------------------------------------------------- colorization

def test_rgb_to_lab_reference_colours():
    colours = torch.tensor([[1., 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [.5, .5, .5]])
    lab = rgb_to_lab(colours.view(6, 3, 1, 1)).view(6, 3)
    expected = torch.tensor([[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                             [32.30, 79.19, -107.86], [53.39, 0, 0]])
    assert torch.allclose(lab, expected, atol=0.05), lab


def test_colorization_targets_on_a_synthetic_rgb_image():
    img = torch.zeros(1, 3, 8, 8)
    img[0, :, :4, :4] = torch.tensor([1., 0, 0]).view(3, 1, 1)      # red, top left
    img[0, :, :4, 4:] = torch.tensor([0., 1, 0]).view(3, 1, 1)      # green, top right
    img[0, :, 4:, :4] = torch.tensor([0., 0, 1]).view(3, 1, 1)      # blue, bottom left
    img[0, :, 4:, 4:] = 0.5                                          # grey, bottom right
    light, targets = colorization_targets(img, grid=2, bins=8)
    assert light.shape == (1, 1, 8, 8) and targets.shape == (1, 4)
    assert torch.allclose(light[0, 0, 0, 0], torch.tensor(0.5324), atol=1e-3)

    def cls(a, b):   # bins 32 wide centred on multiples of 32 (grey is bin 4, 4), the outer ones clamped
        return min(round(a / 32) + 4, 7) * 8 + min(round(b / 32) + 4, 7)
    assert targets[0].tolist() == [cls(80.09, 67.20), cls(-86.18, 83.18), cls(79.19, -107.86), cls(0, 0)]
    assert cls(0, 0) == 36 and cls(80.09, 67.20) == 7 * 8 + 6
    # the model's input: lightness, repeated to in_channels
    ds = PretextDataset(ImageDataset(img, torch.zeros(1)), 'colorization', torch.tensor([[0, 0]]), color_grid=2,
                        color_bins=8, in_channels=3)
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and torch.equal(x[0], x[2]) and torch.equal(y, targets[0])
    images, flat = pt.flatten_cell_targets([ds[0], ds[0]])
    assert images.shape == (2, 3, 8, 8) and flat.tolist() == targets[0].tolist() * 2


def _synthetic_rgb(monkeypatch, n=96):
    """cifar10 replaced by n synthetic 8x8 colour images whose colour follows their lightness."""
    g = torch.Generator().manual_seed(0)
    light = torch.rand(n, 1, 1, 1, generator=g)
    images = torch.cat([light, 1 - light, 0.5 * torch.ones_like(light)], 1).expand(n, 3, 8, 8).clone()
    images += 0.05 * torch.rand(n, 3, 8, 8, generator=g)
    labels = torch.zeros(n, dtype=torch.long)
    calls = []

    def fake(name, **kwargs):
        calls.append(name)
        return (ImageDataset(images[:64], labels[:64]), ImageDataset(images[64:], labels[64:]),
                DatasetInfo(name, 3, 10, 8))
    monkeypatch.setattr('nni_nasext.evaluators.classification.load_dataset', fake)
    return calls


def test_colorization_evaluator_trains_on_synthetic_rgb(monkeypatch):
    calls = _synthetic_rgb(monkeypatch)
    ev = PretextTask('colorization', dataset='cifar10', color_grid=2, color_bins=4, max_epochs=2, batch_size=16,
                     learning_rate=0.05)
    assert ev.num_outputs == 2 * 2 * 4 * 4
    _, val = ev.dataloaders()
    x, y = next(iter(val))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32 * 4,) and int(y.max()) < 16
    net = QuickstartSpace(num_classes=ev.num_outputs, channels=4).freeze(CELL)
    value = ev.evaluate(net)
    assert 0 <= value <= 1 and calls == ['cifar10']
    # a share of cells, not of images: the count behind it is the 32 * 4 validation cells
    assert round(value * 128) == pytest.approx(value * 128, abs=1e-6)


def test_colorization_refuses_grey_data():
    with pytest.raises(ValueError, match="colorization needs colour images; dataset 'fashion-mnist' is grey"):
        PretextTask('colorization', dataset='fashion-mnist')


# ------------------------------------------------------------------------- the evaluator

@pytest.mark.parametrize('task', ['rotation', 'jigsaw'])
def test_evaluator_trains_a_tiny_nb201_network_deterministically(task):
    ev = PretextTask(task, **TINY)
    space = QuickstartSpace(num_classes=ev.num_outputs, channels=4)
    first = ev.evaluate(space.freeze(CELL))
    assert 0 <= first <= 1 and len(ev.epoch_seconds) == 1
    assert ev.evaluate(space.freeze(CELL)) == first   # the same model and seed: the same score
    again = PretextTask(task, **TINY).with_budget(2)
    assert again.task == task and again.max_epochs == 2 and again.num_outputs == ev.num_outputs


def test_a_network_with_the_wrong_outputs_is_refused_before_training():
    ev = PretextTask('rotation', **TINY)
    net = QuickstartSpace(num_classes=10, channels=4).freeze(CELL)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=r'rotation pretext task needs a network with 4 outputs.*num_classes=4'):
        ev.evaluate(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # untouched
    jig = PretextTask('jigsaw', **TINY)
    with pytest.raises(ValueError, match='24 outputs'):
        jig.evaluate(net)


@pytest.mark.parametrize('kwargs, message', [
    ({'task': 'inpainting'}, "Unknown pretext task 'inpainting'"),
    ({'task': 'rotation', 'copies': 5}, 'copies=5 exceeds the 4 transforms'),
    ({'task': 'rotation', 'copies': 0}, 'copies must be a whole number >= 1'),
    ({'task': 'rotation', 'permutations': 10}, 'permutations is a jigsaw argument'),
    ({'task': 'jigsaw', 'grid': 1}, 'grid must be a whole number >= 2'),
    ({'task': 'jigsaw', 'grid': 3, 'permutations': 1}, 'permutations must be a whole number >= 2'),
    ({'task': 'jigsaw', 'dataset': 'imagenet'}, "Unknown dataset 'imagenet'"),
    ({'task': 'rotation', 'in_channels': 2}, 'in_channels must be 1 or 3'),
    ({'task': 'colorization', 'dataset': 'cifar10', 'color_bins': 1}, 'color_bins must be a whole number >= 2'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretextTask(**kwargs)


def test_registered_and_listed_with_its_paper(capsys):
    from nni_nasext import registry
    from nni_nasext.cli import main as nasext
    entry = registry.lookup('evaluator', 'pretext')
    assert entry.load() is PretextTask and 'ECCV 2020' in entry.extra['paper']
    ev = registry.build('evaluator', 'pretext', task='jigsaw', dataset='digits')
    assert ev.num_outputs == 24
    assert nasext(['list', 'evaluators']) == 0
    out = capsys.readouterr().out
    assert 'pretext' in out and 'Liu et al., ECCV 2020' in out


def test_trial_program_runs_a_pretext_trial(tmp_path):
    args = json.dumps({'task': 'rotation', **TINY})
    assert trial(['--space', 'quickstart', '--space-args', '{"num_classes": 4, "channels": 4}',
                  '--evaluator', 'pretext', '--evaluator-args', args, '--sample', json.dumps(CELL),
                  '--output-dir', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['evaluator'] == 'pretext' and result['sample'] == CELL and 0 <= result['value'] <= 1
    assert (tmp_path / 'model.pt').exists()


def test_trial_program_fails_visibly_on_a_space_without_the_pretext_outputs(tmp_path, capsys):
    args = json.dumps({'task': 'rotation', **TINY})
    assert trial(['--space', 'quickstart', '--evaluator', 'pretext', '--evaluator-args', args,
                  '--sample', json.dumps(CELL), '--output-dir', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'TRIAL FAILED' in err and 'num_classes=4' in err and not (tmp_path / 'result.json').exists()


def test_runs_inside_nni_nas_experiment(tmp_path, monkeypatch):
    from nni.nas.experiment import NasExperiment, NasExperimentConfig
    from nni_nasext.adapters import SearcherStrategy
    from nni_nasext.strategies import RandomSearch

    monkeypatch.chdir(tmp_path)
    strategy = SearcherStrategy(RandomSearch(seed=0))
    config = NasExperimentConfig('sequential', 'simplified', max_trial_number=2,
                                 experiment_working_directory=str(tmp_path / 'nni-experiments'))
    evaluator = PretextTask('jigsaw', **TINY)
    exp = NasExperiment(QuickstartSpace(num_classes=24, channels=4), evaluator, strategy, config)
    try:
        exp.run()
    finally:
        exp.stop()
    history = strategy.searcher.history
    assert len(history) == 2
    assert all(0 <= o['value'] <= 1 and o['intermediates'] == [o['value']] for o in history)


def test_oneshot_search_with_a_pretext_evaluator():
    from nni_nasext.strategies.oneshot import search
    ev = PretextTask('rotation', dataset='digits', max_epochs=1, limit=256, batch_size=32)
    result = search(QuickstartSpace(num_classes=4, channels=4), ev, 'darts', verbose=False)
    QuickstartSpace().validate(result.sample)
    assert len(result.history['val']) == 1 and 0 <= result.history['val'][0] <= 1
    with pytest.raises(ValueError, match='needs a network with 4 outputs'):
        search(QuickstartSpace(num_classes=10, channels=4), ev, 'darts', verbose=False)
