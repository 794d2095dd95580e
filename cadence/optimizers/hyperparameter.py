"""A float that remembers which optimizer hyperparameter it was read from."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch


def to_scalar(value: Any, what: str) -> float:
    """Turn a number-like value into a Python float.

    Args:
        value: A Python int or float, a numpy number or 0-d array, or a 0-d tensor.
        what: The name of the setting being written, used in the error message.

    Returns:
        The value as a Python float.

    Raises:
        TypeError: If `value` is not a real number (booleans and strings included).

    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{what} must be a real number; received the boolean {value!r}.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dim() != 0:
            raise TypeError(
                f"{what} must be a number or a 0-d tensor; received a tensor of "
                f"shape {tuple(value.shape)}."
            )
        return float(value.item())
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise TypeError(
                f"{what} must be a number or a 0-d array; received an array of "
                f"shape {value.shape}."
            )
        value = value[()]
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{what} must be a real number; received {type(value).__name__}: {value!r}.")


class Hyperparameter(float):
    """An optimizer hyperparameter as read at one moment, still tied to its optimizer.

    It is a plain `float` for arithmetic, formatting, comparison, JSON and pickling
    (a pickled or deep-copied `Hyperparameter` becomes a plain float). It also remembers
    the optimizer and the Keras name it was read from, so that
    `cadence.backend.set_value(model.optimizer.lr, 0.01)` writes through to every
    parameter group and `cadence.backend.get_value(model.optimizer.lr)` reads the live
    value. The float value itself is a snapshot: it does not change when the optimizer's
    value does; use `.value` (or `get_value`) for the current one.

    Attributes:
        optimizer: The optimizer it was read from.
        name: The Keras name of the hyperparameter, such as `"learning_rate"`.

    """

    __slots__ = ("name", "optimizer")

    optimizer: Any
    name: str

    def __new__(cls, value: float, optimizer: Any, name: str) -> Hyperparameter:
        """Create the snapshot of `optimizer`'s hyperparameter `name`, equal to `value`."""
        self = super().__new__(cls, value)
        self.optimizer = optimizer
        self.name = name
        return self

    @property
    def value(self) -> float:
        """The hyperparameter's current value in its optimizer."""
        return float(getattr(self.optimizer, self.name))

    def numpy(self) -> np.float64:
        """Return the current value as a numpy scalar, as a Keras variable's `numpy()` does."""
        return np.float64(self.value)

    def assign(self, value: Any) -> None:
        """Write `value` onto every parameter group, as a Keras variable's `assign` does.

        Args:
            value: The new value: a number, a numpy number or a 0-d tensor.

        """
        setattr(self.optimizer, self.name, value)

    def __reduce__(self) -> tuple[type[float], tuple[float]]:
        return (float, (float(self),))

    def __copy__(self) -> float:
        return float(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> float:
        return float(self)
