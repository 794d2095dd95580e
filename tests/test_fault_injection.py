"""Kill a training run with SIGKILL at 11 moments, restart it each time, get the same result.

The run (tests/fault_injection_train.py) trains with shuffling, dropout, validation,
EarlyStopping, ReduceLROnPlateau, CSVLogger, ModelCheckpoint(save_best_only=True) and
BackupAndRestore(save_freq=3). Every kill is made by the run itself, at a planned point, so
where it dies does not depend on how the machine schedules processes: 7 times after a planned
global training step (spread over the run: right after a backup was written, between two
backups in the middle of an epoch, after an epoch's last batch but before its end) and 4 times
just before one of its ``os.replace`` calls (a file written but not yet renamed: inside a
backup, a checkpoint or a CSV rewrite). The final weights, History, CSV file, checkpoints and
EarlyStopping's epoch equal those of a run never interrupted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cadence import io

HELPER = Path(__file__).with_name("fault_injection_train.py")
BACKUP_EVERY = 3  # BackupAndRestore(save_freq=3) in the helper.
STEPS_PER_EPOCH = 12  # 180 training samples in batches of 16.
RUN_TIMEOUT = 120  # Seconds for one run of the helper (about 2 s unloaded): a hang fails.


def _after_backup(step: int) -> bool:
    # A backup due at an epoch's last batch is written at the epoch's end instead.
    return step % BACKUP_EVERY == 0 and step % STEPS_PER_EPOCH != 0


def _between_backups(step: int) -> bool:
    return step % BACKUP_EVERY != 0


def _last_batch_of_epoch(step: int) -> bool:
    return step % STEPS_PER_EPOCH == 0


# Where to kill after a training step: a fraction of the reference run's steps, moved to the
# nearest step of the given kind.
STEP_KILLS: tuple[tuple[float, Callable[[int], bool]], ...] = (
    (0.08, _after_backup),
    (0.22, _between_backups),
    (0.36, _after_backup),
    (0.5, _last_batch_of_epoch),
    (0.64, _between_backups),
    (0.8, _after_backup),
    (0.96, _between_backups),
)


def _nearest(target: int, kind: Callable[[int], bool], total: int) -> int:
    for distance in range(total):
        for step in (target - distance, target + distance):
            if 1 <= step <= total and kind(step):
                return step
    raise AssertionError(f"no step of kind {kind.__name__} in 1..{total}")


def _run(workdir: Path, kill_at_step: int | None = None, kill_at_replace: int | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_FI_")}
    if kill_at_step is not None:
        env["CADENCE_FI_KILL_AT_STEP"] = str(kill_at_step)
    if kill_at_replace is not None:
        env["CADENCE_FI_KILL_AT_REPLACE"] = str(kill_at_replace)
    try:
        proc = subprocess.run(
            [sys.executable, str(HELPER), str(workdir)], capture_output=True, text=True, env=env,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:  # subprocess.run has killed the child.
        pytest.fail(f"the run did not end within {RUN_TIMEOUT}s (a hang); stderr: {error.stderr}")
    start, steps = None, []
    for line in proc.stdout.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "START":
            start = value
        elif kind == "B":
            steps.append(int(value))
    return {"returncode": proc.returncode, "start": start, "steps": steps, "stderr": proc.stderr}


def _check_files(workdir: Path) -> list[str]:
    """Load every file the run left; return the names of leftover temporary files."""
    leftovers = []
    for path in sorted(workdir.rglob("*")):
        if path.is_dir():
            continue
        if ".tmp-" in path.name or path.name.endswith(".next"):
            leftovers.append(path.name)
        elif path.suffix == ".pt" or path.name.startswith("backup.cadence"):
            io.load_state(path)
        elif path.suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            assert all(len(row) == len(rows[0]) for row in rows), path  # Empty before epoch 1.
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix != ".txt":
            raise AssertionError(f"unexpected file {path}")
    return leftovers


@pytest.mark.timeout(300)  # And each of the 13 runs has its own timeout (RUN_TIMEOUT).
def test_sigkill_at_11_moments_ends_as_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    ref = _run(reference)
    assert ref["returncode"] == 0, ref["stderr"]
    total = ref["steps"][-1]
    assert ref["steps"] == list(range(1, total + 1))
    expected = json.loads((reference / "result.json").read_text())
    assert expected["stopped_epoch"] > 0 and len(expected["epochs"]) < 30  # EarlyStopping stopped it.
    assert total == STEPS_PER_EPOCH * len(expected["epochs"])
    assert len(set(expected["history"]["learning_rate"])) > 1  # ReduceLROnPlateau acted.

    work = tmp_path / "interrupted"
    step_kills = [("step", _nearest(round(total * f), kind, total)) for f, kind in STEP_KILLS]
    assert [v for _, v in step_kills] == sorted({v for _, v in step_kills})
    # Replace 3 of a fresh run is the second backup's rename of backup.cadence.next: the newest
    # backup is then missing and the previous one must be used.
    replace_kills = [("replace", n) for n in (3, 2, 1, 4)]
    plan = [replace_kills[0], step_kills[0], replace_kills[1], step_kills[1], step_kills[2],
            replace_kills[2], step_kills[3], step_kills[4], replace_kills[3], step_kills[5],
            step_kills[6]]
    attempts = []
    for index, (kind, value) in enumerate(plan):
        attempt = _run(
            work,
            kill_at_step=value if kind == "step" else None,
            kill_at_replace=value if kind == "replace" else None,
        )
        assert attempt["returncode"] == -signal.SIGKILL, (index, kind, value, attempt["stderr"])
        if kind == "step":  # It died after its planned step, not before, not later.
            assert attempt["steps"][-1] == value, (index, value, attempt["steps"])
        attempts.append(attempt)
        _check_files(work)
    final = _run(work)
    assert final["returncode"] == 0, final["stderr"]
    after = attempts[1:] + [final]

    # The second attempt found the newest backup missing and resumed from the previous one.
    assert attempts[1]["start"].endswith("backup.cadence.prev")
    assert "Skipping backup" in attempts[1]["stderr"]
    # A kill right after a backup resumes at the very next step; after an epoch's last batch
    # (its backup not yet written at the epoch's end), at the backup 3 steps before.
    # (The next attempt that trains at all: a kill at a replace may come before the first step.)
    for index, (kind, value) in enumerate(plan):
        first = next(a["steps"][0] for a in after[index:] if a["steps"])
        if kind == "step" and _after_backup(value):
            assert first == value + 1, (index, value, first)
        elif kind == "step" and _last_batch_of_epoch(value):
            assert first == value - BACKUP_EVERY + 1, (index, value, first)
    assert {_after_backup(v) for _, v in step_kills} == {True, False}
    assert any(_last_batch_of_epoch(v) for _, v in step_kills)
    # Later attempts resumed from backups, at many different steps.
    resumed_at = {a["steps"][0] - 1 for a in after if a["steps"]}
    assert len(resumed_at) >= 6, resumed_at
    assert sum(a["start"] not in (None, "-") for a in attempts + [final]) >= 8

    result = json.loads((work / "result.json").read_text())
    assert result == expected
    weights, reference_weights = io.load_state(work / "final.pt"), io.load_state(reference / "final.pt")
    assert list(weights) == list(reference_weights)
    assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)
    assert (work / "log.csv").read_bytes() == (reference / "log.csv").read_bytes()
    checkpoints = sorted(p.name for p in (work / "ckpt").iterdir() if ".tmp-" not in p.name)
    assert checkpoints == sorted(p.name for p in (reference / "ckpt").iterdir())
    for name in checkpoints:
        mine, theirs = io.load_state(work / "ckpt" / name), io.load_state(reference / "ckpt" / name)
        assert all(torch.equal(mine["weights"][k], theirs["weights"][k]) for k in theirs["weights"])
    assert not (work / "backup").exists() and not (reference / "backup").exists()
    assert _check_files(reference) == []
    _check_files(work)  # Every file loads; killed writers may leave hidden temporary files.
