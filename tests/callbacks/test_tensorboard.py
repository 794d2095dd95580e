"""TensorBoard: event files read back with tensorboard's EventAccumulator, against History."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import cadence
from cadence import logs as logs_module
from cadence.callbacks import Callback
from cadence.callbacks.tensorboard import TensorBoard
from cadence.extras import MissingExtraError

# 48 training samples in batches of 16 (3 batches per epoch), 16 for validation.
X = np.random.default_rng(0).random((64, 4), dtype=np.float32)
Y = np.random.default_rng(1).random((64, 1), dtype=np.float32)


def _model(lr: float = 0.1) -> cadence.Sequential:
    model = cadence.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr), loss="mse", metrics=["mae"])
    return model


def _fit(model, callbacks, epochs=3, **kwargs):
    return model.fit(X, Y, batch_size=16, epochs=epochs, validation_split=0.25, verbose=0,
                     callbacks=callbacks, **kwargs)


def _read(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag):
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def _f32(values):
    return [float(np.float32(v)) for v in values]


class HalveLearningRate(Callback):
    """Halve the learning rate at the start of every epoch after the first."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch:
            self.model.optimizer.learning_rate = float(self.model.optimizer.learning_rate) / 2


def test_every_epoch_loss_val_loss_and_learning_rate_with_keras_tags_and_steps(tmp_path):
    history = _fit(_model(), [HalveLearningRate(), TensorBoard(tmp_path)], epochs=4)
    train, validation = _read(tmp_path / "train"), _read(tmp_path / "validation")
    steps = [0, 1, 2, 3]
    assert _scalars(train, "epoch_loss") == list(zip(steps, _f32(history.history["loss"]), strict=True))
    assert _scalars(train, "epoch_mae") == list(zip(steps, _f32(history.history["mae"]), strict=True))
    assert _scalars(train, "epoch_learning_rate") == list(zip(steps, _f32([0.1, 0.05, 0.025, 0.0125]), strict=True))
    assert _scalars(validation, "epoch_loss") == list(zip(steps, _f32(history.history["val_loss"]), strict=True))
    assert _scalars(validation, "epoch_mae") == list(zip(steps, _f32(history.history["val_mae"]), strict=True))
    # Keras 3's layout: no val_ prefix in tags, the learning rate only in the train run.
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    assert set(validation.Tags()["scalars"]) == {
        "epoch_loss", "epoch_mae", "evaluation_loss_vs_iterations", "evaluation_mae_vs_iterations",
    }
    # After each validation pass, at the optimizer's step count (3 batches per epoch).
    assert _scalars(validation, "evaluation_loss_vs_iterations") == list(
        zip([3, 6, 9, 12], _f32(history.history["val_loss"]), strict=True)
    )


def test_evaluate_writes_evaluation_scalars_at_the_current_iteration(tmp_path):
    model = _model()
    _fit(model, None, epochs=2)
    callback = TensorBoard(tmp_path)
    result = model.evaluate(X, Y, batch_size=32, verbose=0, callbacks=[callback], return_dict=True)
    callback.on_train_end()  # close the writers, as fit would
    validation = _read(tmp_path / "validation")
    assert _scalars(validation, "evaluation_loss_vs_iterations") == [(6, float(np.float32(result["loss"])))]
    assert not (tmp_path / "train").exists()


class RecordBatchLogs(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(dict(logs))


def test_update_freq_writes_batch_scalars_every_n_batches_at_the_global_batch(tmp_path):
    recorder = RecordBatchLogs()
    _fit(_model(), [recorder, TensorBoard(tmp_path, update_freq=2, write_graph=False)], epochs=3)
    train = _read(tmp_path / "train")
    expected = [(step, float(np.float32(recorder.seen[step - 1]["loss"]))) for step in (2, 4, 6, 8)]
    assert _scalars(train, "batch_loss") == expected
    assert [s for s, _ in _scalars(train, "batch_mae")] == [2, 4, 6, 8]


def test_update_freq_batch_means_every_batch(tmp_path):
    _fit(_model(), [TensorBoard(tmp_path, update_freq="batch", write_graph=False)], epochs=2)
    assert [s for s, _ in _scalars(_read(tmp_path / "train"), "batch_loss")] == [1, 2, 3, 4, 5, 6]


def _conversions_during_fit(callbacks) -> int:
    before = logs_module.conversions
    _fit(_model(), callbacks, epochs=2)
    return logs_module.conversions - before


def test_batch_logs_are_read_from_the_device_only_at_update_freq(tmp_path):
    baseline = _conversions_during_fit([])
    assert _conversions_during_fit([TensorBoard(tmp_path / "a", write_graph=False)]) == baseline
    # 6 training batches over 2 epochs, every 4th is read: one extra conversion.
    assert _conversions_during_fit([TensorBoard(tmp_path / "b", update_freq=4, write_graph=False)]) == baseline + 1


def test_steps_per_second_per_epoch_and_per_batch(tmp_path):
    _fit(_model(), [TensorBoard(tmp_path, write_steps_per_second=True, update_freq=3, write_graph=False)], epochs=2)
    train = _read(tmp_path / "train")
    per_epoch = _scalars(train, "epoch_steps_per_second")
    per_batch = _scalars(train, "batch_steps_per_second")
    assert [s for s, _ in per_epoch] == [0, 1] and all(v > 0 for _, v in per_epoch)
    assert [s for s, _ in per_batch] == [3, 6] and all(v > 0 for _, v in per_batch)


def test_histograms_every_histogram_freq_epochs_hold_the_weights(tmp_path):
    model = _model()
    _fit(model, [TensorBoard(tmp_path, histogram_freq=2, write_images=True, write_graph=False)], epochs=3)
    train = _read(tmp_path / "train")
    names = ["module.0.weight", "module.0.bias", "module.2.weight", "module.2.bias"]
    assert sorted(train.Tags()["histograms"]) == sorted(f"{n}/histogram" for n in names)
    for name, tensor in model.named_parameters():
        events = train.Histograms(f"{name}/histogram")
        assert [e.step for e in events] == [0, 2]
        last = events[-1].histogram_value  # epoch 2 is the last: the final weights
        assert last.num == tensor.numel()
        assert last.min == pytest.approx(tensor.min().item(), rel=1e-6)
        assert last.max == pytest.approx(tensor.max().item(), rel=1e-6)
    # 1-D and 2-D weights as images; a single-element bias has no image.
    assert sorted(train.Tags()["images"]) == [
        "module.0.bias/image", "module.0.weight/image", "module.2.weight/image",
    ]
    image = train.Images("module.0.weight/image")[-1]
    assert (image.height, image.width) == (4, 8)  # (8, 4) kernel laid out wide, as Keras does


def test_graph_is_written_from_the_first_batch_inputs_without_touching_rng(tmp_path):
    torch.manual_seed(3)
    reference = cadence.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    reference.compile(optimizer="sgd", loss="mse")
    reference.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    torch.manual_seed(3)
    model = cadence.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=[TensorBoard(tmp_path)])
    assert _read(tmp_path / "train").Graph() is not None
    for a, b in zip(reference.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.training
    assert not model._forward_pre_hooks


class Untraceable(cadence.Model):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("this model refuses to be traced")
        return self.linear(x)


def test_a_model_that_cannot_be_traced_gets_one_warning_and_trains_on(tmp_path):
    model = Untraceable()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match=r"could not trace the model's graph \(RuntimeError: this model refuses to be traced\)") as record:
        history = _fit(model, [TensorBoard(tmp_path)], epochs=3)
    assert len(record) == 1
    assert history.epoch == [0, 1, 2]
    assert len(_scalars(_read(tmp_path / "train"), "epoch_loss")) == 3


def test_profile_batch_writes_a_torch_profiler_trace(tmp_path):
    _fit(_model(), [TensorBoard(tmp_path, profile_batch=(2, 3), write_graph=False)], epochs=2)
    traces = list((tmp_path / "train").glob("*.pt.trace.json"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0


def test_resume_hides_epochs_written_after_the_backup(tmp_path):
    first = TensorBoard(tmp_path, write_graph=False)
    _fit(_model(), [first], epochs=4)
    assert first.state_dict() == {"global_train_batch": 12, "epochs_written": 4, "iterations": 12,
                                  "graph_written": False}
    # A run restored from a backup taken after epoch 1 writes epochs 2 and 3 again.
    resumed = TensorBoard(tmp_path, write_graph=False)
    resumed.load_state_dict({"global_train_batch": 6, "epochs_written": 2, "iterations": 6,
                             "graph_written": False})
    model = _model(lr=0.01)
    model.optimizer.iterations = 6  # As the restored optimizer state would say.
    history = _fit(model, [resumed], epochs=4, initial_epoch=2)
    assert resumed.state_dict() == {"global_train_batch": 12, "epochs_written": 4, "iterations": 12,
                                    "graph_written": False}
    loss = _scalars(_read(tmp_path / "train"), "epoch_loss")
    assert [s for s, _ in loss] == [0, 1, 2, 3]
    assert [v for _, v in loss[2:]] == _f32(history.history["loss"])
    # The validation run keeps every evaluation point from before the backup, once, and the
    # resumed run's points replace those the interrupted run wrote after it.
    evaluation = _scalars(_read(tmp_path / "validation"), "evaluation_loss_vs_iterations")
    assert [s for s, _ in evaluation] == [3, 6, 9, 12]
    assert [v for _, v in evaluation[2:]] == _f32(history.history["val_loss"])


def test_resume_does_not_write_the_graph_again(tmp_path):
    first = TensorBoard(tmp_path)
    _fit(_model(), [first], epochs=1)
    state = first.state_dict()
    assert state["graph_written"] is True
    resumed = TensorBoard(tmp_path)
    resumed.load_state_dict(state)
    _fit(_model(), [resumed], epochs=2, initial_epoch=1)
    assert resumed._graph_pending is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"histogram_freq": -1}, r"histogram_freq must be a non-negative integer .*received histogram_freq=-1\."),
        ({"update_freq": "sometimes"}, r"update_freq must be 'epoch', 'batch' or a positive integer .*received update_freq='sometimes'\."),
        ({"update_freq": 0}, r"received update_freq=0\."),
        ({"profile_batch": (3, 1)}, r"profile_batch must be .*received profile_batch=\(3, 1\)\."),
        ({"profile_batch": "a,b"}, r"received profile_batch='a,b'\."),
        ({"profile_batch": -2}, r"received profile_batch=-2\."),
        ({"embeddings_freq": 1}, r"does not write embedding projections .*received embeddings_freq=1, embeddings_metadata=None\."),
    ],
)
def test_bad_arguments_are_refused_before_any_file_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TensorBoard(tmp_path / "logs", **kwargs)
    assert not (tmp_path / "logs").exists()


def test_profile_batch_accepts_keras_string_form(tmp_path):
    callback = TensorBoard(tmp_path, profile_batch="2,4")
    assert (callback._start_batch, callback._stop_batch) == (2, 4)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError, match=r"needs the optional package 'tensorboard', which is not installed .*pip install 'cadence\[tensorboard\]'"):
        TensorBoard(tmp_path)


class AddToLogs(Callback):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs.update(self.values)


class FailAtEpochEnd(Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("fail")


def test_failed_fits_leave_no_writer_thread_behind(tmp_path):
    import threading

    before = threading.active_count()
    for attempt in range(5):
        with pytest.raises(RuntimeError, match="^fail"):
            _fit(_model(), [TensorBoard(tmp_path / f"run{attempt}", write_graph=False), FailAtEpochEnd()])
        assert threading.active_count() == before, attempt
    # Each failed run's events of its first epoch were written and flushed.
    assert _scalars(_read(tmp_path / "run4" / "train"), "epoch_loss")[0][0] == 0


def test_numpy_scalars_are_written_as_numbers(tmp_path):
    values = {"np32": np.float32(0.5), "zero_d": np.array(2.0), "vector": np.array([1.0, 2.0])}
    _fit(_model(), [AddToLogs(values), TensorBoard(tmp_path, write_graph=False)], epochs=1)
    train = _read(tmp_path / "train")
    assert _scalars(train, "epoch_np32") == [(0, 0.5)] and _scalars(train, "epoch_zero_d") == [(0, 2.0)]
    assert "epoch_vector" not in train.Tags()["scalars"]  # Not a scalar: not a scalar summary.


def test_a_log_key_that_is_not_a_string_is_refused_naming_it(tmp_path):
    with pytest.raises(TypeError, match=(
        r"^TensorBoard\.on_epoch_end received a log key that is not a string: 3 \(int\)\. Log keys "
        r"must be strings; the key was added by train_step or by a callback that runs before this one\."
    )):
        _fit(_model(), [AddToLogs({3: 1.0}), TensorBoard(tmp_path, write_graph=False)], epochs=1)
