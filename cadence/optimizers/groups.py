"""Where each Keras hyperparameter lives in a torch optimizer's parameter groups.

See `cadence.optimizers.mixin` for the table of names.
"""

from __future__ import annotations

from typing import Any

import torch

from cadence.optimizers.hyperparameter import Hyperparameter, to_scalar

HYPERPARAMETERS = (
    "learning_rate", "momentum", "beta_1", "beta_2", "rho", "epsilon", "weight_decay"
)


def find(optimizer: torch.optim.Optimizer, name: str) -> tuple[str, int | None] | None:
    """Find the parameter-group entry behind a Keras hyperparameter name, or None."""
    group = optimizer.param_groups[0] if optimizer.param_groups else optimizer.defaults
    if name == "learning_rate" and "lr" in group:
        return "lr", None
    if name in ("momentum", "weight_decay") and name in group:
        return name, None
    if name in ("momentum", "beta_1") and "betas" in group:
        return "betas", 0
    if name == "beta_2" and "betas" in group:
        return "betas", 1
    if name == "epsilon" and "eps" in group:
        return "eps", None
    if name == "rho" and "rho" in group:
        return "rho", None
    if name == "rho" and isinstance(optimizer, torch.optim.RMSprop) and "alpha" in group:
        return "alpha", None
    return None


def location(optimizer: torch.optim.Optimizer, name: str) -> tuple[str, int | None]:
    """Find the parameter-group entry behind a Keras hyperparameter name, or raise."""
    location = find(optimizer, name)
    if location is None:
        present = [other for other in HYPERPARAMETERS if find(optimizer, other) is not None]
        raise AttributeError(
            f"{type(optimizer).__name__} optimizer has no hyperparameter {name!r}; "
            f"it has: {', '.join(present)}."
        )
    return location


def read(optimizer: torch.optim.Optimizer, name: str) -> Hyperparameter:
    """Return the first group's value of a Keras hyperparameter, tied to the optimizer."""
    key, index = location(optimizer, name)
    group = optimizer.param_groups[0] if optimizer.param_groups else optimizer.defaults
    value = group[key] if index is None else group[key][index]
    return Hyperparameter(to_scalar(value, name), optimizer, name)


def write(optimizer: torch.optim.Optimizer, name: str, value: Any) -> None:
    """Write a Keras hyperparameter onto every parameter group (tensors in place)."""
    key, index = location(optimizer, name)
    number = to_scalar(value, name)
    for group in optimizer.param_groups:
        current = group[key] if index is None else group[key][index]
        if isinstance(current, torch.Tensor):
            current.fill_(number)
            continue
        if index is None:
            group[key] = number
        else:
            entries = list(group[key])
            entries[index] = number
            group[key] = tuple(entries)
