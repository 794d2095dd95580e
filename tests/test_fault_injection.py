"""Kill a training run with SIGKILL at 11 moments, restart it each time, get the same result.

The run (tests/fault_injection_train.py) trains with shuffling, dropout, validation,
EarlyStopping, ReduceLROnPlateau, CSVLogger, ModelCheckpoint(save_best_only=True) and
BackupAndRestore(save_freq=3). It is killed 7 times by this test when it reports a training step
(spread over the run) and 4 times by itself just before one of its ``os.replace`` calls (a file
written but not yet renamed: inside a backup, a checkpoint or a CSV rewrite). The final weights,
History, CSV file, checkpoints and EarlyStopping's epoch equal those of a run never interrupted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cadence import io

HELPER = Path(__file__).with_name("fault_injection_train.py")
KILL_AT_STEP_FRACTIONS = (0.08, 0.22, 0.36, 0.5, 0.64, 0.8, 0.96)


def _run(workdir: Path, log: Path, kill_at_step: int | None = None,
         kill_at_replace: int | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CADENCE_FI_KILL_AT_REPLACE"}
    if kill_at_replace is not None:
        env["CADENCE_FI_KILL_AT_REPLACE"] = str(kill_at_replace)
    with open(log, "w") as stderr, subprocess.Popen(
        [sys.executable, str(HELPER), str(workdir)], stdout=subprocess.PIPE, stderr=stderr,
        text=True, env=env,
    ) as proc:
        start, steps = None, []
        for line in proc.stdout:
            kind, _, value = line.strip().partition(" ")
            if kind == "START":
                start = value
            elif kind == "B":
                steps.append(int(value))
                if kill_at_step is not None and steps[-1] >= kill_at_step and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
        returncode = proc.wait(timeout=60)
    return {"returncode": returncode, "start": start, "steps": steps, "stderr": log.read_text()}


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


@pytest.mark.timeout(240)
def test_sigkill_at_11_moments_ends_as_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    ref = _run(reference, tmp_path / "reference.txt")
    assert ref["returncode"] == 0, ref["stderr"]
    total = ref["steps"][-1]
    expected = json.loads((reference / "result.json").read_text())
    assert expected["stopped_epoch"] > 0 and len(expected["epochs"]) < 30  # EarlyStopping stopped it.
    assert len(set(expected["history"]["learning_rate"])) > 1  # ReduceLROnPlateau acted.

    work = tmp_path / "interrupted"
    step_kills = [("step", max(1, round(total * f))) for f in KILL_AT_STEP_FRACTIONS]
    # Replace 3 of a fresh run is the second backup's rename of backup.cadence.next: the newest
    # backup is then missing and the previous one must be used.
    replace_kills = [("replace", n) for n in (3, 2, 1, 4)]
    plan = [replace_kills[0], step_kills[0], replace_kills[1], step_kills[1], step_kills[2],
            replace_kills[2], step_kills[3], step_kills[4], replace_kills[3], step_kills[5],
            step_kills[6]]
    attempts = []
    for index, (kind, value) in enumerate(plan):
        attempt = _run(
            work, tmp_path / f"attempt-{index}.txt",
            kill_at_step=value if kind == "step" else None,
            kill_at_replace=value if kind == "replace" else None,
        )
        assert attempt["returncode"] == -signal.SIGKILL, (kind, value, attempt["stderr"])
        attempts.append(attempt)
        _check_files(work)
    final = _run(work, tmp_path / "final.txt")
    assert final["returncode"] == 0, final["stderr"]

    # The second attempt found the newest backup missing and resumed from the previous one.
    assert attempts[1]["start"].endswith("backup.cadence.prev")
    assert "Skipping backup" in attempts[1]["stderr"]
    # Later attempts resumed from backups, at many different steps.
    resumed_at = {a["steps"][0] - 1 for a in attempts[1:] + [final] if a["steps"]}
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
        assert all(torch.equal(mine["model"][k], theirs["model"][k]) for k in theirs["model"])
    assert not (work / "backup").exists() and not (reference / "backup").exists()
    assert _check_files(reference) == []
    _check_files(work)  # Every file loads; killed writers may leave hidden temporary files.
