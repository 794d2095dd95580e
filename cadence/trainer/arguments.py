"""Argument checks for fit/evaluate/predict: clear errors before any work is done."""

from __future__ import annotations

import math
from typing import Any

from cadence.data import get_adapter, tree
from cadence.data.adapters import is_array_like

_VERBOSE = ("auto", 0, 1, 2)


def require_compiled(model: Any, method: str) -> None:
    """Raise if ``model`` has not been compiled."""
    if not getattr(model, "compiled", False):
        raise RuntimeError(
            f"You must call compile() before {method}(): e.g. "
            "model.compile(optimizer='adam', loss='mse')."
        )


def _positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; received {name}={value!r}.")


def check_common(
    x: Any, y: Any, batch_size: Any, verbose: Any, sample_weight: Any, steps: Any
) -> None:
    """Check the arguments shared by fit, evaluate and predict."""
    if x is None:
        raise ValueError("x is required: pass the input data (arrays, a Dataset, ...); received x=None.")
    _positive_int("batch_size", batch_size)
    _positive_int("steps", steps)
    if verbose not in _VERBOSE or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    if batch_size is not None and not is_array_like(x) and _is_batched(x):
        raise ValueError(
            f"batch_size must be None when x is a {type(x).__name__} (it yields whole batches); "
            f"received batch_size={batch_size}."
        )


def _is_batched(x: Any) -> bool:
    import torch

    from cadence.data import Sequence

    return isinstance(x, torch.utils.data.DataLoader | Sequence)


def check_fit(
    x: Any, y: Any, batch_size: Any, epochs: Any, verbose: Any, validation_split: Any,
    validation_data: Any, class_weight: Any, sample_weight: Any, initial_epoch: Any,
    steps_per_epoch: Any, validation_steps: Any, validation_batch_size: Any, validation_freq: Any,
) -> None:
    """Check fit's arguments, raising with what was received and what was expected."""
    check_common(x, y, batch_size, verbose, sample_weight, None)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0; received epochs={epochs!r}.")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(
            f"initial_epoch must be an integer >= 0; received initial_epoch={initial_epoch!r}."
        )
    if epochs < initial_epoch:
        raise ValueError(
            "epochs is the index of the last epoch, so it must be >= initial_epoch; received "
            f"epochs={epochs}, initial_epoch={initial_epoch}."
        )
    _positive_int("steps_per_epoch", steps_per_epoch)
    _positive_int("validation_steps", validation_steps)
    _positive_int("validation_batch_size", validation_batch_size)
    if not isinstance(validation_split, int | float) or not 0 <= validation_split < 1:
        raise ValueError(
            "validation_split must be a float in [0, 1) (the fraction of samples kept for "
            f"validation); received validation_split={validation_split!r}."
        )
    if validation_split and not is_array_like(x):
        raise ValueError(
            "validation_split is only supported for arrays and tensors; x is a "
            f"{type(x).__name__}. Pass validation_data instead."
        )
    if validation_split and validation_data is not None:
        raise ValueError("Pass validation_split or validation_data, not both.")
    if class_weight is not None and sample_weight is not None:
        raise ValueError(
            "class_weight and sample_weight cannot be used together: fold the class weights "
            "into sample_weight."
        )
    if isinstance(validation_freq, bool) or not (
        (isinstance(validation_freq, int) and validation_freq >= 1)
        or (
            isinstance(validation_freq, list | tuple)
            and all(isinstance(v, int) and v >= 1 for v in validation_freq)
        )
    ):
        raise ValueError(
            "validation_freq must be an integer >= 1 or a list of epochs (counted from 1); "
            f"received validation_freq={validation_freq!r}."
        )


def should_validate(epoch: int, validation_freq: int | list[int]) -> bool:
    """Return whether validation runs after ``epoch`` (from 0), as Keras decides."""
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return (epoch + 1) in validation_freq


def split_validation(
    x: Any, y: Any, sample_weight: Any, validation_split: float
) -> tuple[tuple[Any, Any, Any], tuple]:
    """Keep the last ``validation_split`` of the samples (before shuffling) for validation."""
    leaves = tree.flatten(x)
    total = int(leaves[0].shape[0])
    split_at = int(math.floor(total * (1.0 - validation_split)))
    if split_at == 0 or split_at == total:
        raise ValueError(
            f"validation_split={validation_split} leaves no samples on one side of the split of "
            f"{total} samples (training: {split_at}, validation: {total - split_at})."
        )

    def head(t):
        return t[:split_at]

    def tail(t):
        return t[split_at:]

    train = (
        tree.map_structure(head, x),
        tree.map_structure(head, y) if y is not None else None,
        head(sample_weight) if sample_weight is not None else None,
    )
    validation = tree.pack_x_y_sample_weight(
        tree.map_structure(tail, x),
        tree.map_structure(tail, y) if y is not None else None,
        tail(sample_weight) if sample_weight is not None else None,
    )
    return train, validation


def validation_adapter(validation_data: Any, batch_size: int | None) -> Any:
    """Return the adapter of ``validation_data``: a tuple of arrays, or any batched source."""
    if validation_data is None:
        return None
    if isinstance(validation_data, list):
        validation_data = tuple(validation_data)
    if isinstance(validation_data, tuple):
        if not 2 <= len(validation_data) <= 3:
            raise ValueError(
                "validation_data must be (x_val, y_val) or (x_val, y_val, val_sample_weight); "
                f"received a tuple of {len(validation_data)} elements."
            )
        x, y, sample_weight = tree.unpack_x_y_sample_weight(validation_data)
        return get_adapter(x, y, sample_weight, batch_size, shuffle=False)
    return get_adapter(validation_data, None, None, None, shuffle=False)
