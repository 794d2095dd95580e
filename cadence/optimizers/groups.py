"""Where each Keras hyperparameter lives in a torch optimizer's parameter groups.

Hyperparameters map onto the torch parameter groups as follows:

==================  ===============================================================
Keras attribute     torch parameter-group entry
==================  ===============================================================
``learning_rate``   ``lr`` (alias ``lr``)
``momentum``        ``momentum`` (SGD, RMSprop); ``betas[0]`` (Adam family)
``beta_1``          ``betas[0]``
``beta_2``          ``betas[1]``
``rho``             ``alpha`` (RMSprop), ``rho`` (Adadelta)
``epsilon``         ``eps``
``weight_decay``    ``weight_decay``
==================  ===============================================================

Reading returns a `Hyperparameter` (a float) with the value of the first group;
assigning writes the value onto every group. An attribute the optimizer does not have
raises `AttributeError`, so `hasattr(opt, "momentum")` is False for Adagrad.
"""

from __future__ import annotations

from typing import Any

import torch

from cadence.optimizers.hyperparameter import Hyperparameter, to_scalar

HYPERPARAMETERS = (
    "learning_rate", "momentum", "beta_1", "beta_2", "rho", "epsilon", "weight_decay"
)


def updating_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Return the torch optimizer whose update rule runs: a wrapper's `inner_optimizer`.

    For a `cadence.optimizers.TorchOptimizerWrapper` it is the user's optimizer it
    wraps; for any other optimizer, the optimizer itself.
    """
    return getattr(optimizer, "inner_optimizer", optimizer)


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
    if (
        name == "rho"
        and isinstance(updating_optimizer(optimizer), torch.optim.RMSprop)
        and "alpha" in group
    ):
        return "alpha", None
    return None


def location(optimizer: torch.optim.Optimizer, name: str) -> tuple[str, int | None]:
    """Find the parameter-group entry behind a Keras hyperparameter name, or raise."""
    location = find(optimizer, name)
    if location is None:
        present = [other for other in HYPERPARAMETERS if find(optimizer, other) is not None]
        raise AttributeError(
            f"{type(updating_optimizer(optimizer)).__name__} optimizer has no hyperparameter "
            f"{name!r}; "
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


def hyperparameter_property(name: str, doc: str) -> property:
    """Return the property that reads and writes the Keras hyperparameter `name`."""

    def getter(self: torch.optim.Optimizer) -> Hyperparameter:
        return read(self, name)

    def setter(self: torch.optim.Optimizer, value: Any) -> None:
        write(self, name, value)

    return property(getter, setter, doc=doc)
