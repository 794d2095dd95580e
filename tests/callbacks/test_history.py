"""History: per-epoch record, fit's return value, state_dict across a resume, and plot()."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.image import imread

import cadence
from cadence.callbacks import History

X = np.random.default_rng(0).random((40, 3), dtype=np.float32)
Y = np.random.default_rng(1).random((40, 1), dtype=np.float32)


def _model():
    model = cadence.Sequential(torch.nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def test_fit_returns_the_history_with_every_epoch_and_key_as_floats():
    model = _model()
    history = model.fit(X, Y, batch_size=10, epochs=3, validation_split=0.25, verbose=0)
    assert model.history is history
    assert history.epoch == [0, 1, 2]
    assert list(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(v) == 3 and all(type(x) is float for x in v) for v in history.history.values())
    assert history.history["val_loss"][-1] == model.evaluate(X[30:], Y[30:], verbose=0)[0]


def test_validation_freq_gives_shorter_val_lists_as_keras():
    history = _model().fit(X, Y, batch_size=10, epochs=4, validation_split=0.25, validation_freq=2, verbose=0)
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2


def test_a_new_fit_starts_a_fresh_record_but_a_restored_one_is_kept():
    history = History()
    history.on_train_begin()
    history.on_epoch_end(0, {"loss": 1.0})
    state = history.state_dict()
    assert state == {"epoch": [0], "history": {"loss": [1.0]}}
    history.on_train_begin()
    assert (history.epoch, history.history) == ([], {})
    restored = History()
    restored.load_state_dict(state)
    restored.on_train_begin()
    restored.on_epoch_end(1, {"loss": 0.5})
    assert (restored.epoch, restored.history) == ([0, 1], {"loss": [1.0, 0.5]})
    restored.on_train_begin()  # the restored record is kept for one fit only
    assert restored.epoch == []


def test_state_dict_is_a_copy():
    history = History()
    history.on_epoch_end(0, {"loss": 1.0})
    state = history.state_dict()
    history.on_epoch_end(1, {"loss": 0.5})
    assert state == {"epoch": [0], "history": {"loss": [1.0]}}


def test_plot_draws_each_metric_with_validation_and_saves_a_png(tmp_path):
    history = _model().fit(X, Y, batch_size=10, epochs=3, validation_split=0.25, verbose=0)
    figure = history.plot(path=tmp_path / "curves.png")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["loss", "mae"]
    lines = {line.get_label(): list(line.get_ydata()) for line in panels[0].get_lines()}
    assert lines == {"training": history.history["loss"], "validation": history.history["val_loss"]}
    pixels = imread(tmp_path / "curves.png")
    assert pixels.shape[:2] == (320, 840)
    assert float(np.var(pixels[..., :3])) > 0.005


def test_plot_keys_and_no_file_without_path(tmp_path):
    history = _model().fit(X, Y, batch_size=10, epochs=2, verbose=0)
    figure = history.plot(keys=["mae"])
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["mae"]
    assert list(tmp_path.iterdir()) == []
