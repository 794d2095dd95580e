"""ProgbarLogger: Keras 3's progress bar, reading metric values at its refresh rate only.

In a terminal, ``verbose=1`` draws what Keras draws, for ``fit`` (one bar an epoch, after an
``Epoch 3/20`` line when there is more than one epoch), ``evaluate`` and ``predict``::

    375/375 ━━━━━━━━━━━━━━━━━━━━ 1s 2ms/step - loss: 0.1234 - mae: 0.2345 - val_loss: ...

that is the step count, a 20-character bar, the time left (the time taken once done), the
time per step (``us``, ``ms`` or ``s``), then every value as ``%.4f`` (``%.4e`` when its size
is at most 1e-3), in the order the keys first appeared. ``verbose=2`` prints one line per
epoch, ``375/375 - 1s - 2ms/step - loss: 0.1234``; ``verbose=0`` nothing.

Where cadence differs from Keras, and why:

- The live line is redrawn in place, so it must fit on one row: while an epoch runs it shows
  the values that fit the terminal's width. Each bar's final line shows every value,
  wrapping if it is wider than the terminal. (Keras lets the live line wrap, and a wrapped
  line cannot be redrawn: each update leaves a broken copy behind.)
- The values are read from the device at most every ``refresh_seconds`` (0.5 s; Keras
  redraws every 0.05 s), never every batch, so the bar costs no per-batch host-device sync.
  The bar appears at the first step without values; they show from the first refresh on.
- When the output is neither a terminal nor a notebook (a log file, a pipe, a CI job), only
  each bar's final line is printed, without colours, and the values are read only then.
- In a notebook with ``ipywidgets`` installed (``pip install "cadence[notebook]"``), the bar
  is tqdm's widget, with Keras's formatted values beside it.
- A bar stopped early (``stop_training``, data that runs out) shows the steps it ran,
  ``3/375``, not the full count.
- ``%.4e`` is chosen by the value's size in ``verbose=2`` too (Keras compares the signed
  value there, so a negative loss shows as ``-1.2340e+00``).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from typing import Any

import numpy as np

from cadence.callbacks.callback import Callback
from cadence.logs import to_python

WIDTH = 20  # The bar's width in characters, as Keras's.
_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
_open_widget: list[Any] = []  # The notebook bar left open by an interrupted run, if any.
_open_line: list[Any] = []  # The bar whose live line the cursor is on, if any.


def format_value(value: Any) -> str | None:
    """Return a log value as Keras shows it (``0.1234``, ``1.0000e-04``), or None if not a number."""
    if isinstance(value, str) or value is None:
        return None
    try:
        number = float(np.mean(np.asarray(value, dtype=np.float64)))
    except (TypeError, ValueError):
        return None
    return f"{number:.4f}" if abs(number) > 1e-3 else f"{number:.4e}"


def format_logs(logs: dict[str, Any]) -> str:
    """Format logs as Keras does: ``loss: 0.1234 - mae: 5.6780e-04``; non-numbers are left out."""
    parts = [(key, format_value(value)) for key, value in logs.items()]
    return " - ".join(f"{key}: {text}" for key, text in parts if text is not None)


def format_time(seconds_per_unit: float, unit: str = "step") -> str:
    """Return Keras's time per unit: ``" 2ms/step"``, ``" 35us/step"`` or ``" 1s/step"``."""
    if seconds_per_unit >= 1 or seconds_per_unit == 0:
        return f" {seconds_per_unit:.0f}s/{unit}"
    if seconds_per_unit >= 1e-3:
        return f" {seconds_per_unit * 1e3:.0f}ms/{unit}"
    return f" {seconds_per_unit * 1e6:.0f}us/{unit}"


def format_eta(seconds: float) -> str:
    """Return Keras's time left: ``"1:02:03"``, ``"2:05"`` or ``"7s"``."""
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60:02.0f}"
    return f"{seconds:.0f}s"


def _in_kernel() -> bool:
    """Whether this runs under an IPython kernel (Jupyter, Colab, VS Code notebooks)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _is_interactive() -> bool:
    """Whether a live bar can be drawn: a terminal, or a notebook."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) or _in_kernel()


def _output_mode(interactive: bool | None) -> str:
    """Return ``"terminal"``, ``"kernel"``, ``"widget"`` or ``"plain"`` (final lines only)."""
    if interactive is False or (interactive is None and not _is_interactive()):
        return "plain"
    if _in_kernel():
        return "widget" if importlib.util.find_spec("ipywidgets") is not None else "kernel"
    return "terminal"


def _write(text: str, bar: _Bar | None = None, line_open: bool = False) -> None:
    """Write ``text``; first end a live line another bar left open (a run stopped by Ctrl-C)."""
    owner = _open_line[0] if _open_line else None
    if owner is not None and owner is not bar:
        text = "\n" + text
    _open_line[:] = [bar] if line_open else []
    sys.stdout.write(text)
    sys.stdout.flush()


class _Bar:
    """One bar (an epoch of ``fit``, an ``evaluate``, a ``predict``): its values and its drawing."""

    def __init__(self, target: int | None, verbose: int, mode: str, now: float) -> None:
        self.target = target if target else None
        self.verbose = verbose
        self.mode = mode
        self.start = now
        self.after_first: float | None = None
        self.values: dict[str, str] = {}
        self.widget: Any = None
        if mode == "widget" and verbose == 1:
            while _open_widget:  # A run interrupted by Ctrl-C left its bar open: close it.
                _open_widget.pop().close()
            from tqdm.notebook import tqdm

            self.widget = tqdm(total=self.target, unit="step", leave=True)
            _open_widget.append(self.widget)

    def _take(self, logs: dict[str, Any] | None) -> None:
        for key, value in (logs or {}).items():
            text = format_value(value)
            if text is not None:
                self.values[key] = text  # A key keeps the place where it first appeared.

    def _per_step(self, current: int, now: float) -> float:
        """Keras's estimate: the first step (compilation, warm-up) is left out once there are more."""
        if current <= 0:
            return 0.0
        if self.after_first is not None and current > 1:
            return (now - self.after_first) / (current - 1)
        return (now - self.start) / current

    def _line(self, current: int, now: float, final: bool, colour: bool, columns: int | None) -> str:
        per_step = self._per_step(current, now)
        if self.target:
            count = f"{current:>{len(str(self.target))}}/{self.target}"
            done = min(int(WIDTH * current / self.target), WIDTH)
            bar_plain = "━" * WIDTH
            if colour:
                head = f"{_BOLD}{count}{_RESET} " + (f"{_GREEN}{'━' * done}{_RESET}" if done else "")
                head += f"{_GREY}{'━' * (WIDTH - done)}{_RESET}"
            else:
                head = f"{count} {bar_plain}"
            plain_head = f"{count} {bar_plain}"
        else:
            head = plain_head = f"{current:7d}/Unknown"
        seconds = f"{now - self.start:.0f}s" if final or not self.target else format_eta(
            per_step * (self.target - current))
        head += f" {_BOLD}{seconds}{_RESET}" if colour else f" {seconds}"
        plain_head += f" {seconds}"
        head += format_time(per_step)
        plain_head += format_time(per_step)
        metrics = [f" - {key}: {text}" for key, text in self.values.items()]
        if columns is None:
            return head + "".join(metrics)
        room = columns - 1 - len(plain_head)
        if room < 0:  # Not even the bar fits: the plain text, cut to the width.
            return (plain_head + "".join(metrics))[: columns - 1]
        shown = ""
        for part in metrics:
            if len(shown) + len(part) > room:
                break
            shown += part
        return head + shown

    def update(self, current: int, now: float, logs: dict[str, Any] | None) -> None:
        """Redraw the live bar at ``current`` steps (taking ``logs``' values when given)."""
        self._take(logs)
        if self.verbose != 1 or self.mode == "plain":
            return
        if self.widget is not None:
            self._per_step(current, now)
            self.widget.n = current
            postfix = " - ".join(f"{key}: {text}" for key, text in self.values.items())
            self.widget.set_postfix_str(postfix, refresh=False)
            self.widget.refresh()
            return
        columns = shutil.get_terminal_size((80, 24)).columns if self.mode == "terminal" else None
        _write("\r" + self._line(current, now, False, True, columns) + ("\x1b[K" if columns else ""),
               self, line_open=True)

    def finish(self, current: int, now: float, logs: dict[str, Any] | None) -> None:
        """Print the bar's final line with every value (or its ``verbose=2`` line)."""
        self._take(logs)
        if self.target is None:
            self.target = current
        if self.verbose == 2:
            count = f"{current:>{len(str(self.target))}}/{self.target}" if self.target else f"{current}"
            values = "".join(f" - {key}: {text}" for key, text in self.values.items())
            per_step = format_time(self._per_step(current, now))
            _write(f"{count} - {now - self.start:.0f}s -{per_step}{values}\n", self)
            return
        if self.widget is not None:
            self.update(current, now, None)
            self.widget.close()
            if self.widget in _open_widget:
                _open_widget.remove(self.widget)
            return
        live = self.mode in ("terminal", "kernel")
        prefix = "\r\x1b[K" if self.mode == "terminal" else ("\r" if live else "")
        _write(prefix + self._line(current, now, True, live, None) + "\n", self)


class ProgbarLogger(Callback):
    """Print progress as Keras 3 does: ``verbose=1`` a live bar, ``2`` one line per epoch, ``0`` none.

    The verbosity comes from ``fit``/``evaluate``/``predict``'s ``verbose`` argument
    (``"auto"`` and ``True`` mean 1). Validation inside ``fit`` shows no bar of its own: its
    values end the epoch's line. See the module docstring for the exact format and for where
    cadence differs from Keras.

    Args:
        refresh_seconds: Minimum time between two readings of the metric values.
        interactive: Draw a live bar (``True``) or only final lines (``False``); ``None``
            decides from the output (a terminal or a notebook) when each bar opens.
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
        self._bar: _Bar | None = None
        self._drawn = False
        self._in_fit = False
        self._last_refresh = 0.0
        self._seen = 0

    @property
    def verbose(self) -> int:
        """The effective verbosity (0, 1 or 2)."""
        value = self.params.get("verbose", 1)
        return 1 if value == "auto" else int(value)

    def _open(self) -> None:
        now = time.monotonic()
        self._bar = _Bar(self.params.get("steps"), self.verbose, _output_mode(self.interactive), now)
        self._last_refresh = now
        self._seen = 0
        self._drawn = False

    def _step(self, batch: int, logs: Any) -> None:
        bar = self._bar
        if bar is None:
            return
        self._seen = batch + 1
        if self._seen == 1:
            bar.after_first = time.monotonic()  # Keras leaves the first (warm-up) step out.
        if bar.verbose != 1 or bar.mode == "plain":
            return  # Nothing is drawn before the end: no value read.
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            bar.update(self._seen, now, to_python(logs) if logs is not None else None)
        elif not self._drawn:
            bar.update(self._seen, now, None)  # The first step shows the bar, without values.
        self._drawn = True

    def _finish(self, logs: Any) -> None:
        if self._bar is not None and self._bar.verbose:
            self._bar.finish(self._seen, time.monotonic(), to_python(logs) if logs else None)
        self._bar = None

    def on_train_begin(self, logs=None):
        """Remember that validation runs inside ``fit`` (it gets no bar of its own)."""
        self._in_fit = True

    def on_train_end(self, logs=None):
        """Forget the fit (a bar left open by a stop has nothing more to show)."""
        self._in_fit = False
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        """Open the epoch's bar; print ``Epoch N/M`` when there is more than one epoch."""
        self._open()
        epochs = self.params.get("epochs") or 1
        if self.verbose and epochs > 1:
            _write(f"Epoch {epoch + 1}/{epochs}\n", self._bar)

    def on_train_batch_end(self, batch, logs=None):
        """Advance the bar; read the metrics only when the refresh interval has passed."""
        self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        """Close the bar with the epoch's values, validation's included."""
        self._finish(logs)

    def on_test_begin(self, logs=None):
        """Open a bar for ``evaluate`` (validation inside ``fit`` shows none)."""
        if not self._in_fit:
            self._open()

    def on_test_batch_end(self, batch, logs=None):
        """Advance the evaluation bar."""
        if not self._in_fit:
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        """Close the evaluation bar with its results."""
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        """Open a bar for ``predict``."""
        self._open()

    def on_predict_batch_end(self, batch, logs=None):
        """Advance the prediction bar (predictions are not values to show)."""
        self._step(batch, None)

    def on_predict_end(self, logs=None):
        """Close the prediction bar."""
        self._finish(None)

