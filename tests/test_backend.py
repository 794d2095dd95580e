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


def test_get_and_set_value_on_a_parameter_group():
    opt = _optimizer(optimizers.SGD(learning_rate=0.1))
    group = opt.param_groups[1]
    assert K.get_value(group) == 0.3
    K.set_value(group, np.float32(0.25))
    assert group["lr"] == 0.25 and type(group["lr"]) is float
    assert opt.param_groups[0]["lr"] == 0.1


def test_set_value_on_a_numpy_array_in_place():
    array = np.zeros(2)
    K.set_value(array, [1.5, 2.5])
    assert array.tolist() == [1.5, 2.5]
    K.set_value(array, torch.tensor([3.0, 4.0]))
    assert array.tolist() == [3.0, 4.0]


def test_cast_dtype_count_params():
    x = K.cast(np.array([1.7, -2.2]), "int32")
    assert x.dtype == torch.int32 and x.tolist() == [1, -2]
    assert K.cast(torch.tensor([1, 0]), "bool").tolist() == [True, False]
    assert K.cast([1, 2], np.float64).dtype == torch.float64
    assert K.cast(torch.ones(1), torch.float16).dtype == torch.float16
    assert K.dtype(torch.ones(1)) == "float32" and K.dtype(np.zeros(1, np.int64)) == "int64"
    assert K.count_params(torch.zeros(3, 4)) == 12 and K.count_params(np.zeros(())) == 1
    with pytest.raises(ValueError, match=r"^cast expects a dtype such as 'float32', 'int64', "
                       r"'bool', a numpy dtype or a torch\.dtype; received dtype='floaty'\.$"):
        K.cast(torch.ones(1), "floaty")
    with pytest.raises(TypeError, match=r"^count_params expects a tensor or a numpy array; "
                       r"received float\.$"):
        K.count_params(1.0)
    with pytest.raises(TypeError, match=r"^dtype expects a tensor or a numpy array or number; "
                       r"received float\.$"):
        K.dtype(1.0)


def test_clear_session_keeps_models_working():
    model = torch.nn.Linear(2, 1)
    K.clear_session()
    K.clear_session(free_memory=False)
    assert model(torch.ones(1, 2)).shape == (1, 1)


def test_keras_backend_import_alias():
    import cadence.keras.backend as KB

    assert KB is K
