"""CallbackList: one callback that dispatches every hook to many, building logs only on demand.

It also watches its callbacks' cost. A batch hook slower than the batch it wraps is reported
once with a warning (only a few batches are timed, so watching costs nothing afterwards), and
``profile=True`` (``fit(..., profile_callbacks=True)``) times every call of every hook.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from cadence import distributed
from cadence.callbacks.callback import HOOKS, Callback, overrides
from cadence.callbacks.history import History
from cadence.callbacks.progbar import ProgbarLogger
from cadence.callbacks.timing import (
    LOGS_LABEL,
    MODES,
    TIMED_BATCHES,
    WARMUP_BATCHES,
    SlowCheck,
    callback_labels,
    warn_slow,
)
from cadence.trainer.logs import to_python

_BATCH_HOOKS = frozenset(
    h for h in HOOKS if "_batch_" in h
)

def _skipped(*args: Any, **kwargs: Any) -> None:
    """Stand in for a rank-zero-only hook on the other ranks (it still counts for logs)."""


def _hook_method(callback: Callback, hook: str) -> Any:
    """Return ``callback``'s ``hook``, or a no-op where it runs on rank 0 only (distributed)."""
    if distributed.is_initialized() and not distributed.runs_on_this_rank(callback, hook):
        return _skipped
    return getattr(callback, hook)


def _annotate(error: BaseException, callback: Callback, hook: str) -> None:
    """Add a note naming the callback and hook to an error raised inside a callback, once."""
    if getattr(error, "_cadence_annotated", False):
        return
    error.add_note(f"Raised by callback {type(callback).__name__} in {hook}.")
    try:
        error._cadence_annotated = True  # type: ignore[attr-defined]
    except AttributeError:
        pass


class CallbackList(Callback):
    """A list of callbacks that is itself a callback, as in Keras.

    It can drive a hand-written loop: call its hooks as ``fit`` does. A hook's logs are turned
    into a plain dict of floats (one device-to-host transfer for all keys) only when some
    callback in the list overrides that hook; callbacks that read lazy logs at their own pace
    (the progress bar) receive the lazy view. Within one hook, every callback receives the
    same dict, so a value one callback adds (``learning_rate``) is seen by the next ones.

    Args:
        callbacks: The callbacks, in the order their hooks run.
        add_history: Append a :class:`History` if the list has none.
        add_progbar: Append a :class:`ProgbarLogger` if the list has none.
        model: The model to attach to every callback.
        profile: Time every call of every hook; read the totals with :meth:`callback_times`.
        **params: The run's parameters (``epochs``, ``steps``, ``verbose``).

    The slow-hook check: after the first ``WARMUP_BATCHES`` batches of a mode (training,
    evaluation, prediction), the next ``TIMED_BATCHES`` batches are timed, each batch hook of
    each callback separately and the step between the begin and end hooks. A callback's hook
    whose mean time exceeds the mean batch time (and ``SLOW_HOOK_FLOOR_SECONDS``) gets one
    ``UserWarning`` naming the callback, the hook and both times. Then timing stops.
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        profile: bool = False,
        **params: Any,
    ) -> None:
        super().__init__()
        self.profile = bool(profile)
        self._times: dict[tuple[str, str], list[float]] = {}
        self._checks: dict[str, SlowCheck] = {}
        self._labels: dict[int, str] = {}
        self._checked: set[str] = set()
        self.callbacks: list[Callback] = list(_flatten(callbacks or []))
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    "Every callback must be an instance of cadence.callbacks.Callback; "
                    f"received {type(callback).__name__}: {callback!r}."
                )
        self.history: History | None = None
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self.history is None:
                self.history = History()
                self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self._dispatch: dict[str, list[tuple[Callback, Any, bool]]] = {}
        if model is not None:  # First: which rank runs a hook may depend on the model (FSDP).
            self.set_model(model)
        self._rebuild()
        if params:
            self.set_params(params)

    def _rebuild(self) -> None:
        self._dispatch = {
            hook: [
                (cb, _hook_method(cb, hook), bool(getattr(cb, "accepts_lazy_logs", False)))
                for cb in _ordered(self.callbacks, hook)
                if overrides(cb, hook) and cb.wants_hook(hook)
            ]
            for hook in HOOKS
        }
        self._labels = callback_labels(self.callbacks)
        for mode in MODES:
            hooked = self._dispatch[f"on_{mode}_batch_begin"] or self._dispatch[f"on_{mode}_batch_end"]
            if hooked and mode not in self._checks and mode not in self._checked:
                self._checks[mode] = SlowCheck()

    def append(self, callback: Callback) -> None:
        """Add a callback at the end of the list."""
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)
        self._rebuild()

    def set_model(self, model: Any) -> None:
        """Attach ``model`` to this list and every callback in it."""
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        """Give every callback the run's parameters."""
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def wants(self, hook: str) -> bool:
        """Return whether any callback overrides ``hook``."""
        return bool(self._dispatch[hook])

    def wants_batch_hooks(self, mode: str) -> bool:
        """Return whether any callback overrides a batch hook of ``mode`` (``"train"``, ...).

        A loop may skip calling both batch hooks of a mode when this is False: they would do
        nothing (no callback to call, nothing to time).
        """
        return bool(self._dispatch[f"on_{mode}_batch_begin"] or self._dispatch[f"on_{mode}_batch_end"])

    def _call(self, hook: str, args: tuple, logs: Mapping[str, Any] | None) -> None:
        entries = self._dispatch[hook]
        if not entries:
            return
        if self.profile:
            self._call_timed(hook, args, logs, None)
            return
        plain: dict[str, Any] | None = None
        for callback, method, lazy in entries:
            if hook == "on_predict_batch_end":
                value = logs  # {"outputs": ...} keeps its tensors, as in Keras.
            elif lazy and hook in _BATCH_HOOKS:
                value = logs if logs is not None else {}
            else:
                if plain is None:
                    plain = _plain(logs)
                value = plain
            try:
                method(*args, logs=value)
            except BaseException as error:
                _annotate(error, callback, hook)
                raise

    def on_train_begin(self, logs=None):
        """Dispatch ``on_train_begin``."""
        self._call("on_train_begin", (), logs)

    def on_train_end(self, logs=None):
        """Dispatch ``on_train_end``."""
        self._call("on_train_end", (), logs)

    def on_epoch_begin(self, epoch, logs=None):
        """Dispatch ``on_epoch_begin``."""
        self._call("on_epoch_begin", (epoch,), logs)

    def on_epoch_end(self, epoch, logs=None):
        """Dispatch ``on_epoch_end``."""
        self._call("on_epoch_end", (epoch,), logs)

    def _call_timed(
        self, hook: str, args: tuple, logs: Any, sink: dict[tuple[str, str], float] | None
    ) -> None:
        """Dispatch like :meth:`_call`, timing each callback (into ``sink`` and the profile)."""
        clock = time.perf_counter
        plain: dict[str, Any] | None = None
        for callback, method, lazy in self._dispatch[hook]:
            if hook == "on_predict_batch_end" or (lazy and hook in _BATCH_HOOKS):
                value = logs if logs is not None or hook == "on_predict_batch_end" else {}
            else:
                if plain is None:
                    start = clock()
                    plain = _plain(logs)
                    if self.profile and logs and plain is not logs:
                        self._record((LOGS_LABEL, hook), clock() - start)
                value = plain
            start = clock()
            try:
                method(*args, logs=value)
            except BaseException as error:
                _annotate(error, callback, hook)
                raise
            seconds = clock() - start
            key = (self._labels[id(callback)], hook)
            if sink is not None:
                sink[key] = sink.get(key, 0.0) + seconds
            if self.profile:
                self._record(key, seconds)

    def _record(self, key: tuple[str, str], seconds: float) -> None:
        entry = self._times.get(key)
        if entry is None:
            self._times[key] = [seconds, 1]
        else:
            entry[0] += seconds
            entry[1] += 1

    def _batch_begin(self, mode: str, hook: str, batch: int, logs: Any) -> None:
        check = self._checks.get(mode)
        if check is None:
            self._call(hook, (batch,), logs)
            return
        if check.measuring:
            self._call_timed(hook, (batch,), logs, check.hook_time)
        else:
            self._call(hook, (batch,), logs)
        check.batch_start = time.perf_counter()

    def _batch_end(self, mode: str, hook: str, batch: int, logs: Any) -> None:
        check = self._checks.get(mode)
        if check is None:
            self._call(hook, (batch,), logs)
            return
        if check.measuring:
            check.batch_time += time.perf_counter() - check.batch_start
            self._call_timed(hook, (batch,), logs, check.hook_time)
        else:
            self._call(hook, (batch,), logs)
        check.batches += 1
        if check.batches >= WARMUP_BATCHES + TIMED_BATCHES:
            del self._checks[mode]
            self._checked.add(mode)
            warn_slow(check)

    def callback_times(self) -> list[dict[str, Any]]:
        """Return the time spent in every callback's hooks, slowest first (with ``profile``).

        Returns:
            One dict per callback and hook: ``callback`` (its class name, numbered when two
            share it), ``hook``, ``calls``, ``total_s`` and ``mean_s``. The pseudo-callback
            ``"(logs to floats)"`` is the conversion of device logs to Python floats that a
            hook needed. Empty when the list was not created with ``profile=True``.
        """
        rows = [
            {"callback": label, "hook": hook, "calls": int(calls), "total_s": total,
             "mean_s": total / calls}
            for (label, hook), (total, calls) in self._times.items()
        ]
        return sorted(rows, key=lambda row: row["total_s"], reverse=True)

    def on_train_batch_begin(self, batch, logs=None):
        """Dispatch ``on_train_batch_begin`` (and the legacy ``on_batch_begin``)."""
        self._batch_begin("train", "on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        """Dispatch ``on_train_batch_end`` (and the legacy ``on_batch_end``)."""
        self._batch_end("train", "on_train_batch_end", batch, logs)

    def on_batch_begin(self, batch, logs=None):
        """Dispatch the legacy ``on_batch_begin`` as ``on_train_batch_begin``."""
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        """Dispatch the legacy ``on_batch_end`` as ``on_train_batch_end``."""
        self.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        """Dispatch ``on_test_begin``."""
        self._call("on_test_begin", (), logs)

    def on_test_end(self, logs=None):
        """Dispatch ``on_test_end``."""
        self._call("on_test_end", (), logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Dispatch ``on_test_batch_begin``."""
        self._batch_begin("test", "on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        """Dispatch ``on_test_batch_end``."""
        self._batch_end("test", "on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        """Dispatch ``on_predict_begin``."""
        self._call("on_predict_begin", (), logs)

    def on_predict_end(self, logs=None):
        """Dispatch ``on_predict_end``."""
        self._call("on_predict_end", (), logs)

    def on_predict_batch_begin(self, batch, logs=None):
        """Dispatch ``on_predict_batch_begin``."""
        self._batch_begin("predict", "on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        """Dispatch ``on_predict_batch_end``; its logs are ``{"outputs": ...}``, not converted."""
        if self.profile or "predict" in self._checks:
            self._batch_end("predict", "on_predict_batch_end", batch, logs)
            return
        for callback, method, _ in self._dispatch["on_predict_batch_end"]:
            try:
                method(batch, logs=logs)
            except BaseException as error:
                _annotate(error, callback, "on_predict_batch_end")
                raise

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _plain(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``logs`` itself when it already is a plain dict (so mutations persist), else convert."""
    if type(logs) is dict and not any(isinstance(v, torch.Tensor) for v in logs.values()):
        return logs
    return to_python(logs)


def _ordered(callbacks: list[Callback], hook: str) -> list[Callback]:
    """Put callbacks with ``backs_up_state`` first in ``on_train_begin``, last in other hooks.

    A backup then restores state before other callbacks read it and saves it after they wrote it.
    """
    backups = [c for c in callbacks if getattr(c, "backs_up_state", False)]
    if not backups:
        return callbacks
    others = [c for c in callbacks if not getattr(c, "backs_up_state", False)]
    return backups + others if hook == "on_train_begin" else others + backups


def _flatten(callbacks: Iterable[Any]) -> Iterable[Any]:
    if isinstance(callbacks, Callback):
        yield callbacks
        return
    for callback in callbacks:
        if isinstance(callback, CallbackList):
            yield from callback.callbacks
        else:
            yield callback
