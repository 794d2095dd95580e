"""Pre-emption: SIGTERM (or SIGUSR1) during ``fit`` backs the run up and exits, ready to resume.

Spot instances, SageMaker managed spot training, Kubernetes, Slurm (``--signal``) and
``torchrun`` announce the end of a machine with SIGTERM, a grace period, then SIGKILL. While
``fit`` runs, cadence handles SIGTERM and, where the platform has it, SIGUSR1:

1. The signal only sets a flag; the current batch (and its ``on_train_batch_end`` hooks)
   finishes. Under ``torch.distributed`` the flag is agreed after every training batch (one
   4-byte all-reduce), so every rank stops after the same batch, even when the signal reached
   only some of them.
2. With a ``BackupAndRestore`` in the callbacks, a backup is written at once (by rank 0, the
   other ranks waiting for it), whatever its ``save_freq``. A signal after an epoch's last
   batch, or once ``model.stop_training`` is set, lets that epoch end first (validation,
   ``on_epoch_end``), so the backup is taken at the epoch boundary. Then :class:`Preempted`
   is raised: ``on_epoch_end`` and ``on_train_end`` are not called (the run is not over:
   ``on_train_end`` would delete the backup), as when any exception ends ``fit``. Restarted
   with the same command, the run resumes at the next batch: nothing is recomputed.
3. Without a ``BackupAndRestore``, there is nothing to resume from: training stops as with
   ``model.stop_training = True`` (the epoch ends, ``on_epoch_end`` and ``on_train_end`` run,
   so checkpoints and logs are complete), then :class:`Preempted` is raised.

:class:`Preempted` is a ``SystemExit`` with code :data:`EXIT_CODE` (143, i.e. 128 + SIGTERM,
the status a shell reports for a process ended by SIGTERM, and the restartable exit code of
tf.keras's ``PreemptionCheckpointHandler``). Uncaught, it ends the process with that status,
without a traceback, after ``finally`` blocks and ``atexit`` functions ran; ``except
Exception`` does not swallow it. ``torchrun --max-restarts``, Kubernetes Jobs and SageMaker
then restart the process, which resumes from the backup.

A second signal of the same kind while the first is being handled is passed to the handler
that was installed before ``fit`` (by default: the process ends at once). The previous
handlers are restored when ``fit`` ends, however it ends; a signal that arrived after the
last batch, too late to act on, is then re-sent to them. Handlers are installed only when
``fit`` runs in the main thread (Python delivers signals there only).

However ``fit`` ends (normally, by an exception or by :class:`Preempted`), every callback
that has a ``release_resources()`` method has it called, so files, locks and writer threads
(``TensorBoard``'s event writers, ``BackupAndRestore``'s and ``CSVLogger``'s locks) are
released even when ``on_train_end`` never runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from cadence import distributed

#: The exit status of a pre-empted process: 128 + SIGTERM.
EXIT_CODE = 143

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name)
)


class Preempted(SystemExit):
    """Raised by ``fit`` after a pre-emption signal was handled; ends the process with 143.

    Its message (what was received, where training stopped, where the backup is) is also
    written to stderr when it is raised, since Python prints nothing for a ``SystemExit``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_CODE)
        self.message = message
        print(message, file=sys.stderr, flush=True)

    def __str__(self) -> str:
        return self.message


class Preemption:
    """The state of one ``fit`` run's signal handling; see the module's documentation.

    Args:
        model: The model being trained.
        callbacks: The run's callbacks (a ``BackupAndRestore`` among them is found by its
            ``backs_up_state`` attribute and its ``save()`` method).
        state: The run's :class:`~cadence.trainer.state.TrainState`.
    """

    def __init__(self, model: Any, callbacks: Any, state: Any) -> None:
        self.model = model
        self.callbacks = callbacks
        self.state = state
        self.received: int | None = None
        self.acted = False
        self._stopped: str | None = None
        self.several = distributed.is_initialized()
        self._previous: dict[int, Any] = {}

    # ----------------------------------------------------------------- signals
    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # A second signal: the previous handler decides.
            previous = self._previous.get(signum, signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        self.received = signum

    def install(self) -> None:
        """Install the handlers (in the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            previous = signal.getsignal(signum)
            self._previous[signum] = signal.SIG_DFL if previous is None else previous
            signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Restore the handlers that were installed before ``fit``."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    # ----------------------------------------------------------------- checks
    def _agreed(self) -> bool:
        if not self.several:
            return self.received is not None
        return distributed.any_rank(self.received is not None, getattr(self.model, "device", None))

    def _backup(self) -> Any:
        return next(
            (c for c in self.callbacks
             if getattr(c, "backs_up_state", False) and callable(getattr(c, "save", None))),
            None,
        )

    def after_batch(self) -> None:
        """Act on a signal after a training batch: back up and raise, or stop training."""
        if self.acted or not self._agreed():
            return
        steps = getattr(self.callbacks, "params", {}).get("steps")
        last = steps is not None and self.state.step_in_epoch >= steps
        stopping = self.model.stop_training
        if self.several:
            stopping = distributed.any_rank(stopping, getattr(self.model, "device", None))
        if self._backup() is None:
            self._stop()
        elif not (last or stopping):  # Else the epoch ends first: after_epoch() backs up.
            self._back_up_and_raise()

    def after_epoch(self) -> None:
        """Act on a signal that arrived during or before an epoch's end."""
        if self.acted or not self._agreed():
            return
        if self._backup() is None:
            self._stop()
            return
        self._back_up_and_raise()

    def _stop(self) -> None:
        """Stop as ``model.stop_training`` does; :meth:`exit` raises once ``fit`` is done."""
        self.acted = True
        self._stopped = self._message("no BackupAndRestore: training stopped as at a stop")
        self.model.stop_training = True

    def _back_up_and_raise(self) -> None:
        self.acted = True
        backup = self._backup()
        if distributed.runs_on_this_rank(backup, "on_epoch_end"):
            backup.save()
        if self.several:
            distributed.barrier()  # No rank exits (and gets the others killed) before the backup.
        raise Preempted(self._message(f"backup written to '{backup.path}'"))

    def _message(self, done: str) -> str:
        name = signal.Signals(self.received).name if self.received is not None else "a signal to another rank"
        state = self.state
        if state.step_in_epoch:
            where = f"epoch {state.epoch}, {state.step_in_epoch} batches into it"
        else:
            where = f"at the end of epoch {state.epoch - 1}"
        return (
            f"Training pre-empted by {name} after global step {state.global_step} ({where}); "
            f"{done}. Exiting with status {EXIT_CODE}: restart the same command to resume."
        )

    def exit(self) -> None:
        """Raise :class:`Preempted` if a signal stopped training without a backup."""
        if self._stopped is not None:
            raise Preempted(self._stopped)

    def release(self) -> None:
        """Call every callback's ``release_resources()``, even if one of them fails."""
        errors = []
        for callback in self.callbacks:
            release = getattr(callback, "release_resources", None)
            if callable(release):
                try:
                    release()
                except Exception as error:  # noqa: BLE001 - the others are released first
                    errors.append(error)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def guard(model: Any, callbacks: Any, state: Any) -> Iterator[Preemption]:
    """Handle pre-emption signals while the block (``fit``'s epoch loop) runs.

    Yields:
        The :class:`Preemption` whose ``after_batch()`` and ``after_epoch()`` the loop calls.
        On a normal exit its ``exit()`` raises :class:`Preempted` if a signal stopped training;
        on every exit the previous handlers are restored and the callbacks' resources released.
    """
    preemption = Preemption(model, callbacks, state)
    preemption.install()
    failed = True
    try:
        yield preemption
        failed = False
        preemption.exit()
    finally:
        pending = None if preemption.acted or failed else preemption.received
        preemption.uninstall()
        try:
            preemption.release()
        finally:
            if pending is not None:  # Too late to act on: the previous handler's turn.
                os.kill(os.getpid(), pending)
