"""CSVLogger: stream each epoch's logs to a CSV file, safe across crashes and resumes."""

from __future__ import annotations

import csv
import io as _io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadence import file_lock, io, output_paths, remote
from cadence.callbacks.callback import Callback
from cadence.callbacks.log_values import check_log_keys


def format_value(value: Any) -> str:
    """Return a log value as a CSV cell: floats by ``repr`` (as Keras), sequences as ``[a, b]``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (counted from 0, as in Keras), then the log keys.

    The columns are ``epoch`` followed by the sorted log keys. They stay stable when some
    epochs lack keys (``validation_freq > 1``): a missing value is ``NA``, as in Keras. When a key
    first appears on a later epoch (the first validation epoch), the file is rewritten once,
    atomically, with the wider header and the earlier rows padded with ``NA``. Unlike
    Keras, no ``val_`` columns are invented for a run without validation.

    Without ``append``, every epoch's write is atomic: the whole file (a few kilobytes) goes to
    a temporary file that is fsynced and renamed into place, so the file is complete at every
    instant, even if the process is killed mid-write. With ``append=True``, as in Keras, each
    epoch's row is appended to the file (and fsynced); the whole file is rewritten, atomically,
    only when a new key widens the header or a backup is restored. An appending run holds an
    exclusive lock on the file (``.<name>.lock`` beside it, released by the OS if the process
    dies), so a second run appending to the same file is refused, naming the file and the first
    run's process id, and no row is ever lost; a line left half-written by a killed process is
    removed (with a warning) when the next run starts.

    The path is checked in ``on_train_begin``: a folder, or a path under a file, is refused
    before the first batch. The callback keeps the rows of the file, so its
    :meth:`state_dict` lets ``BackupAndRestore`` rewrite the file exactly as it was at the
    backup: a resumed run never duplicates or loses a row. Log keys must be strings.

    Args:
        filename: The CSV file, e.g. ``"run/log.csv"``; parent folders are created.
        separator: The one-character delimiter between cells. Defaults to ``","``.
        append: Continue an existing file (its header is kept and not repeated; new keys
            widen it) instead of overwriting it.
    """

    #: Identifies the instance in a backup (see ``Callback.state_key``).
    state_key_attributes = ("filename",)
    #: Writes on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, str | os.PathLike) or not os.fspath(filename):
            raise ValueError(f"CSVLogger filename must be a non-empty path; received: filename={filename!r}.")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(
                "CSVLogger separator must be a single character other than a quote or a line "
                f"break; received: separator={separator!r}."
            )
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.columns: list[str] | None = None
        self.rows: list[dict[str, str]] = []
        self._in_sync = False
        self._restored = False
        # Each row's formatted line, kept with the row and the header it was formatted for, so
        # that an epoch formats one new line, not the whole file.
        self._formatted: list[tuple[dict[str, str], str]] = []
        self._formatted_columns: list[str] | None = None
        self._lock: file_lock.FileLock | None = None
        self._begun = False

    # ----------------------------------------------------------------- text
    def _line(self, cells: list[str]) -> str:
        buffer = _io.StringIO()
        csv.writer(buffer, delimiter=self.sep, lineterminator="\r\n").writerow(cells)
        return buffer.getvalue()

    def _row_line(self, row: dict[str, str]) -> str:
        return self._line([row.get(column, "NA") for column in self.columns or []])

    def _row_lines(self) -> list[str]:
        """Return every row's line, formatting only rows not formatted for this header yet."""
        if self._formatted_columns != self.columns:
            self._formatted, self._formatted_columns = [], list(self.columns or [])
        cached = self._formatted
        formatted = [
            cached[index] if index < len(cached) and cached[index][0] is row
            else (row, self._row_line(row))
            for index, row in enumerate(self.rows)
        ]
        self._formatted = formatted
        return [line for _, line in formatted]

    def _rewrite(self) -> None:
        """Write the header and every row atomically, replacing the file."""
        text = ""
        if self.columns is not None:
            text = self._line(self.columns) + "".join(self._row_lines())
        io.atomic_write_text(self.filename, text)
        self._in_sync = True

    def _append(self, row: dict[str, str]) -> None:
        """Append one row's line to the file and fsync it (``append=True``)."""
        with open(self.filename, "a", encoding="utf-8", newline="") as f:
            f.write(self._row_line(row))
            f.flush()
            os.fsync(f.fileno())

    def _read_existing(self) -> None:
        """Load the header and rows of an existing file to continue it (``append=True``)."""
        self.columns, self.rows = None, []
        if not remote.exists_any(self.filename):
            return
        data = remote.read_any(self.filename)
        end = data.rfind(b"\n") + 1
        if end < len(data):  # A killed appender's half-written line.
            warnings.warn(
                f"CSVLogger: '{self.filename}' ends with a half-written line "
                f"({data[end:][:60]!r}), left by a process killed while appending; it is removed.",
                stacklevel=3,
            )
            if not remote.is_remote(self.filename):
                os.truncate(remote.local_path(self.filename), end)
            data = data[:end]
        text = data.decode("utf-8")
        records = list(csv.reader(_io.StringIO(text, newline=""), delimiter=self.sep))
        records = [record for record in records if record]
        if not records:
            return
        self.columns = list(records[0])
        self.rows = [dict(zip(self.columns, record, strict=False)) for record in records[1:]]

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        """Check the path, lock it (``append``), and start or continue the file.

        After a restored backup, the file is rewritten to hold exactly the backup's rows.
        """
        if remote.is_remote(self.filename):  # An object store: no folder, no temp files.
            if self.append:
                if self._lock is None:
                    self._lock = remote.RemoteLock(self.filename + ".lock", "CSVLogger")
                self._lock.acquire()
        else:
            local = Path(remote.local_path(self.filename))
            output_paths.check_output_file(local, "CSVLogger", "filename")
            if self.append:
                if self._lock is None:
                    lock_file = local.with_name(f".{local.name}.lock")
                    self._lock = file_lock.FileLock(lock_file, "CSVLogger", f"filename={self.filename!r}")
                self._lock.acquire()
            file_lock.remove_stale_temp_files(local.parent, local.name)
        self._begun = True
        if self._restored:
            self._restored = False
            self._rewrite()
            return
        if self.append:
            self._read_existing()
            self._in_sync = True
        else:
            self.columns, self.rows = None, []
            self._in_sync = False  # The old file is replaced at the first write.

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Add the epoch's row and write the file atomically (a new key widens the header)."""
        logs = logs or {}
        check_log_keys(logs, "CSVLogger", "on_epoch_end")
        row = {"epoch": str(epoch)}
        row.update((key, format_value(value)) for key, value in logs.items())
        known = set(self.columns or [])
        self.rows.append(row)
        if self.columns is None or not known.issuperset(row):
            keys = (known | set(row)) - {"epoch"}
            self.columns = ["epoch", *sorted(keys)]
            self._rewrite()
        elif self.append and self._in_sync and not remote.is_remote(self.filename):
            self._append(row)  # An object store cannot append: it gets the whole file.
        else:
            self._rewrite()

    def on_train_end(self, logs: dict | None = None) -> None:
        """Make sure the file reflects this run (an empty run still replaces the old file)."""
        if not self._in_sync:
            self._rewrite()
        self._restored = False
        self.release_resources()
        self._begun = False

    def release_resources(self) -> None:
        """Release the lock of an appended file; ``fit`` calls this however it ends."""
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the header and every row of the file, as strings."""
        return {
            "columns": None if self.columns is None else list(self.columns),
            "rows": [dict(row) for row in self.rows],
        }

    def check_state_dict(self, state: Any) -> None:
        """Raise a ``ValueError`` if ``state`` is not a state :meth:`state_dict` could return."""
        if not isinstance(state, dict) or set(state) != {"columns", "rows"}:
            found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"expected a dict with the keys ['columns', 'rows']; received {found}")
        columns, rows = state["columns"], state["rows"]
        if columns is not None and (
            not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns)
        ):
            raise ValueError(f"columns must be None or a list of strings; received {columns!r}")
        if not isinstance(rows, list | tuple):
            raise ValueError(f"rows must be a list of dicts; received {type(rows).__name__}")
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in row.items()
            ):
                raise ValueError(f"row {index} must be a dict of strings to strings; received {row!r}")
            unknown = sorted(set(row) - set(columns or ()))
            if unknown:
                raise ValueError(f"row {index} has the keys {unknown}, which are not columns")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rows; the next ``on_train_begin`` rewrites the file to match them exactly.

        Rows written after the backup was taken (by a run that was then killed) disappear, so
        the resumed run writes them again exactly once.
        """
        self.check_state_dict(state)
        columns = state["columns"]
        self.columns = None if columns is None else list(columns)
        self.rows = [dict(row) for row in state["rows"]]
        if self._begun:  # Loaded after on_train_begin checked (and locked) the path.
            self._rewrite()
        else:
            self._restored = True
