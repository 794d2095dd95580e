"""TerminateOnNaN: stop training as soon as the loss becomes NaN or infinite."""

from __future__ import annotations

import math
from typing import Any

import torch

from cadence.callbacks.callback import Callback


class TerminateOnNaN(Callback):
    """Stop training when a training batch's loss is NaN or infinite, as Keras does.

    The check reads the running loss of every training batch: one small device-to-host read
    per batch (only the finiteness flag crosses), the price of deciding at once. The running
    average of an epoch turns NaN at the first NaN batch, so that batch is the one reported.

    Args:
        raise_error: False (the default) prints ``Batch N: Invalid loss, terminating
            training`` and sets ``model.stop_training``, so the epoch ends and ``on_epoch_end``
            and ``on_train_end`` run as usual. True raises Keras's ``RuntimeError`` at once
            instead (``NaN or Inf loss encountered at batch N. Loss value: nan. Terminating
            training immediately.``),
            which skips them (useful to keep a backup of the last good state untouched).
    """

    accepts_lazy_logs = True

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        """Check the batch's loss; stop or raise when it is not finite."""
        if not logs:
            return
        loss = logs.get("loss")
        if loss is None or _is_finite(loss):
            return
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value: {_show(loss)}. "
                "Terminating training immediately."
            )
        print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True


def _is_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return str(float(value.detach().reshape(()).cpu()))
    return str(value)
