"""Pre-emption: SIGTERM/SIGUSR1 during fit finish the batch, back up, raise Preempted (exit 143)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import BackupAndRestore, Callback
from cadence.trainer.preemption import EXIT_CODE, Preempted

pytestmark = pytest.mark.filterwarnings("ignore:Callback method .* is slow:UserWarning")

X = np.random.default_rng(0).random((50, 8), dtype=np.float32)
Y = np.random.default_rng(1).random((50, 1), dtype=np.float32)
STEPS = 5  # 40 training samples (validation_split=0.2) in batches of 8.


class Signaller(Callback):
    """Send ``signum`` to this process at the end of the ``at``-th training batch of this run."""

    def __init__(self, at=None, signum=signal.SIGTERM, times=1, at_train_end=False):
        super().__init__()
        self.at, self.signum, self.times, self.at_train_end = at, signum, times, at_train_end
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))
        if len([c for c in self.calls if c[0] == "batch_end"]) == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))
        if self.at_train_end:
            os.kill(os.getpid(), self.signum)


def make():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def fit(model, callbacks, epochs=3):
    torch.manual_seed(1)  # The same command: the same seed before fit.
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=True,
                     validation_split=0.2, callbacks=callbacks)


@pytest.fixture
def handlers():
    """Install recording handlers before fit (as a user's program may) and restore the old ones."""
    received = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}

    def record(signum, frame):
        received.append(signal.Signals(signum).name)

    for signum in previous:
        signal.signal(signum, record)
    yield received, record
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def batches(callback):
    return sum(1 for call in callback.calls if call[0] == "batch_end")


@pytest.mark.parametrize(
    ("at", "signum", "where"),
    [(7, signal.SIGTERM, "after global step 7 (epoch 1, 2 batches into it)"),
     (STEPS, signal.SIGUSR1, "after global step 5 (at the end of epoch 0)")],
    ids=["mid-epoch-SIGTERM", "last-batch-SIGUSR1"],
)
def test_a_signal_backs_up_after_the_batch_and_the_restart_recomputes_nothing(
        tmp_path, handlers, at, signum, where):
    received, record = handlers
    reference_model, reference_counter = make(), Signaller()
    reference = fit(reference_model, [reference_counter, BackupAndRestore(tmp_path / "a")])

    first = Signaller(at=at, signum=signum)
    with pytest.raises(Preempted) as caught:
        fit(make(), [first, BackupAndRestore(tmp_path / "b", save_freq="epoch")])
    assert caught.value.code == EXIT_CODE == 143
    assert str(caught.value) == (
        f"Training pre-empted by {signal.Signals(signum).name} {where}; backup written to "
        f"'{tmp_path / 'b' / 'backup.cadence'}'. Exiting with status 143: restart the same "
        "command to resume."
    )
    assert batches(first) == at and ("train_end",) not in first.calls
    # The lock was released; the previous backup (of an epoch's end) is kept as ever.
    assert sorted(os.listdir(tmp_path / "b")) == ["backup.cadence", "backup.cadence.prev"]
    assert signal.getsignal(signal.SIGTERM) is record and signal.getsignal(signal.SIGUSR1) is record
    assert received == []  # The signal was fit's, not the previous handler's.

    model, second = make(), Signaller()
    history = fit(model, [second, BackupAndRestore(tmp_path / "b", save_freq="epoch")])
    assert batches(first) + batches(second) == batches(reference_counter) == 3 * STEPS
    for (key, a), b in zip(reference_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    assert history.history == reference.history
    assert model.optimizer.iterations == reference_model.optimizer.iterations
    assert not (tmp_path / "b").exists()


def test_without_a_backup_training_stops_as_at_a_stop_then_exits_143(handlers):
    callback = Signaller(at=2)
    with pytest.raises(Preempted) as caught:
        fit(make(), [callback])
    assert caught.value.code == 143
    assert callback.calls == [("batch_end", 0), ("batch_end", 1), ("epoch_end", 0), ("train_end",)]
    assert str(caught.value) == (
        "Training pre-empted by SIGTERM after global step 2 (epoch 0, 2 batches into it); no "
        "BackupAndRestore: training stopped as at a stop. Exiting with status 143: restart the "
        "same command to resume."
    )


def test_a_second_signal_goes_to_the_previous_handler(tmp_path, handlers):
    received, _ = handlers
    callback = Signaller(at=3, times=2)
    with pytest.raises(Preempted):
        fit(make(), [callback, BackupAndRestore(tmp_path)])
    assert received == ["SIGTERM"] and batches(callback) == 3


def test_a_signal_too_late_to_act_on_is_sent_to_the_previous_handler_after_fit(handlers):
    received, record = handlers
    callback = Signaller(at_train_end=True)
    history = fit(make(), [callback], epochs=1)
    assert history.epoch == [0] and received == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) is record


def test_handlers_are_restored_when_fit_fails(handlers):
    _, record = handlers

    class Boom(Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert signal.getsignal(signal.SIGTERM) is not record  # fit's own, during fit
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="^boom"):
        fit(make(), [Boom()])
    assert signal.getsignal(signal.SIGTERM) is record and signal.getsignal(signal.SIGUSR1) is record


WORKER = Path(__file__).with_name("preemption_worker.py")


def launch(tmp_path, name, *args):
    """Run two ranks of the worker; return their exit codes and outputs (killed after 120 s)."""
    rendezvous = tmp_path / f"rendezvous-{name}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path / "backup"), *map(str, args)],
            env=dict(os.environ, CADENCE_TEST_INIT_METHOD=rendezvous.as_uri(), RANK=str(rank),
                     WORLD_SIZE="2", OMP_NUM_THREADS="1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=120))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return [proc.returncode for proc in procs], outputs


def steps(output):
    return [int(line.split()[1]) for line in output[0].splitlines() if line.startswith("B ")]


@pytest.mark.timeout(300)
def test_a_signal_to_one_rank_stops_every_rank_after_the_same_batch(tmp_path):
    codes, outputs = launch(tmp_path, "first", 1, 3)  # Only rank 1 gets SIGTERM, after batch 3.
    assert codes == [143, 143], outputs
    assert steps(outputs[0]) == steps(outputs[1]) == [1, 2, 3], outputs
    message = (
        "after global step 3 (epoch 0, 3 batches into it); backup written to "
        f"'{tmp_path / 'backup' / 'backup.cadence'}'. Exiting with status 143: restart the same "
        "command to resume.\n"
    )
    assert outputs[0][1].endswith("Training pre-empted by a signal to another rank " + message)
    assert outputs[1][1].endswith("Training pre-empted by SIGTERM " + message)
    assert os.listdir(tmp_path / "backup") == ["backup.cadence"]
    codes, outputs = launch(tmp_path, "second")
    assert codes == [0, 0], outputs
    assert steps(outputs[0]) == steps(outputs[1]) == list(range(4, 13)), outputs
    assert not (tmp_path / "backup").exists()
