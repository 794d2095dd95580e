"""Callbacks in several processes: which hooks run on rank 0 only, and agreeing to stop.

Rank 0 only
===========

A callback's hooks run on rank 0 only when its class says so with ``rank_zero_only = True``
(every hook; :func:`cadence.distributed.rank_zero_only` used as a class decorator sets it) or
``rank_zero_only = {"on_epoch_end", ...}`` (those hooks). cadence's own callbacks that write
files, print or post are set by the table below, so their files need no change. Callbacks
that decide something every rank needs (``EarlyStopping``, ``TerminateOnNaN``, learning-rate
schedules, ``SwapEMAWeights``, ``History``) run on every rank: their logs are the same
everywhere, since metric states are summed over ranks before logs are built.

==========================================  ==============================================
callback                                    hooks run on rank 0 only
==========================================  ==============================================
ProgbarLogger, CSVLogger, TensorBoard,      all
MLflowLogger, MetricsLogger, RemoteMonitor
ModelCheckpoint                             ``on_train_batch_end``, ``on_epoch_end`` (the
                                            saves; the direction is resolved everywhere)
==========================================  ==============================================

A skipped hook still counts for building logs, so every rank converts (and all-reduces) the
same logs at the same points.

Agreeing to stop
================

``model.stop_training`` is made the same on every rank (True when any rank set it) after
``on_epoch_end`` of every epoch, and after every training batch when some callback that may
stop training overrides ``on_train_batch_begin``/``on_train_batch_end`` (``TerminateOnNaN``,
``LambdaCallback``, your own). cadence's callbacks that never stop training are not counted,
so with them alone there is no per-batch collective. Every rank then leaves the epoch after
the same batch, and none waits forever for the others.
"""

from __future__ import annotations

from typing import Any

from cadence.distributed import core
from cadence.distributed.strategy import shards

_ALL = None

#: cadence callbacks (by class name, defined under ``cadence.callbacks``) and the hooks that
#: run on rank 0 only (``None``: all of them).
RANK_ZERO_HOOKS: dict[str, frozenset[str] | None] = {
    "ProgbarLogger": _ALL,
    "CSVLogger": _ALL,
    "TensorBoard": _ALL,
    "MLflowLogger": _ALL,
    "MetricsLogger": _ALL,
    "RemoteMonitor": _ALL,
    "ModelCheckpoint": frozenset({"on_train_batch_end", "on_batch_end", "on_epoch_end"}),
}

#: cadence callbacks that never set ``model.stop_training``.
NEVER_STOP = frozenset({
    "ProgbarLogger", "History", "CSVLogger", "TensorBoard", "MLflowLogger", "MetricsLogger",
    "RemoteMonitor", "ModelCheckpoint", "BackupAndRestore", "SwapEMAWeights",
    "LearningRateScheduler", "HyperparameterScheduler", "TorchScheduler", "ReduceLROnPlateau",
})

_TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end")


def _builtin(callback: Any, names: Any) -> str | None:
    """Return the name of the cadence callback class ``callback`` is (or derives from)."""
    for cls in type(callback).__mro__:
        if cls.__module__.startswith("cadence.callbacks.") and cls.__name__ in names:
            return cls.__name__
    return None


def runs_on_this_rank(callback: Any, hook: str) -> bool:
    """Return whether ``callback``'s ``hook`` runs on this rank (always, in one process)."""
    if core.is_rank_zero():
        return True
    if getattr(callback, "collective_when_sharded", False) and shards(getattr(callback, "model", None)):
        return True  # Saving a sharded (FSDP) model takes every rank; it writes on rank 0 itself.
    declared = getattr(type(callback), "rank_zero_only", None)
    if declared is None:
        name = _builtin(callback, RANK_ZERO_HOOKS)
        if name is None:
            return True
        hooks = RANK_ZERO_HOOKS[name]
        return hooks is not None and hook not in hooks
    if isinstance(declared, bool):
        return not declared
    return hook not in set(declared)


def needs_plain_logs(callbacks: Any, hook: str) -> bool:
    """Return whether some callback needs ``hook``'s logs as floats (not the lazy view).

    ``fit`` then sums the metric states over ranks for that hook at every batch (the same on
    every rank, since a skipped rank-zero hook still counts), so those logs hold global
    values. Callbacks that read the lazy view (the progress bar, TensorBoard) see this rank's
    own running values between two epoch ends.
    """
    from cadence.callbacks.callback import overrides

    return any(
        overrides(callback, hook) and callback.wants_hook(hook)
        and not getattr(callback, "accepts_lazy_logs", False)
        for callback in callbacks
    )


def may_stop_each_batch(callbacks: Any) -> bool:
    """Return whether a callback that may stop training overrides a training-batch hook."""
    from cadence.callbacks.callback import overrides

    for callback in callbacks:
        if _builtin(callback, NEVER_STOP) is not None:
            continue
        if any(overrides(callback, hook) for hook in _TRAIN_BATCH_HOOKS):
            return True
    return False


class StopAgreement:
    """Make ``model.stop_training`` the same on every rank, at the points every rank reaches.

    Args:
        callbacks: The run's callbacks (decides whether to agree after every batch).
        model: The model whose ``stop_training`` is agreed.
    """

    def __init__(self, callbacks: Any, model: Any) -> None:
        self.model = model
        self.each_batch = may_stop_each_batch(callbacks)

    def after_batch(self) -> bool:
        """Return whether every rank leaves the epoch now (agreed when it can change per batch)."""
        if not self.each_batch:
            return False
        self.model.stop_training = core.any_rank(self.model.stop_training, self.model.device)
        return self.model.stop_training

    def after_epoch(self) -> bool:
        """Agree on ``stop_training`` at the end of an epoch; return it."""
        self.model.stop_training = core.any_rank(self.model.stop_training, self.model.device)
        return self.model.stop_training
