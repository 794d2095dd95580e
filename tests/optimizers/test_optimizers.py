import copy
import pickle

import numpy as np
import pytest
import torch

from cadence import optimizers
from cadence.optimizers import Hyperparameter


def _params():
    torch.manual_seed(0)
    return list(torch.nn.Linear(3, 2).parameters())


@pytest.mark.parametrize(
    ("name", "torch_class", "expected"),
    [
        ("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
        ("rmsprop", torch.optim.RMSprop,
         {"lr": 0.001, "alpha": 0.9, "momentum": 0.0, "eps": 1e-7, "centered": False}),
        ("adam", torch.optim.Adam,
         {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "amsgrad": False,
          "weight_decay": 0.0}),
        ("adamw", torch.optim.AdamW,
         {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004}),
        ("adagrad", torch.optim.Adagrad,
         {"lr": 0.001, "initial_accumulator_value": 0.1, "eps": 1e-7}),
        ("adamax", torch.optim.Adamax, {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7}),
        ("nadam", torch.optim.NAdam,
         {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "momentum_decay": 1.0}),
        ("adadelta", torch.optim.Adadelta, {"lr": 0.001, "rho": 0.95, "eps": 1e-7}),
    ],
)
def test_keras_defaults_by_name(name, torch_class, expected):
    opt = optimizers.get(name.upper(), _params())
    assert isinstance(opt, torch_class)
    assert isinstance(opt, optimizers.OptimizerMixin)
    group = opt.param_groups[0]
    assert {key: group[key] for key in expected} == expected


def test_spec_maps_keras_arguments_to_torch():
    spec = optimizers.RMSprop(learning_rate=0.1, rho=0.8, momentum=0.5, epsilon=1e-3,
                              centered=True, weight_decay=0.01)
    opt = spec.build(_params())
    group = opt.param_groups[0]
    assert (group["lr"], group["alpha"], group["momentum"], group["eps"], group["centered"],
            group["weight_decay"]) == (0.1, 0.8, 0.5, 1e-3, True, 0.01)
    assert spec.get_config() == {
        "name": "rmsprop", "learning_rate": 0.1, "rho": 0.8, "momentum": 0.5,
        "epsilon": 1e-3, "centered": True, "weight_decay": 0.01, "clipnorm": None,
        "clipvalue": None, "global_clipnorm": None, "use_ema": False, "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
    }
    assert optimizers.RMSprop.from_config(spec.get_config()).get_config() == spec.get_config()


def test_spec_builds_independent_optimizers():
    spec = optimizers.Adam(learning_rate=0.1)
    first, second = spec.build(_params()), spec.build(_params())
    first.lr = 0.5
    assert second.lr == 0.1


def test_get_wraps_torch_instance_in_place():
    params = _params()
    opt = torch.optim.SGD(params, lr=0.3, momentum=0.9)
    wrapped = optimizers.get(opt, params)
    assert wrapped is opt
    assert isinstance(opt, torch.optim.SGD)
    assert type(opt).__name__ == "SGD"
    assert opt.lr == 0.3 and opt.momentum == 0.9
    assert optimizers.get(opt) is opt
    assert type(optimizers.wrap(torch.optim.SGD(_params(), lr=0.1))) is type(opt)


def test_get_instantiates_torch_class_with_its_defaults():
    opt = optimizers.get(torch.optim.Adagrad, _params())
    assert isinstance(opt, torch.optim.Adagrad)
    assert opt.param_groups[0]["lr"] == 0.01


def test_get_accepts_spec_class():
    assert isinstance(optimizers.get(optimizers.Adamax, _params()), torch.optim.Adamax)


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adm'; expected one of the names "
                       r"'sgd', 'rmsprop', 'adam', 'adamw', 'adagrad', 'adamax', 'nadam', "
                       r"'adadelta'"):
        optimizers.get("adm", _params())


def test_get_unsupported_type():
    with pytest.raises(TypeError, match=r"^Could not interpret optimizer identifier of type "
                       r"int: 3; expected one of the names"):
        optimizers.get(3, _params())


def test_get_needs_params():
    with pytest.raises(ValueError, match=r"needs the parameters to optimise; received params="):
        optimizers.get("adam")


def test_lr_read_write_every_group():
    a, b = _params()
    opt = optimizers.get(optimizers.SGD(learning_rate=0.1, momentum=0.5),
                         [{"params": [a]}, {"params": [b], "lr": 0.2}])
    lr = opt.lr
    assert isinstance(lr, Hyperparameter)
    assert lr == 0.1 and opt.learning_rate == 0.1
    opt.lr = 0.05
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]
    opt.learning_rate = np.float32(0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    assert type(opt.param_groups[0]["lr"]) is float
    opt.momentum = torch.tensor(0.75, dtype=torch.float64)
    assert [g["momentum"] for g in opt.param_groups] == [0.75, 0.75]
    opt.momentum = 1
    assert opt.momentum == 1.0


def test_adam_family_maps_momentum_and_betas():
    a, b = _params()
    opt = optimizers.get("adam", [{"params": [a]}, {"params": [b]}])
    assert opt.momentum == 0.9 and opt.beta_1 == 0.9 and opt.beta_2 == 0.999
    opt.momentum = 0.8
    opt.beta_2 = 0.99
    assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.99), (0.8, 0.99)]
    opt.epsilon = 1e-5
    assert [g["eps"] for g in opt.param_groups] == [1e-5, 1e-5]


def test_rho_maps_to_rmsprop_alpha_and_adadelta_rho():
    rms = optimizers.get("rmsprop", _params())
    rms.rho = 0.5
    assert rms.param_groups[0]["alpha"] == 0.5 and rms.rho == 0.5
    ada = optimizers.get("adadelta", _params())
    ada.rho = 0.7
    assert ada.param_groups[0]["rho"] == 0.7


def test_missing_hyperparameter_is_attribute_error():
    opt = optimizers.get("adagrad", _params())
    assert not hasattr(opt, "momentum")
    assert not hasattr(opt, "beta_1")
    assert hasattr(opt, "lr")
    with pytest.raises(AttributeError, match=r"^Adagrad optimizer has no hyperparameter "
                       r"'momentum'; it has: learning_rate, epsilon, weight_decay\.$"):
        opt.momentum = 0.9


def test_tensor_lr_written_in_place():
    opt = optimizers.get(torch.optim.Adam(_params(), lr=torch.tensor(0.01)))
    lr_tensor = opt.param_groups[0]["lr"]
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] is lr_tensor
    assert lr_tensor.item() == 0.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.1", r"^learning_rate must be a real number; received str: '0.1'\.$"),
        (True, r"^learning_rate must be a real number; received the boolean True\.$"),
        (torch.ones(2), r"^learning_rate must be a number or a 0-d tensor; received a tensor "
                        r"of shape \(2,\)\.$"),
        (np.ones(2), r"^learning_rate must be a number or a 0-d array; received an array of "
                     r"shape \(2,\)\.$"),
    ],
)
def test_bad_assignment_messages(value, message):
    opt = optimizers.get("sgd", _params())
    with pytest.raises(TypeError, match=message):
        opt.learning_rate = value


def test_hyperparameter_is_a_float():
    opt = optimizers.get(optimizers.SGD(learning_rate=0.5), _params())
    lr = opt.lr
    assert lr * 2 == 1.0 and type(lr * 2) is float
    assert lr + 1 == 1.5 and 1 / lr == 2.0 and lr / 1.0000002 < lr
    assert "%6.4f" % lr == "0.5000"  # noqa: UP031 - the form seed 002 prints with
    assert np.less(lr, 0.6)
    assert type(pickle.loads(pickle.dumps(lr))) is float
    assert type(copy.deepcopy(lr)) is float
    opt.lr = 0.25
    assert lr == 0.5 and lr.value == 0.25 and lr.numpy() == np.float64(0.25)
    lr.assign(0.125)
    assert opt.param_groups[0]["lr"] == 0.125


def test_spec_argument_checks():
    with pytest.raises(ValueError, match=r"^learning_rate must be >= 0.0; received "
                       r"learning_rate=-1\.$"):
        optimizers.Adam(learning_rate=-1)
    with pytest.raises(ValueError, match=r"^momentum must be in \[0.0, 1.0\]; received "
                       r"momentum=2\.$"):
        optimizers.SGD(momentum=2)
    with pytest.raises(ValueError, match=r"^nesterov=True needs a momentum > 0; received "
                       r"momentum=0.0\.$"):
        optimizers.SGD(nesterov=True)
    with pytest.raises(TypeError, match=r"^learning_rate must be a real number; received "
                       r"str: '0.1'\.$"):
        optimizers.Adam(learning_rate="0.1")
    with pytest.raises(ValueError, match=r"^Argument\(s\) not recognized: \{'lr': 0.1\}$"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match=r"^AdamW needs a number for weight_decay; received "
                       r"weight_decay=None\.$"):
        optimizers.AdamW(weight_decay=None)


def test_seed_004_lr_schedule_drives_optimizer():
    """Seed 004's LRSchedule: divide the lr by 1.0000002 each batch, floor 1e-6."""
    from cadence import backend as K

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = optimizers.get(optimizers.SGD(learning_rate=2e-6, momentum=0.9), model.parameters())
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    expected = 2e-6
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        current_lr = K.get_value(opt.lr)
        if current_lr > 1e-6:
            K.set_value(opt.lr, current_lr / 1.0000002)
        else:
            K.set_value(opt.lr, 1e-6)
        expected = expected / 1.0000002
        assert opt.param_groups[0]["lr"] == expected
    K.set_value(opt.momentum, K.get_value(opt.momentum) + 0.00045)
    assert opt.param_groups[0]["momentum"] == 0.9 + 0.00045
    assert opt.iterations == 3
