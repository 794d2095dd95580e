"""Checks on data: clear errors, naming what was received, before any batch is trained on."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadence.data import tree


def is_array_leaf(value: Any) -> bool:
    """Return whether ``value`` is a numpy array, a tensor, or a pandas object."""
    return isinstance(value, np.ndarray | torch.Tensor) or (
        hasattr(value, "to_numpy") and hasattr(value, "shape")
    )


def is_array_like(value: Any) -> bool:
    """Return whether ``value`` is an array, a tensor, or a tuple/list/dict of them."""
    leaves = tree.flatten(value) if isinstance(value, tuple | list | dict) else [value]
    return bool(leaves) and all(is_array_leaf(v) for v in leaves)


def check_lengths(x: Any, y: Any, sample_weight: Any) -> int:
    """Return the common number of samples, or raise naming each input's length.

    Raises:
        TypeError: If a leaf is not an array with a batch dimension.
        ValueError: If the inputs disagree on the number of samples ("ragged"), or hold none.
    """
    sizes: dict[str, int] = {}
    for name, data in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if data is None:
            continue
        leaves = tree.flatten(data)
        for position, leaf in enumerate(leaves):
            if not hasattr(leaf, "shape") or len(leaf.shape) == 0:
                raise TypeError(
                    f"{name} must hold arrays or tensors with a batch dimension; received "
                    f"{type(leaf).__name__} {leaf!r}."
                )
            label = name if len(leaves) == 1 else f"{name}[{_path(data, position)}]"
            sizes[label] = int(leaf.shape[0])
    lengths = set(sizes.values())
    if len(lengths) > 1:
        described = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(
            "Data cardinality is ambiguous: all inputs must have the same number of samples. "
            f"Received {described}."
        )
    if not lengths or lengths == {0}:
        raise ValueError("The data is empty: received 0 samples.")
    return lengths.pop()


def _path(data: Any, position: int) -> str:
    """Return the key (dicts) or index of the ``position``-th leaf of a one-level nest."""
    if isinstance(data, dict):
        keys = [key for key, value in data.items() for _ in tree.flatten(value)]
        return repr(keys[position])
    return str(position)


def structure_of(data: Any) -> Any:
    """Return the shape of a nest with its leaves replaced by ``None`` (for comparisons)."""
    if isinstance(data, dict):
        return {key: structure_of(value) for key, value in data.items()}
    if isinstance(data, tuple | list):
        return tuple(structure_of(value) for value in data)
    return None


def check_batch(batch: Any, where: str, expected: Any = None) -> Any:
    """Check one batch from a source that yields whole batches; return its structure.

    A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, where each part is a
    tensor or a nest of tensors, all with the same first (batch) dimension. ``expected`` is the
    structure of the first batch: every later batch must have the same one.

    Args:
        batch: The batch, after numpy leaves were turned into tensors.
        where: Names the batch in messages, e.g. ``"Sequence.__getitem__(3)"``.
        expected: The structure every batch must have, or ``None`` for the first batch.

    Raises:
        ValueError: If the batch is malformed, naming ``where`` and what was received.
    """
    if batch is None:
        raise ValueError(
            f"{where} returned None; expected x, (x,), (x, y) or (x, y, sample_weight)."
        )
    if isinstance(batch, tuple) and not 1 <= len(batch) <= 3:
        raise ValueError(
            f"{where} returned a tuple of {len(batch)} elements; expected x, (x,), (x, y) or "
            "(x, y, sample_weight)."
        )
    sizes = []
    for leaf in tree.flatten(batch):
        if not isinstance(leaf, torch.Tensor):
            raise ValueError(
                f"{where} returned a {type(leaf).__name__} ({leaf!r:.60}) inside the batch; "
                "expected numpy arrays or tensors."
            )
        if leaf.ndim == 0:
            raise ValueError(
                f"{where} returned a 0-d tensor ({leaf!r:.60}) inside the batch; every part of "
                "a batch needs a batch dimension."
            )
        sizes.append(int(leaf.shape[0]))
    if not sizes:
        raise ValueError(f"{where} returned a batch without any array: {batch!r:.80}.")
    if len(set(sizes)) > 1:
        raise ValueError(
            f"{where} returned parts with different batch sizes {sizes}; x, y and "
            "sample_weight must have the same first dimension."
        )
    structure = structure_of(batch)
    if expected is not None and structure != expected:
        raise ValueError(
            f"{where} returned a batch structured as {_describe(structure)}, but the first "
            f"batch was {_describe(expected)}; every batch must have the same structure."
        )
    return structure


def _describe(structure: Any) -> str:
    return repr(structure).replace("None", "tensor")
