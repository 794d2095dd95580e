"""Per-rank shards of the data, and predict's gather of every rank's outputs in order.

Cutting a data source is the adapter's own method
(:meth:`cadence.data.DataAdapter.set_shard`, which cuts as torch's ``DistributedSampler`` does:
see :mod:`cadence.data.sharding`); :func:`shard_adapter` calls it with this process's rank and
the world size. Nothing here imports the data package: an adapter is any object with
``set_shard(rank, world_size, training)`` and ``shard_indices(produced)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cadence.distributed import core

SAMPLE = "sample"
BATCH = "batch"


def shard_adapter(adapter: Any, training: bool) -> str | None:
    """Cut ``adapter``'s data for this rank with its ``set_shard``; return the unit cut.

    Args:
        adapter: A data adapter from :func:`cadence.data.get_adapter`.
        training: Pad so that every rank runs as many batches (``fit``'s training data).

    Returns:
        ``"sample"``, ``"batch"``, or ``None`` when the data is left whole (generators,
        iterable data sets, a DataLoader with its own ``DistributedSampler`` or no length).

    Raises:
        ValueError: If evaluation or prediction data has fewer units than there are ranks.
    """
    return adapter.set_shard(core.rank(), core.world_size(), training)


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
        indices = adapter.shard_indices(_leading(local))
        parts = core.all_gather_object((indices, local))
        order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
        return _map(lambda *leaves: np.concatenate(leaves)[order], [p[1] for p in parts])
    indices = adapter.shard_indices(len(outputs))
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
