"""One-shot supernets under Lightning DDP (issue 17, part 3).

A search whose evaluator trains with two processes is data parallel: each process takes its
share of every global batch (:class:`EpochSampler` shards), gradients of every backward pass are
averaged, and batch norm uses the global batch's statistics (on CPU too), so weights and
architecture parameters are equal on every process after every step, and the two-process search
follows the one-process search with the same global batch to float precision. Methods DDP cannot
keep in step are refused before training."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from nni_nasext import nnictl_tools as nt
from nni_nasext import registry
from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.strategies.oneshot import search
from nni_nasext.strategies.oneshot.data import EpochSampler, PairedBatches
from conftest import REPO, TESTS

ROOT = REPO
SCRIPT = TESTS / 'oneshot_ddp_script.py'


# ------------------------------------------------------------------------- shards

@pytest.mark.parametrize('n,num_samples,batch,world', [(100, None, 8, 2), (37, 60, 6, 3), (64, 64, 16, 4)])
def test_shards_of_an_epoch_make_the_one_process_batches(n, num_samples, batch, world):
    one = EpochSampler(n, seed=3, num_samples=num_samples)
    one.set_epoch(5)
    order = list(one)
    shards = []
    for rank in range(world):
        s = EpochSampler(n, seed=3, num_samples=num_samples)
        s.set_epoch(5)
        s.set_shard(rank, world)
        shards.append(list(s))
        assert len(s) == len(shards[-1]) == -(-len(order) // world)
    per = batch // world
    full = len(order) // batch
    for i in range(full):   # every full global batch: the same examples as one process's batch i
        got = sorted(x for sh in shards for x in sh[i * per:(i + 1) * per])
        assert got == sorted(order[i * batch:(i + 1) * batch])
    assert set(x for sh in shards for x in sh) == set(order)   # nothing left out (the end padded)


def test_paired_batches_are_counted_and_served_per_process():
    data = TensorDataset(torch.arange(40.0))
    s1, s2 = EpochSampler(40, 0), EpochSampler(40, 1)
    paired = PairedBatches(DataLoader(data, batch_size=4, sampler=s1), DataLoader(data, batch_size=4, sampler=s2), [s1, s2])
    assert len(paired) == 10 and paired.shardable()
    paired.shard_fn = lambda: (1, 2)
    assert len(paired) == 5
    seen = torch.cat([b['train'][0] for b in paired])
    assert len(seen) == 20 and set(seen.tolist()) < set(range(40))
    plain = PairedBatches(DataLoader(data, batch_size=4), DataLoader(data, batch_size=4), [])
    assert not plain.shardable()


# ------------------------------------------------------------------------- refusals, before training

def _two_process_evaluator(**kwargs):
    return ImageClassification('digits', max_epochs=1, devices=2, accelerator='cpu', limit_train_batches=2, **kwargs)


@pytest.mark.parametrize('method', ['darts2', 'proxyless', 'rdarts', 'darts_pt'])
def test_methods_that_ddp_cannot_keep_in_step_are_refused(method):
    with pytest.raises(ValueError, match=f"'{method}' does not run with 2 processes"):
        search(registry.build('space', 'quickstart'), _two_process_evaluator(), method, verbose=False)


def test_a_search_inside_the_calling_process_refuses_several_processes():
    with pytest.raises(ValueError, match='NasExperiment'):
        search(registry.build('space', 'quickstart'), _two_process_evaluator(), 'darts', verbose=False,
               data_parallel=False)


def test_spawned_ddp_is_refused():
    from nni.nas.evaluator.pytorch import Classification
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    sys.path.insert(0, str(TESTS))
    from nni_style_spaces import SimpleNet
    evaluator = Classification(train_dataloaders=loader, val_dataloaders=loader, max_epochs=1, accelerator='cpu',
                               devices=2, strategy='ddp_spawn', num_classes=10)
    with pytest.raises(ValueError, match="strategy='ddp'.*spawn"):
        search(SimpleNet(), evaluator, 'darts', verbose=False)


# ------------------------------------------------------------------------- two processes

def _run(out: Path, devices: int, method: str, space: str, epochs: int, limit: int, evaluator_args=None, **method_args):
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), str(devices), method, space, str(epochs), str(limit),
                           json.dumps(method_args), json.dumps(evaluator_args or {})],
                          capture_output=True, text=True, timeout=300, cwd=out)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return [torch.load(out / f'parameters_rank{r}.pt') for r in range(devices)], \
        [json.loads((out / f'result_rank{r}.json').read_text()) for r in range(devices)]


def test_darts_with_two_processes_follows_the_one_process_search(tmp_path):
    # no batch norm (CellNet) and full global batches: the only difference is the order of float sums
    (two0, two1), (r0, r1) = _run(tmp_path / 'two', 2, 'darts', 'cellnet', 2, 6, arch_lr=0.05)
    (one,), (r,) = _run(tmp_path / 'one', 1, 'darts', 'cellnet', 2, 6, arch_lr=0.05)
    assert two0.shape[0] == one.shape[0] == 12                       # 2 epochs x 6 steps
    assert torch.equal(two0, two1)                                   # every step, every parameter, both processes
    moved = (one[-1] - one[0]).abs().max()
    assert moved > 0.1                                               # the search did move (alpha, weights)
    assert (two0 - one).abs().max() < 1e-5                           # and DDP followed it
    assert r0['sample'] == r1['sample'] == r['sample']
    assert r0['val'] == pytest.approx(r['val'], abs=1e-6)


def test_with_batch_norm_over_the_global_batch_too(tmp_path):
    # batch norm normalises with the statistics of the global batch on CPU (GlobalBatchNorm), so the two
    # runs agree again; normalising each process's half on its own (sync_batchnorm=False) does not
    (one,), _ = _run(tmp_path / 'one', 1, 'darts', 'bnnet', 2, 6, arch_lr=0.05)
    (two, _), _ = _run(tmp_path / 'two', 2, 'darts', 'bnnet', 2, 6, arch_lr=0.05)
    (local, _), _ = _run(tmp_path / 'local', 2, 'darts', 'bnnet', 2, 6, {'sync_batchnorm': False}, arch_lr=0.05)
    assert (two - one).abs().max() < 1e-5
    assert (local - one).abs().max() > 1e-3


@pytest.mark.parametrize('method,args', [('darts', {}), ('gdas', {}), ('enas', {}), ('spos', {'num_candidates': 4})])
def test_methods_stay_equal_on_every_process_with_batch_norm(tmp_path, method, args):
    (a, b), (r0, r1) = _run(tmp_path, 2, method, 'quickstart', 1, 4, **args)
    assert a.shape[0] == 4 and torch.equal(a, b)
    assert (a[-1] - a[0]).abs().max() > 0                            # trained
    assert r0 == r1                                                  # the same architecture derived


def test_a_ddp_oneshot_trial_under_nnictl(tmp_path):
    from test_nnictl_integration import processes_mentioning, run_experiment
    shipped = ROOT / 'experiments' / 'oneshot' / 'darts_ddp.yml'
    config = nt.load_config(shipped)
    assert '"devices": 2' in config['trialCommand']
    space = json.loads((shipped.parent / config['searchSpaceFile']).read_text())
    (tmp_path / 'space.json').write_text(json.dumps({**space, 'epochs': {'_type': 'choice', '_value': [2]}}))
    config.update(searchSpaceFile=str(tmp_path / 'space.json'),
                  trialCodeDirectory=str((shipped.parent / config['trialCodeDirectory']).resolve()),
                  trialCommand=config['trialCommand'].replace('"max_epochs": 5', '"max_epochs": 5, "limit_train_batches": 4'),
                  experimentWorkingDirectory=str(tmp_path / 'experiments'), maxExperimentDuration='4m')
    path = tmp_path / 'darts_ddp.yml'
    path.write_text(yaml.safe_dump(config))
    exp_id, port, trials, _ = run_experiment(path)
    (trial,) = trials
    assert trial['status'] == 'SUCCEEDED' and trial['sample']['epochs'] == 2
    assert len(trial['intermediates']) == 2                          # once per epoch, not once per process
    (folder,) = [p.parent for p in (tmp_path / 'experiments' / exp_id).glob('**/trials/*/derived_sample.json')]
    log = (folder / 'trial.log').read_text() if (folder / 'trial.log').exists() else ''
    assert 'GLOBAL_RANK: 1, MEMBER: 2/2' in log, log[-2000:]
    assert json.loads((folder / 'oneshot_history.json').read_text())['settings']['epochs'] == 2
    assert processes_mentioning(exp_id) == [] and processes_mentioning(f'--port {port}') == []
