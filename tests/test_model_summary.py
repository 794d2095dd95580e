"""model.summary(): Keras 3's table and counts, the counts computed by hand."""

import numpy as np
import pytest
import torch
from torch import nn

import cadence


def _cnn():
    # conv: 4*1*3*3 + 4 = 40 trainable.
    # batch norm: weight 4 + bias 4 = 8 trainable; running mean 4 + running var 4 +
    # num_batches_tracked 1 = 9 non-trainable (int64, 8 bytes).
    # linear: 36*10 + 10 = 370 trainable. 4x8x8 -> conv 4x6x6 -> pool 4x3x3 = 36 features.
    return cadence.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(36, 10))


def _summary(model, **kwargs):
    printed = []
    model.summary(line_length=76, print_fn=printed.append, **kwargs)
    assert len(printed) == 1  # Keras 3 calls print_fn once, with the whole summary.
    return printed[0]


TABLE = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2d)                 │ {0}│            40 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ batch_norm2d (BatchNorm2d)      │ {0}│            17 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ re_lu (ReLU)                    │ {0}│             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pool2d (MaxPool2d)          │ {1}│             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ {2}│             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ linear (Linear)                 │ {3}│           370 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 427 (1.67 KB)
 Trainable params: 418 (1.63 KB)
 Non-trainable params: 9 (40.00 B)
"""


def _table(*shapes):
    return TABLE.format(*(f"{s:<23}" for s in shapes))


def test_summary_of_a_cnn_before_any_input_has_unknown_shapes():
    model = _cnn()
    assert _summary(model) == _table("?", "?", "?", "?")
    assert model.count_params() == 40 + 17 + 370


def test_summary_after_build_shows_keras_shapes_with_none_batch():
    model = _cnn()
    model.build((None, 1, 8, 8))
    assert _summary(model) == _table("(None, 4, 6, 6)", "(None, 4, 3, 3)", "(None, 36)", "(None, 10)")


def test_summary_knows_shapes_from_the_first_batch_of_fit():
    model = _cnn()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((4, 1, 8, 8), np.float32), np.zeros((4, 10), np.float32), batch_size=2,
              verbose=0)
    # SGD without momentum keeps no state: no "Optimizer params" line.
    assert _summary(model) == _table("(None, 4, 6, 6)", "(None, 4, 3, 3)", "(None, 36)", "(None, 10)")


def test_summary_counts_optimizer_state_once_it_exists():
    model = _cnn()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.zeros((2, 1, 8, 8), np.float32), np.zeros((2, 10), np.float32))
    # Adam keeps, per trainable tensor (6 of them), a 0-d step and two moments: 6 + 2 * 418.
    # The step is float32 (4 bytes): 4 * 842 = 3368 bytes; total 1712 + 3368 = 5080 bytes.
    text = _summary(model)
    assert text.endswith(
        " Total params: 1,269 (4.96 KB)\n Trainable params: 418 (1.63 KB)\n"
        " Non-trainable params: 9 (40.00 B)\n Optimizer params: 842 (3.29 KB)\n"
    )


def test_frozen_layer_moves_to_non_trainable_and_show_trainable():
    model = _cnn()
    model.layers[0].trainable = False
    text = _summary(model, show_trainable=True)
    assert " Trainable params: 378 (1.48 KB)\n Non-trainable params: 49 (200.00 B)\n" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert rows[0].endswith("│   N   │") and rows[1].endswith("│   Y   │")
    assert rows[2].endswith("│   -   │")


def test_layer_range_and_expand_nested():
    inner = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    model = cadence.Sequential(inner, nn.Linear(3, 1))
    text = _summary(model, expand_nested=True)
    names = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert names == ["sequential (Sequential)", "└ linear (Linear)", "└ tanh (Tanh)",
                     "linear (Linear)"]
    text = _summary(model, layer_range=["linear", "linear"])
    names = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert names == ["linear (Linear)"]
    with pytest.raises(ValueError, match=r"^Passed layer_names do not match the layer names in "
                       r"the model\. Received: \['conv', 'linear'\]$"):
        model.summary(layer_range=["conv", "linear"], print_fn=print)


def test_summary_prints_to_stdout_without_print_fn(capsys):
    model = cadence.Sequential(nn.Linear(2, 1))
    model.summary(line_length=76)
    out = capsys.readouterr().out
    assert out.startswith('Model: "sequential"\n') and " Total params: 3 (12.00 B)\n" in out


def test_nested_outputs_are_shown_as_their_structure():
    class Net(cadence.Model):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 5, batch_first=True)

        def forward(self, x):
            return self.lstm(x)

    model = Net()
    model(torch.zeros(4, 7, 3))
    shapes = model.layer_shapes()
    assert model.layers[0].output_shape == ((None, 7, 5), ((1, None, 5), (1, None, 5)))
    assert shapes[model][1] == ((None, 7, 5), ((1, None, 5), (1, None, 5)))
    assert model.layers[0].input_shape == (None, 7, 3)
    text = _summary(model)
    # LSTM(3, 5): 4 gates * 5 * (3 + 5) weights + 2 biases of 4 * 5 = 200.
    assert "│ lstm (LSTM)                     │ ((None, 7, 5), ((1,    │           200 │\n" \
           "│                                 │ None, 5), (1, None,    │               │\n" \
           "│                                 │ 5)))                   │               │\n" in text


def test_unknown_shape_explains():
    model = _cnn()
    with pytest.raises(AttributeError, match=r"^The layer 'conv2d' has never been called and "
                       r"thus has no defined output_shape: build the model first, e\.g\. "
                       r"model\.build\(\(None, 784\)\), or call it on a batch\.$"):
        _ = model.layers[0].output_shape


def test_build_materialises_lazy_modules_and_leaves_state_alone():
    model = cadence.Sequential(nn.LazyLinear(3), nn.BatchNorm1d(3))
    model.build((None, 5))
    # linear 5*3 + 3 = 18; batch norm 3 + 3 trainable, 3 + 3 + 1 buffers.
    assert model.module[0].weight.shape == (3, 5) and model.count_params() == 18 + 13
    assert model.training is True  # The probing runs in eval mode and restores the mode.
    assert model.module[1].running_mean.tolist() == [0.0, 0.0, 0.0]
    assert model.module[1].num_batches_tracked.item() == 0
    assert [layer.output_shape for layer in model.layers] == [(None, 3), (None, 3)]


def test_build_refuses_shapes_it_cannot_replay():
    model = _cnn()
    with pytest.raises(ValueError, match=r"^build needs every axis after the batch axis to be a "
                       r"positive integer; received input_shape=\(None, 1, None, 8\)\.$"):
        model.build((None, 1, None, 8))
    with pytest.raises(ValueError, match=r"^build expects a shape such as \(None, 784\), or a list "
                       r"or dict of shapes; received input_shape='x'\.$"):
        model.build("x")
