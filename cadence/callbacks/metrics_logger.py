"""MetricsLogger: one ``key: value;`` line per epoch, for log scrapers such as SageMaker's."""

from __future__ import annotations

import datetime
import logging
import numbers
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from cadence.callbacks.callback import Callback
from cadence.callbacks.log_values import check_log_keys

_OWNER = "MetricsLogger"


def printed_name(key: str, prefix_train: str = "train_") -> str:
    """Return the name a log key is printed under: ``val_`` keys as they are, others prefixed."""
    return key if key.startswith("val_") else f"{prefix_train}{key}"


def format_value(value: Any, decimals: int = 4) -> str:
    """Format a log value: numbers with ``decimals`` decimals (``nan``, ``inf`` as Python prints)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.{decimals}f}"
    return str(value)


def format_epoch_line(
    epoch: int, epochs: Any, logs: Mapping[str, Any], prefix_train: str = "train_", decimals: int = 4
) -> str:
    """Return seed 000's epoch line, e.g. ``Epoch 1/10 - train_loss: 4.6889; - val_loss: 11.1416;``.

    Args:
        epoch: The epoch index, from 0 (printed from 1).
        epochs: The number of epochs of the run.
        logs: The epoch's logs; keys are printed in their order.
        prefix_train: Prepended to every key that does not start with ``val_``.
        decimals: Decimals of each value.
    """
    items = [
        f"{printed_name(key, prefix_train)}: {format_value(value, decimals)};"
        for key, value in logs.items()
    ]
    return f"Epoch {epoch + 1}/{epochs} - {' - '.join(items)}"


class MetricsLogger(Callback):
    """Print one line per epoch in the ``name: value;`` form that regex-based log scrapers read.

    Each epoch end prints one line in seed 000's format (wrapped here before ``- val_loss``)::

        Epoch 1/10 - train_loss: 4.6889; - train_root_mean_squared_error: 2.1654;
        - val_loss: 11.1416; - val_root_mean_squared_error: 3.3379;

    with the keys in log order, every key that does not start with ``val_`` prefixed with
    ``prefix_train``, and values with ``decimals`` decimals (``nan`` and ``inf`` print as such).
    :func:`cadence.integrations.sagemaker.metric_definitions` gives the SageMaker Estimator the
    regexes that read these lines back.

    With ``start_finish=True`` it also prints ``Start training - <time>`` at the start of ``fit``
    and ``Finish training - <time>`` when ``fit`` ends normally, as seed 000 does.

    Args:
        prefix_train: The prefix of training keys (``loss`` prints as ``train_loss``).
        stream: A text stream (``sys.stdout`` by default, looked up when printing so that
            redirection works) or a ``logging.Logger`` (lines go to ``logger.info``).
        decimals: Decimals printed for each value (Keras-style seeds use 4).
        start_finish: Also print the start and finish lines.
    """

    #: Prints on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(
        self,
        prefix_train: str = "train_",
        stream: TextIO | logging.Logger | None = None,
        decimals: int = 4,
        start_finish: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(prefix_train, str):
            raise TypeError(f"{_OWNER}: prefix_train must be a string; received {prefix_train!r}.")
        if stream is not None and not isinstance(stream, logging.Logger) and not hasattr(stream, "write"):
            raise TypeError(
                f"{_OWNER}: stream must be a text stream with write() or a logging.Logger; "
                f"received {type(stream).__name__}: {stream!r}."
            )
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 17:
            raise ValueError(
                f"{_OWNER}: decimals must be an integer in [0, 17]; received decimals={decimals!r}."
            )
        if not isinstance(start_finish, bool):
            raise TypeError(f"{_OWNER}: start_finish must be True or False; received {start_finish!r}.")
        self.prefix_train = prefix_train
        self.stream = stream
        self.decimals = decimals
        self.start_finish = start_finish

    def _emit(self, line: str) -> None:
        if isinstance(self.stream, logging.Logger):
            self.stream.info(line)
            return
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def on_train_begin(self, logs=None):
        """Print ``Start training - <time>`` when ``start_finish`` is set."""
        if self.start_finish:
            self._emit(f"Start training - {datetime.datetime.now()}")

    def on_epoch_end(self, epoch, logs=None):
        """Print the epoch's line."""
        check_log_keys(logs, _OWNER, "on_epoch_end")
        epochs = self.params.get("epochs", "?")
        self._emit(format_epoch_line(epoch, epochs, logs or {}, self.prefix_train, self.decimals))

    def on_train_end(self, logs=None):
        """Print ``Finish training - <time>`` when ``start_finish`` is set."""
        if self.start_finish:
            self._emit(f"Finish training - {datetime.datetime.now()}")
