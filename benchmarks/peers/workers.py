"""One training side per process: the same workloads in Keras 3, Poutyne and Lightning.

``python -m benchmarks.peers.workers SIDE EPOCHS THREADS KEYS`` trains every workload in
``KEYS`` (e.g. ``a,b,c``) for ``EPOCHS`` epochs with ``SIDE`` and prints one JSON line
``{"a": [epoch seconds...], ...}`` (warm-up epoch excluded); a workload that fails is
reported as ``{"a": "error: ..."}``. Every side uses the defaults its users get (its own data
pipeline, metric handling and progress bar), the same model, data, optimizer, metric,
validation split and the callbacks EarlyStopping, CSVLogger and ModelCheckpoint(save_best_only).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from typing import Any

from benchmarks import workloads as w

Clock = w._EpochClock  # Per-epoch wall times, the first (warm-up) epoch left out.


def _split(kind: str) -> tuple[Any, Any, Any, Any]:
    x, y = w.make_data(kind)
    cut = int(len(x) * (1 - w.VALIDATION_SPLIT))
    return x[:cut], y[:cut], x[cut:], y[cut:]


# --------------------------------------------------------------------------- Keras 3
def keras_side(kind: str, epochs: int, verbose: int, workdir: str) -> list[float]:
    import keras

    x, y = w.make_data(kind)
    keras.utils.set_random_seed(0)
    if kind == "linear":
        model = keras.Sequential([keras.Input((w.FEATURES,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
                      loss="mean_squared_error", metrics=["mean_absolute_error"])
    else:
        model = keras.Sequential([
            keras.Input((w.FEATURES,)), keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    clock = Clock()

    class Tick(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.start()

        def on_epoch_end(self, epoch, logs=None):
            clock.mark()

    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1000),
        keras.callbacks.CSVLogger(os.path.join(workdir, "log.csv")),
        keras.callbacks.ModelCheckpoint(os.path.join(workdir, "best.weights.h5"),
                                        monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        Tick(),
    ]
    with w.quiet_stdout():
        model.fit(x, y, batch_size=w.BATCH_SIZE, epochs=epochs, verbose=verbose,
                  validation_split=w.VALIDATION_SPLIT, callbacks=callbacks)
    return clock.epoch_times()


# --------------------------------------------------------------------------- Poutyne
def poutyne_side(kind: str, epochs: int, verbose: int, workdir: str) -> list[float]:
    import poutyne
    import torch
    from torch.nn import functional as F

    x_train, y_train, x_val, y_val = _split(kind)
    network = w.make_module(kind)
    optimizer = w.make_torch_optimizer(kind, network)
    if kind == "linear":
        def loss(pred, target):
            return F.mse_loss(pred, target[:, None])

        def mae(pred, target):
            return F.l1_loss(pred, target[:, None])

        metrics: list[Any] = [mae]
    else:
        loss = F.cross_entropy
        metrics = ["accuracy"]
    model = poutyne.Model(network, optimizer, loss, batch_metrics=metrics)
    clock = Clock()

    class Tick(poutyne.Callback):
        def on_train_begin(self, logs):
            clock.start()

        def on_epoch_end(self, epoch_number, logs):
            clock.mark()

    callbacks = [
        poutyne.EarlyStopping(monitor="val_loss", patience=1000),
        poutyne.CSVLogger(os.path.join(workdir, "log.csv")),
        poutyne.ModelCheckpoint(os.path.join(workdir, "best.ckpt"), monitor="val_loss",
                                save_best_only=True),
        Tick(),
    ]
    torch.manual_seed(0)
    with w.quiet_stdout():
        model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=w.BATCH_SIZE,
                  epochs=epochs, callbacks=callbacks, verbose=bool(verbose))
    return clock.epoch_times()


# --------------------------------------------------------------------------- Lightning
def lightning_side(kind: str, epochs: int, verbose: int, workdir: str) -> list[float]:
    import lightning as L
    import torch
    from lightning.pytorch import callbacks as lcb
    from lightning.pytorch.loggers import CSVLogger
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    x_train, y_train, x_val, y_val = _split(kind)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = w.make_module(kind)

        def _loss_metric(self, batch):
            xb, yb = batch
            out = self.net(xb)
            if kind == "linear":
                return F.mse_loss(out, yb[:, None]), F.l1_loss(out.detach(), yb[:, None])
            return F.cross_entropy(out, yb), (out.detach().argmax(-1) == yb).float().mean()

        def training_step(self, batch, batch_idx):
            loss, metric = self._loss_metric(batch)
            self.log("loss", loss, on_step=False, on_epoch=True)
            self.log("metric", metric, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            loss, metric = self._loss_metric(batch)
            self.log("val_loss", loss, on_step=False, on_epoch=True)
            self.log("val_metric", metric, on_step=False, on_epoch=True)

        def configure_optimizers(self):
            return w.make_torch_optimizer(kind, self.net)

    clock = Clock()

    class Tick(L.Callback):
        def on_train_start(self, trainer, pl_module):
            clock.start()

        def on_train_epoch_end(self, trainer, pl_module):
            clock.mark()

    train = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
                       batch_size=w.BATCH_SIZE, shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val)),
                     batch_size=w.BATCH_SIZE)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=bool(verbose),
        enable_model_summary=False, logger=CSVLogger(workdir), num_sanity_val_steps=0,
        callbacks=[lcb.EarlyStopping(monitor="val_loss", patience=1000),
                   lcb.ModelCheckpoint(dirpath=workdir, monitor="val_loss", save_top_k=1),
                   Tick()],
    )
    with w.quiet_stdout():
        trainer.fit(Module(), train, val)
    return clock.epoch_times()


def hand_side(kind: str, epochs: int, verbose: int, workdir: str) -> list[float]:
    return w.hand_written(kind, epochs, workdir)


def cadence_side(kind: str, epochs: int, verbose: int, workdir: str) -> list[float]:
    return w.run_cadence(kind, epochs, workdir, verbose=verbose)


SIDES = {
    "hand-written": hand_side,
    "cadence": cadence_side,
    "keras-tensorflow": keras_side,
    "keras-torch": keras_side,
    "poutyne": poutyne_side,
    "lightning": lightning_side,
}
BACKENDS = {"keras-tensorflow": "tensorflow", "keras-torch": "torch"}


def main(argv: list[str]) -> int:
    side, epochs, threads, keys = argv[0], int(argv[1]), int(argv[2]), argv[3].split(",")
    if side in BACKENDS:
        os.environ["KERAS_BACKEND"] = BACKENDS[side]
    import torch

    torch.set_num_threads(threads)
    if side == "keras-tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    by_key = {workload.key: workload for workload in w.WORKLOADS}
    result: dict[str, Any] = {}
    for key in keys:
        workload = by_key[key]
        try:
            with tempfile.TemporaryDirectory() as workdir:
                result[key] = SIDES[side](workload.kind, epochs, workload.verbose, workdir)
        except Exception as error:  # a peer that fails is reported, not fatal
            traceback.print_exc()
            result[key] = f"error: {type(error).__name__}: {error}"
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
