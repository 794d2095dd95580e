"""WandbLogger: an offline W&B run, read back from its .wandb file with wandb's own protobufs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

BLOCK = 32768  # The LevelDB log format of .wandb files: 32 KiB blocks of framed records.
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    """Return the protobuf Records of a .wandb file (a 7-byte W&B header, then a LevelDB log)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # A block's tail too short for a header is zero padding.
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            payload = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        else:
            assert kind == LAST, kind
            payload = pending + chunk
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def run_file(wandb_dir: Path, run_id: str, index: int = 0) -> Path:
    """Return a run's .wandb file, once wandb's service has written all of it."""
    wandb.teardown()  # run.finish() returns before the service has flushed an offline file.
    folders = sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}*"))
    return folders[index] / f"run-{run_id}.wandb"


def history(records: list) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                   for item in record.history.item}
            rows.append(row)
    return rows


def config(records: list) -> dict:
    values = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif record.WhichOneof("record_type") == "run":
            for item in record.run.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[epoch] = dict(logs)


class FailAfterEpoch(callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # Artifacts' staging.
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    wandb.teardown()  # wandb keeps the settings it read first; read this test's.
    yield tmp_path
    wandb.teardown()


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    return x, (x @ rng.normal(size=(4, 1))).astype(np.float32)


def _model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def test_offline_run_holds_every_epoch_and_the_config(offline):
    x, y = _data()
    model, recorder = _model(), Recorder()
    logger = callbacks.WandbLogger(project="cadence-test", config={"data": "toy"}, log_every_n_batches=2)
    model.fit(x, y, batch_size=10, epochs=3, validation_split=0.25, verbose=0,
              callbacks=[recorder, logger])
    assert logger.wandb_run is None and logger.run_id
    records = read_records(run_file(offline, logger.run_id))
    rows = history(records)
    epochs = [row for row in rows if "epoch" in row]
    assert [row["epoch"] for row in epochs] == [0, 1, 2]
    for row in epochs:
        logs = recorder.epochs[row["epoch"]]
        assert row["loss"] == logs["loss"] and row["val_loss"] == logs["val_loss"]
        assert row["mae"] == logs["mae"] and row["val_mae"] == logs["val_mae"]
        assert row["learning_rate"] == pytest.approx(0.05)
        assert row["_step"] == 3 * (row["epoch"] + 1)  # 30 training samples: 3 batches an epoch.
    batches = [row for row in rows if "batch_loss" in row]
    assert [row["_step"] for row in batches] == [2, 4, 6, 8]
    assert set(batches[0]) >= {"batch_loss", "batch_mae"}
    values = config(records)
    assert values["data"] == "toy" and values["epochs"] == 3 and values["steps"] == 3
    assert values["learning_rate"] == pytest.approx(0.05)
    assert values["trainable_params"] == 4 * 8 + 8 + 8 + 1


def test_resumed_fit_continues_the_same_run(offline, tmp_path):
    x, y = _data()
    backup = tmp_path / "backup"
    first = callbacks.WandbLogger(project="cadence-test")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _model().fit(x, y, batch_size=10, epochs=4, validation_split=0.25, verbose=0,
                     callbacks=[FailAfterEpoch(1), first, callbacks.BackupAndRestore(backup)])
    run_id = first.run_id
    first.wandb_run.finish()  # The crashed process's file, closed so that it can be read.

    second, recorder = callbacks.WandbLogger(project="cadence-test"), Recorder()
    _model().fit(x, y, batch_size=10, epochs=4, validation_split=0.25, verbose=0,
                 callbacks=[recorder, second, callbacks.BackupAndRestore(backup)])
    assert second.run_id == run_id
    assert sorted(recorder.epochs) == [1, 2, 3]  # The backup of epoch 0 was restored.
    resumed = read_records(run_file(offline, run_id, index=1))
    assert any(r.WhichOneof("record_type") == "run" and r.run.run_id == run_id for r in resumed)
    rows = [row for row in history(resumed) if "epoch" in row]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert [row["val_loss"] for row in rows] == [recorder.epochs[e]["val_loss"] for e in (1, 2, 3)]
    assert [row["_step"] for row in rows] == [6, 9, 12]


def test_log_checkpoint_uploads_a_model_artifact(offline, tmp_path):
    x, y = _data()
    path = tmp_path / "best.pt"
    logger = callbacks.WandbLogger(project="cadence-test", log_checkpoint=path)
    _model().fit(x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(path, save_best_only=True), logger])
    records = read_records(run_file(offline, logger.run_id))
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert [(a.name, a.type, sorted(a.aliases)) for a in artifacts] == [
        (f"model-{logger.run_id}", "model", ["best", "latest"])]
    assert [entry.path for entry in artifacts[0].manifest.contents] == ["best.pt"]


def test_a_run_left_open_by_a_failed_fit_is_finished_by_the_next_fit(offline):
    x, y = _data()
    logger = callbacks.WandbLogger(project="cadence-test")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _model().fit(x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=0,
                     callbacks=[FailAfterEpoch(0), logger])
    failed = logger.run_id
    _model().fit(x, y, batch_size=10, epochs=1, validation_split=0.25, verbose=0, callbacks=[logger])
    assert logger.run_id != failed
    exits = [r.exit.exit_code for r in read_records(run_file(offline, failed))
             if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match=r"log_every_n_batches must be None or a positive integer; received log_every_n_batches=0"):
        callbacks.WandbLogger(log_every_n_batches=0)
    with pytest.raises(ValueError, match=r"mode must be None, 'online', 'offline' or 'disabled'; received mode='x'"):
        callbacks.WandbLogger(mode="x")
    with pytest.raises(TypeError, match=r"WandbLogger sets wandb.init's 'id' itself"):
        callbacks.WandbLogger(id="abc")
    assert callbacks.WandbLogger.writes_files is True
