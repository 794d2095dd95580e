"""Argument checks for fit/evaluate/predict: clear errors before any work is done.

Data that can be read only once (a Python generator or iterator of batches) cannot be read
again for a second epoch, and cadence cannot tell a finite generator from an endless one.
So ``fit`` refuses, before any work, a generator with more than one epoch to run and no
``steps_per_epoch``, and a generator as ``validation_data`` that would be evaluated more than
once without ``validation_steps``. With one epoch and no ``steps_per_epoch`` the generator is
read to its end (an endless one never ends: give it ``steps_per_epoch``).
"""

from __future__ import annotations

import collections.abc
import math
from typing import Any

import torch

from cadence.data import Sequence, get_adapter, tree
from cadence.data.checks import check_lengths, is_array_like

_VERBOSE = ("auto", 0, 1, 2)


def require_compiled(model: Any, method: str) -> None:
    """Raise if ``model`` has not been compiled."""
    if not getattr(model, "compiled", False):
        raise RuntimeError(
            f"You must call compile() before {method}(): e.g. "
            "model.compile(optimizer='adam', loss='mse')."
        )


def normalize_verbose(verbose: Any) -> int | str:
    """Return ``verbose`` with Keras's booleans as numbers: ``True`` is 1, ``False`` is 0."""
    return int(verbose) if isinstance(verbose, bool) else verbose


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
    if verbose not in _VERBOSE:  # True and False are 1 and 0, as in Keras.
        raise ValueError(
            f"verbose must be 'auto', 0, 1, 2, True or False; received verbose={verbose!r}."
        )
    if batch_size is not None and not is_array_like(x) and _is_batched(x):
        raise ValueError(
            f"batch_size must be None when x is a {type(x).__name__} (it yields whole batches); "
            f"received batch_size={batch_size}."
        )


def _is_batched(x: Any) -> bool:
    return isinstance(x, torch.utils.data.DataLoader | Sequence) or is_one_shot(x)


def is_one_shot(x: Any) -> bool:
    """Return whether ``x`` is a generator or iterator of batches (it can be read only once)."""
    return isinstance(x, collections.abc.Iterator) and not isinstance(
        x, torch.utils.data.Dataset | torch.utils.data.DataLoader | Sequence
    )


def check_loader_options(workers: Any, use_multiprocessing: Any, max_queue_size: Any) -> None:
    """Check ``workers``, ``use_multiprocessing`` and ``max_queue_size`` (``None`` = default)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be an integer >= 0; received workers={workers!r}.")
    if use_multiprocessing is not None and not isinstance(use_multiprocessing, bool):
        raise ValueError(
            "use_multiprocessing must be True or False; received "
            f"use_multiprocessing={use_multiprocessing!r}."
        )
    _positive_int("max_queue_size", max_queue_size)


def loader_options(
    model: Any, workers: Any = None, use_multiprocessing: Any = None, max_queue_size: Any = None
) -> dict[str, Any]:
    """Return the keyword arguments of ``get_adapter`` that depend on the model and loaders.

    Batches are pinned (page-locked) only when the model lives on a CUDA device, so runs on
    the CPU pay nothing for it.
    """
    check_loader_options(workers, use_multiprocessing, max_queue_size)
    device = getattr(model, "device", None) if getattr(model, "compiled", False) else None
    if device is None:
        device = next((p.device for p in model.parameters()), None) if hasattr(model, "parameters") else None
    return {
        "workers": workers,
        "use_multiprocessing": use_multiprocessing,
        "max_queue_size": max_queue_size,
        "pin_memory": device is not None and torch.device(device).type == "cuda",
    }


def check_fit(
    x: Any, y: Any, batch_size: Any, epochs: Any, verbose: Any, validation_split: Any,
    validation_data: Any, class_weight: Any, sample_weight: Any, initial_epoch: Any,
    steps_per_epoch: Any, validation_steps: Any, validation_batch_size: Any, validation_freq: Any,
    shuffle: Any = True, workers: Any = None, use_multiprocessing: Any = None,
    max_queue_size: Any = None,
) -> None:
    """Check fit's arguments, raising with what was received and what was expected."""
    check_common(x, y, batch_size, verbose, sample_weight, None)
    check_loader_options(workers, use_multiprocessing, max_queue_size)
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False; received shuffle={shuffle!r}.")
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
            "validation_split is only supported for arrays and tensors (it keeps their last "
            f"samples); x is a {type(x).__name__}. Pass validation_data instead."
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
    if is_one_shot(x) and steps_per_epoch is None and epochs - initial_epoch > 1:
        raise ValueError(
            f"x is a {type(x).__name__}, which can be read only once and may never end, so fit "
            f"cannot run {epochs - initial_epoch} epochs over it without steps_per_epoch; "
            "received steps_per_epoch=None. Pass steps_per_epoch (batches per epoch), or a "
            "cadence.data.Sequence / torch Dataset that can be read again."
        )
    check_validation_data(validation_data)
    runs = sum(should_validate(e, validation_freq) for e in range(initial_epoch, epochs))
    if is_one_shot(validation_data) and validation_steps is None and runs > 1:
        raise ValueError(
            f"validation_data is a {type(validation_data).__name__}, which can be read only "
            f"once, but validation would run {runs} times; received validation_steps=None. "
            "Pass validation_steps (batches per validation), or a Sequence / Dataset."
        )


def check_validation_data(validation_data: Any) -> None:
    """Raise unless ``validation_data`` is a tuple of arrays or a source of batches."""
    if validation_data is None or isinstance(validation_data, tuple | list):
        return
    if isinstance(validation_data, torch.utils.data.Dataset | torch.utils.data.DataLoader | Sequence):
        return
    if is_one_shot(validation_data):
        return
    raise ValueError(
        "validation_data must be (x_val, y_val), (x_val, y_val, val_sample_weight), a torch "
        "Dataset or DataLoader, a cadence.data.Sequence or a generator; received "
        f"{type(validation_data).__name__}."
    )


def should_validate(epoch: int, validation_freq: int | list[int]) -> bool:
    """Return whether validation runs after ``epoch`` (from 0), as Keras decides."""
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return (epoch + 1) in validation_freq


def split_validation(
    x: Any, y: Any, sample_weight: Any, validation_split: float
) -> tuple[tuple[Any, Any, Any], tuple]:
    """Keep the last ``validation_split`` of the samples (before shuffling) for validation.

    Raises:
        ValueError: If the inputs are ragged, or one side of the split would be empty.
    """
    total = check_lengths(
        tree.map_structure(tree.to_tensor, x),
        tree.map_structure(tree.to_tensor, y) if y is not None else None,
        tree.map_structure(tree.to_tensor, sample_weight) if sample_weight is not None else None,
    )
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
        tree.map_structure(head, sample_weight) if sample_weight is not None else None,
    )
    validation = tree.pack_x_y_sample_weight(
        tree.map_structure(tail, x),
        tree.map_structure(tail, y) if y is not None else None,
        tree.map_structure(tail, sample_weight) if sample_weight is not None else None,
    )
    return train, validation


def validation_adapter(validation_data: Any, batch_size: int | None, **options: Any) -> Any:
    """Return the adapter of ``validation_data``: a tuple of arrays, or any batched source.

    Args:
        validation_data: ``(x, y)``, ``(x, y, sample_weight)``, or a Dataset, DataLoader,
            Sequence or generator.
        batch_size: ``validation_batch_size`` (else fit's ``batch_size``) for arrays/Datasets.
        **options: Further :func:`~cadence.data.get_adapter` options (workers, pinning).
    """
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
        return get_adapter(x, y, sample_weight, batch_size, shuffle=False, **options)
    if isinstance(validation_data, torch.utils.data.Dataset) and not isinstance(validation_data, Sequence):
        return get_adapter(validation_data, None, None, batch_size, shuffle=False, **options)
    return get_adapter(validation_data, None, None, None, shuffle=False, **options)
