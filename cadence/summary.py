"""``tf.summary`` as callbacks use it, written with ``torch.utils.tensorboard``.

Callbacks written for TensorFlow log their own values with ``tf.summary``; with
``import cadence as tf`` they run unchanged::

    writer = tf.summary.create_file_writer(logdir + "/cm")
    with writer.as_default():
        tf.summary.image("Confusion Matrix", image, step=epoch)   # [k, h, w, c] pixels
        tf.summary.scalar("lr", lr, step=epoch)

What TensorFlow 2 does, cadence does: a summary written with no default writer writes nothing
and returns False; ``step`` defaults to the one of ``writer.as_default(step=...)`` or
:func:`experimental.set_step` (read when each summary is written, so a counter object that
changes is followed); leaving ``as_default`` flushes the writer. Images are ``[k, h, w, c]``
with 1, 3 or 4 channels, ``uint8`` or floating point (clipped to [0, 1]); up to ``max_outputs``
are written, under ``name`` for one image and ``name/image/i`` for several (TensorFlow's
older naming, which TensorBoard shows as a group). Histograms use ``buckets`` equal-width
buckets (30 by default, as TensorFlow 2).

The ``tensorboard`` package must be installed (``pip install "cadence[tensorboard]"``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "SummaryWriter",
    "create_file_writer",
    "create_noop_writer",
    "experimental",
    "flush",
    "histogram",
    "image",
    "scalar",
    "text",
]

_NO_STEP = (
    "No step set. Please specify one either through the `step` argument or through "
    "tf.summary.experimental.set_step()"
)


class _Context(threading.local):
    """The default writer and step of this thread, as TensorFlow keeps them."""

    def __init__(self) -> None:
        self.writer: SummaryWriter | None = None
        self.step: Any = None


_context = _Context()


class SummaryWriter:
    """A TensorBoard event-file writer, as returned by :func:`create_file_writer`.

    Args:
        logdir: The folder of the event file; created if missing.
        max_queue: Summaries kept in memory before a write. Defaults to 10.
        flush_millis: Longest time between two flushes, in milliseconds. Defaults to 120000.
        filename_suffix: Appended to the event file's name.
    """

    def __init__(
        self,
        logdir: str | os.PathLike | None,
        max_queue: int | None = None,
        flush_millis: int | None = None,
        filename_suffix: str | None = None,
    ) -> None:
        self.logdir = None if logdir is None else os.fspath(logdir)
        self._settings = {
            "max_queue": 10 if max_queue is None else int(max_queue),
            "flush_secs": 120 if flush_millis is None else max(int(flush_millis) / 1000, 0.001),
            "filename_suffix": filename_suffix or "",
        }
        self._writer: Any = None
        self._closed = False

    def init(self) -> None:
        """Open the event file now (it is otherwise opened by the first summary)."""
        self._file()

    def _file(self) -> Any:
        if self._closed:
            raise RuntimeError(f"This summary writer of '{self.logdir}' is closed.")
        if self._writer is None and self.logdir is not None:
            from torch.utils.tensorboard import SummaryWriter as TorchWriter

            self._writer = TorchWriter(self.logdir, **self._settings)
        return self._writer

    def set_as_default(self, step: Any = None) -> None:
        """Make this the default writer of the thread (and ``step`` its step, if given)."""
        _context.writer = self
        if step is not None:
            _context.step = step

    @contextlib.contextmanager
    def as_default(self, step: Any = None) -> Iterator[SummaryWriter]:
        """Within the block, summaries go to this writer (with ``step`` if given); then flush."""
        previous = (_context.writer, _context.step)
        self.set_as_default(step)
        try:
            yield self
        finally:
            _context.writer, _context.step = previous
            self.flush()

    def flush(self) -> None:
        """Write the pending summaries to the event file."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; the writer cannot be used afterwards."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True


def create_file_writer(
    logdir: str | os.PathLike,
    max_queue: int | None = None,
    flush_millis: int | None = None,
    filename_suffix: str | None = None,
    name: str | None = None,
    experimental_trackable: bool = False,
) -> SummaryWriter:
    """Return a writer of TensorBoard event files in ``logdir``, as TensorFlow's.

    Args:
        logdir: The folder of the event file.
        max_queue: Summaries kept in memory before a write. Defaults to 10.
        flush_millis: Longest time between two flushes, in milliseconds. Defaults to 120000.
        filename_suffix: Appended to the event file's name.
        name: Accepted for TensorFlow's signature; unused.
        experimental_trackable: Accepted for TensorFlow's signature; unused.

    Raises:
        ValueError: If ``logdir`` is not a non-empty path.
    """
    if not isinstance(logdir, str | os.PathLike) or not os.fspath(logdir):
        raise ValueError(f"create_file_writer needs a non-empty logdir; received logdir={logdir!r}.")
    return SummaryWriter(logdir, max_queue, flush_millis, filename_suffix)


def create_noop_writer() -> SummaryWriter:
    """Return a writer that writes nothing (summaries under it return False)."""
    return SummaryWriter(None)


def flush(writer: SummaryWriter | None = None, name: str | None = None) -> None:
    """Flush ``writer``, or the default writer when None."""
    writer = writer if writer is not None else _context.writer
    if writer is not None:
        writer.flush()


def _set_step(step: Any) -> None:
    """Set the default step of the summaries written without ``step``."""
    _context.step = step


def _get_step() -> Any:
    """Return the default step, or None."""
    return _context.step


#: ``tf.summary.experimental``: the default step.
experimental = types.SimpleNamespace(set_step=_set_step, get_step=_get_step)


def _target(step: Any) -> tuple[Any, int] | None:
    """Return the torch writer and the step as an int, or None when nothing is to be written."""
    writer = _context.writer
    if writer is None or writer.logdir is None:
        return None
    step = step if step is not None else _context.step
    if step is None:
        raise ValueError(_NO_STEP)
    return writer._file(), int(_to_numpy(step).reshape(()).item())


def _to_numpy(data: Any) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu().numpy()
    return np.asarray(data)


def scalar(name: str, data: Any, step: Any = None, description: str | None = None) -> bool:
    """Write a scalar; return whether it was written (False without a default writer).

    Raises:
        ValueError: If ``data`` is not a single number, or no step is set.
    """
    value = _to_numpy(data)
    if value.size != 1 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"tf.summary.scalar {name!r} needs a single number; received shape {value.shape} "
            f"of {value.dtype}."
        )
    target = _target(step)
    if target is None:
        return False
    target[0].add_scalar(name, float(value.reshape(())), target[1])
    return True


def image(
    name: str, data: Any, step: Any = None, max_outputs: int = 3, description: str | None = None
) -> bool:
    """Write up to ``max_outputs`` images of ``data``, shaped ``[k, h, w, c]`` with c in 1, 3, 4.

    ``uint8`` pixels are written as they are; floating-point pixels are clipped to [0, 1] and
    scaled to 0..255 as TensorFlow does.

    Raises:
        ValueError: For another shape or channel count, or no step.
        TypeError: For pixels neither ``uint8`` nor floating point.
    """
    pixels = _to_numpy(data)
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"tf.summary.image {name!r} needs images shaped [k, h, w, c] with c in 1, 3 or 4; "
            f"received shape {pixels.shape}."
        )
    if np.issubdtype(pixels.dtype, np.floating):
        pixels = np.clip(pixels.astype(np.float64) * 255.5, 0, 255).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise TypeError(
            f"tf.summary.image {name!r} needs uint8 or floating-point pixels; received {pixels.dtype}."
        )
    target = _target(step)
    if target is None:
        return False
    writer, index = target
    chosen = pixels[: max(int(max_outputs), 0)]
    for i, picture in enumerate(chosen):
        tag = name if len(chosen) == 1 else f"{name}/image/{i}"
        writer.add_image(tag, picture, index, dataformats="HWC")
    return True


def histogram(
    name: str, data: Any, step: Any = None, buckets: int | None = None, description: str | None = None
) -> bool:
    """Write a histogram of ``data``'s values in ``buckets`` equal-width buckets (30 by default).

    Raises:
        ValueError: If ``buckets`` is not a positive integer, or no step is set.
    """
    if buckets is not None and (isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1):
        raise ValueError(f"tf.summary.histogram needs buckets >= 1; received buckets={buckets!r}.")
    values = _to_numpy(data).astype(np.float64).reshape(-1)
    target = _target(step)
    if target is None:
        return False
    target[0].add_histogram(name, values, target[1], bins=30 if buckets is None else buckets)
    return True


def text(name: str, data: Any, step: Any = None, description: str | None = None) -> bool:
    """Write a text (markdown, as TensorBoard shows it).

    Raises:
        TypeError: If ``data`` is not a string (or bytes, or a 0-d array of one).
    """
    value = data.item() if isinstance(data, np.ndarray) and data.ndim == 0 else data
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise TypeError(f"tf.summary.text {name!r} needs a string; received {type(data).__name__}.")
    target = _target(step)
    if target is None:
        return False
    target[0].add_text(name, value, target[1])
    return True
