"""How a data source is cut between ranks: the order arithmetic every adapter's ``set_shard`` uses.

Training data is cut as torch's ``DistributedSampler`` cuts it: the pass's order (the same
seeded permutation on every rank, or ``0..n-1``) is padded by repeating its first samples to a
multiple of the world size, and rank ``r`` takes every ``world_size``-th sample from ``r`` on.
Every rank then runs the same number of batches, which ``DistributedDataParallel`` needs (a
rank with one batch more would wait forever for the others' gradients). A padded sample is
trained on twice in that pass, exactly as with ``DistributedSampler``; with ``n`` divisible
by the world size nothing is repeated.

Evaluation and prediction data are cut the same way but not padded, so the metrics summed over
ranks are those of every sample exactly once, and ``predict`` puts every rank's outputs back in
the original order (:func:`cadence.distributed.gather_predictions`).

Arrays, tensors and map-style Datasets are cut by sample; a ``Sequence`` (whose items are whole
batches) and a ``DataLoader`` without a ``DistributedSampler`` by batch (batch ``i`` goes to rank
``i % world_size``; a DataLoader is still read whole on every rank, so give it a
``DistributedSampler`` when loading is costly: it is then used as it is). Generators and
iterable data sets are not cut: every rank reads its own, so shard them yourself (by
``cadence.distributed.rank()``) and make every rank yield the same number of batches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch

SAMPLE = "sample"
BATCH = "batch"


def shard_order(order: torch.Tensor, rank: int, world_size: int, pad: bool) -> torch.Tensor:
    """Return rank ``rank``'s share of ``order``, as ``DistributedSampler`` would take it.

    Args:
        order: The indices of one pass, the same on every rank.
        rank: This rank.
        world_size: The number of ranks.
        pad: Repeat the first indices so that every rank gets ``ceil(n / world_size)``.

    Returns:
        ``order[rank::world_size]`` of the (padded) order.
    """
    count = len(order)
    if pad and count % world_size:
        total = math.ceil(count / world_size) * world_size
        extra = total - count
        order = torch.cat([order, order.repeat(math.ceil(extra / count))[:extra]])
    return order[rank::world_size]


def batches_of_rank(loader: Any, shard: tuple[int, int, bool], start: int) -> Iterator[Any]:
    """Yield this rank's batches of a ``DataLoader`` pass (batch ``i`` to rank ``i % world``).

    With padding, the loader is read a second time for the batches that wrap around, so every
    rank yields ``ceil(len(loader) / world_size)`` batches. ``start`` skips this rank's first
    batches (a resumed epoch); the batches before them are read and dropped.
    """
    rank, world, pad = shard
    count = len(loader)
    limit = math.ceil(count / world) * world if pad else count
    wanted = iter(range(rank, limit, world)[start:])
    target = next(wanted, None)
    for position, batch in enumerate(itertools.chain.from_iterable(loader for _ in range(2))):
        if target is None:
            return
        if position == target:
            yield batch
            target = next(wanted, None)
