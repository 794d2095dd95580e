"""StatefulDataLoaderAdapter: torchdata's ``StatefulDataLoader``, resumed exactly mid-epoch.

A plain ``DataLoader`` with a shuffling sampler draws a new order whenever it is iterated, so a
run resumed in the middle of an epoch cannot replay the rest of that epoch's order.
``torchdata.stateful_dataloader.StatefulDataLoader`` can say where it is (its sampler's state,
the batches already yielded, its workers' and data set's states): this adapter hands that
``state_dict()`` to the run's state, so ``BackupAndRestore`` saves it, and a resumed run's loader
continues with the very next batch of the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from cadence.data.adapters import DataLoaderAdapter, convert_batch
from cadence.data.checks import check_batch


def is_stateful_loader(x: Any) -> bool:
    """Return whether ``x`` is a ``DataLoader`` that saves and restores its position.

    That is torchdata's ``StatefulDataLoader``, or any ``DataLoader`` subclass with
    ``state_dict()`` and ``load_state_dict()``.
    """
    return isinstance(x, torch.utils.data.DataLoader) and all(
        callable(getattr(x, name, None)) for name in ("state_dict", "load_state_dict")
    )


class StatefulDataLoaderAdapter(DataLoaderAdapter):
    """A ``StatefulDataLoader`` used as given, whose own state is saved with the run's.

    :meth:`state_dict` is the loader's ``state_dict()`` at the moment of a backup (after the
    batches training has consumed, not those its workers prefetched). After
    :meth:`load_state_dict`, the next pass does not skip any batch: the loader itself resumes
    where it was. Between resumes it behaves as :class:`~cadence.data.adapters.DataLoaderAdapter`.
    """

    def __init__(self, loader: torch.utils.data.DataLoader, pin_memory: bool = False) -> None:
        if not is_stateful_loader(loader):
            raise TypeError(
                "StatefulDataLoaderAdapter needs a DataLoader with state_dict() and "
                f"load_state_dict() (torchdata's StatefulDataLoader); received {type(loader).__name__}."
            )
        super().__init__(loader, pin_memory=pin_memory)
        self._resume_in_loader = False

    def state_dict(self) -> dict[str, Any]:
        """Return the loader's ``state_dict()``: where it is in its current pass."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the loader's state; the next pass continues from it without skipping batches.

        Raises:
            ValueError: In a distributed run (the adapter is sharded), before anything is loaded.
        """
        if self.shard is not None:
            raise ValueError(
                "A StatefulDataLoader resumes exactly mid-epoch in a single-process run; in a "
                "distributed run cadence shares one loader's batches among the ranks, which a "
                "restored loader cannot replay. In a distributed run, give fit a map-style Dataset "
                "instead: cadence shards it and resumes it exactly."
            )
        self.loader.load_state_dict(state)
        self._resume_in_loader = True

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield the loader's batches; after a restore, from where the loader itself resumes.

        A ``DataLoader`` draws its seeds from torch's global generator when an iterator is
        created. The interrupted run drew them at the start of the pass, before the backup that
        restored the global generator; the resumed iterator's draws are therefore undone, so the
        random numbers training uses next (dropout, augmentation) are those of the first run.
        """
        if not self._resume_in_loader:
            yield from super().iterate(pass_index, start)
            return
        self._resume_in_loader = False
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(pass_index)
        generator_state = torch.get_rng_state()
        iterator = iter(self.loader)
        torch.set_rng_state(generator_state)
        expected = None
        for index, batch in enumerate(iterator, start):
            batch = convert_batch(batch)
            expected = check_batch(batch, f"DataLoader batch {index}", expected)
            yield self._finish(batch)
