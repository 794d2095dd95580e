"""How one callback's hook is called: which method, which logs, which calling convention.

Decided once per callback and hook when a :class:`~cadence.callbacks.CallbackList` is built, so
that dispatching a hook decides nothing per call.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from cadence import distributed
from cadence.callbacks.callback import HOOKS, LEGACY_ALIASES
from cadence.overriding import defining_class, redefined_below

BATCH_HOOKS = frozenset(h for h in HOOKS if "_batch_" in h)
_PROTOCOL = ("set_model", "set_params", *HOOKS)


def skipped(*args: Any, **kwargs: Any) -> None:
    """Stand in for a rank-zero-only hook on the other ranks (it still counts for logs)."""


def hook_method(callback: Any, hook: str) -> Any:
    """Return ``callback``'s ``hook``, or a no-op where it runs on rank 0 only (distributed)."""
    if distributed.is_initialized() and not distributed.runs_on_this_rank(callback, hook):
        return skipped
    return getattr(callback, hook)


def reads_lazy_logs(callback: Any, hook: str) -> bool:
    """Return whether ``callback`` takes ``hook``'s logs lazily (device values, unsorted).

    Only for batch hooks of a class that says ``accepts_lazy_logs = True`` and that no subclass
    (or the instance) redefines below that class: a user's subclass of a built-in that
    overrides a hook gets plain floats.
    """
    if hook not in BATCH_HOOKS or not getattr(callback, "accepts_lazy_logs", False):
        return False
    owner = defining_class(type(callback), "accepts_lazy_logs")
    if owner is None:  # Set on the instance itself.
        return True
    names = [hook] + ([LEGACY_ALIASES[hook]] if hook in LEGACY_ALIASES else [])
    return not redefined_below(callback, owner, names)


def takes_logs_keyword(method: Any) -> bool:
    """Return whether ``method`` accepts ``logs=`` (Keras 3's batch-hook call); else pass it positionally."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == "logs" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        for p in parameters
    )


def annotate(error: BaseException, callback: Any, hook: str) -> None:
    """Add a note naming the callback and hook to an error raised inside a callback, once."""
    if getattr(error, "_cadence_annotated", False):
        return
    error.add_note(f"Raised by callback {type(callback).__name__} in {hook}.")
    try:
        error._cadence_annotated = True  # type: ignore[attr-defined]
    except AttributeError:
        pass


def holds_tensors(logs: Mapping[str, Any] | None) -> bool:
    """Return whether turning ``logs`` into floats reads the device (for the profile table)."""
    if not logs:
        return False
    return type(logs) is not dict or any(isinstance(v, torch.Tensor) for v in logs.values())


def give(callback: Any, setter: str, value: Any) -> None:
    """Call ``callback.set_model`` / ``set_params`` / ``set_run`` when the callback has it."""
    method = getattr(callback, setter, None)
    if callable(method):
        method(value)


def check_protocol(callback: Any) -> None:
    """Refuse what cannot be a callback: a class, or an object with none of the protocol."""
    if isinstance(callback, type):
        raise TypeError(
            f"callbacks must be callback instances; received the class {callback.__name__}. "
            f"Pass an instance, such as {callback.__name__}()."
        )
    if not any(callable(getattr(callback, name, None)) for name in _PROTOCOL):
        raise TypeError(
            "Every callback must have the callback protocol (set_model, set_params and hooks "
            f"such as on_epoch_end); received {type(callback).__name__}: {callback!r}."
        )


def ordered(callbacks: list[Any], hook: str) -> list[Any]:
    """Put callbacks with ``backs_up_state`` first in ``on_train_begin``, last in other hooks.

    A backup then restores state before other callbacks read it and saves it after they wrote it.
    """
    backups = [c for c in callbacks if getattr(c, "backs_up_state", False)]
    if not backups:
        return callbacks
    others = [c for c in callbacks if not getattr(c, "backs_up_state", False)]
    return backups + others if hook == "on_train_begin" else others + backups
