"""Per-rank shards of the data, as ``DistributedSampler`` cuts them, and predict's gather.

Training data is cut as torch's ``DistributedSampler`` cuts it: the pass's order (the same
seeded permutation on every rank, or ``0..n-1``) is padded by repeating its first samples to a
multiple of the world size, and rank ``r`` takes every ``world_size``-th sample from ``r`` on.
Every rank then runs the same number of batches, which ``DistributedDataParallel`` needs (a
rank with one batch more would wait forever for the others' gradients). A padded sample is
trained on twice in that pass, exactly as with ``DistributedSampler``; with ``n`` divisible
by the world size nothing is repeated.

Evaluation and prediction data are cut the same way but not padded (evaluation makes no
collective per batch, so ranks may run one batch more or fewer): the metrics summed over
ranks are those of every sample exactly once, and ``predict`` puts every rank's outputs back
in the original order.

Arrays, tensors and map-style Datasets are cut by sample; a ``Sequence`` (whose items are
whole batches) and a ``DataLoader`` without a ``DistributedSampler`` by batch (batch ``i`` goes
to rank ``i % world_size``; a DataLoader is still read whole on every rank, so give it a
``DistributedSampler`` when loading is costly: it is then used as it is). Generators and
iterable data sets are not cut: every rank reads its own, so shard them yourself (by
``cadence.distributed.rank()``) and make every rank yield the same number of batches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cadence.distributed import core

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


def shard_adapter(adapter: Any, training: bool) -> str | None:
    """Cut ``adapter``'s data for this rank (see the module docstring); return the unit cut.

    Args:
        adapter: A data adapter from :func:`cadence.data.get_adapter`.
        training: Pad so that every rank runs as many batches (``fit``'s training data).

    Returns:
        ``"sample"``, ``"batch"``, or ``None`` when the data is left whole (generators,
        iterable data sets, a DataLoader with its own ``DistributedSampler`` or no length).

    Raises:
        ValueError: If evaluation or prediction data has fewer units than there are ranks.
    """
    from cadence.data import adapters

    rank, world = core.rank(), core.world_size()
    if isinstance(adapter, adapters.ArrayAdapter | adapters.DatasetAdapter):
        unit, count = SAMPLE, adapter.num_samples
    elif isinstance(adapter, adapters.SequenceAdapter):
        unit, count = BATCH, adapter.num_batches
    elif isinstance(adapter, adapters.DataLoaderAdapter):
        sampler = getattr(adapter.loader, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler) or adapter.num_batches is None:
            return None
        unit, count = BATCH, adapter.num_batches
    else:
        return None
    if not training and count < world:
        raise ValueError(
            f"The data has {count} {unit}s for {world} processes: evaluation and prediction "
            f"give every process at least one {unit}. Received {count} {unit}s; expected at "
            f"least {world}."
        )
    adapter.shard = (rank, world, training)
    local = len(shard_order(torch.arange(count), rank, world, training))
    if unit == SAMPLE:
        adapter.num_batches = math.ceil(local / adapter.batch_size)
    else:
        adapter.num_batches = local
    return unit


def local_indices(adapter: Any, unit: str, produced: int) -> np.ndarray:
    """Return the global indices of this rank's first ``produced`` samples or batches."""
    total = adapter.num_samples if unit == SAMPLE else _total_batches(adapter)
    rank, world, pad = adapter.shard
    return shard_order(torch.arange(total), rank, world, pad)[:produced].numpy()


def _total_batches(adapter: Any) -> int:
    if hasattr(adapter, "sequence"):
        return len(adapter.sequence)
    return len(adapter.loader)


def gather_predictions(adapter: Any, unit: str | None, outputs: list[Any], concatenate: Any) -> Any:
    """Gather every rank's ``predict`` outputs and return them in the data's original order.

    Args:
        adapter: The sharded adapter predict read.
        unit: What :func:`shard_adapter` returned for it.
        outputs: This rank's per-batch outputs (CPU tensors, or nests of them).
        concatenate: Joins a list of per-batch outputs into numpy arrays (with their nest).

    Returns:
        The outputs of all ranks on every rank (only this rank's when the data was not cut).
    """
    if unit is None:
        return concatenate(outputs)
    if unit == SAMPLE:
        local = concatenate(outputs)
        indices = local_indices(adapter, unit, _leading(local))
        parts = core.all_gather_object((indices, local))
        order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
        return _map(lambda *leaves: np.concatenate(leaves)[order], [p[1] for p in parts])
    indices = local_indices(adapter, unit, len(outputs))
    parts = core.all_gather_object((indices, outputs))
    batches = sorted(
        ((int(i), batch) for part in parts for i, batch in zip(part[0], part[1], strict=True)),
        key=lambda pair: pair[0],
    )
    return concatenate([batch for _, batch in batches])


def _leading(nest: Any) -> int:
    if isinstance(nest, dict):
        return _leading(next(iter(nest.values())))
    if isinstance(nest, tuple | list):
        return _leading(nest[0])
    return len(nest)


def _map(fn: Any, nests: list[Any]) -> Any:
    first = nests[0]
    if isinstance(first, dict):
        return {key: _map(fn, [n[key] for n in nests]) for key in first}
    if isinstance(first, tuple | list):
        return type(first)(_map(fn, [n[i] for n in nests]) for i in range(len(first)))
    return fn(*nests)


def batches_of_rank(loader: Any, shard: tuple[int, int, bool], start: int) -> Any:
    """Yield this rank's batches of a ``DataLoader`` pass (batch ``i`` to rank ``i % world``).

    With padding, the loader is read a second time for the batches that wrap around, so every
    rank yields ``ceil(len(loader) / world_size)`` batches. ``start`` skips this rank's first
    batches (a resumed epoch); the batches before them are read and dropped.
    """
    import itertools

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
