"""Seed 003: a custom loss, a custom ``train_step``, a hand-written loop, class/sample weights, Sequence.

Changed from the seed: the imports, the model construction, the data (generated: MNIST cannot
be downloaded here), and the lines that used TensorFlow's ``GradientTape`` — in PyTorch the
gradients come from ``loss.backward()``; each such line keeps its original as a comment.
"""

import math

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from cadence import keras  # was: from tensorflow import keras
from cadence.callbacks import CallbackList
from cadence.utils import Sequence  # was: from keras.utils import Sequence


# --- customizing loss function -------------------------------------------------------------
def custom_loss(y_true, y_pred):
    # calculate loss, using y_pred
    loss = torch.mean(torch.square(y_pred - y_true), dim=-1)  # was: a placeholder in the seed
    return loss


# --- customizing training loop: train_step ------------------------------------------------
class CustomModel(keras.Model):
    def train_step(self, data):
        # Unpack the data. Its structure depends on your model and
        # on what you pass to `fit()`.
        x, y = data

        # was: with tf.GradientTape() as tape:
        y_pred = self(x, training=True)  # Forward pass
        # Compute the loss value
        # (the loss function is configured in `compile()`)
        loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)

        # Compute gradients
        trainable_vars = self.trainable_variables
        loss.backward()  # was: gradients = tape.gradient(loss, trainable_vars)
        gradients = [v.grad for v in trainable_vars]
        # Update weights
        self.optimizer.apply_gradients(zip(gradients, trainable_vars))
        # Update metrics (includes the metric that tracks the loss)
        self.compiled_metrics.update_state(y, y_pred)
        # Return a dict mapping metric names to current value
        return {m.name: m.result() for m in self.metrics}


def build_custom_model():
    """Model construction (changed): the seed's 784-64-64-10 network, wrapped in CustomModel."""
    return CustomModel(nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                     nn.Linear(64, 10)))


# --- a hand-written loop, driven with callbacks --------------------------------------------
def custom_training_loop(x_train, y_train, x_val, y_val, epochs=2, callbacks=None, log=print):
    """The seed's loop over epochs and batches, with a CallbackList firing Keras's hooks."""
    model = keras.Model(nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                      nn.Linear(64, 10)))
    # Instantiate an optimizer.
    optimizer = keras.optimizers.SGD(learning_rate=1e-3).build(model.parameters())
    # Instantiate a loss function.
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    batch_size = 64
    # Prepare the training dataset.  was: tf.data.Dataset.from_tensor_slices(...).shuffle(1024).batch(64)
    train_dataset = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(x_train), torch.as_tensor(y_train)),
        batch_size=batch_size, shuffle=True)

    callback_list = CallbackList(callbacks, add_history=True, model=model,
                                 epochs=epochs, steps=len(train_dataset), verbose=0)
    model.optimizer = optimizer
    logs = {}
    callback_list.on_train_begin(logs=logs)
    for epoch in range(epochs):
        log("\nStart of epoch %d" % (epoch,))
        callback_list.on_epoch_begin(epoch, logs=logs)

        # Iterate over the batches of the dataset.
        for step, (x_batch_train, y_batch_train) in enumerate(train_dataset):
            callback_list.on_train_batch_begin(step, logs=logs)
            # was: with tf.GradientTape() as tape:
            logits = model(x_batch_train, training=True)  # Logits for this minibatch

            # Compute the loss value for this minibatch.
            loss_value = loss_fn(y_batch_train, logits)

            # was: grads = tape.gradient(loss_value, model.trainable_weights)
            optimizer.zero_grad()
            loss_value.backward()
            grads = [w.grad for w in model.trainable_weights]

            # Run one step of gradient descent by updating
            # the value of the variables to minimize the loss.
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            logs = {"loss": loss_value}
            callback_list.on_train_batch_end(step, logs=logs)

            # Log every 200 batches.
            if step % 200 == 0:
                log(
                    "Training loss (for one batch) at step %d: %.4f"
                    % (step, float(loss_value))
                )
                log("Seen so far: %s samples" % ((step + 1) * batch_size))
        with torch.no_grad():
            val_logits = model(torch.as_tensor(x_val), training=False)
            val_loss = loss_fn(torch.as_tensor(y_val), val_logits)
        epoch_logs = {"loss": float(loss_value), "val_loss": float(val_loss)}
        callback_list.on_epoch_end(epoch, logs=epoch_logs)
    callback_list.on_train_end(logs=epoch_logs)
    return model, callback_list.history


# --- class_weight and sample_weight --------------------------------------------------------
def generate_class_weights(train_y):
    train_y = np.argmax(train_y, axis=1)
    class_labels = np.unique(train_y)
    class_weights = compute_class_weight(class_weight='balanced', classes=class_labels, y = train_y)
    return dict(zip(class_labels, class_weights))


def generate_sample_weights(train_y, n_classes, weights):
    class_series = np.argmax(train_y, axis=1)
    sample_weight = np.ones(shape=(len(class_series),))
    for (condition,weight) in weights.items():
        sample_weight[class_series == list(n_classes).index(condition)] = weight
    return sample_weight


# --- customizing data batch generation: Sequence -------------------------------------------
class DataGenerator(Sequence):

    def __init__(self, list_IDs, labels, batch_size, dim, n_channels, n_classes, shuffle):
        'Initialization'
        self.dim = dim
        self.batch_size = batch_size
        self.labels = labels
        self.list_IDs = list_IDs # list of samples in dataset(each with an ID for identification only)
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.shuffle = shuffle
        self.on_epoch_end()

    def __len__(self):
        'Denotes number of batches per epoch'
        return math.ceil(len(self.list_IDs) / self.batch_size)

    def __getitem__(self, index):
        'Generate one batch of data'
        # Generate indexes of the batch
        indexes = self.indexes[index*self.batch_size:(index+1)*self.batch_size]
        # Find list of IDs
        list_IDs_temp = [self.list_IDs[k] for k in indexes]
        # Generate data
        X, y = self.__data_generation(list_IDs_temp)
        return X, y

    def on_epoch_end(self):
        'Updates indexes after each epoch by shuffling'
        self.indexes = np.arange(len(self.list_IDs))
        if self.shuffle == True:
            np.random.shuffle(self.indexes)

    def __data_generation(self, list_IDs_temp):
        'Generates data containing batch_size samples'
        # Initialization
        X = np.empty((self.batch_size, *self.dim, self.n_channels))
        y = np.empty((self.batch_size), dtype=int)
        # Generate data
        for i, ID in enumerate(list_IDs_temp):
            # Store sample
            X[i,] = np.load('data/' + ID + '.npy')
            # Store class
            y[i] = self.labels[ID]
        return X, keras.utils.to_categorical(y, num_classes=self.n_classes)
