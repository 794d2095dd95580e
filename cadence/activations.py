"""Keras's activation functions by their Keras names, over torch (``keras.activations``).

Each takes a tensor (or an array, converted with ``torch.as_tensor``) and returns a tensor,
with Keras 3's defaults where they differ from torch's: ``leaky_relu``'s slope is 0.2,
``gelu`` is exact unless ``approximate=True``, ``hard_sigmoid`` is ``relu6(x + 3) / 6``.
``get(identifier)`` returns one by name (``None`` gives ``linear``, a callable is returned as
it is), as ``keras.activations.get``; ``serialize`` gives the name back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from cadence.object_registration import get_registered_name

__all__ = [
    "celu", "deserialize", "elu", "exponential", "gelu", "get", "glu", "hard_shrink",
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid",
    "log_softmax", "mish", "relu", "relu6", "selu", "serialize", "sigmoid", "silu", "soft_shrink",
    "softmax", "softplus", "softsign", "sparse_plus", "squareplus", "swish", "tanh", "tanh_shrink",
    "threshold",
]


def _tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def relu(x: Any, negative_slope: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> torch.Tensor:
    """Return Keras's ``relu``: ``x`` above ``threshold`` (capped at ``max_value``), else a slope.

    Below ``threshold`` the result is ``negative_slope * (x - threshold)``.
    """
    x = _tensor(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return F.leaky_relu(x, negative_slope)
    negative = F.relu(threshold - x) if negative_slope != 0.0 else None
    out = torch.where(x > threshold, x, torch.zeros_like(x)) if threshold != 0 else F.relu(x)
    if max_value is not None:
        out = out.clamp(0.0, max_value)
    if negative is not None:
        out = out - negative_slope * negative
    return out


def leaky_relu(x: Any, negative_slope: float = 0.2) -> torch.Tensor:
    """Return ``x`` for ``x >= 0``, else ``negative_slope * x`` (Keras's default slope 0.2)."""
    return F.leaky_relu(_tensor(x), negative_slope)


def relu6(x: Any) -> torch.Tensor:
    """Return ``min(max(x, 0), 6)``."""
    return F.relu6(_tensor(x))


def softmax(x: Any, axis: int = -1) -> torch.Tensor:
    """Return ``exp(x) / sum(exp(x))`` along ``axis``."""
    return torch.softmax(_tensor(x), dim=axis)


def log_softmax(x: Any, axis: int = -1) -> torch.Tensor:
    """Return the logarithm of ``softmax(x, axis)``."""
    return torch.log_softmax(_tensor(x), dim=axis)


def elu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    """Return ``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return F.elu(_tensor(x), alpha)


def celu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    """Return ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return F.celu(_tensor(x), alpha)


def selu(x: Any) -> torch.Tensor:
    """Return the scaled exponential linear unit (Keras's and torch's constants are the same)."""
    return F.selu(_tensor(x))


def softplus(x: Any) -> torch.Tensor:
    """Return ``log(exp(x) + 1)``."""
    return F.softplus(_tensor(x))


def softsign(x: Any) -> torch.Tensor:
    """Return ``x / (abs(x) + 1)``."""
    return F.softsign(_tensor(x))


def silu(x: Any) -> torch.Tensor:
    """Return ``x * sigmoid(x)`` (also named ``swish``)."""
    return F.silu(_tensor(x))


swish = silu


def gelu(x: Any, approximate: bool = False) -> torch.Tensor:
    """Return the Gaussian error linear unit; the tanh approximation with ``approximate=True``."""
    return F.gelu(_tensor(x), approximate="tanh" if approximate else "none")


def glu(x: Any, axis: int = -1) -> torch.Tensor:
    """Return ``a * sigmoid(b)`` where ``a, b`` are the halves of ``x`` along ``axis``."""
    return F.glu(_tensor(x), dim=axis)


def tanh(x: Any) -> torch.Tensor:
    """Return the hyperbolic tangent."""
    return torch.tanh(_tensor(x))


def tanh_shrink(x: Any) -> torch.Tensor:
    """Return ``x - tanh(x)``."""
    return F.tanhshrink(_tensor(x))


def sigmoid(x: Any) -> torch.Tensor:
    """Return ``1 / (1 + exp(-x))``."""
    return torch.sigmoid(_tensor(x))


def log_sigmoid(x: Any) -> torch.Tensor:
    """Return ``log(sigmoid(x))``."""
    return F.logsigmoid(_tensor(x))


def hard_sigmoid(x: Any) -> torch.Tensor:
    """Return Keras 3's ``hard_sigmoid``: 0 below -3, 1 above 3, ``x / 6 + 0.5`` between."""
    return F.hardsigmoid(_tensor(x))


def hard_silu(x: Any) -> torch.Tensor:
    """Return ``x * hard_sigmoid(x)`` (also named ``hard_swish``)."""
    return F.hardswish(_tensor(x))


hard_swish = hard_silu


def hard_tanh(x: Any) -> torch.Tensor:
    """Return ``x`` clipped to ``[-1, 1]``."""
    return F.hardtanh(_tensor(x))


def soft_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    """Return ``x - threshold`` above ``threshold``, ``x + threshold`` below ``-threshold``, else 0."""
    return F.softshrink(_tensor(x), threshold)


def hard_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    """Return ``x`` where ``abs(x) > threshold``, else 0."""
    return F.hardshrink(_tensor(x), threshold)


def threshold(x: Any, threshold: float, default_value: float) -> torch.Tensor:
    """Return ``x`` where ``x > threshold``, else ``default_value``."""
    return F.threshold(_tensor(x), threshold, default_value)


def squareplus(x: Any, b: float = 4) -> torch.Tensor:
    """Return ``(x + sqrt(x**2 + b)) / 2``."""
    x = _tensor(x)
    return (x + torch.sqrt(x * x + b)) / 2


def sparse_plus(x: Any) -> torch.Tensor:
    """Return 0 below -1, ``x`` above 1, ``(x + 1)**2 / 4`` between."""
    x = _tensor(x)
    middle = (x + 1) ** 2 / 4
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, x, middle))


def exponential(x: Any) -> torch.Tensor:
    """Return ``exp(x)``."""
    return torch.exp(_tensor(x))


def mish(x: Any) -> torch.Tensor:
    """Return ``x * tanh(softplus(x))``."""
    return F.mish(_tensor(x))


def linear(x: Any) -> Any:
    """Return ``x`` unchanged."""
    return x


_BY_NAME: dict[str, Callable[..., Any]] = {
    fn.__name__: fn for fn in (
        relu, leaky_relu, relu6, softmax, log_softmax, elu, celu, selu, softplus, softsign, silu,
        gelu, glu, tanh, tanh_shrink, sigmoid, log_sigmoid, hard_sigmoid, hard_silu, hard_tanh,
        soft_shrink, hard_shrink, threshold, squareplus, sparse_plus, exponential, mish, linear,
    )
}
_BY_NAME["swish"] = silu
_BY_NAME["hard_swish"] = hard_silu


def get(identifier: Any) -> Callable[..., Any]:
    """Return the activation named ``identifier``; ``None`` gives ``linear``, a callable itself.

    Raises:
        ValueError: For an unknown name or anything else, as Keras.
    """
    if identifier is None:
        return linear
    found = _BY_NAME.get(identifier) if isinstance(identifier, str) else identifier
    if callable(found):
        return found
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(activation: Callable[..., Any]) -> str:
    """Return the Keras name of a built-in activation, or a registered one's key."""
    if _BY_NAME.get(getattr(activation, "__name__", None)) is activation:
        return activation.__name__
    return get_registered_name(activation)


def deserialize(name: str, custom_objects: dict[str, Any] | None = None) -> Callable[..., Any]:
    """Return the activation ``name`` stands for (``custom_objects`` first)."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return get(name)
