"""BackupAndRestore: resume an interrupted ``fit`` exactly where it stopped, to the bit."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from cadence import distributed, file_lock, io, output_paths, remote
from cadence.callbacks.callback import Callback, overridden_below
from cadence.logs import plain_numbers

BACKUP_FORMAT = "cadence-backup"
BACKUP_VERSION = 3
BACKUP_NAME = "backup.cadence"
LOCK_NAME = ".lock"


class BackupAndRestore(Callback):
    """Back up the whole training run, and resume from the backup when ``fit`` starts again.

    Each backup is one checksummed file, ``<backup_dir>/backup.cadence``, holding the model's
    weights, the optimizer's state (with ``iterations``), the gradient scaler, the gradients of an
    unfinished accumulation, every metric's state (the running averages of a partly done epoch),
    ``model.stop_training``, and the run's state, ``self.run.state_dict()`` (a
    :class:`~cadence.trainer.state.TrainState`: epoch, batch within the epoch, global step, data
    seed and position, the RNG states of Python, numpy, torch and CUDA, the logs of the last
    epoch, and the ``state_dict()`` of every other callback in the run: ``History``,
    ``EarlyStopping``'s counters, ``ModelCheckpoint``'s best value, ``CSVLogger``'s rows, ...,
    keyed by each callback's ``state_key``, so that each state goes back to its own callback
    whatever order the callbacks are passed in, and a backup taken with other callbacks is
    refused, naming them).

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

    Before anything is read, ``on_train_begin`` checks that ``backup_dir`` can be a folder (not a
    file, a symbolic link to nothing, or under a file) and takes an exclusive lock on it
    (``backup_dir/.lock``, released by the OS if the process dies): a second run on the same
    folder is refused, naming the folder and the first run's process id. It then removes the
    temporary files of writers that were killed (their process no longer runs). The whole
    backup is validated, values included (every callback's state through its
    ``check_state_dict`` when it has one), before anything is loaded. Numpy values in the
    logs or in callbacks' states are saved as numbers or lists.

    On SIGTERM (or SIGUSR1) during ``fit``, a backup is written after the current batch and
    the process exits (see :mod:`cadence.trainer.preemption`).

    In several processes every rank takes part in a backup: each rank's metric states are kept
    (each rank gets its own back), and under ``strategy="fsdp"`` each rank writes its shard of the
    weights, optimizer state and accumulated gradients with ``torch.distributed.checkpoint`` into
    ``backup_dir/shards-<global step>/`` before rank 0 writes ``backup.cadence``, which names that
    folder (see :mod:`cadence.distributed.checkpoint`). Rank 0 alone writes, deletes and locks;
    ranks that found different backups are refused before anything loads.

    Limits: the data order is reproduced for arrays, tensors, data sets and sequences
    read by cadence; a ``DataLoader`` with its own shuffling sampler resumes exactly only at epoch
    boundaries (torchdata's ``StatefulDataLoader`` resumes exactly mid-epoch); a ``Sequence``'s
    own state (e.g. indexes it shuffles in ``on_epoch_end``) is saved only if it defines
    ``state_dict()`` and ``load_state_dict()``; a Python generator cannot be rewound.
    Non-deterministic GPU kernels make any two runs differ, interrupted or not.

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

    #: Every rank takes part in every backup (each rank's metric states are kept; under
    #: ``strategy="fsdp"`` each rank writes its shard, see :mod:`cadence.distributed.checkpoint`)
    #: and restores it; rank 0 alone writes the backup file, deletes it and holds the lock.
    writes_files = False
    #: Never sets ``model.stop_training``.
    may_stop_training = False

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
                "Empty `backup_dir` argument passed" if not backup_dir else
                f"backup_dir must be a path to a folder; received backup_dir={backup_dir!r}."
            )
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(
                f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. "
                "Expected either 'epoch' or a positive integer value."
            )
        for name, value in (
            ("double_checkpoint", double_checkpoint), ("delete_checkpoint", delete_checkpoint),
            ("reshard", reshard),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False; received {name}={value!r}.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.reshard = reshard
        #: The file the last restore read (``None`` when ``fit`` started afresh).
        self.restored_from: Path | str | None = None
        self._save_at_epoch_end = False
        self._lock: file_lock.FileLock | remote.RemoteLock | None = None

    @property
    def path(self) -> Path | str:
        """The newest backup's file (a URL when ``backup_dir`` is remote, see :mod:`cadence.remote`)."""
        if remote.is_remote(self.backup_dir):
            return str(remote.join(self.backup_dir, BACKUP_NAME))
        return Path(remote.local_path(self.backup_dir)) / BACKUP_NAME

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        """Restore the newest readable backup, if there is one, before any other callback runs."""
        state = self._run()
        self.restored_from = None
        self._save_at_epoch_end = False
        self._take_folder()
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
        state = self._run()
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
        self.release_resources()

    def release_resources(self) -> None:
        """Release the folder's lock; ``fit`` calls this however it ends."""
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()
            if not remote.is_remote(self.backup_dir):
                with contextlib.suppress(OSError):  # Left empty by delete(): remove it.
                    Path(remote.local_path(self.backup_dir)).rmdir()

    def _take_folder(self) -> None:
        """Check the folder, lock it (on rank 0) and remove dead writers' temporary files.

        On an object store (``s3://``, ...) the lock is a ``.lock`` object created only if absent
        (:class:`cadence.remote.RemoteLock`); there is no folder to check and no temporary file.
        """
        if remote.is_remote(self.backup_dir):
            if distributed.is_sharded(self.model):
                raise ValueError(
                    "BackupAndRestore writes a sharded (strategy='fsdp') model's shards with "
                    "torch.distributed.checkpoint into a folder every rank shares; received the "
                    f"remote backup_dir={self.backup_dir!r}. Use a shared file system path."
                )
            if distributed.is_rank_zero():
                if self._lock is None:
                    self._lock = remote.RemoteLock(self.backup_dir, "BackupAndRestore")
                self._lock.acquire()
            return
        output_paths.check_output_folder(self.backup_dir, "BackupAndRestore", "backup_dir")
        if not distributed.is_rank_zero():
            return
        if self._lock is None:
            self._lock = file_lock.FileLock(
                Path(self.backup_dir) / LOCK_NAME, "BackupAndRestore",
                f"backup_dir={self.backup_dir!r}",
            )
        self._lock.acquire()
        file_lock.remove_stale_temp_files(self.backup_dir)

    # ----------------------------------------------------------------- files
    def save(self) -> None:
        """Write a backup of the run as it is now (called by the hooks)."""
        state = self._run().state_dict()
        # Every rank: each rank's metric states are kept (a mid-epoch resume logs what an
        # uninterrupted run logs); under FSDP each rank writes its shard of the model's part.
        state["model"] = distributed.gather_metric_states(state["model"])
        if distributed.is_sharded(self.model):
            state["model"] = distributed.save_sharded(
                self.model, state["model"], remote.local_path(self.backup_dir), state["global_step"]
            )
        if not distributed.is_rank_zero():
            return
        payload = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "train_state": state,
        }
        payload = plain_numbers(payload)
        if self.double_checkpoint:
            io.rotate_write(self.path, payload)
        else:
            io.save_state(payload, self.path)
        distributed.prune_shards(remote.local_path(self.backup_dir), state["model"])

    def delete(self) -> None:
        """Remove the backup files (and leftovers of killed writers); then the folder if empty."""
        names = [BACKUP_NAME, BACKUP_NAME + ".prev", BACKUP_NAME + ".next"]
        if remote.is_remote(self.backup_dir):  # An object store has no folder to remove.
            for name in names:
                remote.remove(str(remote.join(self.backup_dir, name)))
            return
        folder = Path(remote.local_path(self.backup_dir))
        distributed.delete_shards(folder)
        # The lock file stays until release_resources(), which then removes the empty folder.
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        if folder.is_dir():
            for leftover in folder.glob(f".{BACKUP_NAME}.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _read(self) -> tuple[dict[str, Any], Path | str] | None:
        path = self.path
        if self.double_checkpoint:
            if not remote.exists_any(path) and not remote.exists_any(f"{path}.prev"):
                return None
            payload, source = io.load_latest(path)
        else:
            if not remote.exists_any(path):
                return None
            payload, source = io.load_state(path), path
        return payload, source if isinstance(source, str) else Path(source)

    # ----------------------------------------------------------------- state
    def _run(self) -> Any:
        if self.run is None:
            raise RuntimeError(
                "BackupAndRestore works inside model.fit(), which provides the run's state "
                "(self.run); it was called outside of fit."
            )
        return self.run

    def _restore(self, payload: Any, source: Path | str, state: Any) -> None:
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
        train_state = payload["train_state"]
        what = f"the training state of '{source}'"
        if not (isinstance(train_state, dict) and isinstance(train_state.get("model"), dict)):
            state.check_state_dict(train_state, what, source)  # Refused, naming what is wrong.
        model_part = distributed.own_metric_states(train_state["model"])  # Each rank its own.
        if model_part.get("sharded") is not None:  # FSDP: weights, optimizer from the shards.
            folder = remote.local_path(self.backup_dir)
            distributed.check_sharded(self.model, model_part, folder, source, self.reshard)
            loaded = distributed.sharded_as_loaded(self.model, model_part)
            state.check_state_dict({**train_state, "model": loaded}, what, source)
            model_part = distributed.load_sharded(self.model, model_part, folder, source,
                                                  self.reshard)
        train_state = {**train_state, "model": model_part}
        state.check_state_dict(train_state, what, source)
        state.load_state_dict(train_state)
