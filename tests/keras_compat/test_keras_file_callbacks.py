"""Keras 3 compatibility: CSVLogger, RemoteMonitor, BackupAndRestore and TensorBoard.

Written from Keras 3's documented behaviour and its callback tests (keras/src/callbacks/
*_test.py); file layouts, messages and counts are Keras's.
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import threading

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def make_model(metrics=None, seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=metrics, device="cpu")
    return model


def data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3), dtype=np.float32), rng.random((n, 1), dtype=np.float32)


# ----------------------------------------------------------------- CSVLogger
def test_csv_logger_separator_append_and_reuse(tmp_path):
    """Keras: a tab-separated file; append=True skips the header; reusing the logger appends."""
    path = tmp_path / "log.tsv"
    x, y = data()
    xv, yv = data(seed=1)
    make_model(["mse"]).fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(xv, yv),
                            callbacks=[callbacks.CSVLogger(path, separator="\t")])
    assert csv.Sniffer().sniff(path.read_text()).delimiter == "\t"
    model = make_model(["mse"])
    logger = callbacks.CSVLogger(path, separator="\t", append=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(xv, yv), callbacks=[logger])
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(xv, yv), callbacks=[logger])
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and all(line.count("\t") == 4 for line in lines)
    assert " ".join(lines).count("epoch") == 1


def test_csv_logger_writes_na_on_epochs_without_validation(tmp_path):
    """Keras: with validation_freq=3 over 5 epochs, val_loss is NA except on epoch 3."""
    path = tmp_path / "log.csv"
    x, y = data()
    xv, yv = data(seed=1)
    history = make_model().fit(x, y, batch_size=4, epochs=5, verbose=0, validation_data=(xv, yv),
                               validation_freq=3, callbacks=[callbacks.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["val_loss"] for row in rows] == ["NA", "NA", str(history.history["val_loss"][0]), "NA", "NA"]


def test_csv_logger_logs_nan_when_terminate_on_nan_stops(tmp_path):
    """Keras: with TerminateOnNaN, the CSV file stays valid and its last row holds the nan."""
    path = tmp_path / "log.csv"
    x, y = data()
    history = make_model().fit(x, np.full_like(y, np.nan), batch_size=4, epochs=20, verbose=0,
                               callbacks=[callbacks.TerminateOnNaN(), callbacks.CSVLogger(path)])
    assert len(history.history["loss"]) == 1
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    assert rows[0] == ["epoch", "loss"] and rows[-1] == ["0", "nan"]


# ----------------------------------------------------------------- RemoteMonitor
@pytest.fixture
def server():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_remote_monitor_unreachable_server_warns():
    """Keras: `Could not reach RemoteMonitor root server` is a warning, not an error."""
    with socket_closed_port() as root:
        monitor = callbacks.RemoteMonitor(root=root)
        with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server"):
            monitor.on_epoch_end(0, logs={"loss": 0.0})


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}"

    return closed()


def test_remote_monitor_sends_numpy_values_as_scalars(server):
    """Keras: a size-1 array is sent as 0, a float32 as 1.0 (json=..., with the epoch)."""
    root, received = server
    monitor = callbacks.RemoteMonitor(root=root, send_as_json=True)
    monitor.on_epoch_end(0, logs={"loss": 0.0, "val": np.arange(1)})
    monitor.on_epoch_end(0, logs={"loss": 0.0, "val": np.float32(1.0)})
    assert received == [{"loss": 0.0, "epoch": 0, "val": 0}, {"loss": 0.0, "epoch": 0, "val": 1.0}]


def test_remote_monitor_in_fit_sends_the_epoch_logs(server):
    """Keras: one post per epoch: {"epoch": 0, "loss": ..., "val_loss": ...} from the history."""
    root, received = server
    x, y = data()
    history = make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x, y),
                               callbacks=[callbacks.RemoteMonitor(root=root, send_as_json=True)])
    assert received == [{"epoch": 0, "loss": history.history["loss"][0], "val_loss": history.history["val_loss"][0]}]


# ----------------------------------------------------------------- BackupAndRestore
class Counter(nn.Module):
    """Counts forward passes in a buffer (part of the state that a backup saves)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        self.count += 1
        return x


class Interrupt(callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("EpochInterruption")


def counting_model():
    torch.manual_seed(0)
    model = cadence.Sequential(Counter(), nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    return model


def test_backup_and_restore_resumes_after_an_interrupted_epoch(tmp_path):
    """Keras test_best_case_epoch: interrupted after epoch 2 of 6, rerun with 5 epochs: 5 x 3 batches."""
    x, y = data()
    model = counting_model()
    backup = callbacks.BackupAndRestore(tmp_path / "subdir")
    with pytest.raises(RuntimeError, match="EpochInterruption"):
        model.fit(x, y, batch_size=4, epochs=6, verbose=0, callbacks=[backup, Interrupt(2)])
    assert (tmp_path / "subdir").exists() and int(model.module[0].count) == 6
    history = model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[backup])
    assert history.epoch[-1] == 4 and int(model.module[0].count) == 5 * 3


def test_backup_and_restore_deletes_the_backup_after_success(tmp_path):
    """Keras test_model_deleted_case_epoch: a run that finishes leaves no backup folder."""
    x, y = data()
    counting_model().fit(x, y, batch_size=4, epochs=2, verbose=0,
                         callbacks=[callbacks.BackupAndRestore(tmp_path / "subdir", save_freq="epoch")])
    assert not (tmp_path / "subdir").exists()


@pytest.mark.parametrize("save_freq", ["batch", 0.15])
def test_backup_and_restore_invalid_save_freq(save_freq):
    """Keras: `Invalid value for argument save_freq` (a ValueError)."""
    with pytest.raises(ValueError, match=r"^Invalid value for argument `save_freq`\. Received: save_freq="):
        callbacks.BackupAndRestore(backup_dir="backup_dir", save_freq=save_freq)


@pytest.mark.parametrize("backup_dir", ["", None])
def test_backup_and_restore_empty_backup_dir(backup_dir):
    """Keras: `Empty backup_dir argument passed` (a ValueError)."""
    with pytest.raises(ValueError, match=r"^Empty `backup_dir` argument passed$"):
        callbacks.BackupAndRestore(backup_dir=backup_dir, save_freq="epoch")


# ----------------------------------------------------------------- TensorBoard
def scalar_tags(logdir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = set()
    for run in ("train", "validation"):
        folder = os.path.join(logdir, run)
        if os.path.isdir(folder):
            accumulator = EventAccumulator(folder)
            accumulator.Reload()
            found |= {(run, tag) for tag in accumulator.Tags()["scalars"]}
    return found


def test_tensorboard_basic_runs_and_tags(tmp_path):
    """Keras test_TensorBoard_basic: train/epoch_loss, train/epoch_learning_rate, validation/epoch_loss,
    validation/evaluation_loss_vs_iterations."""
    x, y = np.ones((10, 3), np.float32), np.ones((10, 1), np.float32)
    make_model().fit(x, y, batch_size=2, epochs=2, verbose=0, validation_data=(x, y),
                     callbacks=[callbacks.TensorBoard(tmp_path / "tb")])
    assert scalar_tags(tmp_path / "tb") == {
        ("train", "epoch_loss"), ("validation", "epoch_loss"), ("train", "epoch_learning_rate"),
        ("validation", "evaluation_loss_vs_iterations"),
    }


def test_tensorboard_batch_metrics(tmp_path):
    """Keras test_TensorBoard_batch_metrics: update_freq=1 adds train/batch_loss."""
    x, y = np.ones((10, 3), np.float32), np.ones((10, 1), np.float32)
    make_model().fit(x, y, batch_size=2, epochs=2, verbose=0, validation_data=(x, y),
                     callbacks=[callbacks.TensorBoard(tmp_path / "tb", update_freq=1)])
    assert ("train", "batch_loss") in scalar_tags(tmp_path / "tb")


def test_tensorboard_no_spurious_event_files(tmp_path):
    """Keras: without validation only the train run has event files."""
    x, y = np.ones((10, 3), np.float32), np.ones((10, 1), np.float32)
    make_model().fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[callbacks.TensorBoard(tmp_path / "tb")])
    runs = {os.path.basename(d) for d, _, files in os.walk(tmp_path / "tb") if any(f.startswith("events.out.") for f in files)}
    assert runs == {"train"}


def test_tensorboard_reused_across_fits(tmp_path):
    """Keras test_TensorBoard_across_invocations: the same callback in two fits writes the same tags."""
    x, y = np.ones((10, 3), np.float32), np.ones((10, 1), np.float32)
    board = callbacks.TensorBoard(tmp_path / "tb")
    model = make_model()
    for _ in (1, 2):
        model.fit(x, y, batch_size=2, epochs=2, verbose=0, validation_data=(x, y), callbacks=[board])
    assert ("train", "epoch_loss") in scalar_tags(tmp_path / "tb")
