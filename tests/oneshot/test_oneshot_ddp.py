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
import oneshot_ddp_script as ddp_script
from conftest import REPO, TESTS, computed_once

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

#: the two-process searches of this module, run one after the other by one pair of processes
#: (tests/oneshot_ddp_script.py): Lightning's DDP starts the second process at the first search
TWO_PROCESS_RUNS = [
    # no batch norm (CellNet) and full global batches: the only difference to one process is float sums
    dict(name='cellnet', method='darts', space='cellnet', epochs=2, limit=6, method_args={'arch_lr': 0.05}),
    # batch norm over the global batch (GlobalBatchNorm on CPU), and each process's half alone
    dict(name='bnnet', method='darts', space='bnnet', epochs=2, limit=6, method_args={'arch_lr': 0.05}),
    dict(name='bnnet_local', method='darts', space='bnnet', epochs=2, limit=6, method_args={'arch_lr': 0.05},
         evaluator_args={'sync_batchnorm': False}),
    *(dict(name=method, method=method, space='quickstart', epochs=1, limit=4, method_args=args)
      for method, args in [('darts', {}), ('gdas', {}), ('enas', {}), ('spos', {'num_candidates': 4})]),
]


def _results(out: Path, devices: int):
    return [torch.load(out / f'parameters_rank{r}.pt') for r in range(devices)], \
        [json.loads((out / f'result_rank{r}.json').read_text()) for r in range(devices)]


def _two_processes(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), '2', json.dumps(TWO_PROCESS_RUNS)],
                          capture_output=True, text=True, timeout=600, cwd=out)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return {r['name']: _results(out / r['name'], 2) for r in TWO_PROCESS_RUNS}


@pytest.fixture
def two(tmp_path_factory):
    """{run name: ([parameters of rank 0, of rank 1], [result of rank 0, of rank 1])}: computed once
    for the session (the first worker that asks runs the processes, the others read its results)."""
    return computed_once(tmp_path_factory, 'oneshot-ddp-two-processes',
                         lambda: _two_processes(tmp_path_factory.mktemp('ddp-two')))


def _one_process(out: Path, name: str):
    """The same search as TWO_PROCESS_RUNS' ``name`` with one process, inside this process."""
    run = next(r for r in TWO_PROCESS_RUNS if r['name'] == name)
    ddp_script.run(out, 1, run['method'], run['space'], run['epochs'], run['limit'], run.get('method_args'),
                   run.get('evaluator_args'))
    return _results(out, 1)


def test_darts_with_two_processes_follows_the_one_process_search(tmp_path, two):
    (two0, two1), (r0, r1) = two['cellnet']
    (one,), (r,) = _one_process(tmp_path, 'cellnet')
    assert two0.shape[0] == one.shape[0] == 12                       # 2 epochs x 6 steps
    assert torch.equal(two0, two1)                                   # every step, every parameter, both processes
    moved = (one[-1] - one[0]).abs().max()
    assert moved > 0.1                                               # the search did move (alpha, weights)
    assert (two0 - one).abs().max() < 1e-5                           # and DDP followed it
    assert r0['sample'] == r1['sample'] == r['sample']
    assert r0['val'] == pytest.approx(r['val'], abs=1e-6)


def test_with_batch_norm_over_the_global_batch_too(tmp_path, two):
    # batch norm normalises with the statistics of the global batch on CPU (GlobalBatchNorm), so the two
    # runs agree again; normalising each process's half on its own (sync_batchnorm=False) does not
    (one,), _ = _one_process(tmp_path, 'bnnet')
    (two_, _), _ = two['bnnet']
    (local, _), _ = two['bnnet_local']
    assert (two_ - one).abs().max() < 1e-5
    assert (local - one).abs().max() > 1e-3


@pytest.mark.parametrize('method', ['darts', 'gdas', 'enas', 'spos'])
def test_methods_stay_equal_on_every_process_with_batch_norm(method, two):
    (a, b), (r0, r1) = two[method]
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
