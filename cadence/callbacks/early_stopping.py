"""EarlyStopping: stop training when a monitored value has stopped improving."""

from __future__ import annotations

from typing import Any

import torch

from cadence.callbacks.monitor import MonitorCallback


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored value has stopped improving, with Keras 3's rules.

    At the end of every epoch from ``start_from_epoch`` on, the monitored value is compared
    with the best one so far (the first monitored value is always the best so far). ``wait``
    counts the monitored epochs since the last improvement; training stops (the current
    epoch finishes, then ``on_train_end`` runs) once ``wait >= patience`` on an epoch that did
    not improve, never at epoch 0. With a ``baseline``, an improvement resets ``wait`` only if
    it also beats the baseline, so a run that never beats the baseline stops after
    ``patience`` monitored epochs.

    With ``restore_best_weights=True`` the model's ``state_dict`` tensors of the best epoch are
    kept (a copy on the model's device, no host transfer) and loaded back in ``on_train_end``,
    whether training stopped early or ran to the last epoch.

    Args:
        monitor: The log key to watch. Defaults to ``"val_loss"``.
        min_delta: The smallest change that counts as an improvement. Defaults to 0.
        patience: Epochs without improvement after which training stops. Defaults to 0.
        verbose: 1 prints ``Epoch N: early stopping`` and the restoring message; 0 is silent.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :class:`MonitorCallback`).
        baseline: A value the monitored value must beat for ``wait`` to restart, or None.
        restore_best_weights: Load the best epoch's weights at the end of training.
        start_from_epoch: Epochs (from 0) to let pass before monitoring starts.

    Attributes:
        stopped_epoch: The epoch (from 0) training stopped at; 0 if it did not stop early.
        best_epoch: The epoch (from 0) of the best monitored value.
        best: The best monitored value, or None before the first monitored epoch.
        wait: Monitored epochs since the last improvement.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta, baseline)
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"EarlyStopping {name} must be an integer >= 0; received: {name}={value!r}."
                )
        self.patience = patience
        self.verbose = verbose
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def _missing_message(self, keys: list[str]) -> str:
        """Return Keras's warning for a missing monitored key (given once per run here)."""
        return (
            f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
            f"Available metrics are: {','.join(keys)}"
        )

    def _snapshot(self) -> dict[str, torch.Tensor]:
        """Copy the model's ``state_dict`` tensors on their device (no host transfer)."""
        return {
            key: value.detach().clone()
            for key, value in self.model.state_dict().items()
            if isinstance(value, torch.Tensor)
        }

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Compare the monitored value with the best so far; stop once patience runs out."""
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self._snapshot()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._snapshot()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        """Report the stop and load the best epoch's weights back if asked to."""
        super().on_train_end(logs)
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.load_state_dict(self.best_weights, strict=False)

    def state_dict(self) -> dict[str, Any]:
        """Return the counters, the best value and epoch, and the best weights (or None)."""
        return {
            "best": self.best,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            "best_weights": None if self.best_weights is None else dict(self.best_weights),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state; the next ``on_train_begin`` keeps it."""
        super().load_state_dict(state)
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_epoch = int(state["best_epoch"])
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else dict(weights)
