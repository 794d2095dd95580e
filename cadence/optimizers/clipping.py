"""Keras-style gradient clipping applied to `.grad` tensors in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cadence.optimizers.hyperparameter import to_scalar

CLIP_NAMES = ("clipnorm", "clipvalue", "global_clipnorm")


def check_clip_value(name: str, value: Any) -> float | None:
    """Validate one clipping setting.

    Args:
        name: One of `"clipnorm"`, `"clipvalue"` or `"global_clipnorm"`.
        value: `None` (no clipping) or a positive number.

    Returns:
        `None` or the value as a float.

    Raises:
        TypeError: If the value is not a number.
        ValueError: If the value is not positive.

    """
    if value is None:
        return None
    number = to_scalar(value, name)
    if not number > 0:
        raise ValueError(f"{name} must be a positive number or None; received {name}={value!r}.")
    return number


def check_exclusive(settings: dict[str, float | None]) -> None:
    """Raise if more than one clipping setting is on, as Keras does.

    Args:
        settings: Mapping from clipping name to its value (`None` when off).

    Raises:
        ValueError: If two or more settings are not `None`.

    """
    on = [f"{name}={value}" for name, value in settings.items() if value is not None]
    if len(on) > 1:
        raise ValueError(
            "Only one of clipnorm, clipvalue and global_clipnorm can be set; "
            f"received {', '.join(on)}."
        )


def _dense(grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    for grad in grads:
        if grad.is_sparse:
            raise TypeError(
                "Gradient clipping supports dense gradients only; received a sparse gradient "
                f"of shape {tuple(grad.shape)}. Turn clipping off for sparse embeddings."
            )
    return list(grads)


def clip_by_norm_(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scales each gradient whose L2 norm exceeds `max_norm` down to that norm.

    A gradient `g` becomes `g * max_norm / max(||g||, max_norm)`, computed on the
    device without reading anything back to the host.

    Args:
        grads: The gradients, modified in place.
        max_norm: The largest L2 norm any single gradient may have.

    """
    grads = _dense(grads)
    if not grads:
        return
    for grad in grads:  # Public ops only (torch's _foreach_* functions are private).
        grad.mul_(max_norm / torch.linalg.vector_norm(grad).clamp_min(max_norm))


def clip_by_global_norm_(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scales all gradients together so that their joint L2 norm is at most `max_norm`.

    Every gradient is multiplied by `max_norm / max(global_norm, max_norm)`, where the
    global norm is the L2 norm of all gradients concatenated.

    Args:
        grads: The gradients, modified in place.
        max_norm: The largest joint L2 norm.

    """
    grads = _dense(grads)
    if not grads:
        return
    device = grads[0].device
    norms = [torch.linalg.vector_norm(grad).to(device) for grad in grads]
    total = torch.linalg.vector_norm(torch.stack(norms))
    scale = max_norm / total.clamp_min(max_norm)
    for grad in grads:
        grad.mul_(scale.to(grad.device))


def clip_by_value_(grads: Sequence[torch.Tensor], limit: float) -> None:
    """Clamps every gradient element into `[-limit, limit]`.

    Args:
        grads: The gradients, modified in place.
        limit: The largest absolute value an element may have.

    """
    grads = _dense(grads)
    if not grads:
        return
    for grad in grads:
        grad.clamp_(-limit, limit)


def clip_gradients_(grads: Sequence[torch.Tensor], settings: dict[str, float | None]) -> None:
    """Apply whichever clipping setting is on.

    Args:
        grads: The gradients, modified in place.
        settings: Mapping with the keys `clipnorm`, `clipvalue` and `global_clipnorm`.

    """
    if settings.get("clipnorm") is not None:
        clip_by_norm_(grads, settings["clipnorm"])
    elif settings.get("global_clipnorm") is not None:
        clip_by_global_norm_(grads, settings["global_clipnorm"])
    elif settings.get("clipvalue") is not None:
        clip_by_value_(grads, settings["clipvalue"])
