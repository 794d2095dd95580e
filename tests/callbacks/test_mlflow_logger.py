"""MLflowLogger: the SQLite tracking store queried back with MlflowClient, against History."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import cadence
from cadence.callbacks import Callback
from cadence.callbacks.mlflow_logger import MLflowLogger, _quiet
from cadence.extras import MissingExtraError

X = np.random.default_rng(0).random((64, 4), dtype=np.float32)
Y = np.random.default_rng(1).random((64, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating its tables takes about a second)."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlruns.db'}", folder


@pytest.fixture
def client(store):
    with _quiet():
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=store[0])


def _model(lr: float = 0.1) -> cadence.Sequential:
    model = cadence.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr), loss="mse", metrics=["mae"])
    return model


def _fit(model, callbacks, epochs=3, **kwargs):
    return model.fit(X, Y, batch_size=16, epochs=epochs, validation_split=0.25, verbose=0,
                     callbacks=callbacks, **kwargs)


class SaveEveryEpoch(Callback):
    """Stand-in for ModelCheckpoint and CSVLogger: files named by epoch, and a log."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        self.model.save_weights(self.folder / f"ckpt-{epoch + 1:02d}.pt")
        with open(self.folder / "log.csv", "a", encoding="utf-8") as handle:
            handle.write(f"{epoch},{logs['loss']}\n")


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_run_params_every_epoch_metric_and_artifacts_in_the_sqlite_store(store, client, tmp_path):
    uri, _ = store
    files = tmp_path / "out"
    files.mkdir()
    logger = MLflowLogger(
        tracking_uri=uri, experiment_name="e2e", run_name="digits-1",
        artifact_paths=[files / "log.csv", str(files / "ckpt-*.pt")],
        artifact_location=str(tmp_path / "artifacts"), params={"batch_size": 16}, tags={"team": "cadence"},
    )
    history = _fit(_model(), [SaveEveryEpoch(files), logger], epochs=3)

    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [logger.run_id]
    run = runs[0]
    assert run.info.run_name == "digits-1"
    assert run.info.status == "FINISHED"
    assert run.data.tags["team"] == "cadence"
    assert run.data.params == {
        "optimizer": "SGD", "loss": "mse", "metrics": "['mae']", "precision": "32",
        "jit_compile": "False", "device": "cpu", "gradient_accumulation_steps": "1",
        "learning_rate": "0.1", "epochs": "3", "steps": "3", "model": "Sequential",
        "trainable_params": "49", "batch_size": "16",
    }
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert _history(client, logger.run_id, key) == list(enumerate(history.history[key]))
    assert _history(client, logger.run_id, "learning_rate") == [(0, 0.1), (1, 0.1), (2, 0.1)]
    names = sorted(f.path for f in client.list_artifacts(logger.run_id))
    assert names == ["ckpt-01.pt", "ckpt-02.pt", "ckpt-03.pt", "log.csv"]
    assert run.info.artifact_uri.endswith(f"{logger.run_id}/artifacts")
    assert (tmp_path / "artifacts" / logger.run_id / "artifacts" / "log.csv").read_text() == (files / "log.csv").read_text()


def test_learning_rate_param_is_the_initial_rate_even_when_a_schedule_changes_it(store, client):
    from cadence.callbacks import LearningRateScheduler

    logger = MLflowLogger(tracking_uri=store[0], experiment_name="schedule")
    _fit(_model(), [LearningRateScheduler(lambda epoch, lr: lr * 0.5), logger], epochs=2)
    run = client.get_run(logger.run_id)
    assert run.data.params["learning_rate"] == "0.1"
    assert _history(client, logger.run_id, "learning_rate") == [(0, 0.05), (1, 0.025)]


def test_batch_metrics_every_n_batches_at_the_global_batch(store, client):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="batches", log_every_n_batches=2)
    _fit(_model(), [logger], epochs=3)
    steps = [s for s, _ in _history(client, logger.run_id, "batch_loss")]
    assert steps == [2, 4, 6, 8]
    assert [s for s, _ in _history(client, logger.run_id, "loss")] == [0, 1, 2]


class Snapshot(Callback):
    """Take the logger's state at the end of one epoch, as a backup would."""

    def __init__(self, logger, epoch):
        super().__init__()
        self.logger, self.epoch, self.state = logger, epoch, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.state = self.logger.state_dict()


def test_a_restored_logger_continues_the_same_run_and_logs_each_step_once(store, client):
    first = MLflowLogger(tracking_uri=store[0], experiment_name="resume", log_every_n_batches=2)
    snapshot = Snapshot(first, epoch=1)
    _fit(_model(), [first, snapshot], epochs=3)  # logs epochs 0-2; the "backup" is from epoch 1
    assert snapshot.state == {"run_id": first.run_id, "params_logged": True, "global_train_batch": 6}
    resumed = MLflowLogger(tracking_uri=store[0], experiment_name="resume", log_every_n_batches=2)
    resumed.load_state_dict(snapshot.state)
    assert client.get_run(first.run_id).info.status == "RUNNING"
    history = _fit(_model(), [resumed], epochs=4, initial_epoch=2)  # epochs=4 would clash with "3"
    experiment = client.get_experiment_by_name("resume")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "3"
    loss = _history(client, first.run_id, "loss")
    assert [s for s, _ in loss] == [0, 1, 2, 3]  # epoch 2 was already logged: not repeated
    assert loss[3][1] == history.history["loss"][1]
    assert [s for s, _ in _history(client, first.run_id, "batch_loss")] == [2, 4, 6, 8, 10, 12]


def test_a_second_fit_with_the_same_logger_is_a_new_run(store, client):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="twice")
    model = _model()
    _fit(model, [logger], epochs=1)
    first = logger.run_id
    _fit(model, [logger], epochs=2)
    assert logger.run_id != first
    experiment = client.get_experiment_by_name("twice")
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert [s for s, _ in _history(client, logger.run_id, "loss")] == [0, 1]


def test_a_missing_artifact_path_is_named_in_a_warning(store, client, tmp_path):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="missing",
                          artifact_paths=[tmp_path / "nothing.csv"])
    with pytest.warns(UserWarning, match=r"MLflowLogger found no file for artifact_paths \['.*nothing\.csv'\]"):
        _fit(_model(), [logger], epochs=1)
    assert client.list_artifacts(logger.run_id) == []


def test_metric_names_mlflow_refuses_are_sanitised(store, client):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="names")
    logger.set_model(_model())
    logger.on_train_begin()
    logger.on_epoch_end(0, {"top@5 (acc)": 0.5, "note": "text is skipped"})
    assert _history(client, logger.run_id, "top_5 _acc_") == [(0, 0.5)]
    assert "note" not in client.get_run(logger.run_id).data.metrics


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"log_every_n_batches": 0}, ValueError, r"log_every_n_batches must be None or a positive integer; received log_every_n_batches=0\."),
        ({"log_every_n_batches": True}, ValueError, r"received log_every_n_batches=True\."),
        ({"experiment_name": ""}, ValueError, r"experiment_name must be a non-empty string; received experiment_name=''\."),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        MLflowLogger(**kwargs)


def test_missing_mlflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"MLflowLogger needs the optional package 'mlflow'.*pip install 'cadence\[mlflow\]'"):
        MLflowLogger()


class AddToLogs(Callback):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs.update(self.values)


def test_numpy_scalars_are_logged_as_numbers(store, client):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="numpy")
    _fit(_model(), [AddToLogs({"np32": np.float32(0.5), "zero_d": np.array(2.0)}), logger], epochs=1)
    assert _history(client, logger.run_id, "np32") == [(0, 0.5)]
    assert _history(client, logger.run_id, "zero_d") == [(0, 2.0)]


def test_a_log_key_that_is_not_a_string_is_refused_naming_it(store):
    logger = MLflowLogger(tracking_uri=store[0], experiment_name="keys")
    with pytest.raises(TypeError, match=(
        r"^MLflowLogger\.on_epoch_end received a log key that is not a string: 7 \(int\)\. Log keys "
        r"must be strings; the key was added by train_step or by a callback that runs before this one\."
    )):
        _fit(_model(), [AddToLogs({7: 1.0}), logger], epochs=1)
def test_tracking_uri_defaults_to_mlflow_tracking_uri(store, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    logger = MLflowLogger(experiment_name="from-env")
    assert logger.tracking_uri == store[0]
    _fit(_model(), [logger], epochs=1)
    assert client.get_run(logger.run_id).info.status == "FINISHED"
    assert list(tmp_path.iterdir()) == []  # Nothing written in the working folder.
    assert MLflowLogger(tracking_uri="sqlite:///explicit.db").tracking_uri == "sqlite:///explicit.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert MLflowLogger().tracking_uri == "sqlite:///mlruns.db"
