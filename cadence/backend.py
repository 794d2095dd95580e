"""Keras-backend helpers for callbacks written against `keras.backend` (`K`).

Keras 2 callbacks read and write optimizer hyperparameters through
`K.get_value(model.optimizer.lr)` and `K.set_value(model.optimizer.lr, x)`. With
cadence, `model.optimizer.lr` is a `cadence.optimizers.Hyperparameter` (a float that
remembers its optimizer), so these work unchanged after
`from cadence import backend as K`.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import torch

from cadence.optimizers.hyperparameter import Hyperparameter

_EPSILON = 1e-7


def get_value(x: Any) -> Any:
    """Return the current value of `x` as a Python number or a numpy array.

    Args:
        x: A hyperparameter read from an optimizer (its live value is returned, which
            may have changed since it was read), a tensor (a 0-d tensor gives a Python
            number, others a numpy array), or a Python or numpy number or array (returned
            as it is).

    Returns:
        The value.

    Raises:
        TypeError: If `x` is none of these.

    """
    if isinstance(x, Hyperparameter):
        return x.value
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.item() if x.dim() == 0 else x.cpu().numpy()
    if isinstance(x, np.ndarray | np.generic | int | float) and not isinstance(x, bool):
        return x
    raise TypeError(
        "get_value expects a hyperparameter read from an optimizer (e.g. model.optimizer.lr), "
        f"a torch.Tensor, or a number or numpy array; received {type(x).__name__}."
    )


def eval(x: Any) -> Any:
    """Return the current value of `x`; the Keras 2 name of `get_value`."""
    return get_value(x)


def set_value(x: Any, value: Any) -> None:
    """Write `value` into `x`.

    Args:
        x: A hyperparameter read from an optimizer (such as `model.optimizer.lr`): the
            value is written onto every parameter group of that optimizer. Or a tensor:
            the value is copied into it in place, without recording gradients.
        value: A number, numpy number or array, or tensor.

    Raises:
        TypeError: If `x` is neither.

    """
    if isinstance(x, Hyperparameter):
        setattr(x.optimizer, x.name, value)
        return
    if isinstance(x, torch.Tensor):
        with torch.no_grad():
            source = torch.as_tensor(value, dtype=x.dtype, device=x.device)
            x.copy_(source)
        return
    received = type(x).__name__
    raise TypeError(
        "set_value expects a hyperparameter read from an optimizer (e.g. model.optimizer.lr) "
        f"or a torch.Tensor; received {received}. To change a learning rate, assign "
        "model.optimizer.learning_rate = value."
    )


def floatx() -> str:
    """Return the name of torch's default floating-point dtype, such as `"float32"`."""
    return str(torch.get_default_dtype()).removeprefix("torch.")


def epsilon() -> float:
    """Return the fuzz factor 1e-7 that Keras's `backend.epsilon()` gives."""
    return _EPSILON


def clear_session() -> None:
    """Free memory between models, the nearest equivalent of Keras's `clear_session`.

    cadence keeps no global graph or layer-name state, so this only runs Python's
    garbage collector and, when CUDA is in use, releases cached GPU memory.
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


__all__ = ["clear_session", "epsilon", "eval", "floatx", "get_value", "set_value"]
