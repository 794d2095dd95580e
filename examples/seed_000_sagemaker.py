"""Seed 000: a CustomCallBack printing SageMaker-friendly metric lines.

Changed from the seed: the import (cadence instead of tensorflow) and the model construction.
"""

import datetime

import torch
from torch import nn

import cadence as tf  # was: import tensorflow as tf


class CustomCallBack(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        """Called at the beginning of training.
        """
        print(f"Start training - {str(datetime.datetime.now())}")

        # get parameters
        self.epochs = self.params['epochs']

    def on_train_end(self, logs=None):
        """Called at the end of training.
        """
        print(f"Finish training - {str(datetime.datetime.now())}")

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch.
        """
        keys = list(logs.keys())
        metrics_values_list = []

        for key in keys:
            if key.startswith('val_'):
                metrics_values_list.append(f"{key}: {logs.get(key):.4f};")
            else:
                metrics_values_list.append(f"train_{key}: {logs.get(key):.4f};")
        values = ' - '.join(metrics_values_list)

        print(f"Epoch {epoch+1}/{self.epochs} - {values}")


def build_model():
    """Model construction (changed): a small regressor with RMSE, as in the seed's output."""
    model = tf.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    model.compile(optimizer="adam", loss="mse", metrics=[tf.metrics.RootMeanSquaredError()])
    return model


def main(epochs=10):
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(512, 1)
    model = build_model()
    history = model.fit(
        x, y, epochs=epochs, verbose=0, validation_split=0.25,
        callbacks=[CustomCallBack()],
    )
    return model, history


if __name__ == "__main__":
    main()
