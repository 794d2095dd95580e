"""Logs: metric values kept on the device until someone reads them.

A training step returns a :class:`MetricLogs` view (or a plain mapping from a user's own
``train_step``). Nothing is copied to the host until a hook that some callback overrides needs
the values; then :func:`to_python` converts every key with one device-to-host transfer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

#: Number of device-to-host conversions performed by :func:`to_python` (read by tests).
conversions = 0


class MetricLogs(Mapping):
    """A read-only, lazy mapping from metric names to their current results.

    Values are 0-d tensors computed on access; nothing is synchronised with the host. Use
    :meth:`to_python` to get a plain ``dict`` of floats (one transfer for all keys).
    """

    __slots__ = ("_metrics",)

    def __init__(self, metrics: list[Any]) -> None:
        self._metrics = metrics

    def __getitem__(self, key: str) -> Any:
        for metric in self._metrics:
            if metric.name == key:
                return metric.result()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (metric.name for metric in self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def to_python(self) -> dict[str, Any]:
        """Return the current values as a plain dict of Python floats."""
        return to_python({m.name: m.result() for m in self._metrics})


def to_python(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``logs`` as a plain dict of Python values, with one host transfer for all tensors.

    0-d tensors and numpy scalars become ``float``; larger tensors become numpy arrays; other
    values (Python numbers, strings) are kept as they are.

    Args:
        logs: A mapping of names to tensors, numpy values or Python values, or ``None``.

    Returns:
        A new ``dict`` safe to ``json.dumps``, copy, pickle or put in a DataFrame.
    """
    global conversions
    if logs is None:
        return {}
    if isinstance(logs, MetricLogs):
        logs = {m.name: m.result() for m in logs._metrics}
    out: dict[str, Any] = {}
    scalar_keys: list[str] = []
    scalars: list[torch.Tensor] = []
    for key, value in logs.items():
        if isinstance(value, torch.Tensor):
            if value.ndim == 0:
                scalar_keys.append(key)
                scalars.append(value.detach())
                out[key] = None
            else:
                conversions += 1
                out[key] = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray) and value.ndim == 0:
            out[key] = float(value)
        elif isinstance(value, np.generic):
            out[key] = float(value)
        else:
            out[key] = value
    if scalars:
        conversions += 1
        device = scalars[0].device
        if all(s.device == device for s in scalars):
            values = torch.stack([s.to(torch.float64) for s in scalars]).tolist()
        else:
            values = [float(s.to(torch.float64).cpu()) for s in scalars]
        for key, value in zip(scalar_keys, values, strict=True):
            out[key] = value
    return out
