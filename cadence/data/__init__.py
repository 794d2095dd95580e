"""Data: every kind of input ``fit``, ``evaluate`` and ``predict`` accept, behind one factory.

================================  ==========================================================
``x`` is                          what cadence does
================================  ==========================================================
numpy arrays / tensors            batches of ``batch_size`` (default 32) sliced in order, or
(or a tuple/list/dict of them)    gathered in a seeded order with ``shuffle=True``
``torch.utils.data.Dataset``      samples ``dataset[i]`` collated into batches by a
                                  ``DataLoader`` over cadence's (seeded) order
``IterableDataset``               samples collated into batches; re-iterated every pass
``DataLoader``                    used as given: its batch size, sampler, workers
``StatefulDataLoader``            used as given, its ``state_dict()`` saved with the run's
(torchdata)                       state: resumes exactly mid-epoch
``cadence.data.Sequence``         ``sequence[i]`` is batch ``i``; ``on_epoch_end`` once per
(``PyDataset``)                   training epoch; workers are ``DataLoader`` processes
generator / iterator of batches   read once; ``fit`` needs ``steps_per_epoch`` for more
                                  than one epoch
================================  ==========================================================

A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``. ``x`` reaches the model as
one argument, whatever its structure, as in Keras: ``model(x)``, so a model with two inputs
passed as ``x=(a, b)`` gets the tuple ``(a, b)`` in ``forward(inputs)``, and ``x={"a": a}``
gets the dict. ``y`` and ``sample_weight`` may be tuples/lists/dicts too, one entry per
output of a multi-output model.
"""

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
    IterableDatasetAdapter,
    SequenceAdapter,
)
from cadence.data.checks import is_array_like
from cadence.data.epoch_iterator import EpochIterator
from cadence.data.sequence import PyDataset, Sequence
from cadence.data.stateful_loader import StatefulDataLoaderAdapter, is_stateful_loader
from cadence.data.tree import pack_x_y_sample_weight, unpack_x_y_sample_weight

__all__ = [
    "ArrayAdapter",
    "DataAdapter",
    "DataLoaderAdapter",
    "DatasetAdapter",
    "EpochIterator",
    "IterableAdapter",
    "IterableDatasetAdapter",
    "PyDataset",
    "Sequence",
    "SequenceAdapter",
    "StatefulDataLoaderAdapter",
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
    workers: int | None = None,
    use_multiprocessing: bool | None = None,
    max_queue_size: int | None = None,
    pin_memory: bool = False,
) -> DataAdapter:
    """Return the adapter for ``x`` (and ``y``, ``sample_weight`` for in-memory data).

    Args:
        x: Arrays or tensors (or tuples/lists/dicts of them), a ``torch.utils.data.Dataset``,
            a ``DataLoader``, a :class:`Sequence`, or a Python generator / iterator.
        y: Targets, only with in-memory ``x``.
        sample_weight: Per-sample weights, only with in-memory ``x``.
        batch_size: Samples per batch (default 32) for arrays and Datasets.
        shuffle: Reorder the samples at every pass (arrays and map-style Datasets; other
            sources keep their own order).
        seed: The run's data seed.
        workers: Loader processes for a Sequence or a Dataset (overrides the Sequence's own).
        use_multiprocessing: Use the ``workers`` processes (otherwise the main process loads).
        max_queue_size: Batches kept ready ahead of training.
        pin_memory: Produce batches in page-locked memory (the loops set it for CUDA models).

    Raises:
        ValueError: If ``y`` or ``sample_weight`` is given with a ``x`` that yields batches, or
            the data is empty or ragged.
        TypeError: If ``x`` is of no kind cadence can read.
    """
    if batch_size is None:
        batch_size = 32
    if is_array_like(x):
        return ArrayAdapter(x, y, sample_weight, batch_size=batch_size, shuffle=shuffle, seed=seed,
                            pin_memory=pin_memory)
    kind = type(x).__name__
    if y is not None or sample_weight is not None:
        raise ValueError(
            f"y and sample_weight must be None when x is a {kind} (it yields whole batches: "
            "put targets and weights in its batches); received "
            f"y={type(y).__name__}, sample_weight={type(sample_weight).__name__}."
        )
    if is_stateful_loader(x):  # torchdata's StatefulDataLoader: resumes exactly mid-epoch.
        return StatefulDataLoaderAdapter(x, pin_memory=pin_memory)
    if isinstance(x, torch.utils.data.DataLoader):
        return DataLoaderAdapter(x, pin_memory=pin_memory)
    if isinstance(x, Sequence):
        return SequenceAdapter(x, workers, use_multiprocessing, max_queue_size, seed=seed,
                               pin_memory=pin_memory)
    if isinstance(x, torch.utils.data.IterableDataset):
        return IterableDatasetAdapter(x, batch_size=batch_size, seed=seed, pin_memory=pin_memory)
    if isinstance(x, torch.utils.data.Dataset):
        return DatasetAdapter(
            x, batch_size=batch_size, shuffle=shuffle, seed=seed, workers=workers or 0,
            use_multiprocessing=bool(use_multiprocessing), max_queue_size=max_queue_size or 10,
            pin_memory=pin_memory,
        )
    if isinstance(x, collections.abc.Iterator):
        return IterableAdapter(x, pin_memory=pin_memory)
    raise TypeError(
        "x must be arrays or tensors (or a tuple/list/dict of them), a torch Dataset or "
        "DataLoader, a cadence.data.Sequence, or a generator/iterator of batches; received "
        f"{kind}."
    )
