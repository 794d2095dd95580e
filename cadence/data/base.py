"""The data adapter base class and the generator that orders each pass over the data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cadence.data import tree
from cadence.data.sharding import SAMPLE, shard_order


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
        seed: The run's data seed (orders the passes of adapters that shuffle).
        pin_memory: Produce batches in page-locked memory (for a CUDA model).
        shard: ``(rank, world_size, pad)`` when ``fit``/``evaluate``/``predict`` run in several
            processes: the adapter yields only this rank's share (:mod:`cadence.distributed`).
    """

    num_batches: int | None = None
    shard: tuple[int, int, bool] | None = None
    repeatable: bool = True
    seed: int = 0
    pin_memory: bool = False

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the batches of pass ``pass_index`` from batch ``start`` on."""
        raise NotImplementedError(f"{type(self).__name__} must implement iterate().")

    def shard_units(self) -> tuple[str, int] | None:
        """Return how this source is cut between ranks: ``(unit, count)``, or ``None``.

        ``unit`` is ``"sample"`` or ``"batch"`` and ``count`` the number of them in one pass.
        The base class returns ``None``: the source is left whole and every rank reads its own
        (generators, iterable data sets). Adapters that can be cut override it.
        """
        return None

    def set_shard(self, rank: int, world_size: int, training: bool) -> str | None:
        """Make this adapter yield only rank ``rank``'s share of every pass; return the unit cut.

        The share is the one ``DistributedSampler`` takes (:mod:`cadence.data.sharding`).
        ``fit``, ``evaluate`` and ``predict`` call it through
        :func:`cadence.distributed.shard_adapter` when a process group exists.

        Args:
            rank: This process's rank.
            world_size: The number of processes.
            training: Pad so that every rank runs as many batches (``fit``'s training data).

        Returns:
            ``"sample"``, ``"batch"``, or ``None`` when the data is left whole.

        Raises:
            ValueError: If evaluation or prediction data has fewer units than there are ranks;
                the adapter is left unchanged then.
        """
        units = self.shard_units()
        if units is None:
            return None
        unit, count = units
        if not training and count < world_size:
            raise ValueError(
                f"The data has {count} {unit}s for {world_size} processes: evaluation and "
                f"prediction give every process at least one {unit}. Received {count} {unit}s; "
                f"expected at least {world_size}."
            )
        self.shard = (rank, world_size, training)
        local = len(shard_order(torch.arange(count), rank, world_size, training))
        if unit == SAMPLE:
            self.num_batches = math.ceil(local / self.batch_size)  # type: ignore[attr-defined]
        else:
            self.num_batches = local
        return unit

    def shard_indices(self, produced: int) -> np.ndarray:
        """Return the global indices (samples or batches) of this rank's first ``produced`` units.

        Raises:
            ValueError: If the adapter was not cut by :meth:`set_shard`.
        """
        units = self.shard_units()
        if self.shard is None or units is None:
            raise ValueError(f"{type(self).__name__} is not cut between ranks: call set_shard first.")
        return shard_order(torch.arange(units[1]), *self.shard)[:produced].numpy()

    def on_epoch_end(self) -> None:
        """Called once at the end of every training epoch."""

    def _finish(self, batch: Any) -> Any:
        return tree.pin(batch) if self.pin_memory else batch
