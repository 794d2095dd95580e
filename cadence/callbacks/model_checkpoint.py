"""ModelCheckpoint: save the model (or its weights) every epoch, every N batches, or when best."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from cadence import distributed, file_lock, io, output_paths, remote
from cadence.callbacks.callback import overridden_below
from cadence.callbacks.monitor import MonitorCallback
from cadence.distributed import core as distributed_core
from cadence.logs import to_python


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
      ``save_weights_only=True`` the model's ``state_dict``; otherwise a full checkpoint written
      by ``model.save(path)`` (weights, optimizer state, compile configuration), which
      :func:`cadence.load_model` loads, as Keras's ``load_model`` loads Keras's. Both are
      cadence's checksummed torch files; ``model.load_weights(path)`` loads the weights of
      either.

    Every save goes through :meth:`_save_model`, Keras's extension point.

    The path is checked in ``on_train_begin``, before the first batch: a template's fixed folder
    (``ckpt`` in ``"ckpt/{epoch}.pt"``) under a file, or a fixed ``filepath`` that is a folder,
    is refused, as is, at a save, a formatted value that would leave the template's folder (a
    string in the logs holding ``/`` or ``..``). Temporary files left in that folder by killed
    writers (whose process no longer runs) are removed.

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

    #: Identifies the instance in a backup (see ``Callback.state_key``).
    state_key_attributes = ("filepath", "monitor")
    #: Saves on rank 0 only; the direction is resolved on every rank.
    writes_files = frozenset({"on_train_batch_end", "on_batch_end", "on_epoch_end"})
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    #: Under FSDP gathering the whole weights takes every rank: the hooks then run on every
    #: rank, whatever ``writes_files`` says, and rank 0 alone writes.
    collective_when_sharded = True

    accepts_lazy_logs = True

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
        """Check the path; resolve the direction when saving best only (the best carries over)."""
        folder = self._fixed_folder()
        if remote.is_remote(self.filepath):  # An object store: checked at each save instead.
            folder = None
        elif folder is None:
            output_paths.check_output_file(self.filepath, "ModelCheckpoint", "filepath")
            folder = os.path.dirname(self.filepath) or "."
        else:
            output_paths.check_output_folder(folder, "ModelCheckpoint", "filepath")
        if folder is not None and distributed_core.is_rank_zero():  # The rank that writes.
            file_lock.remove_stale_temp_files(remote.local_path(folder))
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
            self._save_model(self._current_epoch, batch, to_python(logs))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Save at the epoch's end when ``save_freq="epoch"``."""
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs or {})

    # ----------------------------------------------------------------- saving
    def _fixed_folder(self) -> str | None:
        """Return the folder of a template before its first field (None without fields)."""
        literal = ""
        for text, field, _, _ in string.Formatter().parse(self.filepath):
            literal += text
            if field is not None:
                return os.path.dirname(literal) or "."
        return None

    def _format_path(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            path = self.filepath.format(**fields)
            formatter = string.Formatter()
            for _, field, spec, conversion in formatter.parse(self.filepath):
                if field is None:
                    continue
                value, _ = formatter.get_field(field, (), fields)
                text = format(formatter.convert_field(value, conversion), spec or "")
                _check_field_value(self.filepath, field, text)
            _check_parts(self.filepath, path)
        except (KeyError, IndexError) as error:
            available = ", ".join(sorted(fields))
            raise KeyError(
                f"Failed to format the ModelCheckpoint filepath {self.filepath!r}: the field "
                f"{error} is not available. Available fields are: {available}."
            ) from None
        return path

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

    def _save_model(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> None:
        """Decide whether to save, and save: Keras's extension point, called for every save.

        A subclass that overrides it controls what is written, as tensorflow-addons'
        ``AverageModelCheckpoint`` does (swap in averaged weights, call
        ``super()._save_model(epoch, batch, logs)``, swap back).

        Args:
            epoch: The epoch, counted from 0.
            batch: The batch within the epoch (from 0), or None at an epoch's end.
            logs: The logs of that batch or epoch, a dict of Python values.
        """
        path = self._format_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if remote.is_remote(path):
            if remote.isdir(path):
                raise IsADirectoryError(
                    f"ModelCheckpoint: filepath={path!r} is an existing folder, not a file; "
                    "expected a file to write."
                )
        else:
            output_paths.check_output_file(path, "ModelCheckpoint", "filepath")
        if self.save_weights_only or Path(path).suffix.lower() == ".safetensors":
            state = distributed.full_state_dict(self.model)  # FSDP: gathered with every rank.
            if distributed_core.is_rank_zero():  # Only under FSDP do other ranks come here.
                io.save_weights_file(state, path)
            return
        self.model.save(path)  # Under FSDP every rank gathers and rank 0 writes.

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


def _check_field_value(template: str, field: str, text: str) -> None:
    """Refuse a formatted field value that would change the folder a checkpoint goes to."""
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    if any(sep in text for sep in separators) or text in ("..", "."):
        raise ValueError(
            f"ModelCheckpoint filepath {template!r}: the field {{{field}}} formats as {text!r}, "
            "which would leave the checkpoint's folder; a value used in a file name must not "
            "hold '/' or '..'."
        )


def _check_parts(template: str, path: str) -> None:
    """Refuse a formatted path whose folders differ in number or hold a new ``.``/``..``."""
    fixed, formatted = Path(template).parts, Path(path).parts
    moved = len(fixed) != len(formatted) or any(
        part in ("..", ".") and part != fixed[index] for index, part in enumerate(formatted)
    )
    if moved:
        raise ValueError(
            f"ModelCheckpoint filepath {template!r} formats as {path!r}, which would leave the "
            "checkpoint's folder; a value used in a file name must not hold '/' or '..'."
        )

