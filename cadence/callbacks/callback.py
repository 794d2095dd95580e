"""The `Callback` base class: every hook of Keras 3, with Keras's signatures."""

from __future__ import annotations

from typing import Any

from cadence.overriding import redefined_below

HOOKS: tuple[str, ...] = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)

# Legacy Keras aliases: overriding one of these counts as overriding the hook it stands for.
LEGACY_ALIASES: dict[str, str] = {
    "on_train_batch_begin": "on_batch_begin",
    "on_train_batch_end": "on_batch_end",
}


class Callback:
    """Base class for callbacks: override the hooks you need.

    A callback sees the model it is attached to as ``self.model`` and the run's parameters as
    ``self.params`` (``{"epochs", "steps", "verbose"}``), exactly as in Keras. The ``logs`` a
    hook receives is a plain ``dict`` of Python floats: begin hooks get ``{}``; batch-end hooks
    get running averages since the epoch (or evaluation) began; ``on_epoch_end`` gets the
    epoch's training values plus ``val_``-prefixed validation values; ``on_predict_batch_end``
    gets ``{"outputs": tensor}``.

    Epochs and batches count from 0. ``on_batch_begin`` / ``on_batch_end`` are the legacy
    names for ``on_train_batch_begin`` / ``on_train_batch_end``: override either.

    Stateful callbacks implement :meth:`state_dict` and :meth:`load_state_dict` so that
    :class:`~cadence.callbacks.BackupAndRestore` can resume them exactly; ``state_key``
    names the callback's entry in a backup (the class name, unless two callbacks share it).
    """

    #: cadence's own callbacks that can read lazy (device-side) batch logs set this to True.
    accepts_lazy_logs: bool = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self.validation_data: Any = None

    def set_model(self, model: Any) -> None:
        """Attach the model this callback acts on."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Set the run's parameters (``epochs``, ``steps``, ``verbose``)."""
        self.params = params

    @property
    def state_key(self) -> str:
        """The name of this callback's entry in a backup's callback states."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        """Return this callback's resumable state (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""

    def wants_hook(self, hook: str) -> bool:
        """Return whether this callback needs ``hook`` called, given its settings.

        Only hooks the callback overrides are ever called; this lets a callback that overrides
        a batch hook for some settings (``save_freq=100``) say that it ignores it under others
        (``save_freq="epoch"``), so that a loop need not call it on every batch. The answer is
        read when the callback joins a :class:`~cadence.callbacks.CallbackList`.

        Args:
            hook: A hook name, such as ``"on_train_batch_end"``.
        """
        return True

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Legacy alias of :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Legacy alias of :meth:`on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of an epoch (training only)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of an epoch with training and ``val_`` logs."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of a training batch."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a training batch with running-average logs."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of an evaluation batch."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of an evaluation batch with running-average logs."""

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of a prediction batch."""

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a prediction batch with ``{"outputs": ...}``."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``fit``."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``fit`` with the last epoch's logs."""

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``evaluate`` (and of validation inside ``fit``)."""

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``evaluate`` with the evaluation's logs."""

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``predict``."""


def overrides(callback: Callback, hook: str) -> bool:
    """Return whether ``callback`` implements ``hook`` (or its legacy alias) itself."""
    names = [hook]
    if hook in LEGACY_ALIASES:
        names.append(LEGACY_ALIASES[hook])
    for name in names:
        method = getattr(callback, name, None)
        if method is None:
            continue
        func = getattr(method, "__func__", method)
        if func is not getattr(Callback, name):
            return True
    return False


def overridden_below(callback: Callback, owner: type, hook: str) -> bool:
    """Return whether ``callback`` replaces ``owner``'s ``hook`` (or its legacy alias).

    True when a subclass of ``owner`` or the instance itself defines the hook: a built-in
    callback's :meth:`Callback.wants_hook` answers for its own hooks only.
    """
    names = [hook] + ([LEGACY_ALIASES[hook]] if hook in LEGACY_ALIASES else [])
    return redefined_below(callback, owner, names)
