"""Keras's model API on cadence models: layers, weights, trainable, *_on_batch, model(numpy)."""

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.layers import Layer


def test_layer_names_and_modules_of_sequential():
    model = cadence.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.BatchNorm1d(3),
                               nn.Linear(3, 1))
    assert [layer.name for layer in model.layers] == [
        "linear", "re_lu", "linear_1", "batch_norm1d", "linear_2"]
    assert [layer.module for layer in model.layers] == list(model.module)
    assert model.get_layer("linear_1").module is model.module[2]
    assert model.get_layer(index=4).name == "linear_2"
    assert model.layers[0] == model.layers[0] and model.layers[0] != model.layers[2]


def test_which_modules_are_layers():
    leaf = cadence.Model(nn.Linear(2, 1))
    assert [(layer.name, layer.module) for layer in leaf.layers] == [("linear", leaf.module)]

    block = nn.Sequential(nn.Linear(2, 2), nn.Tanh())

    class Net(cadence.Model):
        def __init__(self):
            super().__init__()
            self.stem = block
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1)})

        def forward(self, x):
            return x

    net = Net()
    assert [layer.name for layer in net.layers] == ["sequential", "linear", "linear_1", "linear_2"]
    assert [layer.module for layer in net.layers] == [block, *net.blocks, net.heads["a"]]

    wrapped = cadence.Model(Net())  # A wrapped module stands for its children.
    assert [layer.name for layer in wrapped.layers] == ["sequential", "linear", "linear_1", "linear_2"]


def test_own_layers_attribute_wins():
    class Transformer(cadence.Model):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Transformer()
    assert isinstance(model.layers, nn.ModuleList)
    assert model(torch.ones(1, 2)).shape == (1, 2)


def test_get_layer_errors_are_keras():
    model = cadence.Sequential(nn.Linear(2, 1))
    with pytest.raises(ValueError, match=r"^No such layer: dense\. Existing layers are: \['linear'\]\.$"):
        model.get_layer("dense")
    with pytest.raises(ValueError, match=r"^Was asked to retrieve layer at index 3 but model only "
                       r"has 1 layers\.$"):
        model.get_layer(index=3)
    with pytest.raises(ValueError, match=r"^Provide only a layer name or a layer index\. "
                       r"Received: index=0, name=linear\.$"):
        model.get_layer("linear", 0)
    with pytest.raises(ValueError, match=r"^Provide either a layer name or layer index at `get_layer`\.$"):
        model.get_layer()


def test_layer_weights_follow_the_module():
    model = cadence.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    linear, norm = model.layers
    assert [w is p for w, p in zip(linear.weights, [model.module[0].weight, model.module[0].bias],
                                   strict=True)] == [True, True]
    assert [tuple(w.shape) for w in norm.get_weights()] == [(3,), (3,), (3,), (3,), ()]
    assert len(norm.trainable_weights) == 2 and len(norm.non_trainable_weights) == 3
    # The layers' weights, in order, are the model's.
    flat = [w for layer in model.layers for w in layer.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(flat, model.get_weights(), strict=True))
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    linear.set_weights([kernel, np.ones(3)])
    assert model.module[0].weight.tolist() == kernel.tolist()
    assert model.module[0].bias.tolist() == [1.0, 1.0, 1.0]
    got = linear.get_weights()
    got[0][0, 0] = 99.0  # A copy, as Keras's numpy arrays.
    assert model.module[0].weight[0, 0].item() == 0.0
    with pytest.raises(ValueError, match=r"^set_weights expects 2 arrays \(one per parameter and "
                       r"buffer\); received 1\.$"):
        linear.set_weights([kernel])
    # 2*3 + 3 = 9 for the linear; 3 + 3 + 3 + 3 + 1 = 13 for the batch norm.
    assert (linear.count_params(), norm.count_params(), model.count_params()) == (9, 13, 22)
    assert model.layers[1].dtype == "float32" and linear.built


def test_trainable_freezes_and_training_leaves_frozen_weights_alone():
    model = cadence.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse")
    model.layers[0].trainable = False
    assert model.layers[0].trainable is False and model.layers[1].trainable is True
    assert [p.requires_grad for p in model.module[0].parameters()] == [False, False]
    frozen = model.layers[0].get_weights()
    head = model.layers[1].get_weights()
    model.train_on_batch(np.ones((4, 2), np.float32), np.full((4, 1), 5.0, np.float32))
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.layers[0].get_weights(), strict=True))
    assert not np.array_equal(head[0], model.layers[1].get_weights()[0])
    assert model.trainable is True
    model.trainable = False
    assert model.trainable is False and model.layers[1].trainable is False
    assert model.count_params() == 9 and len(model.weights) == 4
    assert Layer(nn.ReLU(), "re_lu").trainable is True  # Nothing to freeze.
    with pytest.raises(TypeError, match=r"^trainable must be True or False; received trainable=0\.$"):
        model.layers[0].trainable = 0


def _linear_model(metrics=None):
    model = cadence.Sequential(nn.Linear(2, 1))
    with torch.no_grad():
        model.module[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.module[0].bias.fill_(0.5)
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=metrics,
                  device="cpu")
    return model


X = np.array([[1.0, 2.0], [3.0, 1.0]])  # float64, as numpy makes it
Y = np.array([[0.0], [1.0]])


def test_train_on_batch_returns_keras_values_and_steps_once():
    model = _linear_model(metrics=["mae"])
    # Predictions before the step: 1 - 2 + 0.5 = -0.5 and 3 - 1 + 0.5 = 2.5; errors -0.5, 1.5.
    loss, mae = model.train_on_batch(X, Y)
    assert loss == pytest.approx((0.25 + 2.25) / 2) and mae == pytest.approx(1.0)
    # d loss / d w = mean(2 * err * x) = (2*-0.5*[1, 2] + 2*1.5*[3, 1]) / 2 = [4, 0.5];
    # d / d b = (2*-0.5 + 2*1.5) / 2 = 1.
    assert model.module[0].weight.tolist()[0] == pytest.approx([1.0 - 0.4, -1.0 - 0.05])
    assert model.module[0].bias.item() == pytest.approx(0.5 - 0.1)
    # The metrics restart with each call: the values are this batch's alone.
    logs = model.test_on_batch(X, Y, return_dict=True)
    p = np.array([0.6 - 2.1 + 0.4, 1.8 - 1.05 + 0.4])
    assert logs == {"loss": pytest.approx(((p[0] - 0) ** 2 + (p[1] - 1) ** 2) / 2),
                    "mae": pytest.approx((abs(p[0]) + abs(p[1] - 1)) / 2)}
    assert list(logs) == ["loss", "mae"] and all(type(v) is float for v in logs.values())


def test_on_batch_without_metrics_returns_the_loss_alone_and_restores_mode():
    model = _linear_model()
    model.eval()
    loss = model.train_on_batch(X, Y)
    assert type(loss) is float and loss == pytest.approx(1.25) and model.training is False
    model.train()
    assert type(model.test_on_batch(X, Y)) is float and model.training is True


def test_sample_weight_and_class_weight():
    # Squared errors -0.5**2 = 0.25 and 1.5**2 = 2.25; weights 2 and 0.
    model = _linear_model()
    assert model.test_on_batch(X, Y, sample_weight=np.array([2.0, 0.0])) == pytest.approx(0.25)
    # Class of each sample from y: 0 and 1; class_weight {0: 2, 1: 0} gives the same weights.
    model = _linear_model()
    assert model.train_on_batch(X, Y, class_weight={0: 2.0, 1: 0.0}) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"^Arguments `sample_weight` and `class_weight` cannot be "
                       r"specified at the same time\. Received: sample_weight=\[1\. 1\.\], "
                       r"class_weight=\{0: 2\.0\}$"):
        model.train_on_batch(X, Y, sample_weight=np.ones(2), class_weight={0: 2.0})


def test_on_batch_requires_compile():
    model = cadence.Sequential(nn.Linear(2, 1))
    with pytest.raises(RuntimeError, match=r"^You must call compile\(\) before train_on_batch\(\)"):
        model.train_on_batch(X, Y)
    with pytest.raises(RuntimeError, match=r"^You must call compile\(\) before test_on_batch\(\)"):
        model.test_on_batch(X, Y)


def test_predict_on_batch_and_calling_on_numpy():
    model = _linear_model()
    out = model.predict_on_batch(X)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.tolist() == [[-0.5], [2.5]]
    called = model(X)  # float64 numpy: a float32 tensor on the model's device.
    assert isinstance(called, torch.Tensor) and called.dtype == torch.float32
    assert called.tolist() == [[-0.5], [2.5]] and called.requires_grad
    assert model(torch.tensor(X, dtype=torch.float32)).tolist() == [[-0.5], [2.5]]
    ints = cadence.Model(nn.Embedding(4, 1))
    assert ints(np.array([[1, 3]])).shape == (1, 2, 1)  # Integers stay integers.


def test_model_name_and_weights():
    class MyNet(cadence.Model):
        def forward(self, x):
            return x

    assert MyNet().name == "my_net" and cadence.Sequential().name == "sequential"
    model = cadence.Model(nn.Linear(2, 1))
    assert model.name == "model"
    model.name = "regressor"
    assert model.name == "regressor"
    assert [w is p for w, p in zip(model.weights, model.parameters(), strict=True)] == [True, True]


def test_inputs_that_cannot_be_replayed_leave_shapes_unknown():
    class Tagged(cadence.Model):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, x, tag):
            return self.linear(x)

    model = Tagged()
    model(torch.ones(1, 2), "a")
    assert model.layer_shapes() is None
    with pytest.raises(RuntimeError, match=r"^Failed to run torchinfo") as raised:
        model.build((None, 2))  # forward needs a tag: the run fails, naming why.
    assert "missing 1 required positional argument: 'tag'" in str(raised.value.__cause__)
    assert model.layer_shapes() is None


def test_on_batch_runs_the_models_own_steps():
    class Custom(cadence.Model):
        def __init__(self):
            super().__init__(nn.Linear(2, 1))
            self.calls = []

        def train_step(self, data):
            x, y = data
            self.calls.append(("train", x.dtype, tuple(x.shape), self.training))
            logs = dict(super().train_step(data))
            logs["zeta"] = 7.0
            logs["alpha"] = torch.tensor(3.0)
            return logs

        def test_step(self, data):
            self.calls.append(("test", torch.is_grad_enabled(), self.training))
            return super().test_step(data)

        def predict_step(self, data):
            self.calls.append(("predict", torch.is_grad_enabled(), self.training))
            return {"twice": 2 * self(data[0])}

    model = Custom()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    values = model.train_on_batch(X, Y)
    # Keras's order: the metrics' names first, then the other keys sorted.
    assert len(values) == 4 and values[2:] == [3.0, 7.0]
    logs = model.train_on_batch(X, Y, return_dict=True)
    assert logs["alpha"] == 3.0 and type(logs["alpha"]) is float and logs["zeta"] == 7.0
    model.test_on_batch(X, Y)
    out = model.predict_on_batch(X)
    assert set(out) == {"twice"} and out["twice"].shape == (2, 1)
    assert model.calls == [("train", torch.float32, (2, 2), True)] * 2 + [
        ("test", False, False), ("predict", False, False)]


def test_build_with_several_inputs():
    class TwoInputs(cadence.Model):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 3)
            self.b = nn.Linear(4, 3)

        def forward(self, left, right):
            return self.a(left) + self.b(right)

    model = TwoInputs()
    model.build([(None, 2), (None, 4)])
    assert [layer.input_shape for layer in model.layers] == [(None, 2), (None, 4)]
    assert model.layer_shapes()[model] == (((None, 2), (None, 4)), (None, 3))
