"""Every seed example in examples/ runs on cadence and prints or does what the seed shows."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cadence.data import tree


def test_seed_000_custom_callback_prints_sagemaker_lines(capsys):
    from examples import seed_000_sagemaker as seed

    _, history = seed.main(epochs=3)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Start training - ")
    assert out[-1].startswith("Finish training - ")
    epoch_lines = out[1:-1]
    assert len(epoch_lines) == 3
    for epoch, line in enumerate(epoch_lines):
        h = {k: v[epoch] for k, v in history.history.items()}
        assert line == (
            f"Epoch {epoch + 1}/3 - train_loss: {h['loss']:.4f}; - "
            f"train_root_mean_squared_error: {h['root_mean_squared_error']:.4f}; - "
            f"val_loss: {h['val_loss']:.4f}; - val_root_mean_squared_error: "
            f"{h['val_root_mean_squared_error']:.4f};"
        )
        for name, key in (("train_loss", "loss"), ("val_loss", "val_loss")):
            assert float(re.search(rf"{name}: (.*?);", line).group(1)) == round(h[key], 4)


def test_seed_002_custom_callback_prints_the_guides_sequence(capsys):
    from examples import seed_002_custom_callbacks as seed

    seed.run_custom_callback()
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(("1/", "8/"))]
    keys = "['loss', 'mean_absolute_error']"
    expected = ["Starting training; got log keys: []", "Start epoch 0 of training; got log keys: []"]
    for i in range(4):
        expected += [f"...Training: start of batch {i}; got log keys: []",
                     f"...Training: end of batch {i}; got log keys: {keys}"]
    expected.append("Start testing; got log keys: []")
    for i in range(4):
        expected += [f"...Evaluating: start of batch {i}; got log keys: []",
                     f"...Evaluating: end of batch {i}; got log keys: {keys}"]
    expected.append(f"Stop testing; got log keys: {keys}")
    all_keys = "['loss', 'mean_absolute_error', 'val_loss', 'val_mean_absolute_error']"
    expected += [f"End epoch 0 of training; got log keys: {all_keys}",
                 f"Stop training; got log keys: {all_keys}", "Start testing; got log keys: []"]
    for i in range(8):
        expected += [f"...Evaluating: start of batch {i}; got log keys: []",
                     f"...Evaluating: end of batch {i}; got log keys: {keys}"]
    expected += [f"Stop testing; got log keys: {keys}", "Start predicting; got log keys: []"]
    for i in range(8):
        expected += [f"...Predicting: start of batch {i}; got log keys: []",
                     f"...Predicting: end of batch {i}; got log keys: ['outputs']"]
    expected.append("Stop predicting; got log keys: []")
    # The progress bar of predict (verbose="auto") shares stdout; drop its lines.
    lines = [line for line in lines if "Predicting" in line or "got log keys" in line]
    cleaned = [re.sub(r"^.*?(\.\.\.Predicting)", r"\1", line) for line in lines]
    assert cleaned == expected


def test_seed_002_loss_printing_running_averages(capsys):
    from examples import seed_002_custom_callbacks as seed

    seed.run_loss_and_error_printing()
    lines = capsys.readouterr().out.splitlines()
    batch_lines = [line for line in lines if line.startswith("Up to batch")]
    epoch_lines = [line for line in lines if line.startswith("The average loss for epoch")]
    assert len(batch_lines) == 8 + 8 + 8  # two epochs of 8 batches, then 8 evaluation batches
    assert len(epoch_lines) == 2
    # The last batch's running average is the epoch's value, as in the seed's output.
    assert batch_lines[7].split("is")[1].strip(" .") == epoch_lines[0].split("is")[1].split("and")[0].strip()


def test_seed_002_early_stopping_at_min_loss_restores_best_weights(capsys):
    from examples import seed_002_custom_callbacks as seed

    model, history = seed.run_early_stopping_at_min_loss()
    out = capsys.readouterr().out
    losses = history.history["loss"]
    best = int(np.argmin(losses))
    assert len(losses) == best + 2  # patience=0: stops one epoch after the minimum
    assert "Restoring model weights from the end of the best epoch." in out
    assert f"Epoch {len(losses):05d}: early stopping" in out
    assert all(len(line) for line in out.splitlines() if line.startswith("Up to batch"))


def test_seed_002_custom_learning_rate_scheduler(capsys):
    from examples import seed_002_custom_callbacks as seed

    # 1,000 samples are 16 batches of 64: every 4th epoch of 5 steps runs out of data and
    # ends early with Keras 3's warning, as it does in Keras 3.
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        model, history = seed.run_custom_learning_rate_scheduler()
    out = capsys.readouterr().out
    rates = [float(r) for r in re.findall(r"Learning rate is (\d\.\d{4})\.", out)]
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.01, 0.01, 0.01,
                     0.005, 0.005, 0.005, 0.001, 0.001, 0.001]
    assert model.optimizer.learning_rate == pytest.approx(0.001)
    assert len(history.history["loss"]) == 15


def test_seed_003_custom_loss_and_train_step():
    from examples import seed_003_custom_training as seed
    from examples.data import mnist_like

    (x, y), _ = mnist_like(n_train=256)
    onehot = np.eye(10, dtype=np.float32)[y.astype(int)]
    torch.manual_seed(0)
    model = seed.build_custom_model()
    model.compile(optimizer="adam", loss=seed.custom_loss, metrics=["mae"])
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, onehot, batch_size=64, epochs=2, verbose=0)
    assert sorted(history.history) == ["loss", "mae"]
    # The custom train_step really trained: weights moved and the loss fell.
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert history.history["loss"][1] < history.history["loss"][0]
    # The loss reported is the custom loss: recompute the last epoch's with the final weights.
    pred = model(torch.from_numpy(x)).detach()
    expected = seed.custom_loss(torch.from_numpy(onehot), pred).mean().item()
    assert expected == pytest.approx(model.evaluate(x, onehot, verbose=0)[0], rel=1e-5)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
def test_seed_003_hand_written_loop_drives_callbacks():
    from cadence import callbacks
    from examples import seed_003_custom_training as seed
    from examples.data import mnist_like

    (x, y), (xv, yv) = mnist_like(n_train=320, n_test=64)
    events = []

    class Watch(callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_batch_end(self, batch, logs=None):
            assert type(logs["loss"]) is float
            events.append(("batch", batch))

        def on_train_end(self, logs=None):
            events.append("train_end")

    printed = []
    torch.manual_seed(0)
    model, history = seed.custom_training_loop(x, y.astype(np.int64), xv, yv.astype(np.int64),
                                               epochs=2, callbacks=[Watch()], log=printed.append)
    batches = [("batch", i) for i in range(5)]
    assert events == ["train_begin", *batches, ("epoch_end", 0, ["loss", "val_loss"]), *batches,
                      ("epoch_end", 1, ["loss", "val_loss"]), "train_end"]
    assert len(history.history["loss"]) == 2
    assert printed[0] == "\nStart of epoch 0" and printed[2] == "Seen so far: 64 samples"


def test_seed_003_class_and_sample_weight_helpers():
    from examples import seed_003_custom_training as seed

    y = np.eye(3)[[0, 0, 0, 1, 2, 2]]
    weights = seed.generate_class_weights(y)
    assert weights == pytest.approx({0: 6 / 9, 1: 6 / 3, 2: 6 / 6})
    sw = seed.generate_sample_weights(y, ["condition_A", "condition_B", "condition_C"],
                                      {"condition_B": 1.5})
    assert sw.tolist() == [1, 1, 1, 1.5, 1, 1]


def test_seed_003_data_generator_trains(tmp_path, monkeypatch):
    from torch import nn

    import cadence
    from examples import seed_003_custom_training as seed

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(0)
    ids = [f"id-{i}" for i in range(40)]
    labels = {i: int(rng.integers(0, 3)) for i in ids}
    for i in ids:
        np.save(tmp_path / "data" / f"{i}.npy", rng.random((4, 1)).astype(np.float32))
    gen = seed.DataGenerator(ids, labels, batch_size=8, dim=(4,), n_channels=1, n_classes=3,
                             shuffle=True)
    first = gen[0]
    assert first[0].shape == (8, 4, 1) and first[1].shape == (8, 3)
    model = cadence.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=-1))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(gen, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(isinstance(tree.flatten(v)[0], float) for v in history.history.values())


def _fresh_seed_004(tmp_path, monkeypatch):
    import importlib

    monkeypatch.chdir(tmp_path)
    from examples import seed_004_callbacks

    return importlib.reload(seed_004_callbacks)


def test_seed_004_builtin_callbacks_run_as_written(tmp_path, monkeypatch):
    import csv

    seed = _fresh_seed_004(tmp_path, monkeypatch)
    model, history = seed.run([seed.early_stopping, seed.csv_logger, seed.lr_scheduler,
                               seed.model_checkpoint_callback], epochs=20)
    epochs = len(history.epoch)
    # EarlyStopping(monitor='val_loss', min_delta=0.01, patience=5): stops 5 epochs after the
    # last epoch that improved val_loss by more than 0.01, or runs to the end.
    val = history.history["val_loss"]
    best, wait, stop = val[0], 0, None
    for epoch, value in enumerate(val[1:], start=1):
        if value < best - 0.01:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= 5:
                stop = epoch
                break
    assert epochs == (stop + 1 if stop is not None else 20)
    # CSVLogger('./results/training.csv'): one row per epoch, the History's values.
    with open(tmp_path / "results" / "training.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert [float(r["val_loss"]) for r in rows] == history.history["val_loss"]
    # LearningRateScheduler: +0.001 per epoch for the first ten epochs, then * exp(-0.1).
    expected, lr = [], 0.05
    for epoch in range(epochs):
        lr = lr + 0.001 if epoch < 10 else lr * float(np.exp(-0.1))
        expected.append(lr)
    assert history.history["learning_rate"] == pytest.approx(expected, rel=1e-6)
    # ModelCheckpoint('./checkpoint') then load_weights: the last epoch's weights come back.
    saved = [w.copy() for w in model.get_weights()]
    model.set_weights([np.zeros_like(w) for w in saved])
    model.load_weights(seed.checkpoint_filepath)
    for a, b in zip(model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(a, b)


def test_seed_004_custom_callbacks(tmp_path, monkeypatch, capsys):
    seed = _fresh_seed_004(tmp_path, monkeypatch)
    lr_seen, momentum_seen = [], []

    class Watch(seed.tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            lr_seen.append(float(self.model.optimizer.lr))
            momentum_seen.append(float(self.model.optimizer.momentum))

    threshold = seed.StopOnThreshold(0.9)
    custom = seed.MyCustomCallback()
    model, history = seed.run([threshold, seed.lr_scheduler_per_batch, seed.momentum_scheduler,
                               custom, Watch()], epochs=30)
    accuracies = history.history["val_accuracy"]
    # StopOnThreshold stops at the first epoch whose val_accuracy exceeds 0.9.
    assert accuracies[-1] > 0.9 and all(a <= 0.9 for a in accuracies[:-1])
    # LRSchedule divides the learning rate by 1.0000002 after every batch (6 batches an epoch).
    lr = 0.05
    for epoch in range(len(accuracies)):
        for _ in range(6):
            lr = lr / 1.0000002
        assert lr_seen[epoch] == pytest.approx(lr, rel=1e-12)
    # MomentumSchedule adds (0.99 - 0.9) / 200 after every epoch.
    assert momentum_seen == pytest.approx([0.9 + 0.00045 * (e + 1) for e in range(len(accuracies))])
    assert custom.last_batch == 5
    # A StopOnThreshold without val_accuracy prints the keys that exist.
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = seed.make_data(64)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[seed.StopOnThreshold(0.9)])
    assert ("Stopping conditioned on val_accuracy, but this metric is not available.Available keys "
            "are loss") in capsys.readouterr().out
