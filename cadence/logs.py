"""Logs and numbers as plain Python: the one place where values become floats.

A training step returns a :class:`MetricLogs` view (or a plain mapping from a user's own
``train_step``). Nothing is copied to the host until a hook that some callback overrides needs
the values; then :func:`to_python` converts every key with one device-to-host transfer.
:func:`plain_numbers` turns number-like leaves of a nested state (numpy scalars, ``float``
subclasses) into Python numbers, for files and for logs that must survive ``json.dumps``.

This module sits at the bottom of the package (with ``io`` and ``tree``): everything above may
import it, and it imports nothing of cadence.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

#: Number of device-to-host conversions performed by :func:`to_python` (read by tests).
conversions = 0


class MetricLogs(Mapping):
    """A read-only, lazy mapping from metric names to their current results.

    Values are 0-d tensors computed on access (each metric's ``result()``, read when the view
    is read, not when it is made); nothing is synchronised with the host. A metric whose
    ``result()`` is a dict contributes its entries, as in ``Model.get_metrics_result()``. Use
    :meth:`to_python` to get a plain ``dict`` of floats (one transfer for all keys).
    """

    __slots__ = ("_metrics",)

    def __init__(self, metrics: list[Any]) -> None:
        self._metrics = metrics

    def results(self) -> dict[str, Any]:
        """Return every metric's current result in a new dict (0-d tensors, nothing read)."""
        results: dict[str, Any] = {}
        for metric in self._metrics:
            value = metric.result()
            if isinstance(value, dict):
                results.update(value)
            else:
                results[metric.name] = value
        return results

    def __getitem__(self, key: str) -> Any:
        for metric in self._metrics:
            if metric.name == key:
                value = metric.result()
                if not isinstance(value, dict):
                    return value
        return self.results()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results())

    def __len__(self) -> int:
        return len(self.results())

    def to_python(self) -> dict[str, Any]:
        """Return the current values as a plain dict of Python floats."""
        return to_python(self.results())


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
        logs = logs.results()
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


def plain_numbers(obj: Any) -> Any:
    """Return ``obj`` with number-like leaves as Python numbers.

    Subclasses of ``float`` and ``int`` (an optimizer's ``Hyperparameter``, numpy's ``float64``)
    and numpy scalars become ``float`` / ``int`` / ``bool``; dicts (and ``OrderedDict``s, with a
    module ``state_dict``'s ``_metadata``), lists and tuples are copied; every other leaf
    (tensors, strings, ``None``, ...) is kept as it is.

    Args:
        obj: A number, or a nested structure of dicts, lists and tuples.

    Returns:
        A copy of the structure, safe for :func:`cadence.io.save_state`.
    """
    kind = type(obj)
    if kind in (dict, OrderedDict):
        copy = kind((key, plain_numbers(value)) for key, value in obj.items())
        if hasattr(obj, "_metadata"):  # A module state_dict's versions, used by load_state_dict.
            copy._metadata = obj._metadata  # type: ignore[attr-defined]
        return copy
    if kind in (list, tuple):
        return kind(plain_numbers(value) for value in obj)
    if kind in (int, float, bool, str) or obj is None or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):  # An array in the logs: a number (0-d) or nested lists.
        return obj.item() if obj.ndim == 0 else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    return obj


def plain_logs(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``logs`` as a dict sorted by key whose number-like values are Python numbers.

    A plain ``dict`` of Python and numpy values is converted and sorted in place and returned
    itself, so that what a callback adds to it reaches later callbacks and the caller (the epoch
    logs that a backup saves). Any other mapping (a lazy :class:`MetricLogs`, a dict holding
    tensors that a ``train_step`` returned) becomes a new dict, its tensors read with one
    device-to-host transfer (:func:`to_python`), and is left as it was.

    Args:
        logs: The logs a hook receives, or ``None``.

    Returns:
        A ``dict`` that ``json.dumps`` accepts when its values are numbers or strings.
    """
    if type(logs) is not dict or any(isinstance(v, torch.Tensor) for v in logs.values()):
        converted = to_python(logs)
        return dict(sorted(((k, plain_numbers(v)) for k, v in converted.items()), key=_first))
    items = sorted(((key, plain_numbers(value)) for key, value in logs.items()), key=_first)
    logs.clear()
    logs.update(items)
    return logs


def _first(item: tuple[str, Any]) -> str:
    return item[0]
