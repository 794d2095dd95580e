"""Keras 3's exponential moving average of the weights (`use_ema`), on the device.

After every optimizer step each parameter's average becomes
`momentum * average + (1 - momentum) * parameter`, with `momentum = 0` on the very
first step (`iterations == 0`), so the average starts at the weights. Every
`ema_overwrite_frequency` steps the weights are overwritten with their averages; at the
end of `fit` (and on `finalize_variable_values()`) too. Nothing is read back to the host.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

EMA_KEY = "ema_averages"
"""The top-level key under which `state_dict()` saves the averages."""


def check_settings(
    use_ema: Any, ema_momentum: Any, ema_overwrite_frequency: Any
) -> tuple[bool, float, int | None]:
    """Validate the EMA arguments as Keras does.

    Args:
        use_ema: Whether to keep the moving average.
        ema_momentum: The momentum, in [0, 1].
        ema_overwrite_frequency: `None`, or an integer >= 1.

    Returns:
        `(use_ema, ema_momentum, ema_overwrite_frequency)`, normalised.

    Raises:
        ValueError: For a momentum outside [0, 1] or a frequency that is not an integer
            >= 1, with Keras's messages.
    """
    use_ema = bool(use_ema)
    if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real):
        raise ValueError(
            f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}"
        )
    if ema_momentum > 1 or ema_momentum < 0:
        raise ValueError(
            f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}"
        )
    if ema_overwrite_frequency is not None and (
        isinstance(ema_overwrite_frequency, bool)
        or not isinstance(ema_overwrite_frequency, numbers.Integral)
        or ema_overwrite_frequency < 1
    ):
        raise ValueError(
            "`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
            f"ema_overwrite_frequency={ema_overwrite_frequency}"
        )
    frequency = None if ema_overwrite_frequency is None else int(ema_overwrite_frequency)
    return use_ema, float(ema_momentum), frequency


def new_averages(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Return one zero tensor per parameter, like it (Keras initialises averages at 0)."""
    return [torch.zeros_like(param, memory_format=torch.preserve_format) for param in params]


@torch.no_grad()
def update_(
    averages: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    momentum: float,
    first_step: bool,
) -> None:
    """Move each average towards its parameter, in place.

    Args:
        averages: The averages, one per parameter.
        params: The parameters after the optimizer step.
        momentum: `ema_momentum`.
        first_step: Whether this is the first step (`iterations == 0`); the average then
            becomes the parameter, as Keras's momentum is 0 on that step.
    """
    momentum = 0.0 if first_step else momentum
    for average, param in zip(averages, params, strict=True):
        average.mul_(momentum).add_(param.detach(), alpha=1.0 - momentum)


@torch.no_grad()
def overwrite_(params: Sequence[torch.Tensor], averages: Sequence[torch.Tensor]) -> None:
    """Copy every average into its parameter, in place.

    Raises:
        ValueError: If the counts differ (Keras's message).
    """
    if len(params) != len(averages):
        raise ValueError(
            f"The length of model variables ({len(params)}) to override does not match the "
            f"length of model variables stored in the optimizer ({len(averages)}). Please "
            "check if the optimizer was called on your model."
        )
    for param, average in zip(params, averages, strict=True):
        param.copy_(average)


class EmaMixin:
    """Keras 3's `use_ema`, `ema_momentum`, `ema_overwrite_frequency` on a torch optimizer."""

    _cadence_ema: tuple[bool, float, int | None]
    _cadence_averages: list[torch.Tensor] | None
    _cadence_iterations: int
    param_groups: list[dict[str, Any]]

    @property
    def use_ema(self) -> bool:
        """Whether a moving average of the weights is kept (Keras 3's `use_ema`)."""
        return self._cadence_ema[0]

    @use_ema.setter
    def use_ema(self, value: Any) -> None:
        self._cadence_ema = check_settings(value, *self._cadence_ema[1:])

    @property
    def ema_momentum(self) -> float:
        """The moving average's momentum, in [0, 1]."""
        return self._cadence_ema[1]

    @ema_momentum.setter
    def ema_momentum(self, value: Any) -> None:
        use, _, frequency = self._cadence_ema
        self._cadence_ema = check_settings(use, value, frequency)

    @property
    def ema_overwrite_frequency(self) -> int | None:
        """Every this many steps the weights are overwritten by their averages (None: never)."""
        return self._cadence_ema[2]

    @ema_overwrite_frequency.setter
    def ema_overwrite_frequency(self, value: Any) -> None:
        use, momentum, _ = self._cadence_ema
        self._cadence_ema = check_settings(use, momentum, value)

    def _managed_params(self) -> list[torch.Tensor]:
        return [param for group in self.param_groups for param in group["params"]]

    def _update_averages(self) -> None:
        params = self._managed_params()
        if self._cadence_averages is None:
            self._cadence_averages = new_averages(params)
        update_(
            self._cadence_averages, params, self._cadence_ema[1], self._cadence_iterations == 0
        )
        frequency = self._cadence_ema[2]
        if frequency and (self._cadence_iterations + 1) % frequency == 0:
            overwrite_(params, self._cadence_averages)

    def finalize_variable_values(self, var_list: Sequence[torch.Tensor] | None = None) -> None:
        """Copy the moving averages into the weights when `use_ema` is on, as Keras does.

        `fit` calls it after the last epoch. Without `use_ema`, or before any step, it
        does nothing.

        Args:
            var_list: The parameters to overwrite, in the optimizer's order; defaults to
                every parameter of every group.

        Raises:
            ValueError: If `var_list` has another length than the averages.
        """
        if not self._cadence_ema[0] or self._cadence_averages is None:
            return
        params = self._managed_params() if var_list is None else list(var_list)
        overwrite_(params, self._cadence_averages)


def check_loaded(
    loaded: Any, params: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Return saved averages as tensors like `params`, after checking count and shapes.

    Args:
        loaded: What `state_dict()` saved under `EMA_KEY`: a list of tensors.
        params: The optimizer's parameters, in order.

    Returns:
        The averages, on each parameter's device and in its dtype.

    Raises:
        ValueError: If the count or a shape differs.
    """
    loaded = list(loaded)
    if len(loaded) != len(params):
        raise ValueError(
            f"The optimizer state holds {len(loaded)} EMA averages for {len(params)} "
            "parameters; expected one average per parameter."
        )
    result = []
    for index, (average, param) in enumerate(zip(loaded, params, strict=True)):
        average = torch.as_tensor(average)
        if average.shape != param.shape:
            raise ValueError(
                f"The optimizer state's EMA average {index} has shape {tuple(average.shape)}; "
                f"expected the parameter's shape {tuple(param.shape)}."
            )
        result.append(average.to(device=param.device, dtype=param.dtype).clone())
    return result
