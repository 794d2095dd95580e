"""CSVLogger: stream each epoch's logs to a CSV file, safe across crashes and resumes."""

from __future__ import annotations

import csv
import io as _io
import os
from typing import Any

import numpy as np
import torch

from cadence import io, remote
from cadence.callbacks.callback import Callback


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
    epochs lack keys (``validation_freq > 1``): a missing value is an empty cell. When a key
    first appears on a later epoch (the first validation epoch), the file is rewritten once,
    atomically, with the wider header and the earlier rows padded with empty cells. Unlike
    Keras, no ``val_`` columns are invented for a run without validation.

    Every epoch's write is atomic: the whole file (a few kilobytes) goes to a temporary file
    that is fsynced and renamed into place, so the file is complete at every instant, even if
    the process is killed mid-write. The callback keeps the rows of the file, so its
    :meth:`state_dict` lets ``BackupAndRestore`` rewrite the file exactly as it was at the
    backup: a resumed run never duplicates or loses a row.

    Args:
        filename: The CSV file, e.g. ``"run/log.csv"``; parent folders are created.
        separator: The one-character delimiter between cells. Defaults to ``","``.
        append: Continue an existing file (its header is kept and not repeated; new keys
            widen it) instead of overwriting it.
    """

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

    # ----------------------------------------------------------------- text
    def _line(self, cells: list[str]) -> str:
        buffer = _io.StringIO()
        csv.writer(buffer, delimiter=self.sep, lineterminator="\r\n").writerow(cells)
        return buffer.getvalue()

    def _row_line(self, row: dict[str, str]) -> str:
        return self._line([row.get(column, "") for column in self.columns or []])

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

    def _read_existing(self) -> None:
        """Load the header and rows of an existing file to continue it (``append=True``)."""
        self.columns, self.rows = None, []
        if not remote.exists_any(self.filename):
            return
        text = remote.read_any(self.filename).decode("utf-8")
        records = list(csv.reader(_io.StringIO(text, newline=""), delimiter=self.sep))
        records = [record for record in records if record]
        if not records:
            return
        self.columns = list(records[0])
        self.rows = [dict(zip(self.columns, record, strict=False)) for record in records[1:]]

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        """Start the file (or continue it with ``append``), unless a state was just restored."""
        if self._restored:
            self._restored = False
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
        row = {"epoch": str(epoch)}
        row.update((str(key), format_value(value)) for key, value in logs.items())
        known = set(self.columns or [])
        self.rows.append(row)
        if self.columns is None or not known.issuperset(row):
            keys = (known | set(row)) - {"epoch"}
            self.columns = ["epoch", *sorted(keys)]
            self._rewrite()
        else:
            self._rewrite()

    def on_train_end(self, logs: dict | None = None) -> None:
        """Make sure the file reflects this run (an empty run still replaces the old file)."""
        if not self._in_sync:
            self._rewrite()
        self._restored = False

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the header and every row of the file, as strings."""
        return {
            "columns": None if self.columns is None else list(self.columns),
            "rows": [dict(row) for row in self.rows],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rows and rewrite the file to match them exactly (atomically).

        Rows written after the backup was taken (by a run that was then killed) disappear, so
        the resumed run writes them again exactly once.
        """
        columns = state["columns"]
        self.columns = None if columns is None else list(columns)
        self.rows = [dict(row) for row in state["rows"]]
        self._rewrite()
        self._restored = True
