"""Batch norm over the global batch on CPU (nni_nasext/evaluators/sync_batchnorm.py): two gloo
processes, each with half a batch, compute what one process computes with the whole batch:
outputs, gradients of the input and of the affine parameters, and running statistics."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nni_nasext.evaluators.sync_batchnorm import GlobalBatchNorm2d, to_global, to_local


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 5, 5, generator=g) * 2 + 1, torch.randn(8, 3, 5, 5, generator=g)


def _reference():
    x, w = _data()
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    x = x.clone().requires_grad_(True)
    for _ in range(2):   # two steps: running statistics move twice
        y = bn(x)
    (y * w).sum().backward()
    return y.detach(), x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var


def _worker(rank, port, folder):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        x, w = _data()
        half = slice(rank * 4, rank * 4 + 4)
        model = nn.Sequential(nn.BatchNorm2d(3))
        assert to_global(model) == 1
        bn = model[0]
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
            bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
        xs = x[half].clone().requires_grad_(True)
        for _ in range(2):
            y = bn(xs)
        (y * w[half]).sum().backward()
        for p in (bn.weight, bn.bias):   # what DDP does: the sum over processes of each one's gradient
            dist.all_reduce(p.grad)
        torch.save((y.detach(), xs.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var),
                   os.path.join(folder, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_two_processes_with_half_batches_compute_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    y, gx, gw, gb, rm, rv = _reference()
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt') for r in range(2))
    assert torch.allclose(torch.cat([r0[0], r1[0]]), y, atol=1e-5)
    assert torch.allclose(torch.cat([r0[1], r1[1]]), gx, atol=1e-5)
    for r in (r0, r1):
        assert torch.allclose(r[2], gw, atol=1e-4) and torch.allclose(r[3], gb, atol=1e-4)
        assert torch.allclose(r[4], rm, atol=1e-6) and torch.allclose(r[5], rv, atol=1e-5)


def test_without_a_process_group_it_is_plain_batch_norm():
    torch.manual_seed(0)
    plain, synced = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    to_global(synced)
    assert isinstance(synced, GlobalBatchNorm2d)
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(plain(x), synced(x)) and torch.equal(plain.running_var, synced.running_var)
    to_local(synced)
    assert type(synced) is nn.BatchNorm2d


def test_subclasses_of_batch_norm_are_left_alone():
    class Mine(nn.BatchNorm2d):
        pass
    model = nn.Sequential(Mine(3), nn.BatchNorm1d(4), nn.Conv2d(3, 3, 1))
    assert to_global(model) == 1 and type(model[0]) is Mine
    assert to_local(model) == 1 and type(model[1]) is nn.BatchNorm1d
