"""Data adapters: one per kind of input, each yielding batches for one pass over the data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cadence.data import tree
from cadence.data.sequence import Sequence


def pass_generator(seed: int, pass_index: int) -> torch.Generator:
    """Return the generator that orders pass ``pass_index`` of a run seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + pass_index) % (2**63 - 1))
    return generator


class DataAdapter:
    """Base class: a source of batches, read one pass at a time.

    Attributes:
        num_batches: Batches in one pass, or ``None`` when unknown.
        repeatable: Whether a new pass can be started after one runs out.
    """

    num_batches: int | None = None
    repeatable: bool = True

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the batches of pass ``pass_index`` from batch ``start`` on."""
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called once at the end of every epoch."""


class ArrayAdapter(DataAdapter):
    """Batches of in-memory arrays and tensors (and nests of them), by slicing or one gather.

    Args:
        x: Inputs: an array, a tensor, or a tuple/list/dict of them.
        y: Targets, same kinds, or ``None``.
        sample_weight: Per-sample weights, or ``None``.
        batch_size: Samples per batch.
        shuffle: Reorder the samples at every pass, with a generator seeded by ``seed``.
        seed: The run's data seed (part of the training state).
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.x = tree.map_structure(tree.to_tensor, x)
        self.y = tree.map_structure(tree.to_tensor, y) if y is not None else None
        self.sample_weight = tree.to_tensor(sample_weight) if sample_weight is not None else None
        self.num_samples = check_lengths(self.x, self.y, self.sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_batches = math.ceil(self.num_samples / batch_size)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches by slicing, or by one ``index_select`` per leaf when shuffling."""
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=pass_generator(self.seed, pass_index))
        size = self.batch_size
        for index in range(start, self.num_batches):
            begin = index * size
            end = min(begin + size, self.num_samples)
            if order is None:
                def take(t, b=begin, e=end):
                    return t[b:e]
            else:
                rows = order[begin:end]

                def take(t, r=rows):
                    return t.index_select(0, r)

            x = tree.map_structure(take, self.x)
            y = tree.map_structure(take, self.y) if self.y is not None else None
            sw = take(self.sample_weight) if self.sample_weight is not None else None
            yield tree.pack_x_y_sample_weight(x, y, sw)


class DataLoaderAdapter(DataAdapter):
    """A ``torch.utils.data.DataLoader`` used as given (its batch size, sampler and workers)."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader = loader
        try:
            self.num_batches = len(loader)
        except TypeError:
            self.num_batches = None

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the loader's batches, skipping the first ``start`` of this pass."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(pass_index)
        for batch in itertools.islice(iter(self.loader), start, None):
            yield tuple(batch) if isinstance(batch, list) else batch


class DatasetAdapter(DataAdapter):
    """A map-style ``torch.utils.data.Dataset``, batched by a DataLoader with cadence's order."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.num_batches = math.ceil(self.num_samples / batch_size)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches of this pass's order from batch ``start`` on."""
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=pass_generator(self.seed, pass_index))
        else:
            order = torch.arange(self.num_samples)
        indices = order[start * self.batch_size :].tolist()
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=indices,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )
        for batch in loader:
            yield tuple(batch) if isinstance(batch, list) else batch


class IterableAdapter(DataAdapter):
    """A Python generator or iterator (or a torch IterableDataset): read once, batch by batch."""

    repeatable = False

    def __init__(self, iterable: Any) -> None:
        self._iterator = iter(iterable)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the next batches; there is only one pass."""
        for batch in self._iterator:
            yield convert_batch(batch)


class SequenceAdapter(DataAdapter):
    """A :class:`~cadence.data.Sequence`, loaded by torch ``DataLoader`` workers when asked."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence
        self.num_batches = len(sequence)

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches ``start, start + 1, ...`` of the sequence."""
        workers = int(getattr(self.sequence, "workers", 1) or 0)
        multiprocessing = bool(getattr(self.sequence, "use_multiprocessing", False))
        indices = range(start, len(self.sequence))
        if multiprocessing and workers > 0:
            queue = int(getattr(self.sequence, "max_queue_size", 10) or 10)
            loader = torch.utils.data.DataLoader(
                _SequenceItems(self.sequence),
                batch_size=None,
                sampler=list(indices),
                num_workers=workers,
                prefetch_factor=max(1, queue // workers),
            )
            for index, batch in zip(indices, loader, strict=True):
                yield check_sequence_item(batch, index)
        else:
            for index in indices:
                yield check_sequence_item(convert_batch(self.sequence[index]), index)

    def on_epoch_end(self) -> None:
        """Call the sequence's ``on_epoch_end``."""
        self.sequence.on_epoch_end()


class _SequenceItems(torch.utils.data.Dataset):
    """A Dataset view of a Sequence whose items are whole batches."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence

    def __len__(self) -> int:
        return len(self.sequence)

    def __getitem__(self, index: int) -> Any:
        return convert_batch(self.sequence[index])


def convert_batch(batch: Any) -> Any:
    """Turn the numpy leaves of a batch into tensors; lists become tuples."""
    if isinstance(batch, list):
        batch = tuple(batch)
    return tree.map_structure(tree.to_tensor, batch)


def check_sequence_item(batch: Any, index: int) -> Any:
    """Check that a Sequence item is x, (x,), (x, y) or (x, y, sample_weight)."""
    if isinstance(batch, tuple) and not 1 <= len(batch) <= 3:
        raise ValueError(
            f"Sequence.__getitem__({index}) returned a tuple of {len(batch)} elements; expected "
            "x, (x,), (x, y) or (x, y, sample_weight)."
        )
    return batch


def check_lengths(x: Any, y: Any, sample_weight: Any) -> int:
    """Return the common number of samples, or raise naming each input's length."""
    sizes: dict[str, int] = {}
    for name, data in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if data is None:
            continue
        for position, leaf in enumerate(tree.flatten(data)):
            if not hasattr(leaf, "shape") or len(leaf.shape) == 0:
                raise TypeError(
                    f"{name} must hold arrays or tensors with a batch dimension; received "
                    f"{type(leaf).__name__} {leaf!r}."
                )
            label = name if len(tree.flatten(data)) == 1 else f"{name}[{position}]"
            sizes[label] = int(leaf.shape[0])
    lengths = set(sizes.values())
    if len(lengths) > 1:
        described = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"Data cardinality is ambiguous: all inputs must have the same number "
                         f"of samples. Received {described}.")
    if not lengths or lengths == {0}:
        raise ValueError("The data is empty: received 0 samples.")
    return lengths.pop()


def is_array_like(value: Any) -> bool:
    """Return whether ``value`` is an array, a tensor, or a nest of them."""
    leaves = tree.flatten(value) if isinstance(value, tuple | list | dict) else [value]
    return bool(leaves) and all(isinstance(v, np.ndarray | torch.Tensor) for v in leaves)
