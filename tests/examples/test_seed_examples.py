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
