"""PruningCallback: a seeded study whose MedianPruner prunes the trials that cannot learn."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks

optuna = pytest.importorskip("optuna")
from cadence.integrations.optuna import PruningCallback  # noqa: E402


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype=np.float32))


def _objective(tmp_path, seen):
    x, y = _data()

    def objective(trial):
        rate = trial.suggest_float("learning_rate", 0.0, 0.1)
        torch.manual_seed(0)
        model = cadence.Sequential(nn.Linear(4, 1))
        model.compile(optimizer=cadence.optimizers.SGD(learning_rate=rate), loss="mse")
        pruning = PruningCallback(trial, monitor="val_loss")
        seen[trial.number] = pruning
        history = model.fit(
            x, y, batch_size=16, epochs=6, validation_split=0.25, verbose=0,
            callbacks=[callbacks.CSVLogger(tmp_path / f"trial-{trial.number}.csv"), pruning],
        )
        return history.history["val_loss"][-1]

    return objective


def test_median_pruner_prunes_the_trials_that_cannot_learn(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    # Two trials that learn, then two that cannot (a learning rate of 0 keeps the initial loss).
    for rate in (0.1, 0.05, 0.0, 0.0):
        study.enqueue_trial({"learning_rate": rate})
    seen = {}
    study.optimize(_objective(tmp_path, seen), n_trials=4)
    states = [trial.state for trial in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED] * 2
    # Reported every epoch until pruned at the first step past the warm-up (epoch 1).
    assert sorted(study.trials[0].intermediate_values) == [0, 1, 2, 3, 4, 5]
    assert sorted(study.trials[2].intermediate_values) == [0, 1]
    assert seen[2].pruned_epoch == 1 and seen[0].pruned_epoch is None
    # The pruned run's files are whole: the CSV holds every epoch it ran, the last included.
    with open(tmp_path / "trial-2.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [row[0] for row in rows] == ["epoch", "0", "1"]
    values = study.trials[2].intermediate_values
    assert [float(row[rows[0].index("val_loss")]) for row in rows[1:]] == [values[0], values[1]]
    assert values[0] == values[1]  # A learning rate of 0: the loss never moves.


def test_trial_pruned_message_and_argument_checks():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    x, y = _data()
    model = cadence.Sequential(nn.Linear(4, 1))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(optuna.TrialPruned, match=r"Trial 0 was pruned at epoch 0 \(val_loss=\d"):
        model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
                  callbacks=[PruningCallback(trial, "val_loss")])
    with pytest.raises(TypeError, match="PruningCallback needs an optuna trial .* received: trial of type str"):
        PruningCallback("trial")
    with pytest.raises(ValueError, match="monitor must be a non-empty log key; received: monitor=''"):
        PruningCallback(trial, "")
    assert PruningCallback.may_stop_training is True
    with pytest.warns(UserWarning, match=r"PruningCallback never found 'val_auc' in the epoch logs"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[PruningCallback(trial, "val_auc")])
