"""A small training run that tests/test_fault_injection.py kills with SIGKILL and restarts.

Usage: ``python tests/fault_injection_train.py WORKDIR``. The run trains with shuffling, dropout,
validation, EarlyStopping, ReduceLROnPlateau, CSVLogger, ModelCheckpoint(save_best_only=True)
and BackupAndRestore(save_freq=3); every file it writes is under WORKDIR. Restarted with the
same command, it resumes from WORKDIR/backup.

Output (stdout, flushed): ``START <file the backup was restored from, or ->`` once, then
``B <global step>`` after every training batch; at the end WORKDIR/result.json (History,
EarlyStopping's stopped epoch, the learning rate, the optimizer's iterations) and
WORKDIR/final.pt (the weights) are written.

Environment (the process kills itself, so where it dies does not depend on scheduling):

- ``CADENCE_FI_KILL_AT_STEP=n``: SIGKILL once every callback's ``on_train_batch_end`` of global
  step ``n`` has run, BackupAndRestore's last (the backup due at that step, if any, is written;
  the epoch's end, for the last batch of an epoch, is not reached). The process exits with status 1 if training began
  past step ``n`` or finished without reaching it, so a kill that did not happen is never silent.
- ``CADENCE_FI_KILL_AT_REPLACE=n``: SIGKILL just before the process's ``n``-th ``os.replace``: a
  new file (backup, checkpoint, CSV) is written and fsynced but not yet renamed into place, the
  moment when a crash is most likely to leave a file half-written.
- ``CADENCE_FI_LOCKSTEP=1``: after printing ``B <step>``, wait for a line on stdin before going
  on, so the test that sends SIGTERM knows how far the run can have gone (one batch at most).

This file is a helper, not a test module (pytest does not collect it).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import torch
from torch import nn

import cadence
from cadence import callbacks, io


def _kill_at_replace(count: int) -> None:
    real_replace = os.replace
    calls = [0]

    def replace(src, dst, *args, **kwargs):
        calls[0] += 1
        if calls[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace


class Progress(callbacks.Callback):
    """Print where the run restarted from, and a marker after every training batch."""

    def __init__(self, backup: callbacks.BackupAndRestore, lockstep: bool = False) -> None:
        super().__init__()
        self.backup = backup
        self.lockstep = lockstep

    def on_train_begin(self, logs=None):
        print(f"START {self.backup.restored_from or '-'}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        print(f"B {self.run.global_step}", flush=True)
        if self.lockstep:
            sys.stdin.readline()


class BackupThenKill(callbacks.BackupAndRestore):
    """BackupAndRestore that SIGKILLs the process once it has handled global step ``kill_at_step``.

    BackupAndRestore's batch hook runs after every other callback's, so the process dies with
    step ``kill_at_step`` handled by every callback and its backup (if one is due) written.
    """

    def __init__(self, backup_dir: str, kill_at_step: int | None, **kwargs) -> None:
        super().__init__(backup_dir, **kwargs)
        self.kill_at_step = kill_at_step

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        step = self.run.global_step
        if self.kill_at_step is not None and step >= self.kill_at_step:
            sys.exit(f"CADENCE_FI_KILL_AT_STEP={self.kill_at_step} but training resumes after step {step}")

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.run.global_step == self.kill_at_step:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, logs=None):
        if self.kill_at_step is not None:
            sys.exit(f"CADENCE_FI_KILL_AT_STEP={self.kill_at_step} but training ended at step "
                     f"{self.run.global_step}")
        super().on_train_end(logs)


def data() -> tuple[np.ndarray, np.ndarray]:
    """240 samples of 12 features; 3 classes from a noisy linear rule."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(240, 12)).astype(np.float32)
    scores = x @ rng.normal(size=(12, 3)) + 1.5 * rng.normal(size=(240, 3))
    return x, scores.argmax(axis=1).astype(np.int64)


def main(workdir: str) -> None:
    torch.set_num_threads(1)
    if os.environ.get("CADENCE_FI_KILL_AT_REPLACE"):
        _kill_at_replace(int(os.environ["CADENCE_FI_KILL_AT_REPLACE"]))
    kill_at_step = os.environ.get("CADENCE_FI_KILL_AT_STEP")
    torch.manual_seed(0)
    np.random.seed(0)
    model = cadence.Sequential(
        nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3)
    )
    model.compile(
        optimizer=cadence.optimizers.Adam(learning_rate=0.01),
        loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    backup = BackupThenKill(
        os.path.join(workdir, "backup"), int(kill_at_step) if kill_at_step else None, save_freq=3
    )
    early = callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    x, y = data()
    history = model.fit(
        x, y, batch_size=16, epochs=30, validation_split=0.25, shuffle=True, verbose=0,
        callbacks=[
            Progress(backup, lockstep=os.environ.get("CADENCE_FI_LOCKSTEP") == "1"),
            early,
            callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1),
            callbacks.CSVLogger(os.path.join(workdir, "log.csv")),
            callbacks.ModelCheckpoint(
                os.path.join(workdir, "ckpt", "best-{epoch:02d}.pt"), save_best_only=True
            ),
            backup,
        ],
    )
    io.save_state(model.state_dict(), os.path.join(workdir, "final.pt"))
    result = {
        "history": history.history,
        "epochs": history.epoch,
        "stopped_epoch": early.stopped_epoch,
        "learning_rate": float(model.optimizer.learning_rate),
        "iterations": int(model.optimizer.iterations),
    }
    io.atomic_write_text(os.path.join(workdir, "result.json"), json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
