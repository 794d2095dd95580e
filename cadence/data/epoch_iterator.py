"""EpochIterator: cuts passes over the data into epochs, and knows where it is for resume."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any


class EpochIterator:
    """Yield the batches of each epoch from a data adapter.

    Without ``steps_per_epoch`` an epoch is one pass over the data. With it, an epoch is
    ``steps_per_epoch`` batches and the next epoch continues where the last one stopped, as in
    Keras; data that can be read again (arrays, Datasets, DataLoaders, Sequences) then starts a
    new pass (reshuffled) when a pass runs out, so every epoch has ``steps_per_epoch`` batches.
    Data that cannot be read again (a generator) that runs out ends the epoch early, with a
    warning, and ``exhausted`` becomes True.

    The position (``pass_index``, ``batch_in_pass``) is part of the training state, so a resumed
    run reads the same batches in the same order.
    """

    def __init__(self, adapter: Any, steps_per_epoch: int | None = None) -> None:
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self.pass_index = 0
        self.batch_in_pass = 0
        self.exhausted = False

    @property
    def steps(self) -> int | None:
        """The number of batches per epoch, when it is known."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return self.adapter.num_batches

    def state_dict(self) -> dict[str, int]:
        """Return the data position."""
        return {"pass_index": self.pass_index, "batch_in_pass": self.batch_in_pass}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a data position."""
        self.pass_index = int(state["pass_index"])
        self.batch_in_pass = int(state["batch_in_pass"])

    def set_seed(self, seed: int) -> None:
        """Set the seed that orders every pass (for adapters that shuffle)."""
        if hasattr(self.adapter, "seed"):
            self.adapter.seed = seed

    def _next_pass(self) -> None:
        self.pass_index += 1
        self.batch_in_pass = 0

    def epoch(self) -> Iterator[Any]:
        """Yield the batches of one epoch, updating the position after each one."""
        target = self.steps_per_epoch
        produced = 0
        while target is None or produced < target:
            started = self.batch_in_pass
            got_any = False
            for batch in self.adapter.iterate(self.pass_index, started):
                got_any = True
                self.batch_in_pass += 1
                produced += 1
                yield batch
                if target is not None and produced >= target:
                    break
            else:
                # The pass ran out.
                if not self.adapter.repeatable:
                    if target is not None and produced < target:
                        self.exhausted = True
                        warnings.warn(
                            f"The data ran out after {produced} of {target} batches of this "
                            "epoch: a generator cannot be read again. Pass steps_per_epoch "
                            "and epochs so that steps_per_epoch * epochs batches exist.",
                            stacklevel=3,
                        )
                    elif produced == 0:
                        self.exhausted = True
                    self._next_pass()
                    return
                self._next_pass()
                if target is None:
                    return
                if not got_any and started == 0:
                    return
                continue
            # The epoch ended inside the pass: keep the position for the next epoch.
            num = self.adapter.num_batches
            if num is not None and self.batch_in_pass >= num:
                self._next_pass()
            return
