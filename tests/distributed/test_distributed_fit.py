"""fit / evaluate / predict in 2 processes (gloo on CPU), launched as torchrun launches them.

Each launch starts ``dist_worker.py`` twice with ``RANK``, ``WORLD_SIZE`` and a rendezvous file
of its own (``CADENCE_TEST_INIT_METHOD=file://...``, created fresh by the ranks: no network port
that another process could take first), under one deadline for all ranks, so a hang fails the
test, with the ranks killed, instead of blocking the suite. To run the same checks with NCCL on
one GPU: ``CADENCE_TEST_BACKEND=nccl torchrun --nproc_per_node=1 tests/distributed/dist_worker.py
fit,stop,resume OUT``.

Exactness: 2 ranks with batches of 4 see, at every step, the samples of one batch of 8 of a
single process with the same data seed (each rank takes every other sample of the same
permutation), and DDP averages the two ranks' mean gradients, which is the mean gradient of
the 8. The only difference is float32 rounding of means over 4 and 8 samples, hence
``allclose`` with a relative tolerance of 1e-5 against the single process; between the two
ranks, weights and logs are compared bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker  # noqa: E402

WORKER = Path(__file__).parent / "dist_worker.py"
LAUNCH_TIMEOUT = 120  # Seconds for all ranks of one launch to finish (a few seconds unloaded).
# Above the launches' own deadlines (the resume test launches twice), so those fire first.
pytestmark = pytest.mark.timeout(2 * LAUNCH_TIMEOUT + 60)


def start(args: list[str], out: Path, world: int = 2) -> list[subprocess.Popen]:
    """Start ``world`` ranks of the worker on ``args`` (a fresh rendezvous file in ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    rendezvous = out / "rendezvous"
    assert not rendezvous.exists(), f"{rendezvous} is left from another launch"
    procs = []
    for rank in range(world):
        env = dict(os.environ, CADENCE_TEST_INIT_METHOD=rendezvous.as_uri(), RANK=str(rank),
                   LOCAL_RANK=str(rank), WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), *args[:1], str(out), *args[1:]], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    return procs


def launch(args: list[str], out: Path, world: int = 2, timeout: float = LAUNCH_TIMEOUT,
           started: list[subprocess.Popen] | None = None) -> tuple[list[int], list[str]]:
    """Start ``world`` ranks of the worker; return their exit codes and outputs (kill on hang).

    The ranks' processes are also appended to ``started`` when it is given.
    """
    procs = start(args, out, world)
    if started is not None:
        started.extend(procs)
    deadline = time.monotonic() + timeout
    outputs, codes = [], []
    try:
        for proc in procs:
            text, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            outputs.append(text)
            codes.append(proc.returncode)
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        texts = [proc.communicate()[0] for proc in procs]
        pytest.fail(f"the {world} ranks of {args} did not finish within {timeout}s (a hang):\n"
                    + "\n".join(texts))
    finally:  # Also when pytest-timeout or Ctrl-C interrupts: no rank is left running.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return codes, outputs


def killed_together(codes: list[int]) -> bool:
    """Whether the ranks died at KillAt (status 3); a rank whose watchdog saw the other die
    first may have stopped with status 1 an instant before its own exit."""
    return 3 in codes and set(codes) <= {1, 3}


def results(out: Path, rank: int) -> dict:
    with np.load(out / f"rank{rank}.npz") as loaded:
        return {key: loaded[key] for key in loaded.files}


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """One launch: the fit scenario, the stop scenarios and an uninterrupted resumable run."""
    out = tmp_path_factory.mktemp("dist")
    codes, outputs = launch(["fit,stop,resume"], out)
    assert codes == [0, 0], "\n".join(outputs)
    return out, outputs, [results(out, 0), results(out, 1)]


def test_weights_equal_on_both_ranks_and_match_one_process(main_run):
    _, _, (r0, r1) = main_run
    assert int(r0["world_size"]) == 2
    np.testing.assert_array_equal(r0["weights"], r1["weights"])
    x, y = dist_worker.data(16)
    x_val, y_val = dist_worker.data(11, seed=1)
    single = dist_worker.linear_model()
    history = single.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0,
                         validation_data=(x_val, y_val))
    reference = np.concatenate([w.ravel() for w in single.get_weights()])
    np.testing.assert_allclose(r0["weights"], reference, rtol=1e-5, atol=1e-6)
    logged = json.loads(str(r0["history"]))
    assert logged == json.loads(str(r1["history"]))
    assert sorted(logged) == ["loss", "mae", "val_loss", "val_mae"]
    for key, values in history.history.items():
        np.testing.assert_allclose(logged[key], values, rtol=1e-5, err_msg=key)


def test_evaluate_and_predict_cover_every_sample_once_in_order(main_run):
    _, _, (r0, r1) = main_run
    single = dist_worker.linear_model()
    single.set_weights([r0["weights"][:3].reshape(1, 3), r0["weights"][3:]])
    x_val, y_val = dist_worker.data(11, seed=1)  # 11 samples: 6 on rank 0, 5 on rank 1.
    expected = single.evaluate(x_val, y_val, batch_size=2, verbose=0)
    for r in (r0, r1):
        np.testing.assert_allclose(r["evaluate"], expected, rtol=1e-6)
        np.testing.assert_allclose(r["evaluate_sequence"], expected, rtol=1e-6)
    outputs = single.predict(x_val, verbose=0)
    for key in ("predict", "predict_dataset", "predict_sequence", "predict_loader"):
        assert r0[key].shape == (11, 1), key
        np.testing.assert_allclose(r0[key], outputs, rtol=1e-6, err_msg=key)
        np.testing.assert_array_equal(r0[key], r1[key])


def test_files_and_progress_are_written_by_rank_zero_only(main_run):
    out, outputs, (r0, _) = main_run
    assert sorted(os.listdir(out / "rank0")) == ["ckpt.weights.pt", "log.csv"]
    assert os.listdir(out / "rank1") == []
    rows = (out / "rank0" / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,mae,val_loss,val_mae" and len(rows) == 4
    logged = json.loads(str(r0["history"]))
    assert float(rows[3].split(",")[1]) == pytest.approx(logged["loss"][2], rel=1e-6)
    assert outputs[0].count("Epoch ") == 3
    assert "Epoch" not in outputs[1]


def test_a_stop_decided_on_one_rank_stops_every_rank_at_the_same_point(main_run):
    _, _, (r0, r1) = main_run
    # EarlyStopping fires on rank 1 only (its logs say the loss grew): both ranks stop after
    # epoch 2, and rank 0's own EarlyStopping never decided anything.
    assert int(r0["epochs_run"]) == int(r1["epochs_run"]) == 2
    assert (int(r0["stopped_epoch"]), int(r1["stopped_epoch"])) == (0, 1)
    # A user callback stops rank 0 at batch 2: rank 1 stops after the same batch.
    assert int(r0["batches_run"]) == int(r1["batches_run"]) == 3


def test_killed_run_resumed_with_backup_and_restore_ends_as_an_uninterrupted_one(
    main_run, tmp_path
):
    out, _, (r0, _) = main_run
    backup = tmp_path / "backup"
    codes, outputs = launch(["resume", str(backup), "7"], tmp_path / "killed")
    assert killed_together(codes), "\n".join(outputs)
    assert (backup / "backup.cadence").is_file()
    codes, outputs = launch(["resume", str(backup)], tmp_path / "resumed")
    assert codes == [0, 0], "\n".join(outputs)
    resumed = [results(tmp_path / "resumed", rank) for rank in (0, 1)]
    for r in resumed:
        assert bool(r["restored"]) and int(r["epochs"]) == 4
        np.testing.assert_array_equal(r["weights_resume"], r0["weights_resume"])
        assert str(r["history_resume"]) == str(r0["history_resume"])  # Every rank's metric states.
    assert not bool(r0["restored"])
    assert not backup.exists() and not (out / "backup").exists()


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    """One launch of the FSDP scenario."""
    out = tmp_path_factory.mktemp("fsdp")
    codes, outputs = launch(["fsdp,fsdp_bf16"], out)
    assert codes == [0, 0], "\n".join(outputs)
    return out, [results(out, 0), results(out, 1)]


def test_fsdp_shards_the_parameters_and_trains_as_one_process_at_the_global_batch(fsdp_run):
    _, (r0, r1) = fsdp_run
    assert bool(r0["fsdp_sharded"]) and bool(r1["fsdp_sharded"])
    assert int(r0["fsdp_local_params"]) == int(r1["fsdp_local_params"]) == 29  # Of 58.
    np.testing.assert_array_equal(r0["fsdp_weights"], r1["fsdp_weights"])
    x, y = dist_worker.mlp_data(16)
    x_val, y_val = dist_worker.mlp_data(11, seed=1)
    # One process at the global batch size (2 x 4), the same data seed and initial weights.
    single = dist_worker.mlp_model()
    single.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0, validation_data=(x_val, y_val))
    reference = dist_worker.flat_weights(single)
    np.testing.assert_allclose(r0["fsdp_weights"], reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r0["fsdp_evaluate"], single.evaluate(x_val, y_val, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(r0["fsdp_predict"], single.predict(x_val, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r0["fsdp_predict"], r1["fsdp_predict"])


def test_fsdp_with_bf16_computes_in_bf16_and_keeps_float32_shards(fsdp_run):
    _, (r0, r1) = fsdp_run
    assert r0["bf16_param_dtypes"].tolist() == ["torch.float32"]
    np.testing.assert_array_equal(r0["bf16_weights"], r1["bf16_weights"])
    loss = r0["bf16_loss"]
    assert np.all(np.isfinite(loss)) and loss[1] < loss[0]
    x, y = dist_worker.mlp_data(16)
    single = dist_worker.mlp_model()  # float32, one process, the global batch.
    single.fit(x, y, batch_size=8, epochs=2, verbose=0)
    reference = dist_worker.flat_weights(single)
    np.testing.assert_allclose(r0["bf16_weights"], reference, atol=0.05)  # Near, but rounded
    assert not np.allclose(r0["bf16_weights"], reference, rtol=1e-5, atol=1e-6)  # in bfloat16.


def test_fsdp_whole_weights_set_save_and_load(fsdp_run):
    out, (r0, r1) = fsdp_run
    for r in (r0, r1):
        np.testing.assert_array_equal(r["fsdp_set"], np.full(58, 0.5, np.float32))
        np.testing.assert_array_equal(r["fsdp_loaded"], r0["fsdp_weights"])
    one = dist_worker.mlp_model()
    one.load_weights(out / "rank0" / "fsdp.weights.pt")  # Whole weights: load in one process.
    np.testing.assert_array_equal(dist_worker.flat_weights(one), r0["fsdp_weights"])
    # ModelCheckpoint gathered with both ranks and wrote the whole state on rank 0 only.
    assert not (out / "rank1" / "fsdp_checkpoint.pt").exists()
    one = dist_worker.mlp_model()
    one.load_weights(out / "rank0" / "fsdp_checkpoint.pt")
    np.testing.assert_array_equal(dist_worker.flat_weights(one), r0["fsdp_weights"])
    saved = cadence.io.load_state(str(out / "rank0" / "fsdp_checkpoint.pt"))  # model.save's file.
    assert saved["format"] == "cadence-model" and sorted(saved["optimizer"]["state"]) == [0, 1, 2, 3]
    one.optimizer.load_state_dict(saved["optimizer"])  # Whole Adam moments, torch's own layout.
    assert [tuple(s["exp_avg"].shape) for s in one.optimizer.state.values()] == [(8, 4), (8,), (2, 8), (2,)]
    # model.save gathers the whole state on every rank and rank 0 writes it; load_model gives
    # each rank its slice, or one process all.
    for r in (r0, r1):
        np.testing.assert_array_equal(r["fsdp_load_model"], r0["fsdp_weights"])
    one = cadence.load_model(out / "fsdp_model.pt", dist_worker.mlp_model())
    np.testing.assert_array_equal(dist_worker.flat_weights(one), r0["fsdp_weights"])
    assert [tuple(s["exp_avg"].shape) for s in one.optimizer.state.values()] == [(8, 4), (8,), (2, 8), (2,)]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_failed_rank_that_lingers_makes_the_other_rank_fail_naming_it(strategy, tmp_path):
    procs = start([f"linger_{strategy}"], tmp_path / "linger")
    try:
        # Rank 0 would wait in its next collective; it must end within 60 s, naming rank 1.
        text, _ = procs[0].communicate(timeout=60)
        assert procs[0].returncode == 1, text
        assert ("cadence.distributed.PeerFailure: rank 1 failed: ValueError: rank one broke"
                in text), text
        assert procs[1].poll() is None  # Rank 1 still lingers, as its code asked.
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert not (tmp_path / "linger" / "rank0.npz").exists()


@pytest.fixture(scope="module")
def killed_fsdp(tmp_path_factory):
    """A 2-rank FSDP run with sharded backups every 3 batches, both ranks dying before batch 7."""
    out = tmp_path_factory.mktemp("killed_fsdp")
    codes, outputs = launch(["resume_fsdp", str(out / "backup"), "7"], out)
    assert killed_together(codes), "\n".join(outputs)
    assert (out / "backup" / "backup.cadence").is_file()
    assert sorted(p.name for p in (out / "backup").iterdir() if p.is_dir()) == ["shards-3", "shards-6"]
    return out


class WeightsAtBegin(callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = dist_worker.flat_weights(self.model)


def test_a_sharded_backup_resumes_on_one_process_when_asked(killed_fsdp, tmp_path):
    backup = tmp_path / "backup"
    shutil.copytree(killed_fsdp / "backup", backup)
    x, y = dist_worker.mlp_data(32)
    model = dist_worker.mlp_model("fsdp")  # No process group: one process, nothing sharded.
    with pytest.raises(ValueError, match=r"backup.cadence' was written by 2 processes with the "
                       r"model sharded \(strategy='fsdp'\); this run has 1\. .*reshard=True\)\."):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(str(backup), save_freq=3)])
    model = dist_worker.mlp_model("fsdp")
    seen = WeightsAtBegin()
    restore = callbacks.BackupAndRestore(str(backup), save_freq=3, reshard=True)
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[restore, seen])
    assert restore.restored_from is not None
    np.testing.assert_array_equal(seen.weights, np.load(killed_fsdp / "rank0" / "weights_at_6.npy"))
    assert len(history.history["loss"]) == 3  # Epoch 0 from the backup, then epochs 1 and 2.
    assert not np.array_equal(dist_worker.flat_weights(model), seen.weights)
    assert not backup.exists()


def test_a_sharded_backup_that_does_not_fit_is_refused_before_anything_loads(killed_fsdp, tmp_path):
    backup = tmp_path / "backup"
    shutil.copytree(killed_fsdp / "backup", backup)
    x, y = dist_worker.mlp_data(32)
    torch.manual_seed(0)
    wide = cadence.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    wide.compile(optimizer=torch.optim.Adam(wide.parameters(), lr=0.05), loss="mse",
                 metrics=["mae"], strategy="fsdp", device="cpu")
    before = dist_worker.flat_weights(wide)
    with pytest.raises(ValueError, match=r"backup.cadence' names shards in '.*shards-6' written by a "
                       r"model of another layout: different shapes \(.*weight: \(8, 4\) in the "
                       r"shards, \(6, 4\) in the model"):
        wide.fit(x, y, batch_size=4, epochs=3, verbose=0,
                 callbacks=[callbacks.BackupAndRestore(str(backup), save_freq=3, reshard=True)])
    np.testing.assert_array_equal(dist_worker.flat_weights(wide), before)
    model = dist_worker.mlp_model("fsdp")
    before = dist_worker.flat_weights(model)
    with pytest.raises(ValueError, match=r"Cannot restore the training state of '.*backup.cadence'"):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(str(backup), save_freq=3, reshard=True),
                             callbacks.EarlyStopping(monitor="loss", patience=5)])
    np.testing.assert_array_equal(dist_worker.flat_weights(model), before)  # Shards not loaded.
    assert sorted(p.name for p in backup.iterdir() if not p.name.startswith(".")) == [
        "backup.cadence", "backup.cadence.prev", "shards-3", "shards-6"]


def test_ranks_that_find_different_backups_are_refused(killed_fsdp, tmp_path):
    shutil.copytree(killed_fsdp / "backup", tmp_path / "b0")  # Per-machine folders: rank 1's
    (tmp_path / "b1").mkdir()  # machine has no backup.
    codes, outputs = launch(["resume_fsdp", str(tmp_path / "b{rank}")], tmp_path / "run")
    assert codes == [1, 1], "\n".join(outputs)
    expected = (r"ValueError: The ranks read different backups: rank 0 found a backup at epoch 1, "
                r"batch 2 \(global step 6, digest [0-9a-f]{12}\) in '.*b0'; rank 1 found no "
                r"backup in '.*b1'\. Every rank must restore the same backup")
    for text in outputs:
        assert re.search(expected, text), text
    assert sorted(p.name for p in (tmp_path / "b0").iterdir()) == ["backup.cadence", "backup.cadence.prev", "shards-3", "shards-6"]


def test_a_rank_killed_under_torchrun_restarts_and_ends_as_an_uninterrupted_run(tmp_path):
    codes, outputs = launch(["resume_fsdp", str(tmp_path / "ref_backup")], tmp_path / "ref")
    assert codes == [0, 0], "\n".join(outputs)
    reference = results(tmp_path / "ref", 0)
    out = tmp_path / "elastic"
    env = {k: v for k, v in os.environ.items() if k != "CADENCE_TEST_INIT_METHOD"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "--max-restarts=2", str(WORKER), "resume_fsdp_sigkill", str(out),
               str(tmp_path / "backup"), "7"]
    done = subprocess.run(command, env=dict(env, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=2 * LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        resumed = results(out, rank)
        assert int(resumed["attempt"]) == 1 and bool(resumed["restored"])  # One restart.
        np.testing.assert_array_equal(resumed["weights_fsdp_resume"], reference["weights_fsdp_resume"])
        assert str(resumed["history"]) == str(reference["history"])
    assert not (tmp_path / "backup").exists()


def test_a_hang_fails_the_launch_and_kills_every_rank(tmp_path):
    # Rank 1 sleeps for an hour; rank 0 waits for it in a barrier.
    started: list[subprocess.Popen] = []
    with pytest.raises(pytest.fail.Exception, match=r"the 2 ranks of \['hang'\] did not finish within 5s"):
        launch(["hang"], tmp_path / "hang", timeout=5, started=started)
    assert [proc.returncode for proc in started] == [-signal.SIGKILL, -signal.SIGKILL]  # Reaped.


def test_single_process_fit_is_untouched_by_the_distributed_code():
    assert not cadence.distributed.is_initialized()
    model = dist_worker.linear_model()
    x, y = dist_worker.data(16)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callbacks.History()])
    assert model._ddp_route is None
