"""Callbacks in several processes: which hooks run on rank 0 only, and agreeing to stop.

Rank 0 only
===========

What a callback does is declared on its class, so a user's callback declares it the same way
(see :class:`cadence.callbacks.Callback`):

- ``writes_files = True``: every hook runs on rank 0 only (cadence's ProgbarLogger, CSVLogger,
  TensorBoard, MLflowLogger, MetricsLogger, RemoteMonitor); a set of hook names: those hooks run
  on rank 0 only (ModelCheckpoint's saving hooks; BackupAndRestore's writing and deleting hooks,
  every rank restoring the backup in ``on_train_begin``); ``False`` (the default): every rank.
- ``rank_zero_only``, set by :func:`cadence.distributed.rank_zero_only` used as a class
  decorator (or by hand, ``True`` or a set of hook names), says the same and wins over
  ``writes_files``.
- ``collective_when_sharded = True``: under ``strategy="fsdp"`` every hook runs on every rank,
  whatever ``writes_files`` says, because saving a sharded model takes every rank (gathering the
  whole weights, or writing each rank's shard); the callback then writes on rank 0 itself
  (``ModelCheckpoint``). ``BackupAndRestore`` says ``writes_files = False``: every rank takes
  part in every backup (each rank's metric states; its shard under FSDP) and rank 0 writes the
  file.

Callbacks that decide something every rank needs (``EarlyStopping``, ``TerminateOnNaN``,
learning-rate schedules, ``SwapEMAWeights``, ``History``) run on every rank: their logs are the
same everywhere, since metric states are summed over ranks before logs are built. A skipped hook
still counts for building logs, so every rank converts (and all-reduces) the same logs at the
same points.

Agreeing to stop
================

``model.stop_training`` is made the same on every rank (True when any rank set it) after
``on_epoch_end`` of every epoch, and after every training batch when some callback whose class
says ``may_stop_training = True`` (the default: ``TerminateOnNaN``, ``LambdaCallback``, your own)
overrides ``on_train_batch_begin``/``on_train_batch_end``
(:meth:`cadence.callbacks.CallbackList.may_stop_each_batch`). cadence's callbacks that never
stop training say ``may_stop_training = False``, so with them alone there is no per-batch
collective. Every rank then leaves the epoch after the same batch, and none waits forever for
the others.
"""

from __future__ import annotations

from typing import Any

from cadence.distributed import core
from cadence.distributed.strategy import shards


def rank_zero_hooks(callback: Any) -> bool | frozenset[str]:
    """Return which of ``callback``'s hooks run on rank 0 only: all (True), none (False), or a set.

    Read from the class attributes ``rank_zero_only`` (when set) or ``writes_files``; an object
    that declares neither runs everywhere.
    """
    cls = type(callback)
    declared = getattr(cls, "rank_zero_only", None)
    if declared is None:
        declared = getattr(cls, "writes_files", False)
    if isinstance(declared, bool):
        return declared
    if isinstance(declared, str):
        raise TypeError(
            f"{cls.__name__}.writes_files / rank_zero_only must be True, False or a set of hook "
            f"names; received the string {declared!r}."
        )
    return frozenset(declared)


def runs_on_this_rank(callback: Any, hook: str) -> bool:
    """Return whether ``callback``'s ``hook`` runs on this rank (always, in one process)."""
    if core.is_rank_zero():
        return True
    if getattr(type(callback), "collective_when_sharded", False) and shards(
        getattr(callback, "model", None)
    ):
        return True  # Saving a sharded (FSDP) model takes every rank; it writes on rank 0 itself.
    hooks = rank_zero_hooks(callback)
    if isinstance(hooks, bool):
        return not hooks
    return hook not in hooks


class StopAgreement:
    """Make ``model.stop_training`` the same on every rank, at the points every rank reaches.

    Args:
        model: The model whose ``stop_training`` is agreed.
        each_batch: Whether to agree after every training batch too
            (:meth:`cadence.callbacks.CallbackList.may_stop_each_batch`).
    """

    def __init__(self, model: Any, each_batch: bool) -> None:
        self.model = model
        self.each_batch = bool(each_batch)

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
