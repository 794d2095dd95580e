"""Seed 004: built-in callbacks and three custom ones (threshold stop, per-batch LR, momentum).

Changed from the seed: the imports and the model construction (and the data, generated here).
The seed's snippets had two syntax slips that no Python runs (a missing ``:`` after
``def on_train_batch_end(batch, logs=None)`` and a missing ``)`` in ``StopOnThreshold``'s
print); they are closed here and nothing else is touched.
"""

import cadence.keras.backend as K  # was: import tensorflow.keras.backend as K
import numpy as np
import torch
from torch import nn

import cadence as tf  # was: import tensorflow as tf
from cadence.callbacks import (  # was: from tensorflow.keras.callbacks import ...
    CSVLogger,
    LearningRateScheduler,
)


class MyCustomCallback(tf.keras.callbacks.Callback):
    """Example custom callback
    """
    def on_train_batch_end(self, batch, logs=None):
        """Custom Implementation of on_train_batch_end
        """
        self.last_batch = batch


# create a callback to monitor validation loss
early_stopping = tf.keras.callbacks.EarlyStopping(
    monitor='val_loss',
    min_delta=0.01,
    patience=5
)


# save training log to a file called 'training.csv'
csv_logger = CSVLogger('./results/training.csv')


def lr_schedule(epoch, lr):
    """Linearly increase lr by 0.001 for first 10 epochs, then exponentially decay
    """
    if epoch < 10:
        return lr + 0.001
    else:
        return lr * torch.exp(torch.tensor(-0.1))  # was: tf.math.exp(-0.1)


# create the lr scheduler
lr_scheduler = LearningRateScheduler(lr_schedule)


checkpoint_filepath = './checkpoint'
model_checkpoint_callback = tf.keras.callbacks.ModelCheckpoint(
    filepath=checkpoint_filepath)


class StopOnThreshold(tf.keras.callbacks.Callback):
    """Monitor validation accuracy and stop when a threshold is reached
    """
    def __init__(self, stopping_accuracy):
        self.stopping_accuracy = stopping_accuracy
        super(StopOnThreshold, self).__init__()

    def on_epoch_end(self, epoch, logs=None):
        if 'val_accuracy' not in logs.keys():
            print('Stopping conditioned on ' + 'val_accuracy' + ', but this metric is not available.'
                  'Available keys are ' + ', '.join(list(logs.keys())))
        else:
            val_accuarcy = logs.get('val_accuracy')
            if val_accuarcy > self.stopping_accuracy:
                self.model.stop_training = True


class LRSchedule(tf.keras.callbacks.Callback):
    """Lower the learning rate by a factor of 1.0000002 until the learning
    rate is at 1e-6 at which point it should remain constant
    """
    def __init__(self):
        super(LRSchedule, self).__init__()

    def on_batch_end(self, batch, logs):
        current_lr = K.get_value(model.optimizer.lr)
        if current_lr > 1e-6:
            lr = current_lr / 1.0000002 #1.00002
            K.set_value(self.model.optimizer.lr, lr)
        else:
            K.set_value(self.model.optimizer.lr, 1e-6)


lr_scheduler_per_batch = LRSchedule()


class MomentumSchedule(tf.keras.callbacks.Callback):
    """Update the momentum linearly from 0.9 to 0.99 between epochs 1 and 200
    """
    def __init__(self):
        super(MomentumSchedule, self).__init__()

    def on_epoch_end(self, epoch, logs=None):
        starting_value = 0.9
        ending_value = 0.99
        number_epochs = 200
        step_increase = (ending_value-starting_value) / number_epochs
        if epoch > number_epochs:
            K.set_value(self.model.optimizer.momentum, ending_value)
        else:
            current_momentum = K.get_value(self.model.optimizer.momentum)
            current_momentum += step_increase
            K.set_value(self.model.optimizer.momentum, current_momentum)


momentum_scheduler = MomentumSchedule()


def build_model():
    """Model construction (changed): the paper's classifier shape, shrunk; SGD with momentum."""
    model = tf.Sequential(nn.Linear(28, 32), nn.Tanh(), nn.Linear(32, 1), nn.Sigmoid())
    model.compile(optimizer=tf.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def make_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 28)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.float32)
    return x, y


model = None


def run(callbacks, epochs=20):
    """Train the seed's way with the given callbacks; return the model and its History."""
    global model
    torch.manual_seed(0)
    x, y = make_data()
    model = build_model()
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0,
                        validation_split=0.25, callbacks=callbacks)
    return model, history


if __name__ == "__main__":
    run([early_stopping, csv_logger, lr_scheduler, model_checkpoint_callback])
    # later reload the model
    model.load_weights(checkpoint_filepath)
    run([StopOnThreshold(0.9), lr_scheduler_per_batch, momentum_scheduler, MyCustomCallback()])
