"""Turn what a user passes to `compile(optimizer=...)` into a torch optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cadence.optimizers import specs
from cadence.optimizers.mixin import OptimizerMixin, mixed_class
from cadence.optimizers.wrapper import TorchOptimizerWrapper

NAMES: dict[str, type[specs.Optimizer]] = {
    "sgd": specs.SGD,
    "rmsprop": specs.RMSprop,
    "adam": specs.Adam,
    "adamw": specs.AdamW,
    "adagrad": specs.Adagrad,
    "adamax": specs.Adamax,
    "nadam": specs.Nadam,
    "adadelta": specs.Adadelta,
}

_EXPECTED = (
    "expected one of the names "
    + ", ".join(repr(name) for name in NAMES)
    + "; a cadence optimizer such as cadence.optimizers.Adam(learning_rate=0.001); "
    "a torch.optim.Optimizer instance; or a torch.optim.Optimizer subclass."
)


def get(identifier: Any, params: Iterable[Any] | None = None) -> torch.optim.Optimizer:
    """Return a torch optimizer with Keras-style extras for `identifier`.

    Args:
        identifier: One of:

            * a Keras name (case-insensitive): ``"sgd"``, ``"rmsprop"``, ``"adam"``,
              ``"adamw"``, ``"adagrad"``, ``"adamax"``, ``"nadam"``, ``"adadelta"``,
              built with Keras 3's defaults;
            * a `cadence.optimizers.Optimizer` spec (or spec class), built over `params`;
            * a cadence optimizer (`model.optimizer` of another compile), returned as it
              is;
            * a `torch.optim.Optimizer` instance, left unchanged and wrapped in a new
              `TorchOptimizerWrapper` (its own parameters are used; `params` is
              ignored);
            * a `torch.optim.Optimizer` subclass, instantiated over `params` with its
              defaults.
        params: The parameters or parameter groups to optimise. Required unless
            `identifier` is an optimizer instance.

    Returns:
        An `OptimizerMixin`: an instance of the torch optimizer class for a name, a spec
        or a class; a `TorchOptimizerWrapper` for a torch optimizer instance.

    Raises:
        ValueError: If `identifier` is an unknown name, or `params` is missing.
        TypeError: If `identifier` is of an unsupported type.

    """
    if isinstance(identifier, OptimizerMixin):
        return identifier
    if isinstance(identifier, torch.optim.Optimizer):
        return TorchOptimizerWrapper(identifier)
    if isinstance(identifier, str):
        spec_class = NAMES.get(identifier.lower())
        if spec_class is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; {_EXPECTED}")
        return spec_class().build(_needed(params, identifier))
    if isinstance(identifier, specs.Optimizer):
        return identifier.build(_needed(params, identifier))
    if isinstance(identifier, type) and issubclass(identifier, specs.Optimizer):
        return identifier().build(_needed(params, identifier))
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        optimizer = mixed_class(identifier)(_needed(params, identifier))
        optimizer._cadence_setup()
        return optimizer
    raise TypeError(
        f"Could not interpret optimizer identifier of type {type(identifier).__name__}: "
        f"{identifier!r}; {_EXPECTED}"
    )


def _needed(params: Iterable[Any] | None, identifier: Any) -> Iterable[Any]:
    if params is None:
        raise ValueError(
            f"Building the optimizer {identifier!r} needs the parameters to optimise; "
            "received params=None."
        )
    return params
