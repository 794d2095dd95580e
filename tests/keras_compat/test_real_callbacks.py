"""Callbacks written the way real projects write them, run on cadence with only the imports changed.

Each callback below follows a pattern published in projects built on tf.keras (a tqdm bar as in
tensorflow-addons' TQDMProgressBar, tensorflow-addons' AverageModelCheckpoint, the TensorBoard
confusion-matrix tutorial, a one-cycle policy); the code is ours, written the way they write it.
"""

from __future__ import annotations

import io
import math

import cadence.keras.backend as K
import numpy as np
import pytest
import torch
from torch import nn

import cadence as tf
from cadence import keras


def classifier(seed=0):
    torch.manual_seed(seed)
    model = tf.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=-1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], device="cpu")
    return model


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 4)) + y[:, None]).astype(np.float32)
    return x, y


# ----------------------------------------------------------------- a tqdm progress bar
class TQDMProgressBar(keras.callbacks.Callback):
    """A tqdm bar per epoch, then the epoch's metrics, as tensorflow-addons' TQDMProgressBar prints them."""

    def __init__(self, stream, metrics_format="{name}: {value:0.4f}", separator=" - "):
        super().__init__()
        self.stream = stream
        self.metrics_format = metrics_format
        self.separator = separator

    def format_metrics(self, logs):
        return self.separator.join(self.metrics_format.format(name=k, value=v) for k, v in logs.items())

    def on_train_begin(self, logs=None):
        self.epochs = self.params["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.params["steps"], desc=f"Epoch {epoch + 1}/{self.epochs}", file=self.stream,
                        leave=False, dynamic_ncols=False, ncols=200)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix_str(self.format_metrics(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        self.stream.write(self.format_metrics(logs) + "\n")


def test_a_tqdm_callback_prints_the_logs_in_kerass_order():
    """Keras 3 hands logs sorted by key, so the printed order is accuracy, loss, val_accuracy, val_loss."""
    stream = io.StringIO()
    x, y = blobs()
    history = classifier().fit(x, y, batch_size=20, epochs=2, verbose=0, validation_split=0.25,
                               callbacks=[TQDMProgressBar(stream)])
    printed = [line.split("\r")[-1] for line in stream.getvalue().splitlines() if "val_loss: " in line.split("\r")[-1]]
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert printed == [" - ".join(f"{k}: {history.history[k][e]:0.4f}" for k in keys) for e in (0, 1)]


# ----------------------------------------------------------------- AverageModelCheckpoint
class WeightAverage(keras.callbacks.Callback):
    """Keeps the running mean of the weights after every batch (stochastic weight averaging)."""

    def on_train_begin(self, logs=None):
        self.count, self.average = 0, None

    def on_train_batch_end(self, batch, logs=None):
        weights = [w.astype(np.float64) for w in self.model.get_weights()]
        self.count += 1
        if self.average is None:
            self.average = weights
        else:
            self.average = [a + (w - a) / self.count for a, w in zip(self.average, weights, strict=True)]

    def assign_average_vars(self):
        self.model.set_weights(self.average)


class AverageModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Saves the averaged weights, as tensorflow-addons' AverageModelCheckpoint does (update_weights=False)."""

    def __init__(self, averager, update_weights, filepath, **kwargs):
        self.averager = averager
        self.update_weights = update_weights
        super().__init__(filepath, **kwargs)

    def _save_model(self, epoch, batch, logs):
        if self.update_weights:
            self.averager.assign_average_vars()
            return super()._save_model(epoch, batch, logs)
        non_avg_weights = self.model.get_weights()
        self.averager.assign_average_vars()
        result = super()._save_model(epoch, batch, logs)
        self.model.set_weights(non_avg_weights)
        return result


def test_an_average_model_checkpoint_saves_the_averaged_weights(tmp_path):
    """Keras's extension point ModelCheckpoint._save_model(epoch, batch, logs) decides what is written."""
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append([w.copy() for w in model.get_weights()]))
    model = classifier()
    averager = WeightAverage()
    x, y = blobs()
    model.fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[
        recorder, averager, AverageModelCheckpoint(averager, False, str(tmp_path / "avg-{epoch}.pt"))])
    assert len(seen) == 6
    saved = tf.load_model(tmp_path / "avg-2.pt", classifier(seed=1))
    expected = [np.mean([np.asarray(s[i], np.float64) for s in seen], axis=0) for i in range(len(seen[0]))]
    for got, want in zip(saved.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-7)
    for got, want in zip(model.get_weights(), seen[-1], strict=True):  # The model keeps its own weights.
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------- a confusion matrix in TensorBoard
class ConfusionMatrixCallback(keras.callbacks.Callback):
    """Logs a confusion-matrix image each epoch, as TensorBoard's image-summaries tutorial does."""

    def __init__(self, logdir, x, y, class_names):
        super().__init__()
        self.file_writer_cm = tf.summary.create_file_writer(logdir + "/cm")
        self.x, self.y, self.class_names = x, y, class_names
        self.images = []

    @staticmethod
    def plot_to_image(figure):
        import matplotlib.pyplot as plt
        from PIL import Image

        buf = io.BytesIO()
        plt.savefig(buf, format="png")
        plt.close(figure)
        buf.seek(0)
        image = np.asarray(Image.open(buf).convert("RGBA"))  # tf.image.decode_png(buf.getvalue(), channels=4)
        return np.expand_dims(image, 0)

    def plot_confusion_matrix(self, cm):
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(3, 3))
        plt.imshow(cm, interpolation="nearest", cmap=plt.cm.Blues)
        plt.title("Confusion matrix")
        ticks = np.arange(len(self.class_names))
        plt.xticks(ticks, self.class_names)
        plt.yticks(ticks, self.class_names)
        return figure

    def on_epoch_end(self, epoch, logs=None):
        pred = np.argmax(self.model.predict(self.x, verbose=0), axis=1)
        cm = np.zeros((3, 3), dtype=np.int64)
        np.add.at(cm, (self.y, pred), 1)
        cm_image = self.plot_to_image(self.plot_confusion_matrix(cm))
        self.images.append(cm_image)
        with self.file_writer_cm.as_default():
            tf.summary.image("Confusion Matrix", cm_image, step=epoch)


def test_a_confusion_matrix_image_is_read_back_from_the_event_file(tmp_path):
    """tf.summary.image inside writer.as_default() writes one image per epoch at step=epoch."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("tensorboard")
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = blobs()
    callback = ConfusionMatrixCallback(str(tmp_path / "logs"), x, y, ["a", "b", "c"])
    classifier().fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[callback])
    events = EventAccumulator(str(tmp_path / "logs" / "cm"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("Confusion Matrix")
    assert [image.step for image in images] == [0, 1]
    for image, written in zip(images, callback.images, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
        assert (image.height, image.width) == written.shape[1:3]
        np.testing.assert_array_equal(decoded, written[0])


# ----------------------------------------------------------------- a one-cycle policy
class OneCycleScheduler(keras.callbacks.Callback):
    """The one-cycle policy: up to max_lr, back down, then annealed; its length from params."""

    def __init__(self, max_lr, start_lr=None, last_lr=None):
        super().__init__()
        self.max_lr = max_lr
        self.start_lr = start_lr or max_lr / 10
        self.last_lr = last_lr or self.start_lr / 1000

    def on_train_begin(self, logs=None):
        steps_per_epoch = math.ceil(self.params["samples"] / self.params["batch_size"])
        self.iterations = self.params["epochs"] * steps_per_epoch
        self.last_iterations = self.iterations // 10 + 1
        self.half_iteration = (self.iterations - self.last_iterations) // 2
        self.iteration = 0

    def _interpolate(self, iter1, iter2, lr1, lr2):
        return (lr2 - lr1) * (self.iteration - iter1) / (iter2 - iter1) + lr1

    def on_train_batch_begin(self, batch, logs=None):
        if self.iteration < self.half_iteration:
            lr = self._interpolate(0, self.half_iteration, self.start_lr, self.max_lr)
        elif self.iteration < 2 * self.half_iteration:
            lr = self._interpolate(self.half_iteration, 2 * self.half_iteration, self.max_lr, self.start_lr)
        else:
            lr = self._interpolate(2 * self.half_iteration, self.iterations, self.start_lr, self.last_lr)
        self.iteration += 1
        K.set_value(self.model.optimizer.learning_rate, lr)


def test_a_one_cycle_policy_sized_from_batch_size_and_samples():
    """tf.keras 2's params['batch_size'] and params['samples'] size the cycle: 40 samples / 8 = 5 steps x 2."""
    lrs = []
    x, y = blobs(40)
    model = classifier()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[
        OneCycleScheduler(max_lr=1.0),
        keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: lrs.append(K.get_value(model.optimizer.learning_rate))),
    ])
    # 10 iterations, last 2 annealed, half cycle 4: up 0.1 -> 1.0, down 1.0 -> 0.1, then towards 1e-4.
    assert lrs == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0, 0.775, 0.55, 0.325, 0.1, 0.05005])
