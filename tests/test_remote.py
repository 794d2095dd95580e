"""Remote paths (cadence/remote.py, dispatched from cadence/io.py): memory:// and a real S3 server.

The S3 server is moto's, started by the test as a separate process on 127.0.0.1 and a free
port. A training run (tests/fault_injection_train.py) writes its CSV log, checkpoints and
backups to it, is killed with SIGKILL in the middle of an epoch, restarted with the same
command, and ends with the same weights, History, CSV bytes and checkpoints as a run never
interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from cadence import io, remote

HELPER = Path(__file__).with_name("fault_injection_train.py")


# ------------------------------------------------------------------- memory:// (in process)
def test_protocols_and_local_urls(tmp_path):
    assert remote.protocol("s3://b/k") == "s3" and remote.protocol("/tmp/x") is None
    assert remote.protocol(Path("s3:/b")) is None
    assert remote.is_remote("gs://b/k") and remote.is_remote("memory://x")
    assert not remote.is_remote("file:///tmp/x") and not remote.is_remote("C:/x")
    assert remote.local_path(f"file://{tmp_path}/a%20b.pt") == f"{tmp_path}/a b.pt"
    with pytest.raises(ValueError, match=r"must name a file on this machine .* 'file://host/x'"):
        remote.local_path("file://host/x")
    io.save_state({"a": torch.arange(3)}, f"file://{tmp_path}/s.pt")
    assert torch.equal(io.load_state(tmp_path / "s.pt")["a"], torch.arange(3))


def test_memory_files_are_written_whole_and_rotated():
    import fsspec

    fs = fsspec.filesystem("memory")
    io.save_state({"v": torch.ones(2)}, "memory://cadence-test/a.pt")
    assert torch.equal(io.load_state("memory://cadence-test/a.pt")["v"], torch.ones(2))

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom), io.atomic_write("memory://cadence-test/half.txt", "w") as f:
        f.write("half")
        raise Boom
    assert not fs.exists("/cadence-test/half.txt")  # Whole or absent.

    io.rotate_write("memory://cadence-test/b", {"v": 1})
    io.rotate_write("memory://cadence-test/b", {"v": 2})
    assert io.load_latest("memory://cadence-test/b") == ({"v": 2}, "memory://cadence-test/b")
    assert io.load_state("memory://cadence-test/b.prev") == {"v": 1}
    fs.pipe_file("/cadence-test/b", b"cadence-state v1 99 " + b"0" * 64 + b"\nshort")
    with pytest.warns(UserWarning, match=r"Skipping backup 'memory://cadence-test/b' \(truncated"):
        assert io.load_latest("memory://cadence-test/b") == ({"v": 1}, "memory://cadence-test/b.prev")
    io.rotate_write("memory://cadence-test/b", {"v": 3})  # A damaged newest never replaces .prev.
    assert io.load_state("memory://cadence-test/b.prev") == {"v": 1}
    fs.rm("/cadence-test", recursive=True)


def test_missing_remote_file_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match=r"No such remote file: 'memory://cadence-none/x.pt'"):
        io.load_state("memory://cadence-none/x.pt")
    with pytest.raises(FileNotFoundError, match="No backup found"):
        io.load_latest("memory://cadence-none/b")


def test_unknown_protocol_names_what_to_install():
    with pytest.raises(ValueError, match="Protocol not known: nosuchfs"):
        io.save_state({}, "nosuchfs://b/k")


# ------------------------------------------------------------------- S3 (moto's server)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.fixture()
def s3_env(s3_endpoint, monkeypatch, request):
    """Credentials and endpoint for the test process and its children; a fresh bucket."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_endpoint,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import fsspec

    bucket = "cadence-" + request.node.name.replace("_", "-")[:40].lower()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(bucket)
    return bucket


def _run(workdir: str, kill_at_step: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_FI_")}
    if kill_at_step is not None:
        env["CADENCE_FI_KILL_AT_STEP"] = str(kill_at_step)
    return subprocess.run(
        [sys.executable, str(HELPER), workdir], capture_output=True, text=True, env=env, timeout=240
    )


def _objects(bucket: str, prefix: str) -> dict[str, bytes]:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    root = f"{bucket}/{prefix}/"
    return {path[len(root):]: fs.cat_file(path) for path in fs.find(root)}


@pytest.mark.timeout(600)
def test_killed_run_on_s3_resumes_bit_identically(s3_env):
    bucket = s3_env
    reference = _run(f"s3://{bucket}/reference")
    assert reference.returncode == 0, reference.stderr
    # Killed twice mid-epoch (steps 17 and 29 of 12-step epochs: after a backup at 15 and 27),
    # then run to its end.
    for step in (17, 29):
        killed = _run(f"s3://{bucket}/killed", kill_at_step=step)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert killed.stdout.splitlines()[-1] == f"B {step}"
    final = _run(f"s3://{bucket}/killed")
    assert final.returncode == 0, final.stderr
    assert final.stdout.splitlines()[0] == f"START s3://{bucket}/killed/backup/backup.cadence"
    assert final.stdout.splitlines()[1] == "B 28"  # The backup of step 27 was restored.

    mine, theirs = _objects(bucket, "killed"), _objects(bucket, "reference")
    assert sorted(mine) == sorted(theirs)
    assert any(name.startswith("ckpt/best-") for name in theirs)
    assert "log.csv" in theirs and not any(name.startswith("backup/") for name in theirs)
    assert mine["log.csv"] == theirs["log.csv"]
    assert json.loads(mine["result.json"]) == json.loads(theirs["result.json"])
    for name in theirs:
        if name.endswith(".pt"):
            a = io.load_state(f"s3://{bucket}/killed/{name}")
            b = io.load_state(f"s3://{bucket}/reference/{name}")
            a, b = a.get("weights", a), b.get("weights", b)  # model.save files: the weights
            assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a), name


def test_s3_files_are_whole_or_absent_and_rotate(s3_env):
    bucket = s3_env
    path = f"s3://{bucket}/run/backup.cadence"
    with pytest.raises(RuntimeError, match="mid-write"), io.atomic_write(path) as f:
        f.write(b"partial")
        raise RuntimeError("mid-write")
    assert not remote.exists(path)
    io.rotate_write(path, {"step": 1})
    io.rotate_write(path, {"step": 2})
    assert io.load_latest(path) == ({"step": 2}, path)
    assert io.load_state(path + ".prev") == {"step": 1}
    assert sorted(_objects(bucket, "run")) == ["backup.cadence", "backup.cadence.prev"]


def test_training_writes_every_file_to_memory_urls():
    import fsspec
    import numpy as np
    from torch import nn

    import cadence
    from cadence import callbacks

    fs = fsspec.filesystem("memory")
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 2))
    model.compile(optimizer="sgd", loss="mse")
    x = np.arange(60, dtype=np.float32).reshape(20, 3) / 60
    y = np.ones((20, 2), dtype=np.float32)
    root = "memory://cadence-fit"
    model.fit(x, y, batch_size=5, epochs=2, validation_split=0.2, verbose=0, callbacks=[
        callbacks.CSVLogger(f"{root}/log.csv"),
        callbacks.ModelCheckpoint(f"{root}/ckpt-{{epoch}}.safetensors"),
        callbacks.TensorBoard(f"{root}/tb"),
        callbacks.BackupAndRestore(f"{root}/backup", delete_checkpoint=False),
    ])
    names = sorted(path.removeprefix("/cadence-fit/") for path in fs.find("/cadence-fit"))
    assert names[:5] == ["backup/backup.cadence", "backup/backup.cadence.prev", "ckpt-1.safetensors",
                         "ckpt-2.safetensors", "log.csv"]
    assert [n.split("/")[1] for n in names[5:]] == ["train", "validation"]
    assert fs.cat_file("/cadence-fit/log.csv").decode().splitlines()[0] == "epoch,loss,val_loss"
    model.save_weights(f"{root}/w.pt")
    other = cadence.Sequential(nn.Linear(3, 2))
    other.load_weights(f"{root}/w.pt")
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), model.state_dict().values(), strict=True))
    model.save(f"{root}/model.cadence")
    again = cadence.Sequential(nn.Linear(3, 2))
    cadence.load_model(f"{root}/model.cadence", again)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values(), strict=True))
    assert again.optimizer.state_dict()["state"].keys() == model.optimizer.state_dict()["state"].keys()
    callbacks.BackupAndRestore(f"{root}/backup").delete()
    assert not any(p.startswith("/cadence-fit/backup") for p in fs.find("/cadence-fit"))
    with pytest.raises(ValueError, match=r"profile_batch needs a local log_dir.*log_dir='memory://x'"):
        callbacks.TensorBoard("memory://x", profile_batch=2)
    fs.rm("/cadence-fit", recursive=True)


def _lock_tests(folder: str):
    first, second = remote.RemoteLock(folder, "BackupAndRestore"), remote.RemoteLock(folder, "Other")
    first.acquire()
    with pytest.raises(remote.RemoteLockedError, match=(
            rf"Other: '{folder}' is in use by process {os.getpid()} on host .* \(lock object "
            rf"'{folder}/.lock'\)")):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
    assert not remote.exists(f"{folder}/.lock")
    # A lock left by a dead process of this machine is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    fs, inner = remote.filesystem(f"{folder}/.lock")
    fs.pipe_file(inner, json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                    "since": 0}).encode())
    first.acquire()
    assert json.loads(fs.cat_file(inner))["pid"] == os.getpid()
    first.release()


def test_remote_lock_on_memory():
    _lock_tests("memory://cadence-lock/run")


def test_remote_lock_on_s3(s3_env):
    _lock_tests(f"s3://{s3_env}/run")
