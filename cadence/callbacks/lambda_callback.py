"""LambdaCallback: a callback made of plain functions, one per hook."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from cadence.callbacks.callback import HOOKS, LEGACY_ALIASES, Callback

_VALID = (*HOOKS, *LEGACY_ALIASES.values())
_INDEXED = frozenset(h for h in _VALID if "batch" in h or "epoch" in h)


def _indexed(function: Callable[..., Any]) -> Callable[..., Any]:
    def hook(index: int, logs: dict | None = None) -> Any:
        return function(index, logs)

    hook.__wrapped__ = function  # type: ignore[attr-defined]
    return hook


def _plain(function: Callable[..., Any]) -> Callable[..., Any]:
    def hook(logs: dict | None = None) -> Any:
        return function(logs)

    hook.__wrapped__ = function  # type: ignore[attr-defined]
    return hook


class LambdaCallback(Callback):
    """Build a callback on the fly from functions, as Keras's ``LambdaCallback``.

    Each function is called with positional arguments: ``(epoch, logs)`` for the epoch hooks,
    ``(batch, logs)`` for the batch hooks and ``(logs,)`` for the begin/end hooks, so
    ``lambda epoch, logs: ...`` works whatever its parameters are named. Any hook of
    :class:`Callback` can be given by keyword, including ``on_test_*``, ``on_predict_*`` and
    the legacy ``on_batch_begin`` / ``on_batch_end``.

    Args:
        on_epoch_begin: Called at the start of every epoch.
        on_epoch_end: Called at the end of every epoch.
        on_train_begin: Called at the start of training.
        on_train_end: Called at the end of training.
        on_train_batch_begin: Called at the start of every training batch.
        on_train_batch_end: Called at the end of every training batch.
        **hooks: Any other hook by name, e.g. ``on_test_end=fn``. A keyword that names no hook
            is kept as an attribute of the callback, as Keras does
            (``LambdaCallback(custom_method=fn).custom_method is fn``); one that starts with
            ``on_`` (a misspelt hook, never called) also gives a warning.

    Raises:
        TypeError: For a hook whose value is not callable.
    """

    def __init__(
        self,
        on_epoch_begin: Callable[..., Any] | None = None,
        on_epoch_end: Callable[..., Any] | None = None,
        on_train_begin: Callable[..., Any] | None = None,
        on_train_end: Callable[..., Any] | None = None,
        on_train_batch_begin: Callable[..., Any] | None = None,
        on_train_batch_end: Callable[..., Any] | None = None,
        **hooks: Any,
    ) -> None:
        super().__init__()
        extras = {name: value for name, value in hooks.items() if name not in _VALID}
        for name, value in extras.items():  # Kept as attributes, as Keras does.
            setattr(self, name, value)
        misspelt = sorted(name for name in extras if name.startswith("on_"))
        if misspelt:
            warnings.warn(
                f"LambdaCallback received {', '.join(misspelt)}, which name no hook: kept as "
                f"attributes (as Keras does) but never called. Valid hooks are: {', '.join(_VALID)}.",
                stacklevel=2,
            )
        hooks = {name: value for name, value in hooks.items() if name in _VALID}
        hooks.update(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
        )
        for name, function in hooks.items():
            if function is None:
                continue
            if not callable(function):
                raise TypeError(
                    f"LambdaCallback {name} must be callable or None; received "
                    f"{type(function).__name__}: {function!r}."
                )
            wrap = _indexed if name in _INDEXED else _plain
            setattr(self, name, wrap(function))
