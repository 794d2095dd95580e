"""Data: every kind of input ``fit``, ``evaluate`` and ``predict`` accept, behind one factory."""

from __future__ import annotations

import collections.abc
from typing import Any

import torch

from cadence.data.adapters import (
    ArrayAdapter,
    DataAdapter,
    DataLoaderAdapter,
    DatasetAdapter,
    IterableAdapter,
    SequenceAdapter,
    is_array_like,
)
from cadence.data.epoch_iterator import EpochIterator
from cadence.data.sequence import PyDataset, Sequence
from cadence.data.tree import pack_x_y_sample_weight, unpack_x_y_sample_weight

__all__ = [
    "ArrayAdapter",
    "DataAdapter",
    "DataLoaderAdapter",
    "DatasetAdapter",
    "EpochIterator",
    "IterableAdapter",
    "PyDataset",
    "Sequence",
    "SequenceAdapter",
    "get_adapter",
    "pack_x_y_sample_weight",
    "unpack_x_y_sample_weight",
]


def get_adapter(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> DataAdapter:
    """Return the adapter for ``x`` (and ``y``, ``sample_weight`` for in-memory data).

    Args:
        x: Arrays or tensors (or tuples/lists/dicts of them), a ``torch.utils.data.Dataset``, a
            ``DataLoader``, a :class:`Sequence`, or a Python generator / iterator.
        y: Targets, only with in-memory ``x``.
        sample_weight: Per-sample weights, only with in-memory ``x``.
        batch_size: Samples per batch (default 32) for arrays and Datasets.
        shuffle: Reorder the samples at every pass (arrays and Datasets).
        seed: The run's data seed.

    Raises:
        ValueError: If ``y`` or ``sample_weight`` is given with a ``x`` that yields batches.
        TypeError: If ``x`` is of no kind cadence can read.
    """
    if batch_size is None:
        batch_size = 32
    if is_array_like(x):
        return ArrayAdapter(x, y, sample_weight, batch_size=batch_size, shuffle=shuffle, seed=seed)
    kind = type(x).__name__
    if y is not None or sample_weight is not None:
        raise ValueError(
            f"y and sample_weight must be None when x is a {kind} (it yields whole batches: "
            "put targets and weights in its batches); received "
            f"y={type(y).__name__}, sample_weight={type(sample_weight).__name__}."
        )
    if isinstance(x, torch.utils.data.DataLoader):
        return DataLoaderAdapter(x)
    if isinstance(x, Sequence):
        return SequenceAdapter(x)
    if isinstance(x, torch.utils.data.IterableDataset):
        return IterableAdapter(x)
    if isinstance(x, torch.utils.data.Dataset):
        return DatasetAdapter(x, batch_size=batch_size, shuffle=shuffle, seed=seed)
    if isinstance(x, collections.abc.Iterator):
        return IterableAdapter(x)
    raise TypeError(
        "x must be arrays or tensors (or a tuple/list/dict of them), a torch Dataset or "
        f"DataLoader, a cadence.data.Sequence, or a generator; received {kind}."
    )
