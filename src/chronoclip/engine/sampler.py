"""A deterministic, resumable, distributed batch sampler.

Each epoch's order is a permutation seeded by ``(seed, epoch)``. Optimizer step ``s`` consumes a
*global* batch of ``batch_size`` consecutive indices of that order, split into ``grad_accum``
micro-batches and each micro-batch into ``world_size`` equal local shares, rank ``r`` taking the
``r``-th share. So N processes see exactly the samples one process would for the same global batch
(what makes a DDP run equal a 1-process run), and resuming at micro-batch ``k`` of an epoch only
skips index lists — no data is loaded to get there.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from chronoclip.errors import ConfigError


class ResumableBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches (lists of dataset indices); the last partial batch is dropped.

    Args:
        length: dataset size.
        batch_size: global batch per optimizer step.
        grad_accum: micro-batches per optimizer step.
        world_size, rank: this process's place in the run.
        shuffle: permute each epoch (training) or keep manifest order (evaluation).
        seed: base of the per-epoch permutation.
    """

    def __init__(self, length: int, batch_size: int, grad_accum: int = 1, world_size: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0) -> None:
        if batch_size % (grad_accum * world_size):
            raise ConfigError(f"train.batch_size={batch_size} must be divisible by train.grad_accum × processes "
                              f"= {grad_accum} × {world_size}")
        if length < batch_size:
            raise ConfigError(f"the training split has {length} samples, fewer than one batch "
                              f"(train.batch_size={batch_size}); lower the batch size")
        self.length, self.batch_size, self.grad_accum = length, batch_size, grad_accum
        self.world_size, self.rank, self.shuffle, self.seed = world_size, rank, shuffle, seed
        self.epoch, self.skip = 0, 0

    @property
    def micro_batches_per_epoch(self) -> int:
        return (self.length // self.batch_size) * self.grad_accum

    @property
    def steps_per_epoch(self) -> int:
        return self.length // self.batch_size

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of its micro-batches were already consumed (for resume)."""
        if not 0 <= skip <= self.micro_batches_per_epoch:
            raise ValueError(f"skip={skip} outside [0, {self.micro_batches_per_epoch}]")
        self.epoch, self.skip = epoch, skip

    def order(self) -> list[int]:
        """The epoch's global sample order."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.length, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        micro = self.batch_size // self.grad_accum
        local = micro // self.world_size
        for m in range(self.skip, self.micro_batches_per_epoch):
            start = m * micro + self.rank * local
            yield order[start:start + local]

    def __len__(self) -> int:
        return self.micro_batches_per_epoch - self.skip
