"""Helpers for nested structures of arrays and tensors (tuples, lists, dicts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def map_structure(fn: Callable[[Any], Any], data: Any) -> Any:
    """Apply ``fn`` to every leaf of a nest of tuples, lists and dicts, keeping its shape."""
    if isinstance(data, dict):
        return {key: map_structure(fn, value) for key, value in data.items()}
    if isinstance(data, tuple | list):
        mapped = [map_structure(fn, value) for value in data]
        return type(data)(mapped) if not hasattr(data, "_fields") else type(data)(*mapped)
    return fn(data)


def flatten(data: Any) -> list[Any]:
    """Return the leaves of a nest in order."""
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in flatten(value)]
    if isinstance(data, tuple | list):
        return [leaf for value in data for leaf in flatten(value)]
    return [data]


def to_tensor(value: Any) -> Any:
    """Turn a numpy array (or array-like of numbers) into a CPU tensor; keep tensors and None."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        if not value.flags.writeable or not value.flags.c_contiguous:
            value = np.ascontiguousarray(value).copy()
        return torch.from_numpy(value)
    if isinstance(value, list | tuple) and value and isinstance(value[0], int | float):
        return to_tensor(np.asarray(value))
    if isinstance(value, int | float | np.generic):
        return torch.as_tensor(value)
    if hasattr(value, "to_numpy"):  # pandas DataFrame / Series
        return to_tensor(np.asarray(value.to_numpy()))
    return value


def pin(data: Any) -> Any:
    """Return ``data`` with every CPU tensor in page-locked memory (already pinned ones kept).

    Page-locked batches let ``to_device(..., non_blocking=True)`` copy to a GPU without
    blocking the host. Only called when the model is on a CUDA device.
    """
    def pin_one(t: Any) -> Any:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and not t.is_pinned():
            return t.pin_memory()
        return t

    return map_structure(pin_one, data)


def pinned_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return an uninitialised page-locked CPU tensor (torch caches these allocations)."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


def to_device(data: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor of a nest to ``device``."""
    if isinstance(data, torch.Tensor):
        if data.device == device:
            return data
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, dict | tuple | list):
        return map_structure(lambda t: to_device(t, device, non_blocking), data)
    return data


def batch_size_of(data: Any) -> int:
    """Return the first dimension of the first tensor leaf (the batch size)."""
    for leaf in flatten(data):
        if hasattr(leaf, "shape") and len(leaf.shape) > 0:
            return int(leaf.shape[0])
    return 1


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Split a batch into ``(x, y, sample_weight)`` as Keras does.

    A tuple of one, two or three elements is ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``;
    anything else is ``x`` alone.
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError(
        "A batch must be x, (x,), (x, y) or (x, y, sample_weight); "
        f"received a tuple of {len(data)} elements."
    )


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple:
    """Pack ``x``, ``y`` and ``sample_weight`` into the shortest tuple that holds them."""
    if y is None:
        return (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)
