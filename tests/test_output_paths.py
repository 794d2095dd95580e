"""Bad output paths are refused before the first batch, naming the callback and the argument."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import (
    BackupAndRestore,
    Callback,
    CSVLogger,
    MLflowLogger,
    ModelCheckpoint,
    TensorBoard,
)
from cadence.output_paths import OutputPathError, check_output_file, check_output_folder


class CountBatches(Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1


def fit(callback):
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 3), dtype=np.float32)
    counter = CountBatches()
    with pytest.raises(OutputPathError) as caught:
        model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0, callbacks=[counter, callback])
    assert counter.batches == 0  # Refused before the first batch.
    return str(caught.value)


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_backup_dir_that_is_a_file(tmp_path):
    (tmp_path / "backup").write_text("x")
    assert fit(BackupAndRestore(tmp_path / "backup")) == (
        f"BackupAndRestore: backup_dir='{tmp_path}/backup' is a file, not a folder; expected a "
        "folder to write to."
    )
    assert tree(tmp_path) == ["backup"] and (tmp_path / "backup").read_text() == "x"


def test_backup_dir_that_is_a_dangling_symlink(tmp_path):
    os.symlink(tmp_path / "gone", tmp_path / "backup")
    assert fit(BackupAndRestore(tmp_path / "backup")) == (
        f"BackupAndRestore: backup_dir='{tmp_path}/backup' is a symbolic link to "
        f"'{tmp_path}/gone', which does not exist; expected a folder to write to."
    )
    assert tree(tmp_path) == ["backup"]


def test_backup_dir_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert fit(BackupAndRestore(tmp_path / "file" / "backup")) == (
        f"BackupAndRestore: backup_dir='{tmp_path}/file/backup' cannot be created: its parent '{tmp_path}/file' is a "
        "file, not a folder; expected a folder to write to."
    )


def test_csv_logger_filename_that_is_a_folder(tmp_path):
    (tmp_path / "log.csv").mkdir()
    assert fit(CSVLogger(tmp_path / "log.csv")) == (
        f"CSVLogger: filename='{tmp_path}/log.csv' is a folder, not a file; expected a file to write."
    )
    assert tree(tmp_path) == ["log.csv"]


@pytest.mark.parametrize("template", ["file/ckpt.pt", "file/{epoch}.pt", "file/sub/{epoch}/w.pt"])
def test_model_checkpoint_under_a_file(tmp_path, template):
    (tmp_path / "file").write_text("x")
    path = str(tmp_path / template)
    folder = os.path.dirname(path) if "{" not in template else path[: path.index("{")].rstrip("/")
    argument = path if "{" not in template else folder
    parent = f"{tmp_path}/file"
    message = fit(ModelCheckpoint(path))
    kind = "file to write" if "{" not in template else "folder to write to"
    expected = (
        f"ModelCheckpoint: filepath='{argument}' cannot be created: its parent '{parent}' is a file, not a folder; "
        f"expected a {kind}."
    )
    if argument == parent:
        expected = f"ModelCheckpoint: filepath='{parent}' is a file, not a folder; expected a folder to write to."
    assert message == expected
    assert tree(tmp_path) == ["file"]


def test_model_checkpoint_path_that_is_a_folder(tmp_path):
    (tmp_path / "ckpt.pt").mkdir()
    assert fit(ModelCheckpoint(tmp_path / "ckpt.pt")) == (
        f"ModelCheckpoint: filepath='{tmp_path}/ckpt.pt' is a folder, not a file; expected a file to write."
    )


def test_tensorboard_log_dir_that_is_a_file(tmp_path):
    (tmp_path / "logs").write_text("x")
    assert fit(TensorBoard(tmp_path / "logs")) == (
        f"TensorBoard: log_dir='{tmp_path}/logs' is a file, not a folder; expected a folder to write to."
    )
    assert tree(tmp_path) == ["logs"]


def test_tensorboard_train_folder_that_is_a_file(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train").write_text("x")
    assert fit(TensorBoard(tmp_path / "logs")) == (
        f"TensorBoard: log_dir='{tmp_path}/logs/train' is a file, not a folder; expected a folder "
        "to write to."
    )


def test_mlflow_sqlite_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # mlflow's own imports
        logger = MLflowLogger(tracking_uri=f"sqlite:///{tmp_path}/file/mlruns.db")
    assert fit(logger) == (
        f"MLflowLogger: tracking_uri='{tmp_path}/file/mlruns.db' cannot be created: its parent '{tmp_path}/file' is a "
        "file, not a folder; expected a file to write."
    )
    assert tree(tmp_path) == ["file"]


def test_good_paths_and_urls_pass(tmp_path):
    check_output_folder(tmp_path / "new" / "folder", "X", "a")
    check_output_file(tmp_path / "new" / "file.csv", "X", "a")
    check_output_file("s3://bucket/file.csv", "X", "a")
    assert tree(tmp_path) == []  # Checking creates nothing.
    with pytest.raises(OutputPathError, match=re.escape("X: a='") + ".*is a folder, not a file"):
        check_output_file(tmp_path, "X", "a")
