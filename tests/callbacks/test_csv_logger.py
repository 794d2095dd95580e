"""CSVLogger: Keras's columns and values, validation_freq, append, separators, exact resume."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import io
from cadence.callbacks import CSVLogger
from cadence.callbacks.csv_logger import format_value


def make_model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read().decode()


def rows_of(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def drive(callback, logs_per_epoch, start=0, begin=True, end=True):
    if begin:
        callback.on_train_begin()
    for epoch, logs in enumerate(logs_per_epoch, start=start):
        callback.on_epoch_end(epoch, dict(logs))
    if end:
        callback.on_train_end()


def test_end_to_end_header_and_values_like_keras(tmp_path):
    x, y = data()
    path = tmp_path / "results" / "training.csv"
    history = make_model().fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[CSVLogger(str(path))])
    h = history.history
    expected = "epoch,loss,mae\r\n" + "".join(
        f"{epoch},{h['loss'][epoch]!r},{h['mae'][epoch]!r}\r\n" for epoch in range(2)
    )
    assert read_bytes(path) == expected


def test_validation_freq_2_keeps_columns_stable_with_na_cells_as_keras(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    history = make_model().fit(x, y, batch_size=10, epochs=4, verbose=0, validation_split=0.25,
                               validation_freq=2, callbacks=[CSVLogger(path)])
    rows = rows_of(path)
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "3"]
    assert [len(row) for row in rows] == [5] * 5
    h = history.history
    assert [row[3] for row in rows[1:]] == ["NA", repr(h["val_loss"][0]), "NA", repr(h["val_loss"][1])]
    assert [row[1] for row in rows[1:]] == [repr(v) for v in h["loss"]]
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]  # no temporary file left behind


def test_keys_that_disappear_leave_na_cells_as_keras(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5}])
    assert read_bytes(path) == "epoch,loss,val_loss\r\n0,1.0,2.0\r\n1,0.5,NA\r\n"


def test_append_continues_the_file_without_repeating_the_header(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), [{"loss": 1.0}, {"loss": 0.5}])
    drive(CSVLogger(path, append=True), [{"loss": 0.25}])
    assert read_bytes(path) == "epoch,loss\r\n0,1.0\r\n1,0.5\r\n0,0.25\r\n"


def test_append_to_a_missing_or_empty_file_writes_the_header(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path, append=True), [{"loss": 1.0}])
    assert read_bytes(path) == "epoch,loss\r\n0,1.0\r\n"
    path.write_text("")
    drive(CSVLogger(path, append=True), [{"loss": 2.0}])
    assert read_bytes(path) == "epoch,loss\r\n0,2.0\r\n"


def test_append_with_new_keys_widens_the_header_once(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), [{"loss": 1.0}])
    drive(CSVLogger(path, append=True), [{"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25, "val_loss": 0.5}])
    assert read_bytes(path) == "epoch,loss,val_loss\r\n0,1.0,NA\r\n0,0.5,0.75\r\n1,0.25,0.5\r\n"


def test_append_false_overwrites(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old,content\n1,2\n")
    drive(CSVLogger(path), [{"loss": 3.0}])
    assert read_bytes(path) == "epoch,loss\r\n0,3.0\r\n"


def test_a_run_without_epochs_still_replaces_the_old_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old\n")
    drive(CSVLogger(path), [])
    assert read_bytes(path) == ""


def test_separator(tmp_path):
    path = tmp_path / "log.tsv"
    drive(CSVLogger(path, separator="\t"), [{"loss": 1.5, "acc": 0.25}])
    drive(CSVLogger(path, separator="\t", append=True), [{"loss": 1.0, "acc": 0.5}])
    assert read_bytes(path) == "epoch\tacc\tloss\r\n0\t0.25\t1.5\r\n0\t0.5\t1.0\r\n"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"separator": ";;"}, r"separator must be a single character .*; received: separator=';;'\."),
    ({"separator": "\n"}, r"received: separator='\\n'\."),
    ({"filename": ""}, r"CSVLogger filename must be a non-empty path; received: filename=''\."),
])
def test_invalid_arguments(kwargs, message):
    kwargs.setdefault("filename", "log.csv")
    with pytest.raises(ValueError, match=message):
        CSVLogger(**kwargs)


def test_format_value():
    assert format_value(0.1) == "0.1"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(torch.tensor(2.5)) == "2.5"
    assert format_value(np.array([1, 2])) == "[1, 2]"
    assert format_value("text") == "text"
    assert format_value(3) == "3"


def test_sequence_values_are_quoted_cells(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), [{"f1": np.array([0.5, 0.25])}])
    assert read_bytes(path) == 'epoch,f1\r\n0,"[0.5, 0.25]"\r\n'
    assert rows_of(path)[1] == ["0", "[0.5, 0.25]"]


# ----------------------------------------------------------------- resume


EPOCHS = [{"loss": 1.0}, {"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25}, {"loss": 0.125, "val_loss": 0.5}]


def reference(tmp_path, append_to=None):
    path = tmp_path / "reference.csv"
    if append_to is not None:
        path.write_text(append_to)
    drive(CSVLogger(path, append=append_to is not None), EPOCHS)
    return read_bytes(path)


@pytest.mark.parametrize("load_first", [True, False])
def test_resume_rewrites_the_rows_of_the_backup_exactly(tmp_path, load_first):
    path = tmp_path / "log.csv"
    first = CSVLogger(path)
    drive(first, EPOCHS[:2], end=False)
    state = first.state_dict()  # backup taken after epoch 1
    io.save_state(state, tmp_path / "backup")
    first.on_epoch_end(2, dict(EPOCHS[2]))  # written, then the process is killed
    assert rows_of(path)[-1][0] == "2"

    resumed = CSVLogger(path)
    if load_first:  # BackupAndRestore's on_train_begin before the logger's
        resumed.load_state_dict(io.load_state(tmp_path / "backup"))
        resumed.on_train_begin()
    else:
        resumed.on_train_begin()
        resumed.load_state_dict(io.load_state(tmp_path / "backup"))
    assert [row[0] for row in rows_of(path)] == ["epoch", "0", "1"]
    drive(resumed, EPOCHS[2:], start=2, begin=False)
    assert read_bytes(path) == reference(tmp_path)


@pytest.mark.parametrize("load_first", [True, False])
def test_resume_in_append_mode_keeps_the_earlier_file(tmp_path, load_first):
    earlier = "epoch,loss\r\n0,9.0\r\n"
    path = tmp_path / "log.csv"
    path.write_text(earlier)
    first = CSVLogger(path, append=True)
    drive(first, EPOCHS[:1], end=False)
    state = first.state_dict()
    first.on_epoch_end(1, dict(EPOCHS[1]))  # widens the header, then the process is killed

    resumed = CSVLogger(path, append=True)
    if load_first:
        resumed.load_state_dict(state)
        resumed.on_train_begin()
    else:
        resumed.on_train_begin()
        resumed.load_state_dict(state)
    drive(resumed, EPOCHS[1:], start=1, begin=False)
    assert read_bytes(path) == reference(tmp_path, append_to=earlier)


def test_state_dict_holds_the_header_and_rows_as_strings(tmp_path):
    logger = CSVLogger(tmp_path / "log.csv")
    drive(logger, EPOCHS[:2])
    assert logger.state_dict() == {
        "columns": ["epoch", "loss", "val_loss"],
        "rows": [{"epoch": "0", "loss": "1.0"}, {"epoch": "1", "loss": "0.5", "val_loss": "0.75"}],
    }


def test_resume_before_any_epoch_empties_the_file(tmp_path):
    path = tmp_path / "log.csv"
    first = CSVLogger(path)
    first.on_train_begin()
    state = first.state_dict()
    first.on_epoch_end(0, {"loss": 1.0})
    resumed = CSVLogger(path)
    resumed.load_state_dict(state)
    resumed.on_train_begin()
    assert read_bytes(path) == ""
    drive(resumed, [{"loss": 1.0}], begin=False)
    assert read_bytes(path) == "epoch,loss\r\n0,1.0\r\n"


class Killed(Exception):
    pass


def _run_with_backup(tmp_path, kill_at=None):
    from cadence.callbacks import BackupAndRestore, EarlyStopping, LambdaCallback

    def kill(epoch, logs):
        if epoch == kill_at:
            raise Killed

    x, y = data()
    torch.manual_seed(0)
    model = make_model()
    logger = CSVLogger(tmp_path / "log.csv")
    stopper = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    callbacks = [logger, stopper, LambdaCallback(on_epoch_end=kill), BackupAndRestore(tmp_path / "backup")]
    history = model.fit(x, y, batch_size=10, epochs=5, verbose=0, validation_split=0.25,
                        validation_freq=2, callbacks=callbacks)
    return model, history, stopper


def test_a_killed_run_resumed_by_backup_and_restore_writes_the_same_csv(tmp_path):
    ref_model, ref_history, ref_stopper = _run_with_backup(tmp_path / "reference")
    with pytest.raises(Killed):
        _run_with_backup(tmp_path / "resumed", kill_at=3)  # epoch 3's row is written, not backed up
    assert [row[0] for row in rows_of(tmp_path / "resumed" / "log.csv")] == ["epoch", "0", "1", "2", "3"]
    model, history, stopper = _run_with_backup(tmp_path / "resumed")
    assert read_bytes(tmp_path / "resumed" / "log.csv") == read_bytes(tmp_path / "reference" / "log.csv")
    assert history.history == ref_history.history
    assert (stopper.best, stopper.best_epoch) == (ref_stopper.best, ref_stopper.best_epoch)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_each_epoch_formats_one_new_line_until_the_header_widens(tmp_path, monkeypatch):
    formatted = []
    original = CSVLogger._row_line

    def counted(self, row):
        formatted.append(row["epoch"])
        return original(self, row)

    monkeypatch.setattr(CSVLogger, "_row_line", counted)
    logger = CSVLogger(tmp_path / "log.csv")
    logger.on_train_begin()
    for epoch in range(4):
        logger.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    assert formatted == ["0", "1", "2", "3"]
    logger.on_epoch_end(4, {"loss": 0.1, "val_loss": 0.2})  # A new column: every row again.
    logger.on_epoch_end(5, {"loss": 0.1, "val_loss": 0.2})
    assert formatted[4:] == ["0", "1", "2", "3", "4", "5"]
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss" and lines[1] == "0,1.0,NA" and lines[6] == "5,0.1,0.2"
