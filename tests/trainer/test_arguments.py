"""Argument checks of fit/evaluate/predict: exact messages, raised before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.data import Sequence
from cadence.trainer import arguments

X = np.arange(20, dtype=np.float32).reshape(10, 2)
Y = np.arange(10, dtype=np.float32)[:, None]


class Watch(cadence.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.began = False

    def on_train_begin(self, logs=None):
        self.began = True


class Batches(Sequence):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return X[:2], Y[:2]


def generator():
    while True:
        yield X[:2], Y[:2]


def model():
    net = cadence.Sequential(nn.Linear(2, 1))
    net.compile(optimizer="sgd", loss="mse", device="cpu")
    return net


DATASET = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))

REFUSED = [
    (dict(x=X, y=Y[:9]), "Data cardinality is ambiguous: all inputs must have the same number of "
                         r"samples. Received x: 10, y: 9\."),
    (dict(x=(X, X[:8]), y=Y), r"Received x\[0\]: 10, x\[1\]: 8, y: 10\."),
    (dict(x={"a": X, "b": X[:3]}, y=Y), r"Received x\['a'\]: 10, x\['b'\]: 3, y: 10\."),
    (dict(x=X, y=Y[:9], validation_split=0.2), r"Received x: 10, y: 9\."),
    (dict(x=X, y=Y, validation_split=1.0), r"validation_split must be a float in \[0, 1\) .*"
                                           r"received validation_split=1.0\."),
    (dict(x=X, y=Y, validation_split=-0.1), r"received validation_split=-0.1\."),
    (dict(x=X, y=Y, validation_split="0.2"), r"received validation_split='0.2'\."),
    (dict(x=X, y=Y, validation_split=0.99), r"validation_split=0.99 leaves no samples on one side of "
                                            r"the split of 10 samples \(training: 0, validation: 10\)"),
    (dict(x=DATASET, validation_split=0.2), "validation_split is only supported for arrays and "
                                            "tensors .* x is a TensorDataset. Pass validation_data"),
    (dict(x=X, y=Y, validation_split=0.2, validation_data=(X, Y)),
     "Pass validation_split or validation_data, not both"),
    (dict(x=X, y=Y, class_weight={0: 1.0}, sample_weight=np.ones(10)),
     "class_weight and sample_weight cannot be used together"),
    (dict(x=np.zeros((0, 2)), y=np.zeros((0, 1))), "The data is empty: received 0 samples"),
    (dict(x=Batches(), batch_size=4), "batch_size must be None when x is a Batches"),
    (dict(x=generator(), batch_size=4), "batch_size must be None when x is a generator"),
    (dict(x=generator(), epochs=2), "x is a generator, which can be read only once and may never "
                                    "end, so fit cannot run 2 epochs over it without steps_per_epoch; "
                                    "received steps_per_epoch=None"),
    (dict(x=generator(), epochs=5, initial_epoch=3), "cannot run 2 epochs over it"),
    (dict(x=X, y=Y, epochs=3, validation_data=generator()),
     "validation_data is a generator, which can be read only once, but validation would run 3 "
     "times; received validation_steps=None"),
    (dict(x=X, y=Y, validation_data=X), "validation_data must be \\(x_val, y_val\\), .* received ndarray"),
    (dict(x=X, y=Y, validation_data=(X,)), "validation_data must be \\(x_val, y_val\\) or .* received "
                                           "a tuple of 1 elements"),
    (dict(x=DATASET, y=Y), "y and sample_weight must be None when x is a TensorDataset"),
    (dict(x=X, y=Y, shuffle="batch"), "shuffle must be True or False; received shuffle='batch'"),
    (dict(x=X, y=Y, workers=-1), "workers must be an integer >= 0; received workers=-1"),
    (dict(x=X, y=Y, use_multiprocessing=1), "use_multiprocessing must be True or False; received "
                                            "use_multiprocessing=1"),
    (dict(x=X, y=Y, max_queue_size=0), "max_queue_size must be a positive integer; received "
                                       "max_queue_size=0"),
    (dict(x=X, y=Y, validation_freq=0), "validation_freq must be an integer >= 1 or a list"),
    (dict(x=X, y=Y, class_weight=[1.0]), "class_weight must be a dict"),
    (dict(x=X, y=Y, steps_per_epoch=0), "steps_per_epoch must be a positive integer; received "
                                        "steps_per_epoch=0"),
    (dict(x=None), "x is required"),
    (dict(x="train.csv"), "x must be arrays or tensors .* received str"),
]


@pytest.mark.parametrize("kwargs, message", REFUSED)
def test_fit_refuses_bad_arguments_before_any_work(kwargs, message):
    net = model()
    before = [p.detach().clone() for p in net.parameters()]
    watch = Watch()
    with pytest.raises((ValueError, TypeError), match=message):
        net.fit(verbose=0, callbacks=[watch], **kwargs)
    assert not watch.began
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_a_single_epoch_over_a_finite_generator_needs_no_steps():
    history = model().fit(iter([(X[:2], Y[:2])] * 3), epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


def test_a_generator_as_validation_data_runs_once_without_validation_steps():
    history = model().fit(X, Y, epochs=2, verbose=0, validation_freq=2,
                          validation_data=iter([(X[:2], Y[:2])] * 2))
    assert len(history.history["val_loss"]) == 1


@pytest.mark.parametrize("method, kwargs, message", [
    ("evaluate", dict(x=X, y=Y[:4]), r"Received x: 10, y: 4\."),
    ("evaluate", dict(x=Batches(), batch_size=2), "batch_size must be None when x is a Batches"),
    ("evaluate", dict(x=X, y=Y, steps=-1), "steps must be a positive integer; received steps=-1"),
    ("predict", dict(x=(X, X[:3])), r"Received x\[0\]: 10, x\[1\]: 3\."),
    ("predict", dict(x=X, workers="2"), "workers must be an integer >= 0; received workers='2'"),
    ("evaluate", dict(x=iter([])), r"The data yielded no batches \(IterableAdapter\)"),
])
def test_evaluate_and_predict_refuse_bad_arguments(method, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(model(), method)(verbose=0, **kwargs)


def test_split_validation_keeps_the_last_fraction_of_every_input():
    weights = {"a": np.arange(10.0), "b": np.ones(10)}
    (x, y, w), validation = arguments.split_validation({"a": X, "b": X}, Y, weights, 0.3)
    assert x["a"].shape[0] == 7 and y.shape[0] == 7 and w["a"].tolist() == list(range(7))
    x_val, y_val, w_val = validation
    np.testing.assert_array_equal(x_val["b"], X[7:])
    np.testing.assert_array_equal(y_val, Y[7:])
    assert w_val["a"].tolist() == [7.0, 8.0, 9.0]


def test_loader_options_pin_only_for_a_cuda_model():
    net = model()
    assert arguments.loader_options(net)["pin_memory"] is False

    class OnCuda:
        compiled = True
        device = torch.device("cuda", 0)

    assert arguments.loader_options(OnCuda(), workers=2) == {
        "workers": 2, "use_multiprocessing": None, "max_queue_size": None, "pin_memory": True}


def test_should_validate_counts_epochs_from_one():
    assert [arguments.should_validate(e, 3) for e in range(6)] == [False, False, True] * 2
    assert [arguments.should_validate(e, [1, 2]) for e in range(3)] == [True, True, False]
