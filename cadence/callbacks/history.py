"""History: the record of every epoch's logs that ``fit`` returns."""

from __future__ import annotations

from typing import Any

from cadence.callbacks.callback import Callback
from cadence.plotting import plot_curves


class History(Callback):
    """Record each epoch's logs; ``fit`` returns this object and sets ``model.history``.

    Attributes:
        history: ``{key: [value per epoch]}``, values as Python floats.
        epoch: The epoch indices (from 0) that were recorded.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []
        self._restored = False

    def on_train_begin(self, logs=None):
        """Start a fresh record, unless a backup was just restored into this one."""
        if not self._restored:
            self.epoch = []
            self.history = {}
        self._restored = False

    def on_epoch_end(self, epoch, logs=None):
        """Append this epoch's values, key by key, as Keras does.

        With ``validation_freq > 1`` the ``val_`` lists are shorter than ``epoch``, as in Keras.
        """
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def state_dict(self) -> dict[str, Any]:
        """Return the recorded epochs and values."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a record; the next ``on_train_begin`` keeps it."""
        self.epoch = list(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._restored = True

    def plot(self, keys: list[str] | None = None, path: Any = None) -> Any:
        """Draw the recorded curves with matplotlib: one panel per metric, training and validation.

        Needs the ``plot`` extra (``pip install 'cadence[plot]'``). See
        :func:`cadence.plotting.plot_curves`.

        Args:
            keys: The metrics to draw (names without ``val_``); all recorded ones by default.
            path: Where to save the figure (PNG, SVG or PDF by suffix); ``None`` saves nothing.

        Returns:
            The ``matplotlib.figure.Figure``.
        """
        return plot_curves(self, path, keys=keys)
