import numpy as np
import pytest
import torch

from cadence import backend as K
from cadence import optimizers


def _optimizer(spec):
    torch.manual_seed(0)
    a, b = torch.nn.Linear(2, 2).parameters()
    return spec.build([{"params": [a]}, {"params": [b], "lr": 0.3}])


def test_get_value_reads_live_hyperparameter():
    opt = _optimizer(optimizers.RMSprop(learning_rate=0.1))
    lr = opt.lr
    opt.learning_rate = 0.02
    value = K.get_value(lr)
    assert value == 0.02 and type(value) is float
    assert K.eval(opt.learning_rate) == 0.02


def test_set_value_writes_every_group():
    opt = _optimizer(optimizers.SGD(learning_rate=0.1, momentum=0.9))
    K.set_value(opt.lr, 0.05)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]
    K.set_value(opt.momentum, np.float64(0.95))
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]
    adam = _optimizer(optimizers.Adam())
    K.set_value(adam.momentum, 0.8)
    assert [g["betas"] for g in adam.param_groups] == [(0.8, 0.999), (0.8, 0.999)]


def test_seed_002_scheduler_pattern():
    opt = _optimizer(optimizers.RMSprop(learning_rate=0.1))
    assert hasattr(opt, "lr")
    lr = float(K.get_value(opt.learning_rate))
    K.set_value(opt.lr, 0.05 if lr == 0.1 else lr)
    assert "%6.4f" % K.get_value(opt.lr) == "0.0500"  # noqa: UP031 - seed 002's format


def test_get_value_tensors_and_numbers():
    assert K.get_value(torch.tensor(2.5)) == 2.5
    array = K.get_value(torch.tensor([1.0, 2.0], requires_grad=True))
    assert isinstance(array, np.ndarray) and array.tolist() == [1.0, 2.0]
    assert K.get_value(3) == 3 and K.get_value(np.float32(1.5)) == np.float32(1.5)
    with pytest.raises(TypeError, match=r"^get_value expects a hyperparameter read from an "
                       r"optimizer \(e\.g\. model\.optimizer\.lr\), a parameter group, a torch\.Tensor, "
                       r"or a number or numpy array; received str\.$"):
        K.get_value("lr")


def test_set_value_tensor_in_place_without_grad():
    weight = torch.zeros(2, requires_grad=True)
    K.set_value(weight, np.array([1.0, 2.0]))
    assert weight.tolist() == [1.0, 2.0] and weight.grad_fn is None
    scalar = torch.tensor(0.0)
    K.set_value(scalar, 4)
    assert scalar.item() == 4.0


def test_set_value_on_plain_float_explains():
    with pytest.raises(TypeError, match=r"^set_value expects a hyperparameter read from an "
                       r"optimizer \(e\.g\. model\.optimizer\.lr\), a parameter group, a torch\.Tensor "
                       r"or a numpy array; received float\. To change a learning rate, assign "
                       r"model\.optimizer\.learning_rate = value\.$"):
        K.set_value(0.1, 0.2)


def test_floatx_follows_torch_default_dtype():
    assert K.floatx() == "float32"
    torch.set_default_dtype(torch.float64)
    try:
        assert K.floatx() == "float64"
    finally:
        torch.set_default_dtype(torch.float32)
    assert K.epsilon() == 1e-7
