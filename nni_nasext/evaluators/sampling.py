"""A data order that is a function of a seed and the epoch only, shardable over processes.

:class:`EpochSampler` serves the training data of every evaluator of this project and of the
one-shot searches. Its order does not depend on a generator's history, so a model trained
after another sees the same batches, a search resumed from a checkpoint sees the batches of the
one never stopped, and a data-parallel run (several processes, each its share) sees the same
global batches as one process.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ['EpochSampler']


class EpochSampler(Sampler):
    """A random order of ``range(n)`` that depends on ``seed`` and the epoch (``set_epoch``,
    which Lightning calls at every epoch) only; ``num_samples`` draws per epoch (default ``n``: a
    permutation).

    Under data parallelism (``set_shard(rank, world)``) process ``rank`` takes every
    ``world``-th draw of that same order, starting at ``rank`` (the order padded from its start
    to a multiple of ``world``, as torch's ``DistributedSampler``). With a per-process batch of
    ``B / world``, the ``i``-th batches of all processes together are then exactly the ``i``-th
    batch of size ``B`` of one process: the same global batches, whatever the number of
    processes."""

    def __init__(self, n: int, seed: int = 0, num_samples: Optional[int] = None, shuffle: bool = True,
                 auto_shard: bool = False):
        self.n, self.seed, self.shuffle = int(n), int(seed), bool(shuffle)
        self.num_samples = int(num_samples) if num_samples is not None else self.n
        self.epoch = 0
        self.rank, self.world = 0, 1
        #: take the shard from ``torch.distributed`` (rank, world size) whenever it is initialised,
        #: for loaders that Lightning iterates in each process of a DDP run without being told
        self.auto_shard = bool(auto_shard)

    def _auto(self) -> None:
        if self.auto_shard and dist.is_available() and dist.is_initialized():
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_shard(self, rank: int, world: int) -> None:
        if not 0 <= int(rank) < int(world):
            raise ValueError(f'rank {rank} is not in range({world})')
        self.rank, self.world = int(rank), int(world)

    def __len__(self) -> int:
        self._auto()
        return -(-self._total() // self.world)

    def _total(self) -> int:
        return min(self.n, self.num_samples) if not self.shuffle else self.num_samples

    def __iter__(self):
        self._auto()
        if not self.shuffle:
            order = list(range(self._total()))
        else:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = []
            while len(order) < self.num_samples:
                order.extend(torch.randperm(self.n, generator=g).tolist())
            order = order[:self.num_samples]
        if self.world > 1:
            padded = order + order[:len(self) * self.world - len(order)]
            order = padded[self.rank::self.world]
        return iter(order)
