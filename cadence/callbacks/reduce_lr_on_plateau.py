"""ReduceLROnPlateau: lower the learning rate when a monitored value stops improving."""

from __future__ import annotations

from typing import Any

from cadence.callbacks.monitor import MonitorCallback
from cadence.optimizers import check_settable_learning_rate


def get_learning_rate(optimizer: Any) -> float:
    """Return an optimizer's learning rate as a float (Keras attribute or torch's first group)."""
    value = getattr(optimizer, "learning_rate", None)
    if value is None:
        value = optimizer.param_groups[0]["lr"]
    return float(value)


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Write ``value`` as the learning rate of every parameter group."""
    if hasattr(type(optimizer), "learning_rate"):
        optimizer.learning_rate = value
        return
    for group in optimizer.param_groups:
        group["lr"] = value


class ReduceLROnPlateau(MonitorCallback):
    """Reduce the learning rate when a monitored value has stopped improving (Keras 3's rules).

    At each epoch's end, ``learning_rate`` (the optimizer's current value) is added to the
    logs, so ``History`` and ``CSVLogger`` record it. When the monitored value has not
    improved by more than ``min_delta`` for ``patience`` epochs, the learning rate becomes
    ``max(lr * factor, min_lr)`` (if it is still above ``min_lr``), and for the next
    ``cooldown`` epochs the wait counter stays at zero. ``best`` is None until the first
    monitored value, which always counts as an improvement (Keras 3's reset).

    Args:
        monitor: The log key to watch. Defaults to ``"val_loss"``.
        factor: The factor the learning rate is multiplied by, ``0 <= factor < 1``.
        patience: Epochs without improvement after which the learning rate is reduced.
        verbose: 1 prints a line at each reduction; 0 is silent.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :class:`MonitorCallback`).
        min_delta: The smallest change that counts as an improvement. Defaults to 1e-4.
        cooldown: Epochs to wait after a reduction before counting again.
        min_lr: The lower bound of the learning rate.

    Raises:
        ValueError: If ``factor >= 1`` (or negative), or ``patience``, ``cooldown`` or
            ``min_lr`` is negative.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 <= factor < 1:
            raise ValueError(
                "ReduceLROnPlateau reduces the learning rate, so factor must be >= 0 and < 1; "
                f"received: factor={factor!r}."
            )
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"ReduceLROnPlateau {name} must be an integer >= 0; received: {name}={value!r}."
                )
        if isinstance(min_lr, bool) or not isinstance(min_lr, int | float) or not min_lr >= 0:
            raise ValueError(f"ReduceLROnPlateau min_lr must be a number >= 0; received: min_lr={min_lr!r}.")
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0

    def _reset(self) -> None:
        """Forget the run: no best value yet (as Keras, ``None``), no wait, no cooldown."""
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Refuse an optimizer driven by a learning-rate schedule (Keras's TypeError), then start."""
        check_settable_learning_rate(getattr(self.model, "optimizer", None))
        super().on_train_begin(logs)

    def _missing_message(self, keys: list[str]) -> str:
        """Return Keras's warning for a missing monitored key (given once per run here)."""
        return (
            f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
            f"available. Available metrics are: {','.join(keys)}."
        )

    def in_cooldown(self) -> bool:
        """Return whether a reduction happened less than ``cooldown`` epochs ago."""
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the learning rate in the logs and reduce it after ``patience`` flat epochs."""
        if logs is None:
            logs = {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = get_learning_rate(optimizer)
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old_lr = get_learning_rate(optimizer)
        if old_lr > self.min_lr:
            new_lr = max(old_lr * self.factor, self.min_lr)
            set_learning_rate(optimizer, new_lr)
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """Return the best value and the wait and cooldown counters."""
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state; the next ``on_train_begin`` keeps it."""
        super().load_state_dict(state)
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
