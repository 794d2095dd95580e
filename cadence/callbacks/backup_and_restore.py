"""BackupAndRestore: resume an interrupted ``fit`` exactly where it stopped, to the bit."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from cadence import distributed, io, saving
from cadence.callbacks.callback import Callback, overridden_below
from cadence.trainer.state import check_state_dict

BACKUP_FORMAT = "cadence-backup"
BACKUP_VERSION = 1
BACKUP_NAME = "backup.cadence"


class BackupAndRestore(Callback):
    """Back up the whole training run, and resume from the backup when ``fit`` starts again.

    Each backup is one checksummed file, ``<backup_dir>/backup.cadence``, holding the model's
    weights, the optimizer's state (with ``iterations``), the gradient scaler, the gradients of an
    unfinished accumulation, every metric's state (the running averages of a partly done epoch),
    ``model.stop_training``, the :class:`~cadence.trainer.state.TrainState` (epoch, batch within
    the epoch, global step, data seed and position, the RNG states of Python, numpy, torch and
    CUDA, the logs of the last epoch) and the ``state_dict()`` of every other callback in the run
    (``History``, ``EarlyStopping``'s counters, ``ModelCheckpoint``'s best value, ``CSVLogger``'s
    rows, ...), keyed by ``state_key`` (``"ModelCheckpoint"``, then ``"ModelCheckpoint_1"``, ...
    for callbacks that share one).

    When ``fit`` starts and a backup exists, everything is restored before any other callback's
    ``on_train_begin`` runs, and the run continues at the next batch, with the same data order and
    random numbers: killed at any instant (SIGKILL, out of memory, a pre-empted machine) and
    restarted with the same command, it ends with the same weights, History and CSV rows as a run
    that never stopped. The backup is taken after every other callback has run its hook, so it
    holds what they wrote for that batch or epoch.

    Files are never half-written: the backup is written to a temporary file in the same folder,
    fsynced and renamed into place. With ``double_checkpoint`` the previous backup is kept (as
    ``backup.cadence.prev``) until the new one is complete, and a truncated or corrupt newest
    backup is skipped, with a warning, for the previous one. Loading never unpickles Python
    objects.

    Limits: the data order is reproduced for arrays, tensors, data sets and sequences
    read by cadence; a ``DataLoader`` with its own shuffling sampler resumes exactly only at epoch
    boundaries; a ``Sequence``'s own state (e.g. indexes it shuffles in ``on_epoch_end``) is saved
    only if it defines ``state_dict()`` and ``load_state_dict()``; a Python generator cannot be
    rewound. Non-deterministic GPU kernels make any two runs differ, interrupted or not.

    Args:
        backup_dir: The folder of the backup (created when needed). Use one folder per run.
        save_freq: ``"epoch"`` to back up at the end of every epoch, or an integer ``n`` to back
            up after every ``n`` training batches (counted over the whole run).
        double_checkpoint: Keep the previous backup until the new one is complete, and fall
            back to it when the newest one cannot be read.
        delete_checkpoint: Delete the backup when training ends normally (``on_train_end``); an
            exception or a kill leaves it for the next run.
        reshard: Resume a sharded (``strategy="fsdp"``) backup on another number of processes
            (see :mod:`cadence.distributed.checkpoint`); refused otherwise.
    """

    #: Restore in ``on_train_begin`` before, and save in every other hook after, other callbacks.
    backs_up_state = True
    #: Batch logs are not read: receive the lazy view, so that no batch forces a host sync.
    accepts_lazy_logs = True
    #: In several processes every rank takes part in a backup (its metric states; its shard under
    #: FSDP) and rank 0 writes the file (cadence.distributed.checkpoint): hooks run on every rank.
    rank_zero_only = False

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int = "epoch",
        double_checkpoint: bool = True,
        delete_checkpoint: bool = True,
        reshard: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(backup_dir, str | os.PathLike) or not os.fspath(backup_dir):
            raise ValueError(
                f"backup_dir must be a non-empty path to a folder; received backup_dir={backup_dir!r}."
            )
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(
                "save_freq must be 'epoch' or a positive integer number of batches; received "
                f"save_freq={save_freq!r}."
            )
        for name, value in (
            ("double_checkpoint", double_checkpoint), ("delete_checkpoint", delete_checkpoint)
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False; received {name}={value!r}.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.reshard = reshard
        #: The file the last restore read (``None`` when ``fit`` started afresh).
        self.restored_from: Path | None = None
        self._save_at_epoch_end = False

    @property
    def path(self) -> Path:
        """The newest backup's file."""
        return Path(self.backup_dir) / BACKUP_NAME

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        """Restore the newest readable backup, if there is one, before any other callback runs."""
        state = self._train_state()
        self.restored_from = None
        self._save_at_epoch_end = False
        found = self._read()
        distributed.check_same_backup(found and found[0], self.backup_dir)  # Every rank the same.
        if found is None:
            return
        payload, source = found
        self._restore(payload, source, state)
        self.restored_from = source

    def wants_hook(self, hook: str) -> bool:
        """Return False for ``on_train_batch_end`` when backing up once per epoch."""
        if hook == "on_train_batch_end" and self.save_freq == "epoch":
            return overridden_below(self, BackupAndRestore, hook)
        return True

    def on_train_batch_end(self, batch, logs=None):
        """Back up every ``save_freq`` training batches (when ``save_freq`` is an integer).

        A backup due at the last batch of an epoch (or once training was told to stop) is taken
        at the end of that epoch instead, so that a resumed run always restarts mid-epoch with
        batches left to run, or at an epoch's start.
        """
        if self.save_freq == "epoch":
            return
        state = self._train_state()
        if state.global_step % self.save_freq:
            return
        steps = self.params.get("steps")
        if self.model.stop_training or (steps is not None and state.step_in_epoch >= steps):
            self._save_at_epoch_end = True
        else:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        """Back up at the end of every epoch (``save_freq="epoch"``), or when a backup is due."""
        if self.save_freq == "epoch" or self._save_at_epoch_end:
            self._save_at_epoch_end = False
            self.save()

    def on_train_end(self, logs=None):
        """Delete the backup: training finished normally (with ``delete_checkpoint``)."""
        if self.delete_checkpoint and distributed.is_rank_zero():
            self.delete()

    # ----------------------------------------------------------------- files
    def save(self) -> None:
        """Write a backup of the run as it is now (called by the hooks)."""
        state = self._train_state()
        model_state = distributed.gather_metric_states(saving.training_state(self.model))
        if distributed.is_sharded(self.model):  # FSDP: every rank writes its shard, rank 0 the rest.
            model_state = distributed.save_sharded(self.model, model_state, self.backup_dir,
                                                   state.global_step)
        if not distributed.is_rank_zero():
            return
        payload = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "model": model_state,
            "callbacks": self._callback_states(state),
            "train_state": state.state_dict(),
        }
        payload = saving.plain_state(payload)
        if self.double_checkpoint:
            io.rotate_write(self.path, payload)
        else:
            io.save_state(payload, self.path)
        distributed.prune_shards(self.backup_dir, model_state)

    def delete(self) -> None:
        """Remove the backup files (and leftovers of killed writers); then the folder if empty."""
        folder = Path(self.backup_dir)
        distributed.delete_shards(folder)
        names = [BACKUP_NAME, BACKUP_NAME + ".prev", BACKUP_NAME + ".next"]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        if folder.is_dir():
            for leftover in folder.glob(f".{BACKUP_NAME}.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _read(self) -> tuple[dict[str, Any], Path] | None:
        path = self.path
        if self.double_checkpoint:
            previous = path.with_name(path.name + ".prev")
            if not path.exists() and not previous.exists():
                return None
            payload, source = io.load_latest(path)
        else:
            if not path.exists():
                return None
            payload, source = io.load_state(path), path
        return payload, Path(source)

    # ----------------------------------------------------------------- state
    def _train_state(self) -> Any:
        state = getattr(self.model, "_train_state", None)
        if state is None or getattr(state, "callbacks", None) is None:
            raise RuntimeError(
                "BackupAndRestore works inside model.fit(), which provides the training state; "
                "it was called outside of fit."
            )
        return state

    def _keyed_callbacks(self, state: Any) -> dict[str, Callback]:
        keyed: dict[str, Callback] = {}
        for callback in state.callbacks:
            if getattr(callback, "backs_up_state", False):
                continue
            key = callback.state_key
            unique, count = key, 1
            while unique in keyed:
                unique, count = f"{key}_{count}", count + 1
            keyed[unique] = callback
        return keyed

    def _callback_states(self, state: Any) -> dict[str, Any]:
        states = {}
        for key, callback in self._keyed_callbacks(state).items():
            value = callback.state_dict()
            if value:
                states[key] = value
        return states

    def _restore(self, payload: Any, source: Path, state: Any) -> None:
        """Check the whole backup against this run, then load it; RNG states last."""
        if not isinstance(payload, dict) or payload.get("format") != BACKUP_FORMAT:
            raise ValueError(
                f"'{source}' is not a cadence backup (no '{BACKUP_FORMAT}' format tag); "
                "backup_dir must be a folder used only by BackupAndRestore."
            )
        if payload.get("version") != BACKUP_VERSION:
            raise ValueError(
                f"'{source}' has backup format version {payload.get('version')!r}; this cadence "
                f"reads version {BACKUP_VERSION}."
            )
        payload["model"] = distributed.own_metric_states(payload["model"])  # Each rank its own.
        if payload["model"].get("sharded") is not None:  # FSDP: weights, optimizer from the shards.
            payload["model"] = distributed.load_sharded(self.model, payload["model"],
                                                        self.backup_dir, source, self.reshard)
        saving.check_training_state(self.model, payload["model"], source)
        check_state_dict(payload["train_state"], f"the training state of '{source}'")
        keyed = self._keyed_callbacks(state)
        saved = payload["callbacks"]
        lost = sorted(set(saved) - set(keyed))
        fresh = sorted(key for key, cb in keyed.items() if key not in saved and cb.state_dict())
        if lost or fresh:
            detail = []
            if lost:
                detail.append(f"it holds states for {lost}, which this run does not have")
            if fresh:
                detail.append(f"it has no state for {fresh}")
            raise ValueError(
                f"'{source}' was written by a run with other callbacks: " + "; ".join(detail)
                + ". Restart with the same callbacks, or delete the backup folder to start over."
            )
        # Metric states matter only mid-epoch: an epoch's start resets them.
        mid_epoch = int(payload["train_state"]["step_in_epoch"]) > 0
        saving.load_training_state(self.model, payload["model"], metrics=mid_epoch)
        for key, value in saved.items():
            try:
                keyed[key].load_state_dict(value)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"'{source}': the state of callback '{key}' could not be restored: {error}"
                ) from error
        state.load_state_dict(payload["train_state"])
