"""CallbackList: one callback that dispatches every hook to many, building logs only on demand.

It also watches its callbacks' cost. A batch hook slower than the batch it wraps is reported
once with a warning (only a few batches are timed, so watching costs nothing afterwards), and
``profile=True`` (``fit(..., profile_callbacks=True)``) times every call of every hook.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from cadence.callbacks.callback import HOOKS, Callback, overrides, wants
from cadence.callbacks.dispatch import (
    BATCH_HOOKS,
    annotate,
    check_protocol,
    give,
    holds_tensors,
    hook_method,
    ordered,
    reads_lazy_logs,
    takes_logs_keyword,
)
from cadence.callbacks.history import History
from cadence.callbacks.progbar import ProgbarLogger
from cadence.callbacks.state_keys import check_callback_states, keyed_callbacks
from cadence.callbacks.timing import (
    LOGS_LABEL,
    MODES,
    TIMED_BATCHES,
    WARMUP_BATCHES,
    SlowCheck,
    callback_labels,
    warn_slow,
)
from cadence.logs import plain_logs

_TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end")


class CallbackList(Callback):
    """A list of callbacks that is itself a callback, as in Keras.

    Any object with the callback protocol is accepted, as Keras's ``CallbackList`` does (a
    ``keras.callbacks.Callback``, optuna's or wandb's callbacks): ``set_model`` and
    ``set_params`` are called when it has them, and each hook it implements. Hooks are called
    the Keras 3 way: ``logs`` positionally to epoch hooks and to begin/end hooks, by keyword to
    batch hooks (positionally to a batch hook whose parameter is not named ``logs``).

    It can drive a hand-written loop: call its hooks as ``fit`` does. A hook's logs are turned
    into a plain dict of floats sorted by key (one device-to-host transfer for all keys) only when
    some callback in the list implements that hook; built-in callbacks that read lazy logs at
    their own pace (the progress bar) receive the lazy view in batch hooks. Within one hook,
    every callback receives the same dict, so a value one callback adds (``learning_rate``) is
    seen by the next ones and by the caller.

    Args:
        callbacks: The callbacks, in the order their hooks run.
        add_history: Append a :class:`History` if the list has none.
        add_progbar: Append a :class:`ProgbarLogger` if the list has none.
        model: The model to attach to every callback.
        profile: Time every call of every hook; read the totals with :meth:`callback_times`.
        **params: The run's parameters (``epochs``, ``steps``, ``verbose``, ...).

    Raises:
        TypeError: If an element is a class instead of an instance, or an object with no hook.

    The slow-hook check: after the first ``WARMUP_BATCHES`` batches of a mode (training,
    evaluation, prediction), the next ``TIMED_BATCHES`` batches are timed, each batch hook of
    each callback separately and the step between the begin and end hooks. A callback's hook
    whose mean time exceeds the mean batch time (and ``SLOW_HOOK_FLOOR_SECONDS``) gets one
    ``UserWarning`` naming the callback, the hook and both times. Then timing stops.
    """

    def __init__(
        self,
        callbacks: Iterable[Any] | None = None,
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
        self.callbacks: list[Any] = list(_flatten(callbacks or []))
        for callback in self.callbacks:
            check_protocol(callback)
        self.history: History | None = None
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self.history is None:
                self.history = History()
                self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self._dispatch: dict[str, list[tuple[Any, Any, bool, bool]]] = {}
        if model is not None:  # First: which rank runs a hook may depend on the model (FSDP).
            self.set_model(model)
        self._rebuild()
        if params:
            self.set_params(params)

    def _rebuild(self) -> None:
        self._dispatch = {
            hook: [
                (
                    callback,
                    hook_method(callback, hook),
                    reads_lazy_logs(callback, hook),
                    hook in BATCH_HOOKS and takes_logs_keyword(getattr(callback, hook)),
                )
                for callback in ordered(self.callbacks, hook)
                if wants(callback, hook)
            ]
            for hook in HOOKS
        }
        self._labels = callback_labels(self.callbacks)
        for mode in MODES:
            if self.wants_batch_hooks(mode) and mode not in self._checks and mode not in self._checked:
                self._checks[mode] = SlowCheck()

    def append(self, callback: Any) -> None:
        """Add a callback at the end of the list."""
        check_protocol(callback)
        self.callbacks.append(callback)
        if self.model is not None:
            give(callback, "set_model", self.model)
        if self.params:
            give(callback, "set_params", self.params)
        if self.run is not None:
            give(callback, "set_run", self.run)
        self._rebuild()

    def set_model(self, model: Any) -> None:
        """Attach ``model`` to this list and every callback in it."""
        super().set_model(model)
        for callback in self.callbacks:
            give(callback, "set_model", model)
        if self._dispatch:  # Which rank runs a hook may depend on the model (FSDP): redo it.
            self._rebuild()

    def set_params(self, params: dict[str, Any]) -> None:
        """Give every callback the run's parameters."""
        super().set_params(params)
        for callback in self.callbacks:
            give(callback, "set_params", params)

    def set_run(self, run: Any) -> None:
        """Give the run's state to this list and to every callback that has ``set_run``.

        ``fit`` calls it with its :class:`~cadence.trainer.state.TrainState` before
        ``on_train_begin``; the state's ``callbacks`` becomes this list.
        """
        super().set_run(run)
        if run is not None:
            run.callbacks = self
        for callback in self.callbacks:
            give(callback, "set_run", run)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return every stateful callback's non-empty ``state_dict()``, keyed by its ``state_key``.

        Callbacks whose ``state_key`` is equal are numbered in their order (``"Name#2"``).
        """
        states = {}
        for key, callback in keyed_callbacks(self.callbacks).items():
            value = callback.state_dict()
            if value:
                states[key] = value
        return states

    def check_state_dict(self, states: Any) -> None:
        """Raise a ``ValueError`` unless ``states`` (from :meth:`state_dict`) fits these callbacks.

        Every saved state must belong to a callback of this list (by ``state_key``), every
        callback of this list that has a state must have a saved one, and each saved state must
        be a dict. Nothing is loaded.
        """
        check_callback_states(keyed_callbacks(self.callbacks), states)

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Check ``states`` with :meth:`check_state_dict`, then give each callback its own.

        Raises:
            ValueError: If the states do not fit these callbacks, or a callback refuses its
                state (the message names the callback).
        """
        keyed = keyed_callbacks(self.callbacks)
        check_callback_states(keyed, states)
        for key, value in states.items():
            try:
                keyed[key].load_state_dict(value)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"The saved state of callback {key} could not be loaded: {error!r}."
                ) from error

    # ----------------------------------------------------------------- queries
    def wants(self, hook: str) -> bool:
        """Return whether any callback is called for ``hook``."""
        return bool(self._dispatch[hook])

    def wants_batch_hooks(self, mode: str) -> bool:
        """Return whether any callback overrides a batch hook of ``mode`` (``"train"``, ...).

        A loop may skip calling both batch hooks of a mode when this is False: they would do
        nothing (no callback to call, nothing to time).
        """
        return bool(self._dispatch[f"on_{mode}_batch_begin"] or self._dispatch[f"on_{mode}_batch_end"])

    def needs_plain_logs(self, hook: str) -> bool:
        """Return whether some callback reads ``hook``'s logs as floats (not the lazy view).

        With several processes ``fit`` then sums the metric states over ranks for that hook at
        every batch, so those logs hold global values (the lazy view holds this rank's own).
        """
        return any(not lazy for _, _, lazy, _ in self._dispatch[hook])

    def may_stop_each_batch(self) -> bool:
        """Return whether a callback that may stop training implements a training-batch hook.

        Read from the callback classes' ``may_stop_training`` (True unless a class says False).
        """
        return any(
            getattr(callback, "may_stop_training", True) and overrides(callback, hook)
            for callback in self.callbacks
            for hook in _TRAIN_BATCH_HOOKS
        )

    # ----------------------------------------------------------------- dispatch
    def _call(
        self,
        hook: str,
        args: tuple,
        logs: Mapping[str, Any] | None,
        sink: dict[tuple[str, str], float] | None = None,
    ) -> None:
        """Call ``hook`` on every callback that wants it: the one dispatch loop.

        Timed into ``sink`` (the slow-hook check) and the profile when asked; the logs become a
        sorted dict of floats once, at the first callback that needs them.
        """
        entries = self._dispatch[hook]
        if not entries:
            return
        timed = self.profile or sink is not None
        clock = time.perf_counter
        outputs = hook == "on_predict_batch_end"  # {"outputs": ...} keeps its tensors, as in Keras.
        plain: dict[str, Any] | None = None
        for callback, method, lazy, keyword in entries:
            if outputs:
                value = logs
            elif lazy:
                value = logs if logs is not None else {}
            else:
                if plain is None:
                    start = clock() if timed else 0.0
                    reads_device = self.profile and holds_tensors(logs)
                    plain = plain_logs(logs)
                    if reads_device:
                        self._record((LOGS_LABEL, hook), clock() - start)
                value = plain
            start = clock() if timed else 0.0
            try:
                if keyword:  # Batch hooks, Keras 3's way.
                    method(*args, logs=value)
                else:
                    method(*args, value)
            except BaseException as error:
                annotate(error, callback, hook)
                raise
            if timed:
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
        self._call(hook, (batch,), logs, check.hook_time if check.measuring else None)
        check.batch_start = time.perf_counter()

    def _batch_end(self, mode: str, hook: str, batch: int, logs: Any) -> None:
        check = self._checks.get(mode)
        if check is None:
            self._call(hook, (batch,), logs)
            return
        if check.measuring:
            check.batch_time += time.perf_counter() - check.batch_start
        self._call(hook, (batch,), logs, check.hook_time if check.measuring else None)
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

    # ----------------------------------------------------------------- hooks
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
        self._batch_end("predict", "on_predict_batch_end", batch, logs)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _flatten(callbacks: Any) -> Iterable[Any]:
    if isinstance(callbacks, CallbackList):
        yield from callbacks.callbacks
        return
    if not isinstance(callbacks, Iterable) or isinstance(callbacks, str | bytes | Mapping):
        yield callbacks  # One callback rather than a list of them.
        return
    for callback in callbacks:
        if isinstance(callback, CallbackList):
            yield from callback.callbacks
        else:
            yield callback
