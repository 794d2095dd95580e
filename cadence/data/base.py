"""The data adapter base class and the generator that orders each pass over the data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from cadence.data import tree


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

    def on_epoch_end(self) -> None:
        """Called once at the end of every training epoch."""

    def _finish(self, batch: Any) -> Any:
        return tree.pin(batch) if self.pin_memory else batch
