"""ModelCheckpoint: save the model (or its weights) every epoch, every N batches, or when best."""

from __future__ import annotations

import numbers
import os
import string
from pathlib import Path
from typing import Any

from cadence import distributed, io
from cadence.callbacks.callback import overridden_below
from cadence.callbacks.monitor import MonitorCallback
from cadence.trainer.logs import to_python


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights at some frequency, with Keras 3's arguments.

    ``filepath`` may hold ``str.format`` fields filled with ``epoch`` (counted from 1), the
    ``batch`` (from 1, for batch-frequency saves) and the keys of the logs, e.g.
    ``"ckpt/{epoch:02d}-{val_loss:.2f}.pt"``. Parent folders are created and every file is
    written atomically (a temporary file, fsynced, renamed), so a reader never sees half a file.

    The format follows the file's suffix:

    - ``.safetensors``: the model's weights (``state_dict``) in safetensors format, whatever
      ``save_weights_only`` says.
    - any other suffix (``.pt``, ``.pth``, ``.ckpt``, or none, as in ``"./checkpoint"``): with
      ``save_weights_only=True`` the model's ``state_dict``; otherwise a full checkpoint
      ``{"model": state_dict, "optimizer": optimizer state_dict, "epoch": N, "batch": B}``
      (``epoch`` counted from 1 as in the file name; ``batch`` from 1, or None at an epoch's
      end). Both are cadence's checksummed torch files, loaded safely by
      ``model.load_weights(path)`` (which takes the ``"model"`` entry of a full checkpoint) or
      :func:`cadence.io.load_state`.

    Unlike Keras, the monitor's direction is only needed (and ``mode="auto"`` only has to
    decide) when ``save_best_only=True``.

    Args:
        filepath: Where to save; a path or a ``str.format`` template.
        monitor: The log key that decides which model is best. Defaults to ``"val_loss"``.
        verbose: 1 prints a line for every save decision; 0 is silent.
        save_best_only: Save only when the monitored value improves on the best so far. A
            missing monitored value (warned once per run) saves, as in Keras.
        save_weights_only: Save only the model's ``state_dict``.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :class:`MonitorCallback`).
        save_freq: ``"epoch"`` to save at each epoch's end, or an integer: save after every
            that many training batches (counted across epochs).
        initial_value_threshold: The value the first save must beat with
            ``save_best_only=True``; None for no threshold.

    Raises:
        ValueError: For a ``save_freq`` that is neither ``"epoch"`` nor a positive integer, or a
            malformed ``filepath`` template.
    """

    accepts_lazy_logs = True
    #: Under FSDP gathering the whole weights takes every rank: hooks run everywhere, rank 0 writes.
    collective_when_sharded = True

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, 0.0, initial_value_threshold)
        if not isinstance(filepath, str | os.PathLike) or not os.fspath(filepath):
            raise ValueError(
                f"ModelCheckpoint filepath must be a non-empty path; received: filepath={filepath!r}."
            )
        self.filepath = os.fspath(filepath)
        try:
            list(string.Formatter().parse(self.filepath))
        except ValueError as error:
            raise ValueError(
                f"ModelCheckpoint filepath is not a valid str.format template ({error}); "
                f"received: filepath={self.filepath!r}."
            ) from None
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(
                "ModelCheckpoint save_freq must be 'epoch' or a positive integer number of "
                f"batches; received: save_freq={save_freq!r}."
            )
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = save_freq
        self.best: float | None = self.baseline
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0

    def _uses_direction(self) -> bool:
        return self.save_best_only

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Resolve the direction when saving best only; the best value carries across fits."""
        super().on_train_begin(logs)
        if self.save_best_only and self.best is None:
            self.best = self._worst()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Remember the epoch, for batch-frequency saves."""
        self._current_epoch = epoch

    def wants_hook(self, hook: str) -> bool:
        """Return False for ``on_train_batch_end`` when saving once per epoch."""
        if hook == "on_train_batch_end" and self.save_freq == "epoch":
            return overridden_below(self, ModelCheckpoint, hook)
        return True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Save every ``save_freq`` batches when ``save_freq`` is an integer.

        The batch logs arrive as a lazy view; they are read from the device only when a save
        is due, so checkpointing adds no per-batch host-device sync.
        """
        if self.save_freq == "epoch":
            return
        if batch <= self._last_batch_seen:  # A new epoch started.
            seen = batch + 1
        else:
            seen = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += seen
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save(self._current_epoch, batch, to_python(logs))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Save at the epoch's end when ``save_freq="epoch"``."""
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    # ----------------------------------------------------------------- saving
    def _format_path(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError) as error:
            available = ", ".join(sorted(fields))
            raise KeyError(
                f"Failed to format the ModelCheckpoint filepath {self.filepath!r}: the field "
                f"{error} is not available. Available fields are: {available}."
            ) from None

    def _should_save(self, epoch: int, logs: dict[str, Any], path: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        current = self.get_monitor_value(logs)
        if current is None:
            return True
        best = f"{self.best:.5f}" if self.best is not None else "None"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> None:
        path = self._format_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError(
                f"ModelCheckpoint filepath must name a file, but {path!r} is an existing folder."
            )
        state = distributed.full_state_dict(self.model)  # FSDP: gathered with every rank.
        optimizer = getattr(self.model, "optimizer", None)
        whole = self.save_weights_only or Path(path).suffix.lower() == ".safetensors"
        optimizer_state = None
        if optimizer is not None and not whole:
            optimizer_state = distributed.full_optimizer_state_dict(self.model, optimizer)
        if not distributed.is_rank_zero():  # Only under FSDP do other ranks come here.
            return
        if whole:
            io.save_weights_file(state, path)
            return
        io.save_state(
            {
                "model": dict(state),
                "optimizer": _plain(optimizer_state) if optimizer is not None else None,
                "epoch": epoch + 1,
                "batch": None if batch is None else batch + 1,
            },
            path,
        )

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the best value and the batch counters of ``save_freq``."""
        return {
            "best": self.best,
            "batches_seen_since_last_saving": self._batches_seen_since_last_saving,
            "last_batch_seen": self._last_batch_seen,
            "current_epoch": self._current_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state; the next ``on_train_begin`` keeps it."""
        super().load_state_dict(state)
        self._batches_seen_since_last_saving = int(state["batches_seen_since_last_saving"])
        self._last_batch_seen = int(state["last_batch_seen"])
        self._current_epoch = int(state["current_epoch"])


def _plain(obj: Any) -> Any:
    """Return ``obj`` with number-like leaves (numpy scalars, float subclasses) as Python numbers.

    An optimizer's ``param_groups`` may hold values such as ``numpy.float64`` set by a user's
    schedule; cadence's safe state format stores plain numbers only.
    """
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(value) for value in obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, numbers.Integral) and type(obj) is not int:
        return int(obj)
    if isinstance(obj, numbers.Real) and type(obj) is not float and not isinstance(obj, int):
        return float(obj)
    return obj
