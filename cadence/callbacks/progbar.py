"""ProgbarLogger: a tqdm progress bar that reads metric values at its refresh rate only."""

from __future__ import annotations

import sys
import time
from typing import Any

from cadence.callbacks.callback import Callback
from cadence.logs import to_python


def format_logs(logs: dict[str, Any]) -> str:
    """Format logs as Keras does: ``loss: 0.1234 - mae: 0.5678``."""
    parts = []
    for key, value in logs.items():
        if isinstance(value, float | int):
            parts.append(f"{key}: {value:.4f}")
    return " - ".join(parts)


class _FinalLine:
    """The bar of a non-interactive output (a log file, a pipe): one line when it closes.

    A live bar redrawn with carriage returns only garbles a file, so, as Keras does when its
    output is not a terminal, only the final state is printed: ``36/36 - 1s - loss: 0.0210``.
    """

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.n = 0
        self.postfix = ""
        self.start = time.monotonic()

    def update(self, count: int) -> None:
        self.n += count

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self.postfix = text

    def close(self) -> None:
        seconds = time.monotonic() - self.start
        head = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        tail = f" - {self.postfix}" if self.postfix else ""
        print(f"{head} - {seconds:.0f}s{tail}", file=sys.stdout, flush=True)


def _is_interactive() -> bool:
    """Whether a live bar can be drawn: a terminal, or a notebook (tqdm's widget)."""
    from tqdm.auto import tqdm as auto_tqdm

    in_notebook = any(cls.__module__ == "tqdm.notebook" for cls in auto_tqdm.__mro__)
    isatty = getattr(sys.stdout, "isatty", None)
    return in_notebook or bool(isatty and isatty())


class ProgbarLogger(Callback):
    """Print progress: ``verbose=1`` a live bar with metrics, ``2`` one line per epoch, ``0`` none.

    The verbosity comes from ``fit``/``evaluate``/``predict``'s ``verbose`` argument
    (``"auto"`` means 1). Batch logs are read from the device at most every ``refresh_seconds``,
    never every batch, so the bar costs no per-batch host-device synchronisation.

    When the output is not a terminal or a notebook (a log file, a pipe, a CI job), no live
    bar is drawn: each epoch ends with one line ``36/36 - 1s - loss: 0.0210 - ...``, as Keras
    prints in that case, and the metrics are read only then.

    Args:
        refresh_seconds: Minimum time between two readings of the metric values.
        interactive: Draw a live bar (``True``) or only final lines (``False``); ``None``
            decides from the output when each bar opens.
    """

    #: Prints on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True

    def __init__(self, refresh_seconds: float = 0.5, interactive: bool | None = None) -> None:
        super().__init__()
        self.refresh_seconds = refresh_seconds
        self.interactive = interactive
        self._bar: Any = None
        self._in_fit = False
        self._last_refresh = 0.0
        self._epoch_start = 0.0
        self._seen = 0

    @property
    def verbose(self) -> int:
        """The effective verbosity (0, 1 or 2)."""
        value = self.params.get("verbose", 1)
        return 1 if value == "auto" else int(value)

    def _open_bar(self, total: int | None, unit: str) -> None:
        interactive = self.interactive if self.interactive is not None else _is_interactive()
        self._last_refresh = time.monotonic()
        self._seen = 0
        if not interactive:
            self._bar = _FinalLine(total)
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            unit=unit,
            file=sys.stdout,
            dynamic_ncols=True,
            leave=True,
            mininterval=self.refresh_seconds,
            bar_format="{n_fmt}/{total_fmt} {bar} {elapsed}<{remaining}{postfix}"
            if total
            else "{n_fmt} {elapsed}{postfix}",
        )
        self._last_refresh = time.monotonic()
        self._seen = 0

    def _close_bar(self, logs: dict[str, Any] | None) -> None:
        if self._bar is None:
            return
        if logs:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
        self._bar.close()
        self._bar = None

    def _advance(self, logs: Any) -> None:
        if self._bar is None:
            return
        self._seen += 1
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            if type(self._bar) is not _FinalLine:  # A final line needs no intermediate values.
                self._bar.set_postfix_str(format_logs(to_python(logs)), refresh=False)
            self._bar.update(self._seen)
            self._seen = 0

    def _flush(self) -> None:
        if self._bar is not None and self._seen:
            self._bar.update(self._seen)
            self._seen = 0

    def on_train_begin(self, logs=None):
        """Remember that validation runs inside ``fit`` (it gets no bar of its own)."""
        self._in_fit = True

    def on_train_end(self, logs=None):
        """Close any bar left open."""
        self._in_fit = False
        self._flush()
        self._close_bar(None)

    def on_epoch_begin(self, epoch, logs=None):
        """Print the epoch header and open its bar."""
        self._epoch_start = time.monotonic()
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", file=sys.stdout, flush=True)
        if self.verbose == 1:
            self._open_bar(self.params.get("steps"), "step")

    def on_train_batch_end(self, batch, logs=None):
        """Advance the bar; read the metrics only when the refresh interval has passed."""
        self._advance(logs)

    def on_epoch_end(self, epoch, logs=None):
        """Close the bar with the epoch's final values, or print the epoch's line."""
        if self.verbose == 1:
            self._flush()
            self._close_bar(logs)
        elif self.verbose == 2:
            seconds = time.monotonic() - self._epoch_start
            steps = self.params.get("steps")
            head = f"{steps}/{steps} - " if steps else ""
            print(f"{head}{seconds:.0f}s - {format_logs(logs or {})}", file=sys.stdout, flush=True)

    def on_test_begin(self, logs=None):
        """Open a bar for ``evaluate`` (validation inside ``fit`` shows none)."""
        if not self._in_fit and self.verbose == 1:
            self._open_bar(self.params.get("steps"), "step")

    def on_test_batch_end(self, batch, logs=None):
        """Advance the evaluation bar (validation inside ``fit`` has none)."""
        if not self._in_fit:
            self._advance(logs)

    def on_test_end(self, logs=None):
        """Close the evaluation bar with its results."""
        if self._in_fit:
            return
        self._flush()
        if self.verbose == 1:
            self._close_bar(logs)
        elif self.verbose == 2:
            print(format_logs(logs or {}), file=sys.stdout, flush=True)

    def on_predict_begin(self, logs=None):
        """Open a bar for ``predict``."""
        if self.verbose == 1:
            self._open_bar(self.params.get("steps"), "step")

    def on_predict_batch_end(self, batch, logs=None):
        """Advance the prediction bar."""
        if self._bar is not None:
            self._seen += 1
            now = time.monotonic()
            if now - self._last_refresh >= self.refresh_seconds:
                self._last_refresh = now
                self._flush()

    def on_predict_end(self, logs=None):
        """Close the prediction bar."""
        self._flush()
        self._close_bar(None)
