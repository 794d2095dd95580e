"""Locks released by the OS when their process dies; dead writers' temporary files removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import BackupAndRestore, CSVLogger
from cadence.file_lock import FileLock, LockedError, remove_stale_temp_files

HOLD = textwrap.dedent("""
    import sys
    from cadence.file_lock import FileLock
    lock = FileLock(sys.argv[1], "Holder", "the test's path")
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()  # Holds the lock until the test says so (or kills it).
""")


@pytest.fixture
def holder():
    """Start processes that hold a lock file; each is killed (SIGKILL) at the end at the latest."""
    procs = []

    def start(lock_file):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "held\n"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def fit(callbacks, epochs=2):
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 3), dtype=np.float32)
    return model.fit(x, x[:, :1], batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks)


def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_second_run_on_a_backup_folder_is_refused_naming_the_holder(tmp_path, holder):
    proc = holder(tmp_path / "backup" / ".lock")
    with pytest.raises(LockedError) as caught:
        fit([BackupAndRestore(tmp_path / "backup")])
    assert str(caught.value) == (
        f"BackupAndRestore: backup_dir='{tmp_path}/backup' is in use by another run (process "
        f"{proc.pid} holds its lock '{tmp_path}/backup/.lock'). Use one path per run, or stop "
        "the other run first."
    )
    assert os.listdir(tmp_path / "backup") == [".lock"]  # Nothing read or written.
    proc.send_signal(signal.SIGKILL)  # The OS releases a killed holder's lock ...
    proc.wait()
    fit([BackupAndRestore(tmp_path / "backup")])  # ... so a restart runs,
    assert not (tmp_path / "backup").exists()  # and removes folder and lock file at its end.


def test_a_second_appender_to_a_csv_is_refused_and_no_row_is_lost(tmp_path, holder):
    path = tmp_path / "log.csv"
    fit([CSVLogger(path, append=True)])
    first = path.read_bytes()
    proc = holder(tmp_path / ".log.csv.lock")
    with pytest.raises(LockedError) as caught:
        fit([CSVLogger(path, append=True)])
    assert str(caught.value) == (
        f"CSVLogger: filename='{path}' is in use by another run (process {proc.pid} holds its "
        f"lock '{tmp_path}/.log.csv.lock'). Use one path per run, or stop the other run first."
    )
    assert path.read_bytes() == first
    proc.stdin.write("done\n")
    proc.stdin.flush()
    proc.wait()
    history = fit([CSVLogger(path, append=True)], epochs=3)
    rows = path.read_text().splitlines()
    assert rows[:3] == first.decode().splitlines()  # Appended after the first run's rows.
    assert rows[3:] == [f"{epoch},{history.history['loss'][epoch]!r}" for epoch in range(3)]
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]


def test_append_mode_appends_to_the_same_file_instead_of_rewriting_it(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"epoch,loss\r\n0,9.0\r\n")
    inode = os.stat(path).st_ino
    seen = []

    class Watch(cadence.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(os.stat(path).st_ino)

    fit([CSVLogger(path, append=True), Watch()], epochs=3)
    assert seen == [inode] * 3 and os.stat(path).st_ino == inode
    assert path.read_bytes().startswith(b"epoch,loss\r\n0,9.0\r\n0,")


def test_a_half_written_line_of_a_killed_appender_is_removed_with_a_warning(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"epoch,loss\r\n0,9.0\r\n1,8.")
    with pytest.warns(UserWarning, match=r"^CSVLogger: '.*log\.csv' ends with a half-written line \(b'1,8\.'\), left by a process killed while appending; it is removed\.$"):
        history = fit([CSVLogger(path, append=True)], epochs=1)
    assert path.read_bytes().decode() == f"epoch,loss\r\n0,9.0\r\n0,{history.history['loss'][0]!r}\r\n"


def test_the_lock_of_the_same_process_is_refused_too(tmp_path):
    first = FileLock(tmp_path / "x.lock", "A", "the path")
    first.acquire()
    first.acquire()  # Taking a lock one holds does nothing.
    with pytest.raises(LockedError, match=rf"^B: the path is in use by another run \(process {os.getpid()} holds"):
        FileLock(tmp_path / "x.lock", "B", "the path").acquire()
    first.release()
    assert os.listdir(tmp_path) == []


def test_temporary_files_of_dead_writers_are_removed_at_the_next_start(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    backup, logs, ckpt = tmp_path / "backup", tmp_path / "logs", tmp_path / "ckpt"
    for folder in (backup, logs, ckpt):
        folder.mkdir()
    stale = [backup / f".backup.cadence.tmp-{dead}-0123abcd", logs / f".log.csv.tmp-{dead}-89abcdef",
             ckpt / f".w-1.pt.tmp-{dead}-deadbeef"]
    kept = [backup / f".backup.cadence.tmp-{alive}-0123abcd", logs / f".other.csv.tmp-{dead}-89abcdef",
            logs / f".log.csv.tmp-{alive}-00000000"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    fit([BackupAndRestore(backup, delete_checkpoint=False), CSVLogger(logs / "log.csv"),
         cadence.callbacks.ModelCheckpoint(str(ckpt / "w-{epoch}.pt"))], epochs=1)
    assert sorted(os.listdir(backup)) == sorted(["backup.cadence", kept[0].name])
    assert sorted(os.listdir(logs)) == sorted(["log.csv", kept[1].name, kept[2].name])
    assert os.listdir(ckpt) == ["w-1.pt"]


def test_remove_stale_temp_files_returns_what_it_removed(tmp_path):
    dead = dead_pid()
    (tmp_path / f".w.pt.tmp-{dead}-aaaaaaaa").write_bytes(b"")
    (tmp_path / f".w.pt.tmp-{dead}-not-hex").write_bytes(b"")
    (tmp_path / f"w.pt.tmp-{dead}-aaaaaaaa").write_bytes(b"")
    assert remove_stale_temp_files(tmp_path) == [tmp_path / f".w.pt.tmp-{dead}-aaaaaaaa"]
    assert remove_stale_temp_files(tmp_path / "missing") == []
    assert sorted(os.listdir(tmp_path)) == [f".w.pt.tmp-{dead}-not-hex", f"w.pt.tmp-{dead}-aaaaaaaa"]
