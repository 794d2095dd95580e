"""LearningRateScheduler: Keras's per-epoch learning-rate schedule from a function."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from cadence.callbacks.callback import Callback
from cadence.callbacks.hyperparameter_scheduler import (
    check_verbose,
    read_hyperparameter,
    require_hyperparameter,
    takes_value,
    to_number,
    write_hyperparameter,
)
from cadence.optimizers import check_settable_learning_rate

_OWNER = "LearningRateScheduler"


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr)``, as Keras.

    At ``on_epoch_begin`` the schedule is called with the epoch index (from 0) and the current
    learning rate as a Python float, or with the epoch alone if it takes one argument (Keras
    tries both); what it returns is written onto every parameter group of ``model.optimizer``.
    At ``on_epoch_end`` the learning rate is added to the logs as ``logs["learning_rate"]``.

    The schedule may return a Python float or int, a numpy number, or a 0-d floating-point
    tensor, so seed 004's ``lr * tf.math.exp(-0.1)`` ports as ``lr * torch.exp(torch.tensor(-0.1))``
    or ``lr * np.exp(-0.1)``. Anything else raises a ``TypeError`` naming the returned type.
    (Keras accepts only floats; cadence also accepts ints and 0-d tensors.)

    The callback holds no state of its own: the learning rate lives in the optimizer, whose state
    ``BackupAndRestore`` saves, and a run resumed in the middle of an epoch keeps that epoch's
    rate (``on_epoch_begin`` is not called again for it).

    Example::

        def schedule(epoch, lr):
            return lr + 0.001 if epoch < 10 else lr * np.exp(-0.1)

        model.fit(x, y, epochs=15, callbacks=[LearningRateScheduler(schedule, verbose=1)])

    Args:
        schedule: A function ``f(epoch, lr) -> new lr`` or ``f(epoch) -> new lr``.
        verbose: 1 prints ``Epoch N: LearningRateScheduler setting learning rate to X.`` every
            epoch (N counts from 1), as Keras does.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(self, schedule: Callable[..., Any], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"{_OWNER}: schedule must be a function f(epoch, lr) or f(epoch); received "
                f"{type(schedule).__name__}: {schedule!r}."
            )
        self.schedule = schedule
        self.verbose = check_verbose(verbose, _OWNER)
        self._takes_lr = takes_value(schedule)

    def on_train_begin(self, logs=None):
        """Check that the optimizer has a settable learning rate, before any batch runs."""
        optimizer = getattr(self.model, "optimizer", None)
        require_hyperparameter(optimizer, "learning_rate", _OWNER)
        check_settable_learning_rate(optimizer)

    def _scheduled(self, epoch: int, lr: float) -> float:
        if self._takes_lr is False:
            return to_number(self.schedule(epoch), _OWNER, f"schedule({epoch})")
        if self._takes_lr:
            return to_number(self.schedule(epoch, lr), _OWNER, f"schedule({epoch}, {lr!r})")
        try:
            result = self.schedule(epoch, lr)
        except TypeError:  # Keras's fallback for one-argument schedules it cannot inspect.
            return to_number(self.schedule(epoch), _OWNER, f"schedule({epoch})")
        return to_number(result, _OWNER, f"schedule({epoch}, {lr!r})")

    def on_epoch_begin(self, epoch, logs=None):
        """Compute this epoch's learning rate and write it into the optimizer."""
        optimizer = self.model.optimizer
        lr = self._scheduled(epoch, read_hyperparameter(optimizer, "learning_rate"))
        write_hyperparameter(optimizer, "learning_rate", lr)
        if self.verbose > 0:
            print(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.",
                file=sys.stdout,
            )

    def on_epoch_end(self, epoch, logs=None):
        """Add ``learning_rate`` (a float) to the epoch's logs."""
        if logs is not None:
            logs["learning_rate"] = read_hyperparameter(self.model.optimizer, "learning_rate")
