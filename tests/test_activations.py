"""cadence.activations: Keras's names and defaults, values by hand."""

import math

import numpy as np
import pytest
import torch

import cadence as tf
from cadence import activations, keras

X = torch.tensor([-4.0, -1.0, 0.0, 0.5, 2.0, 7.0])


def _check(fn, expected, *args, **kwargs):
    assert fn(X, *args, **kwargs).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_relu_family():
    _check(activations.relu, [0, 0, 0, 0.5, 2, 7])
    _check(activations.relu, [-0.4, -0.1, 0, 0.5, 2, 7], negative_slope=0.1)
    _check(activations.relu, [0, 0, 0, 0.5, 2, 6], max_value=6)
    # Keras: x where x > threshold, else negative_slope * (x - threshold).
    _check(activations.relu, [-0.5, -0.2, -0.1, -0.05, 2, 3], negative_slope=0.1, max_value=3.0,
           threshold=1.0)
    _check(activations.leaky_relu, [-0.8, -0.2, 0, 0.5, 2, 7])  # Keras's slope 0.2.
    _check(activations.relu6, [0, 0, 0, 0.5, 2, 6])
    _check(activations.elu, [math.exp(-4) - 1, math.exp(-1) - 1, 0, 0.5, 2, 7])
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    _check(activations.selu, [scale * alpha * (math.exp(v) - 1) if v < 0 else scale * v
                              for v in X.tolist()])


def test_smooth_activations():
    values = X.tolist()
    _check(activations.sigmoid, [1 / (1 + math.exp(-v)) for v in values])
    _check(activations.tanh, [math.tanh(v) for v in values])
    _check(activations.softplus, [math.log1p(math.exp(v)) for v in values])
    _check(activations.softsign, [v / (1 + abs(v)) for v in values])
    _check(activations.silu, [v / (1 + math.exp(-v)) for v in values])
    assert activations.swish is activations.silu
    _check(activations.gelu, [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in values])
    _check(activations.gelu, [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                              for v in values], approximate=True)
    _check(activations.exponential, [math.exp(v) for v in values])
    _check(activations.mish, [v * math.tanh(math.log1p(math.exp(v))) for v in values])
    _check(activations.hard_sigmoid, [0, 1 / 3, 0.5, 0.5 + 0.5 / 6, 0.5 + 2 / 6, 1])
    _check(activations.linear, values)


def test_softmax_and_log_softmax_along_last_axis():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    total = math.exp(1) + math.exp(2) + math.exp(3)
    expected = [math.exp(1) / total, math.exp(2) / total, math.exp(3) / total]
    assert activations.softmax(x).tolist()[0] == pytest.approx(expected)
    assert activations.log_softmax(x).tolist()[0] == pytest.approx([math.log(e) for e in expected])
    assert activations.softmax(x.T, axis=0).T.tolist()[0] == pytest.approx(expected)


def test_numpy_input_and_get():
    assert activations.relu(np.array([-1.0, 1.0])).tolist() == [0.0, 1.0]
    assert activations.get("relu") is activations.relu
    assert activations.get("swish") is activations.silu
    assert activations.get(None) is activations.linear
    assert activations.get(torch.relu) is torch.relu
    assert activations.serialize(activations.gelu) == "gelu"
    assert activations.deserialize("tanh") is activations.tanh
    with pytest.raises(ValueError, match=r"^Could not interpret activation function identifier: "
                       r"sigmoidal$"):
        activations.get("sigmoidal")


def test_reachable_through_keras_aliases():
    from cadence.keras.activations import relu

    assert keras.activations is activations and tf.keras.activations.relu is relu
