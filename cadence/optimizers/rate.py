"""The learning rate as Keras sees it: a number, a schedule or a callable, and tf.keras 2's decay.

`RateMixin` is part of `cadence.optimizers.OptimizerMixin`. The group's torch `lr` is the
rate the next step uses; a schedule rewrites it before every step, and tf.keras 2's
`decay` divides it for the duration of one step only.
"""

from __future__ import annotations

from typing import Any

import torch

from cadence.optimizers.groups import location, read, write
from cadence.optimizers.hyperparameter import Hyperparameter, to_scalar
from cadence.optimizers.schedules import LearningRateSchedule

SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    "constructor argument, hence its learning rate is not settable. If you need the learning "
    "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
    "argument."
)
"""Keras's message when a learning rate driven by a schedule is assigned a number."""


class RateMixin:
    """The `learning_rate`, `lr`, `learning_rate_schedule` and `decay` of a torch optimizer."""

    _cadence_rate: Any
    _cadence_decay: float
    _cadence_rate_handle: Any
    _cadence_undecayed: list[Any] | None
    _cadence_iterations: int
    param_groups: list[dict[str, Any]]

    def _update_rate_hook(self) -> None:
        active = self._cadence_rate is not None or self._cadence_decay > 0
        if active and self._cadence_rate_handle is None:
            self._cadence_rate_handle = self.register_step_pre_hook(rate_before_step)
        elif not active and self._cadence_rate_handle is not None:
            self._cadence_rate_handle.remove()
            self._cadence_rate_handle = None

    def _scheduled_rate(self) -> float:
        """Return the rate the schedule (or rate callable) gives for the next step."""
        rate = self._cadence_rate
        if isinstance(rate, LearningRateSchedule):
            return to_scalar(rate(self._cadence_iterations), "learning_rate")
        return to_scalar(rate(), "learning_rate")

    @property
    def learning_rate(self) -> Hyperparameter:
        """The learning rate (torch's `lr`), or the schedule's rate for the next step.

        Assign a number, or a `LearningRateSchedule` (or a callable without arguments)
        to drive the rate from then on. Assigning a number to an optimizer driven by a
        `LearningRateSchedule` raises `TypeError`, as in Keras.
        """
        if self._cadence_rate is None:
            return read(self, "learning_rate")
        return Hyperparameter(self._scheduled_rate(), self, "learning_rate")

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if isinstance(value, LearningRateSchedule) or (
            callable(value) and not isinstance(value, torch.Tensor)
        ):
            location(self, "learning_rate")
            self._cadence_rate = value
            write(self, "learning_rate", self._scheduled_rate())
            self._update_rate_hook()
            return
        if isinstance(self._cadence_rate, LearningRateSchedule):
            raise TypeError(SCHEDULE_NOT_SETTABLE)
        write(self, "learning_rate", value)
        self._cadence_rate = None
        self._update_rate_hook()

    lr = learning_rate

    @property
    def learning_rate_schedule(self) -> LearningRateSchedule | None:
        """The `LearningRateSchedule` driving the learning rate, or `None`."""
        rate = self._cadence_rate
        return rate if isinstance(rate, LearningRateSchedule) else None

    @property
    def decay(self) -> float:
        """tf.keras 2's time-based decay: steps use `learning_rate / (1 + decay * iterations)`."""
        return self._cadence_decay

    @decay.setter
    def decay(self, value: Any) -> None:
        number = 0.0 if value is None else to_scalar(value, "decay")
        if number < 0.0:
            raise ValueError(f"decay cannot be less than 0. Received: decay={value}.")
        self._cadence_decay = number
        self._update_rate_hook()

    def _restore_undecayed(self) -> None:
        """Put back the rates the decay divided for the step that just ran."""
        saved = self._cadence_undecayed
        if saved is None:
            return
        for group, value in zip(self.param_groups, saved, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].copy_(value)
            else:
                group["lr"] = value
        self._cadence_undecayed = None


def check_settable_learning_rate(optimizer: Any) -> None:
    """Raise Keras's `TypeError` if `optimizer`'s learning rate is driven by a schedule.

    Callbacks that assign the learning rate (LearningRateScheduler, ReduceLROnPlateau)
    call it at `on_train_begin`, so they refuse such an optimizer before any batch runs.

    Args:
        optimizer: The model's optimizer (any object).

    Raises:
        TypeError: If the optimizer's learning rate is a `LearningRateSchedule`.
    """
    if isinstance(optimizer, RateMixin) and optimizer.learning_rate_schedule is not None:
        raise TypeError(SCHEDULE_NOT_SETTABLE)


def rate_before_step(optimizer: RateMixin, args: Any, kwargs: Any) -> None:
    """Set the scheduled rate, then tf.keras 2's decay, before the torch update."""
    if optimizer._cadence_rate is not None:
        write(optimizer, "learning_rate", optimizer._scheduled_rate())
    decay = optimizer._cadence_decay
    if decay > 0:
        divisor = 1.0 + decay * optimizer._cadence_iterations
        saved = []
        for group in optimizer.param_groups:
            current = group["lr"]
            if isinstance(current, torch.Tensor):
                saved.append(current.clone())
                current.div_(divisor)
            else:
                saved.append(current)
                group["lr"] = current / divisor
        optimizer._cadence_undecayed = saved
