"""Keras-backend helpers for callbacks written against `keras.backend` (`K`).

Keras 2 callbacks read and write optimizer hyperparameters through
`K.get_value(model.optimizer.lr)` and `K.set_value(model.optimizer.lr, x)`. With
cadence, `model.optimizer.lr` is a `cadence.optimizers.Hyperparameter` (a float that
remembers its optimizer), so these work unchanged after
`from cadence import backend as K` (or `import cadence.keras.backend as K`). They also take a
torch parameter group (its `"lr"`), a tensor and a numpy array. `cast`, `dtype`,
`count_params`, `floatx`, `epsilon` and `clear_session` are Keras's, over torch.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import torch

from cadence.optimizers.hyperparameter import Hyperparameter, to_scalar

_EPSILON = 1e-7


def get_value(x: Any) -> Any:
    """Return the current value of `x` as a Python number or a numpy array.

    Args:
        x: A hyperparameter read from an optimizer (its live value is returned, which
            may have changed since it was read), a torch parameter group (its learning
            rate, ``group["lr"]``), a tensor (a 0-d tensor gives a Python number, others a
            numpy array), or a Python or numpy number or array (returned as it is).

    Returns:
        The value.

    Raises:
        TypeError: If `x` is none of these.

    """
    if isinstance(x, Hyperparameter):
        return x.value
    if _is_param_group(x):
        return get_value(x["lr"])
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.item() if x.dim() == 0 else x.cpu().numpy()
    if isinstance(x, np.ndarray | np.generic | int | float) and not isinstance(x, bool):
        return x
    raise TypeError(
        "get_value expects a hyperparameter read from an optimizer (e.g. model.optimizer.lr), "
        "a parameter group, a torch.Tensor, or a number or numpy array; received "
        f"{type(x).__name__}."
    )


def _is_param_group(x: Any) -> bool:
    """Whether ``x`` is a torch optimizer's parameter group (a dict with "params" and "lr")."""
    return isinstance(x, dict) and "params" in x and "lr" in x


def eval(x: Any) -> Any:
    """Return the current value of `x`; the Keras 2 name of `get_value`."""
    return get_value(x)


def set_value(x: Any, value: Any) -> None:
    """Write `value` into `x`.

    Args:
        x: A hyperparameter read from an optimizer (such as `model.optimizer.lr`): the
            value is written onto every parameter group of that optimizer. A torch parameter
            group: the value becomes its `"lr"`. A tensor or a numpy array: the value is
            copied into it in place (without recording gradients).
        value: A number, numpy number or array, or tensor.

    Raises:
        TypeError: If `x` is none of these (a Python or numpy number cannot be changed in
            place).

    """
    if isinstance(x, Hyperparameter):
        setattr(x.optimizer, x.name, value)
        return
    if _is_param_group(x):
        x["lr"] = to_scalar(value, "set_value's learning rate")
        return
    if isinstance(x, torch.Tensor):
        with torch.no_grad():
            source = torch.as_tensor(value, dtype=x.dtype, device=x.device)
            x.copy_(source)
        return
    if isinstance(x, np.ndarray):
        x[...] = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        return
    received = type(x).__name__
    raise TypeError(
        "set_value expects a hyperparameter read from an optimizer (e.g. model.optimizer.lr), "
        f"a parameter group, a torch.Tensor or a numpy array; received {received}. To change "
        "a learning rate, assign "
        "model.optimizer.learning_rate = value."
    )


def floatx() -> str:
    """Return the name of torch's default floating-point dtype, such as `"float32"`."""
    return str(torch.get_default_dtype()).removeprefix("torch.")


def epsilon() -> float:
    """Return the fuzz factor 1e-7 that Keras's `backend.epsilon()` gives."""
    return _EPSILON


def clear_session(free_memory: bool = True) -> None:
    """Reset what cadence and torch keep between models, as Keras's `clear_session`.

    Keras resets its global state (the counters that name layers `dense_1`, `dense_2`, ...)
    and, on the torch backend, `torch.compile`'s caches. cadence names layers within each
    model, so it keeps no such counters; this resets `torch.compile`'s caches
    (`torch.compiler.reset()`) and, with `free_memory=True`, runs Python's garbage collector
    and releases CUDA's cached memory.

    Args:
        free_memory: Whether to collect garbage and release cached GPU memory.
    """
    torch.compiler.reset()
    if free_memory:
        gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def _torch_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
    found = getattr(torch, name, None) if name != "bool" else torch.bool
    if not isinstance(found, torch.dtype):
        raise ValueError(
            "cast expects a dtype such as 'float32', 'int64', 'bool', a numpy dtype or a "
            f"torch.dtype; received dtype={dtype!r}."
        )
    return found


def cast(x: Any, dtype: Any) -> torch.Tensor:
    """Return `x` (a tensor, numpy array or number) as a tensor of `dtype`, as Keras's `cast`.

    Args:
        x: A tensor, a numpy array, or a number or nested list of numbers.
        dtype: A name such as `"float32"`, a numpy dtype or a `torch.dtype`.
    """
    target = _torch_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x.to(target)
    return torch.as_tensor(np.asarray(x)).to(target)


def dtype(x: Any) -> str:
    """Return the dtype of a tensor or a numpy array or number as Keras names it (`"float32"`)."""
    if isinstance(x, torch.Tensor):
        return str(x.dtype).removeprefix("torch.")
    if isinstance(x, np.ndarray | np.generic):
        return str(x.dtype)
    raise TypeError(
        f"dtype expects a tensor or a numpy array or number; received {type(x).__name__}."
    )


def count_params(x: Any) -> int:
    """Return the number of scalars in a tensor or array, as Keras's `count_params`."""
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise TypeError(
            f"count_params expects a tensor or a numpy array; received {type(x).__name__}."
        )
    return int(np.prod(tuple(x.shape), dtype=np.int64))


__all__ = [
    "cast", "clear_session", "count_params", "dtype", "epsilon", "eval", "floatx", "get_value",
    "set_value",
]
