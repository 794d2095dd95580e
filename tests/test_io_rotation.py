"""cadence.io rotating backups: a complete backup survives a crash at any moment."""

import os
import random
import re
import signal
import sys
import time
import warnings

import pytest
import torch

from cadence.io import (
    CorruptFileError,
    load_latest,
    load_state,
    rotate_write,
    save_state,
)


def header_and_size(path):
    data = path.read_bytes()
    end = data.index(b"\n")
    return data, end + 1, int(data[:end].split()[2])


# ----------------------------------------------------------------------------- rotating backups


def test_rotate_write_keeps_previous_and_load_latest_falls_back(tmp_path):
    path = tmp_path / "backup.ckpt"
    for step in range(3):
        rotate_write(path, {"step": step})
    assert sorted(os.listdir(tmp_path)) == ["backup.ckpt", "backup.ckpt.prev"]
    assert load_latest(path) == ({"step": 2}, path)
    assert load_state(str(path) + ".prev") == {"step": 1}

    path.write_bytes(path.read_bytes()[:-3])
    prev = tmp_path / "backup.ckpt.prev"
    _, _, size = header_and_size(prev)
    message = f"Skipping backup '{path}' (truncated: expected {size} bytes, found {size - 3}); "
    message += f"loading '{prev}' instead."
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        assert load_latest(path) == ({"step": 1}, prev)

    rotate_write(path, {"step": 3})  # The damaged file must not push out the good previous one.
    assert load_state(prev) == {"step": 1}
    assert load_latest(path) == ({"step": 3}, path)


def test_load_latest_when_newest_is_missing_or_all_corrupt(tmp_path):
    path = tmp_path / "backup.ckpt"
    prev = tmp_path / "backup.ckpt.prev"
    message = f"No backup found: neither '{path}' nor '{prev}' exists."
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_latest(path)
    save_state({"step": 1}, prev)
    with pytest.warns(UserWarning, match=r"^Skipping backup '.*backup\.ckpt' \(missing\); loading"):
        assert load_latest(path) == ({"step": 1}, prev)
    prev.write_bytes(b"")
    message = f"Corrupt file '{path}': no complete backup; '{prev}': empty file (0 bytes)."
    missing = re.escape(f"Skipping backup '{path}' (missing)")
    with pytest.warns(UserWarning, match=missing):
        with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
            load_latest(path)
    path.write_bytes(b"junk")
    message = r"no complete backup; '.*backup\.ckpt': not a cadence.*; '.*prev': empty file"
    with pytest.warns(UserWarning), pytest.raises(CorruptFileError, match=message):
        load_latest(path)



class Crash(BaseException):
    pass


def test_crash_before_any_system_call_of_rotate_write_keeps_a_backup(tmp_path, monkeypatch):
    path = tmp_path / "backup.ckpt"
    rotate_write(path, {"step": 0})
    rotate_write(path, {"step": 1})
    real = {name: getattr(os, name) for name in ("replace", "fsync", "open")}
    crash_at = 1
    while True:
        calls = []

        def fake(name, *args, _calls=calls, _crash_at=crash_at, **kwargs):
            _calls.append(name)
            if len(_calls) == _crash_at:
                raise Crash(name)
            return real[name](*args, **kwargs)

        for name in real:
            monkeypatch.setattr(os, name, lambda *a, _n=name, **k: fake(_n, *a, **k))
        step = crash_at + 1
        try:
            rotate_write(path, {"step": step})
            crashed = False
        except Crash:
            crashed = True
        finally:
            monkeypatch.undo()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            state, _ = load_latest(path)
        assert state["step"] in (step - 1, step) if crashed else state == {"step": step}
        if not crashed:
            break
        rotate_write(path, {"step": step})  # Back to a known state: the crashed step, complete.
        crash_at += 1
    # A crash was tried before each of: fsync of the new file, rename to .prev, folder fsync,
    # rename into place, folder fsync.
    assert calls == ["fsync", "replace", "open", "fsync", "replace", "open", "fsync"]
    assert crash_at == len(calls) + 1

def backup_state(step):
    return {"step": step, "weights": torch.full((256, 512), float(step)), "tag": f"step-{step}"}


def check_backup(state):
    step = state["step"]
    assert state["tag"] == f"step-{step}"
    assert torch.equal(state["weights"], torch.full((256, 512), float(step)))
    return step


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_never_loses_the_backup(tmp_path):
    path = tmp_path / "backup.ckpt"
    rotate_write(path, backup_state(0))
    rng = random.Random(20240601)
    fallbacks = 0
    for _ in range(20):
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            state, _ = load_latest(path)
        start = check_backup(state)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # The writer: resume from the backup and keep writing new ones.
            try:
                os.close(read_end)
                step = start
                while True:
                    step += 1
                    rotate_write(path, backup_state(step))
                    os.write(write_end, b"%d\n" % step)
            finally:
                os._exit(1)
        os.close(write_end)
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as reader:
            finished = [int(line) for line in reader.read().split()]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state, used = load_latest(path)
        fallbacks += bool(caught)
        step = check_backup(state)
        # Either the newest finished write, the one after it, or (mid-rotation) the one before.
        last = finished[-1] if finished else start
        assert last - 1 <= step <= last + 1, (finished, step, used)
    rotate_write(path, backup_state(1000))
    assert sorted(os.listdir(tmp_path)) == ["backup.ckpt", "backup.ckpt.prev"]
    assert check_backup(load_latest(path)[0]) == 1000
    print(f"fallbacks to the previous backup: {fallbacks}", file=sys.stderr)



def test_rotate_write_keeps_previous_when_newest_is_corrupt_inside(tmp_path):
    path = tmp_path / "backup.cadence"
    rotate_write(path, {"step": 1})
    rotate_write(path, {"step": 2})
    # Same size, one byte flipped in the payload: the header alone still looks right.
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    rotate_write(path, {"step": 3})
    assert load_state(path) == {"step": 3}
    # The damaged file did not push out the good previous one.
    assert load_state(tmp_path / "backup.cadence.prev") == {"step": 1}


def _no_space(fd):
    raise OSError(28, "No space left on device")


def test_a_partial_next_file_after_no_space_is_removed_at_once(tmp_path, monkeypatch):
    path = tmp_path / "backup.cadence"
    rotate_write(path, {"step": 1})
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(OSError, match=r"No space left on device"):
        rotate_write(path, {"step": 2, "big": torch.zeros(1000)})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["backup.cadence"]
    assert path.read_bytes() == before


def test_a_partial_temporary_file_after_no_space_is_removed_at_once(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_state({"step": 1}, path)
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(OSError, match=r"No space left on device"):
        save_state({"step": 2}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["state.pt"] and load_state(path) == {"step": 1}
