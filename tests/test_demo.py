"""The demo: outputs under one run folder, the summary, accuracy on digits, and resume after Ctrl-C."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cadence import demo
from cadence.callbacks import Callback
from cadence.callbacks.mlflow_logger import _quiet


def _client(result):
    with _quiet():
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=result.mlflow_uri)


def test_load_digits_splits_are_fixed_stratified_and_standardised():
    splits = demo.load_digits_splits(0)
    assert {k: len(v[1]) for k, v in splits.items()} == {"train": 1149, "validation": 288, "test": 360}
    x_train = splits["train"][0]
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    assert set(np.unique(splits["test"][1])) == set(range(10))
    again = demo.load_digits_splits(0)
    np.testing.assert_array_equal(again["test"][0], splits["test"][0])


def test_a_short_run_writes_every_output_in_the_run_folder_and_says_where(tmp_path):
    run_dir = tmp_path / "run"
    result = demo.run_demo(run_dir, epochs=3, verbose=0)
    paths = result.paths
    assert result.epochs_run == 3 and not result.stopped_early and result.resumed_from is None
    with open(paths["CSV log"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    assert [float(row["val_loss"]) for row in rows] == pytest.approx(result.history.history["val_loss"])
    assert paths["best checkpoint"].is_file()
    assert len(list((paths["TensorBoard logs"] / "train").glob("events.out.tfevents.*"))) == 1
    assert len(list((paths["TensorBoard logs"] / "validation").glob("events.out.tfevents.*"))) == 1
    assert paths["curves"].stat().st_size > 10_000
    assert not paths["backup"].exists()  # removed when training finishes
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "curves.png", "mlflow-artifacts", "mlflow.db", "tensorboard", "training.csv",
    ]
    client = _client(result)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == "32"
    assert sorted(f.path for f in client.list_artifacts(result.mlflow_run_id)) == [
        "best.pt", "curves.png", "training.csv",
    ]
    summary = demo.format_summary(result)
    assert "(1149 train / 288 validation / 360 test samples)" in summary
    assert "Trained 3 epochs (ran every epoch; best val_loss at epoch 3; its weights restored)." in summary
    assert f"Test accuracy: {result.test_accuracy:.2%}   test loss: {result.test_loss:.4f}" in summary
    for name in ("CSV log", "best checkpoint", "TensorBoard logs", "MLflow store", "curves"):
        assert f"  {name:<17} {paths[name]}" in summary
    assert f"tensorboard --logdir {paths['TensorBoard logs']}" in summary
    assert f"mlflow ui --backend-store-uri {result.mlflow_uri}   (run {result.mlflow_run_id})" in summary


def test_bad_epochs_is_refused_before_any_file_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"epochs must be a positive integer; received epochs=0\."):
        demo.run_demo(tmp_path / "run", epochs=0)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    return demo.run_demo(tmp_path_factory.mktemp("full") / "run", verbose=0)


def test_the_full_demo_reaches_95_percent_test_accuracy(full_run):
    assert full_run.test_accuracy >= 0.95
    assert full_run.stopped_early


class CtrlC(Callback):
    """Raise KeyboardInterrupt at the end of one epoch, as Ctrl-C would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_and_run_again_it_resumes_and_ends_as_an_uninterrupted_run(tmp_path, full_run):
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(run_dir, verbose=0, extra_callbacks=[CtrlC(epoch=4)])
    backup = run_dir / "backup"
    assert any(backup.iterdir())
    result = demo.run_demo(run_dir, verbose=0)
    assert result.resumed_from is not None and result.resumed_from.parent == backup
    assert "Resumed from the backup" in demo.format_summary(result)
    assert result.history.epoch == full_run.history.epoch
    assert result.history.history == full_run.history.history
    assert (result.test_accuracy, result.test_loss) == (full_run.test_accuracy, full_run.test_loss)
    with open(result.paths["CSV log"], newline="") as handle:
        epochs = [row["epoch"] for row in csv.DictReader(handle)]
    assert epochs == [str(e) for e in full_run.history.epoch]
    # The MLflow run interrupted at epoch 4 is the one that finishes, with every epoch once.
    client = _client(result)
    experiment = client.get_experiment_by_name("cadence-demo")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    steps = [m.step for m in client.get_metric_history(result.mlflow_run_id, "val_loss")]
    assert sorted(steps) == full_run.history.epoch
