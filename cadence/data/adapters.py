"""Data adapters: one per kind of input, each yielding the batches of one pass over the data.

Every adapter yields batches as ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` tuples (or
``x`` alone when a source yields that), with numpy leaves turned into tensors and lists into
tuples. Passes are numbered from 0; an adapter that shuffles orders pass ``p`` with a
generator seeded from ``(seed, p)`` (:func:`pass_generator`), so the order of every pass
follows from the run's data seed and nothing else, and a resumed run sees the same order.
No adapter draws from torch's global random generator.

With ``pin_memory=True`` (set by the loops only when the model is on a CUDA device) batches
are produced in page-locked memory, so the copy to the GPU can be non-blocking.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch

from cadence.data import tree
from cadence.data.array_adapter import ArrayAdapter
from cadence.data.base import DataAdapter, pass_generator
from cadence.data.checks import check_batch, is_array_like
from cadence.data.sequence import Sequence
from cadence.data.sharding import BATCH, SAMPLE, batches_of_rank, shard_order

__all__ = [
    "ArrayAdapter", "DataAdapter", "DataLoaderAdapter", "DatasetAdapter", "IterableAdapter",
    "IterableDatasetAdapter", "SequenceAdapter", "convert_batch", "is_array_like", "pass_generator",
]


class DataLoaderAdapter(DataAdapter):
    """A ``torch.utils.data.DataLoader`` used as given (its batch size, sampler, workers).

    Its own sampler decides the order (``shuffle`` of ``fit`` does not apply); a sampler with
    ``set_epoch`` (``DistributedSampler``) is told the pass index. Set ``pin_memory=True`` on
    the loader to have its own thread pin batches; otherwise cadence pins them for a CUDA model.
    """

    def __init__(self, loader: torch.utils.data.DataLoader, pin_memory: bool = False) -> None:
        self.loader = loader
        self.pin_memory = pin_memory and not loader.pin_memory
        try:
            self.num_batches = len(loader)
        except TypeError:
            self.num_batches = None
        if self.num_batches == 0:
            raise ValueError("The data is empty: the DataLoader has 0 batches.")

    def shard_units(self) -> tuple[str, int] | None:
        """Return ``("batch", len(loader))``, or ``None`` for a loader left whole.

        A loader whose sampler is a ``DistributedSampler`` already gives each rank its share,
        and one without a length cannot be cut: both are read as they are on every rank.
        """
        sampler = getattr(self.loader, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler) or self.num_batches is None:
            return None
        return BATCH, len(self.loader)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the loader's batches, skipping (reading) the first ``start`` of this pass."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(pass_index)
        expected = None
        if self.shard is not None:
            source: Any = batches_of_rank(self.loader, self.shard, start)
        else:
            source = itertools.islice(iter(self.loader), start, None)
        for index, batch in enumerate(source, start):
            batch = convert_batch(batch)
            expected = check_batch(batch, f"DataLoader batch {index}", expected)
            yield self._finish(batch)


class DatasetAdapter(DataAdapter):
    """A map-style ``torch.utils.data.Dataset`` of samples, batched in cadence's order.

    A ``DataLoader`` (default collation) is built for every pass over this pass's order:
    sequential, or a permutation from :func:`pass_generator` with ``shuffle``.

    Args:
        dataset: The data set; ``dataset[i]`` is one sample, e.g. ``(x, y)``.
        batch_size: Samples per batch.
        shuffle: Reorder the samples at every pass.
        seed: The run's data seed.
        workers: Loader processes when ``use_multiprocessing`` (else the main process loads).
        use_multiprocessing: Load in ``workers`` processes.
        max_queue_size: Batches kept ready ahead of training, over all workers.
        pin_memory: Have the loader pin batches (for a CUDA model).
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        workers: int = 0,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        if self.num_samples == 0:
            raise ValueError(f"The data is empty: the {type(dataset).__name__} has 0 samples.")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = workers if use_multiprocessing else 0
        self.max_queue_size = max_queue_size
        self.pin_memory = pin_memory
        self.num_batches = math.ceil(self.num_samples / batch_size)

    def shard_units(self) -> tuple[str, int]:
        """Return ``("sample", num_samples)``: a map-style data set is cut by sample."""
        return SAMPLE, self.num_samples

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches of this pass's order from batch ``start`` on (skipped, not read)."""
        generator = pass_generator(self.seed, pass_index)
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        if self.shard is not None:
            order = shard_order(order, *self.shard)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=order[start * self.batch_size:].tolist(),
            pin_memory=self.pin_memory, generator=generator, **_worker_options(self),
        )
        expected = None
        for index, batch in enumerate(loader, start):
            batch = convert_batch(batch)
            expected = check_batch(batch, f"{type(self.dataset).__name__} batch {index}", expected)
            yield batch


class IterableDatasetAdapter(DataAdapter):
    """A ``torch.utils.data.IterableDataset`` of samples, batched by a ``DataLoader``.

    Each pass iterates the data set afresh (so it is repeatable); its own ``__iter__`` decides
    the order. A resumed pass reads and drops the batches it had already trained on.
    """

    def __init__(
        self,
        dataset: torch.utils.data.IterableDataset,
        batch_size: int = 32,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.pin_memory = pin_memory
        try:
            self.num_batches = math.ceil(len(dataset) / batch_size)  # type: ignore[arg-type]
        except TypeError:
            self.num_batches = None

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the batches of a fresh pass over the data set, from batch ``start`` on."""
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, pin_memory=self.pin_memory,
            generator=pass_generator(self.seed, pass_index),
        )
        expected = None
        for index, batch in enumerate(itertools.islice(iter(loader), start, None), start):
            batch = convert_batch(batch)
            expected = check_batch(batch, f"{type(self.dataset).__name__} batch {index}", expected)
            yield batch


class IterableAdapter(DataAdapter):
    """A Python generator or iterator of whole batches: read once, batch by batch.

    It cannot be read again, so it has one pass (``repeatable`` is False): ``fit`` needs
    ``steps_per_epoch`` to run more than one epoch on it.
    """

    repeatable = False

    def __init__(self, iterable: Any, pin_memory: bool = False) -> None:
        self._iterator = iter(iterable)
        self.pin_memory = pin_memory
        self._read = 0
        self._expected: Any = None

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the next batches; there is only one pass, shared by every epoch."""
        for batch in self._iterator:
            batch = convert_batch(batch)
            self._expected = check_batch(batch, f"generator batch {self._read}", self._expected)
            self._read += 1
            yield self._finish(batch)


class SequenceAdapter(DataAdapter):
    """A :class:`~cadence.data.Sequence`, loaded by torch ``DataLoader`` workers when asked.

    With ``use_multiprocessing`` and ``workers > 0``, a ``DataLoader`` over the batch indices
    (``batch_size=None``) runs ``__getitem__`` in ``workers`` processes and keeps
    ``max_queue_size`` batches ready; the batches arrive in index order, so training sees the
    same batches with and without workers. The worker processes receive a copy of the
    sequence when a pass starts, after the previous epoch's ``on_epoch_end``. Otherwise the
    main process calls ``__getitem__`` in order (torch's loader has no thread workers).

    Args:
        sequence: The sequence.
        workers: Overrides ``sequence.workers`` when not ``None`` (as ``fit(workers=...)``).
        use_multiprocessing: Overrides ``sequence.use_multiprocessing`` when not ``None``.
        max_queue_size: Overrides ``sequence.max_queue_size`` when not ``None``.
        seed: The run's data seed (seeds the loader's workers).
        pin_memory: Pin batches (for a CUDA model).
    """

    def __init__(
        self,
        sequence: Sequence,
        workers: int | None = None,
        use_multiprocessing: bool | None = None,
        max_queue_size: int | None = None,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.sequence = sequence
        self.num_batches = len(sequence)
        if self.num_batches == 0:
            raise ValueError(f"The data is empty: len() of the {type(sequence).__name__} is 0.")
        self.workers = int(_pick(workers, sequence, "workers", 1) or 0)
        self.use_multiprocessing = bool(_pick(use_multiprocessing, sequence, "use_multiprocessing", False))
        self.max_queue_size = int(_pick(max_queue_size, sequence, "max_queue_size", 10) or 10)
        self.num_workers = self.workers if self.use_multiprocessing else 0
        self.seed = seed
        self.pin_memory = pin_memory

    def shard_units(self) -> tuple[str, int]:
        """Return ``("batch", len(sequence))``: a Sequence's items are whole batches."""
        return BATCH, len(self.sequence)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches ``start, start + 1, ...`` of the sequence, checking each one."""
        indices: Any = range(start, len(self.sequence))
        if self.shard is not None:
            indices = shard_order(torch.arange(len(self.sequence)), *self.shard)[start:].tolist()
        if self.num_workers:
            source: Any = torch.utils.data.DataLoader(
                _SequenceItems(self.sequence), batch_size=None, sampler=list(indices),
                pin_memory=self.pin_memory, generator=pass_generator(self.seed, pass_index),
                **_worker_options(self),
            )
        else:
            source = (convert_batch(self.sequence[index]) for index in indices)
        expected = None
        name = type(self.sequence).__name__
        for index, batch in zip(indices, source, strict=False):
            expected = check_batch(batch, f"{name}.__getitem__({index})", expected)
            yield batch if self.num_workers else self._finish(batch)

    def on_epoch_end(self) -> None:
        """Call the sequence's ``on_epoch_end``."""
        self.sequence.on_epoch_end()


def _pick(override: Any, source: Any, name: str, default: Any) -> Any:
    return override if override is not None else getattr(source, name, default)


def _worker_options(adapter: Any) -> dict[str, Any]:
    if not adapter.num_workers:
        return {}
    return {
        "num_workers": adapter.num_workers,
        "prefetch_factor": max(1, adapter.max_queue_size // adapter.num_workers),
    }


class _SequenceItems(torch.utils.data.Dataset):
    """A Dataset view of a Sequence whose items are whole batches."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence

    def __len__(self) -> int:
        return len(self.sequence)

    def __getitem__(self, index: int) -> Any:
        return convert_batch(self.sequence[index])


def convert_batch(batch: Any) -> Any:
    """Turn the numpy leaves of a batch into tensors; lists become tuples at the top level."""
    if isinstance(batch, list):
        batch = tuple(batch)
    return tree.map_structure(tree.to_tensor, batch)
