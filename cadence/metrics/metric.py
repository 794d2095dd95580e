"""The `Metric` base class: Keras 3's interface, with state kept on the device."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import snake_case


def _state_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps sums and counts exact (integers up to 2**53); MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _as_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(
            f"Invalid metric dtype: {dtype!r}. Expected a floating torch dtype or its name, "
            "such as 'float32'."
        )
    return resolved


class Metric:
    """Base class of cadence metrics, with Keras 3's interface.

    A metric accumulates state tensors in `update_state()` and turns them into a 0-d
    tensor in `result()`. Neither method synchronises the host with the device: no
    `.item()`, no `float()`, no Python branch on a tensor's value. The state is
    created lazily, on the device of the first predictions seen, and follows the
    inputs if they later arrive on another device (or moves with `to(device)`).
    State is accumulated in float64 (float32 on MPS) so that counts stay exact;
    `result()` is returned in the metric's `dtype` (float32 by default).

    Subclasses declare their states with `add_state(name)` in `__init__`, read them
    with `self.states(device)` in `update_state`, and implement `result()`.

    Args:
        name: Name of the metric, used as the log key; defaults to the Keras name of
            the class.
        dtype: Floating dtype of `result()`; defaults to float32.
    """

    default_name: str | None = None

    def __init__(self, name: str | None = None, dtype: Any = None):
        self.name = name or self.default_name or snake_case(type(self).__name__)
        self.dtype = _as_dtype(dtype)
        self._state_names: list[str] = []
        self._state_dtypes: dict[str, torch.dtype] = {}  # The states not in float64.
        self._state_shapes: dict[str, tuple[int, ...]] = {}  # The states that are not 0-d.
        self._states: dict[str, Tensor] = {}
        self._device = torch.device("cpu")

    def add_state(
        self, name: str, dtype: torch.dtype | None = None, shape: tuple[int, ...] = ()
    ) -> None:
        """Declares a state tensor, created as zeros on first use.

        Args:
            name: Name of the state, the key used by `state_dict()`.
            dtype: The state's dtype; `None` (the default) for the accumulation dtype,
                float64 (float32 on MPS).
            shape: The state's shape; 0-d by default (a vector for counts per threshold
                or per class).
        """
        self._state_names.append(name)
        if dtype is not None:
            self._state_dtypes[name] = dtype
        if shape:
            self._state_shapes[name] = tuple(shape)

    def states(self, device: torch.device | None = None) -> dict[str, Tensor]:
        """Returns the state tensors, creating or moving them to `device` if needed.

        Args:
            device: The device the state should live on; `None` keeps the current one.

        Returns:
            A dict from state name to tensor (0-d unless declared with a shape), in order.
        """
        if device is not None and device != self._device:
            self.to(device)
        if not self._states:
            dtype = _state_dtype(self._device)
            self._states = {
                name: torch.zeros(
                    self._state_shapes.get(name, ()),
                    dtype=self._state_dtypes.get(name, dtype),
                    device=self._device,
                )
                for name in self._state_names
            }
        return self._states

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Accumulates statistics from one batch.

        Args:
            *args: Subclass-specific, usually `y_true, y_pred`.
            **kwargs: Subclass-specific, usually `sample_weight`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement `update_state`.")

    def result(self) -> Tensor:
        """Computes the metric value from the state.

        Returns:
            A 0-d tensor on the state's device.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement `result`.")

    def reset_state(self) -> None:
        """Zeroes the state in place (no allocation, no host sync)."""
        for tensor in self._states.values():
            tensor.zero_()

    def to(self, device: torch.device | str) -> "Metric":
        """Moves the state to `device`.

        Args:
            device: The target device.

        Returns:
            This metric.
        """
        self._device = torch.device(device)
        if self._device.type == "cuda" and self._device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        dtype = _state_dtype(self._device)
        self._states = {
            name: tensor.to(self._device, dtype=self._state_dtypes.get(name, dtype))
            for name, tensor in self._states.items()
        }
        return self

    @property
    def device(self) -> torch.device:
        """The device the state lives on (or will be created on)."""
        return self._device

    def state_tensors(self) -> list[Tensor]:
        """Returns the state tensors, which a distributed all-reduce would sum.

        Every built-in state is a sum over samples, so summing each tensor across
        processes and calling `result()` gives the metric over all their data.

        Returns:
            The state tensors in declaration order (created if needed). They are the
            metric's own tensors, so an in-place all-reduce updates the metric.
        """
        return list(self.states().values())

    def state_dict(self) -> dict[str, Tensor]:
        """Returns a copy of the state, for checkpoints.

        Returns:
            A dict from state name to a detached clone of the tensor.
        """
        return {name: tensor.detach().clone() for name, tensor in self.states().items()}

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the state saved by `state_dict()`, on this metric's device.

        Args:
            state_dict: A dict from state name to tensor.

        Raises:
            ValueError: If the keys are not this metric's state names.
        """
        if sorted(state_dict) != sorted(self._state_names):
            raise ValueError(
                f"Cannot load state into metric {self.name!r}: expected keys "
                f"{sorted(self._state_names)}, received {sorted(state_dict)}."
            )
        for name, tensor in self.states().items():
            tensor.copy_(torch.as_tensor(state_dict[name]))

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """Updates the state with one batch and returns the current result.

        Args:
            *args: Passed to `update_state`.
            **kwargs: Passed to `update_state`.

        Returns:
            `result()` after the update.
        """
        self.update_state(*args, **kwargs)
        return self.result()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"
