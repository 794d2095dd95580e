"""model.save / cadence.load_model: continued training, checks before changes, safe loading."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import io

X = np.random.default_rng(0).random((40, 6), dtype=np.float32)
Y = np.random.default_rng(1).random((40, 1), dtype=np.float32)


def build(hidden=8):
    torch.manual_seed(0)
    return cadence.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1))


def compiled(hidden=8):
    model = build(hidden)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], gradient_accumulation_steps=3)
    return model


def train(model, seed):
    torch.manual_seed(seed)
    return model.fit(X, Y, batch_size=8, epochs=2, verbose=0)


def test_continued_training_after_save_and_load_equals_never_stopping(tmp_path):
    uninterrupted = compiled()
    train(uninterrupted, 1)
    train(uninterrupted, 2)

    first = compiled()
    train(first, 1)
    first.save(tmp_path / "model.pt")
    second = compiled()
    assert cadence.load_model(tmp_path / "model.pt", second) is second
    assert second.optimizer.iterations == first.optimizer.iterations == 3  # 10 batches / 3.
    train(second, 2)
    for (key, a), b in zip(uninterrupted.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    assert second.optimizer.iterations == uninterrupted.optimizer.iterations


def test_an_uncompiled_model_is_compiled_from_the_saved_names(tmp_path):
    model = compiled()
    train(model, 1)
    model.save(tmp_path / "model.pt")
    fresh = build()
    cadence.load_model(tmp_path / "model.pt", fresh)
    assert fresh.compiled and type(fresh.optimizer).__name__ == type(model.optimizer).__name__
    assert fresh.compile_config["gradient_accumulation_steps"] == 3
    state, expected = fresh.optimizer.state_dict(), model.optimizer.state_dict()
    assert state["iterations"] == expected["iterations"]
    for index, entry in expected["state"].items():
        assert all(torch.equal(entry[k], state["state"][index][k]) for k in entry)


def test_a_config_that_is_not_names_needs_a_compiled_model(tmp_path):
    model = build()
    model.compile(optimizer="sgd", loss=nn.MSELoss())
    model.save(tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"'.*model.pt' holds an optimizer state, but the model is not "
                                         r"compiled .* Compile the model as it was compiled before saving"):
        cadence.load_model(tmp_path / "model.pt", build())
    target = build()
    target.compile(optimizer="sgd", loss=nn.MSELoss())
    cadence.load_model(tmp_path / "model.pt", target)


def test_another_layout_is_refused_before_any_weight_changes(tmp_path):
    compiled().save(tmp_path / "model.pt")
    other = compiled(hidden=5)
    before = [t.clone() for t in other.state_dict().values()]
    with pytest.raises(ValueError, match=r"'.*model.pt' was written by a model of another layout: "
                                         r"different shapes \(module.0.weight: \(8, 6\) in the file, "
                                         r"\(5, 6\) in the model"):
        cadence.load_model(tmp_path / "model.pt", other)
    assert all(torch.equal(a, b) for a, b in zip(before, other.state_dict().values(), strict=True))


def test_a_weights_file_is_not_a_saved_model(tmp_path):
    model = compiled()
    model.save_weights(tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"'.*w.pt' is not a model saved by model.save .* use "
                                         r"model.load_weights"):
        cadence.load_model(tmp_path / "w.pt", model)


def test_a_pickled_object_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "cadence-model", "weights": RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(io.UnsafeFileError, match=r"Refusing to load '.*evil.pt': it contains a pickled"):
        cadence.load_model(tmp_path / "evil.pt", compiled())
    assert not marker.exists()


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = compiled()
    model.save(tmp_path / "model.pt")
    old = (tmp_path / "model.pt").read_bytes()
    train(model, 1)

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "model.pt")
    monkeypatch.undo()
    assert (tmp_path / "model.pt").read_bytes() == old
    assert os.listdir(tmp_path) == ["model.pt"]


def test_load_model_needs_a_cadence_model(tmp_path):
    compiled().save(tmp_path / "model.pt")
    with pytest.raises(TypeError, match=r"load_model needs a cadence.Model .* received Linear\."):
        cadence.load_model(tmp_path / "model.pt", nn.Linear(2, 2))
