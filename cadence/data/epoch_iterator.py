"""EpochIterator: cuts passes over the data into epochs, and knows where it is for resume."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

#: Keras 3's warning when the data runs out before ``steps_per_epoch`` batches.
RAN_OUT_WARNING = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches. You may need to "
    "use the `.repeat()` function when building your dataset."
)


class EpochIterator:
    """Yield the batches of each epoch from a data adapter.

    Without ``steps_per_epoch`` an epoch is the rest of the current pass over the data (a whole
    pass, unless a resumed run starts mid-pass). With it, an epoch is ``steps_per_epoch``
    batches and the next epoch continues where the last one stopped, from the same live
    iterator, as in Keras 3. When the pass runs out before ``steps_per_epoch`` batches, the
    epoch ends there with Keras 3's warning (:data:`RAN_OUT_WARNING`), and the next epoch
    starts a fresh (reshuffled) pass over data that can be read again (arrays, Datasets,
    DataLoaders, Sequences). Data that cannot be read again (a generator) that runs out sets
    ``exhausted``, and training stops after that epoch.

    The position (``pass_index``, ``batch_in_pass``, and ``batch_in_epoch``, the batches of the
    current epoch already read) is part of the training state: after :meth:`load_state_dict`
    the next epoch starts pass ``pass_index`` at batch ``batch_in_pass`` and yields only the
    batches the interrupted epoch still had to run, so a resumed run reads the same batches in
    the same order.

    Args:
        adapter: A :class:`~cadence.data.adapters.DataAdapter`.
        steps_per_epoch: Batches per epoch, or ``None`` for one pass.

    Raises:
        ValueError: From :meth:`epoch`, if the data yields no batch at all.
    """

    def __init__(self, adapter: Any, steps_per_epoch: int | None = None) -> None:
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self.pass_index = 0
        self.batch_in_pass = 0
        self.exhausted = False
        self.batch_in_epoch = 0
        self.batches_read = 0
        self._resumed = False
        self._live: Iterator[Any] | None = None

    @property
    def steps(self) -> int | None:
        """The number of batches per epoch, when it is known."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return self.adapter.num_batches

    def state_dict(self) -> dict[str, int]:
        """Return the data position."""
        return {
            "pass_index": self.pass_index,
            "batch_in_pass": self.batch_in_pass,
            "batch_in_epoch": self.batch_in_epoch,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a data position; the next epoch starts reading there."""
        self.pass_index = int(state["pass_index"])
        self.batch_in_pass = int(state["batch_in_pass"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self._resumed = True
        self.close()

    def set_seed(self, seed: int) -> None:
        """Set the seed that orders every pass (for adapters that shuffle)."""
        if hasattr(self.adapter, "seed") and self.adapter.seed != seed:
            self.adapter.seed = seed
            self.close()

    def close(self) -> None:
        """Drop the live iterator of the current pass (stopping any loader workers)."""
        live, self._live = self._live, None
        if live is not None and hasattr(live, "close"):
            live.close()

    def _next_pass(self) -> None:
        self.close()
        self.pass_index += 1
        self.batch_in_pass = 0

    def epoch(self) -> Iterator[Any]:
        """Yield the batches of one epoch, updating the position before each one is used."""
        if not self._resumed:
            self.batch_in_epoch = 0
        self._resumed = False
        target = self.steps_per_epoch
        produced = self.batch_in_epoch if target is not None else 0
        complete = False  # Whether the epoch ended by counting ``steps_per_epoch`` batches.
        while True:
            if target is not None and produced >= target:
                complete = True
                break
            live = self._live
            if live is None:
                live = self._live = iter(self.adapter.iterate(self.pass_index, self.batch_in_pass))
            for batch in live:
                self.batch_in_pass += 1
                self.batches_read += 1
                self.batch_in_epoch += 1
                produced += 1
                yield batch
                if self._live is not live:  # Closed or repositioned meanwhile: start afresh.
                    break
                if target is not None and produced >= target:
                    break
            else:
                if self._live is live and self._pass_ran_out(target, produced):
                    break
                continue
        if complete:
            # Exactly ``steps_per_epoch`` batches: a new pass next time when this one is done.
            num = self.adapter.num_batches
            if num is not None and self.batch_in_pass >= num:
                self._next_pass()
        self.batch_in_epoch = 0

    def _pass_ran_out(self, target: int | None, produced: int) -> bool:
        """Handle the end of a pass; return whether the epoch ends with it."""
        if self.batch_in_pass == 0 and self.batches_read == 0:
            raise ValueError(
                f"The data yielded no batches ({type(self.adapter).__name__}): it is empty, "
                "or it is a generator that was already read to its end."
            )
        if not self.adapter.repeatable:
            if target is not None or produced == 0:
                self.exhausted = True
            if target is not None and produced < target:
                warnings.warn(RAN_OUT_WARNING, stacklevel=3)
            return True
        ran_short = target is not None and produced < target
        self._next_pass()
        if ran_short:
            warnings.warn(RAN_OUT_WARNING, stacklevel=3)
        return True
