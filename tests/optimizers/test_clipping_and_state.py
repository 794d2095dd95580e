import copy
import pickle

import pytest
import torch

from cadence import optimizers


def _two_params(grads):
    params = [torch.zeros(len(g), requires_grad=True) for g in grads]
    for param, grad in zip(params, grads, strict=True):
        param.grad = torch.tensor(grad)
    return params


def _sgd(params, **clip):
    return optimizers.SGD(learning_rate=1.0, **clip).build(params)


def test_clipnorm_is_per_parameter():
    params = _two_params([[3.0, 4.0], [0.3, 0.4]])
    _sgd(params, clipnorm=1.0).step()
    # ||g1|| = 5 -> scaled to norm 1; ||g2|| = 0.5 is left alone. lr 1: w = -g.
    assert params[0].grad.tolist() == [0.6000000238418579, 0.800000011920929]
    assert params[1].grad.tolist() == torch.tensor([0.3, 0.4]).tolist()
    assert params[0].tolist() == [-0.6000000238418579, -0.800000011920929]


def test_global_clipnorm_scales_all_together():
    params = _two_params([[3.0, 4.0], [0.0, 12.0]])
    _sgd(params, global_clipnorm=6.5).step()
    # global norm = sqrt(25 + 144) = 13 -> every grad times 0.5.
    assert params[0].grad.tolist() == [1.5, 2.0]
    assert params[1].grad.tolist() == [0.0, 6.0]


def test_global_clipnorm_below_limit_untouched():
    params = _two_params([[3.0, 4.0]])
    _sgd(params, global_clipnorm=10.0).step()
    assert params[0].grad.tolist() == [3.0, 4.0]


def test_clipvalue_clamps_elements():
    params = _two_params([[-3.0, 0.25, 2.0]])
    _sgd(params, clipvalue=0.5).step()
    assert params[0].grad.tolist() == [-0.5, 0.25, 0.5]


def test_clipping_applies_to_closure_gradients():
    param = torch.zeros(2, requires_grad=True)
    opt = _sgd([param], clipvalue=1.0)

    def closure():
        param.grad = torch.tensor([5.0, -5.0])
        return 0.0

    opt.step(closure)
    assert param.tolist() == [-1.0, 1.0]


def test_clipping_settings_are_exclusive_and_checked():
    with pytest.raises(ValueError, match=r"^Only one of clipnorm, clipvalue and global_clipnorm "
                       r"can be set; received clipnorm=1.0, clipvalue=2.0\.$"):
        optimizers.Adam(clipnorm=1, clipvalue=2)
    with pytest.raises(ValueError, match=r"^clipnorm must be a positive number or None; "
                       r"received clipnorm=0\.$"):
        optimizers.Adam(clipnorm=0)


def test_clipping_can_be_turned_on_and_off_later():
    params = _two_params([[3.0, 4.0]])
    opt = _sgd(params)
    opt.clipnorm = 2.5
    assert opt.clipnorm == 2.5 and opt.get_config()["clipnorm"] == 2.5
    opt.step()
    assert params[0].grad.tolist() == [1.5, 2.0]
    opt.clipnorm = None
    opt.step()
    assert params[0].grad.tolist() == [1.5, 2.0]
    assert len(opt._optimizer_step_pre_hooks) == 0


def test_no_clipping_adds_no_pre_hook():
    opt = optimizers.get("adam", _two_params([[1.0]]))
    assert len(opt._optimizer_step_pre_hooks) == 0
    assert len(opt._optimizer_step_post_hooks) == 1


def test_iterations_count_steps_and_round_trip_state_dict():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = optimizers.get("adam", model.parameters())
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    assert opt.iterations == 3
    state = copy.deepcopy(opt.state_dict())  # as if saved to disk
    assert state["iterations"] == 3

    other_model = copy.deepcopy(model)
    other = optimizers.get("adam", other_model.parameters())
    other.load_state_dict(state)
    assert other.iterations == 3
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (other_model, other)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert torch.equal(model.weight, other_model.weight)
    assert other.iterations == 4

    plain = torch.optim.Adam(copy.deepcopy(model).parameters())
    plain.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert "iterations" not in plain.state_dict()
    restored = optimizers.get("adam", copy.deepcopy(model).parameters())
    restored.load_state_dict(plain.state_dict())
    assert restored.iterations == 4


def test_load_plain_sgd_state_without_steps_sets_zero():
    opt = optimizers.get("sgd", _two_params([[1.0]]))
    opt.iterations = 7
    opt.load_state_dict(torch.optim.SGD(_two_params([[1.0]]), lr=0.1).state_dict())
    assert opt.iterations == 0


def test_iterations_rejects_bad_values():
    opt = optimizers.get("sgd", _two_params([[1.0]]))
    with pytest.raises(ValueError, match=r"^iterations must be a non-negative integer; "
                       r"received 1.5\.$"):
        opt.iterations = 1.5


def test_pickle_and_deepcopy_keep_extras():
    params = _two_params([[3.0, 4.0]])
    opt = _sgd(params, clipnorm=1.0)
    opt.step()
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert isinstance(clone, torch.optim.SGD) and type(clone) is type(opt)
        assert clone.iterations == 1 and clone.clipnorm == 1.0
        clone.step()
        assert clone.iterations == 2
    assert opt.iterations == 1


def test_apply_gradients_and_apply():
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = optimizers.SGD(learning_rate=0.5).build([a, b])
    assert opt.apply_gradients([(torch.tensor([1.0, 2.0]), a), (None, b)]) == 1
    assert a.tolist() == [-0.5, -1.0] and b.tolist() == [0.0]
    assert opt.apply([torch.tensor([2.0, 2.0]), torch.tensor([4.0])]) == 2
    assert a.tolist() == [-1.5, -2.0] and b.tolist() == [-2.0]
    with pytest.raises(ValueError, match=r"^apply received 1 gradients for 2 variables; "
                       r"expected one gradient per variable\.$"):
        opt.apply([torch.tensor([1.0, 1.0])])
    stranger = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"^apply received a variable of shape \(3,\) that this "
                       r"optimizer does not manage"):
        opt.apply_gradients([(torch.ones(3), stranger)])


def test_wrapped_optimizer_get_config():
    opt = optimizers.get(torch.optim.SGD(_two_params([[1.0]]), lr=0.1, momentum=0.9))
    assert opt.get_config() == {
        "name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0,
        "nesterov": False, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    }


def test_user_hooks_on_wrapped_optimizer_fire_once():
    param = torch.zeros(1, requires_grad=True)
    param.grad = torch.ones(1)
    opt = torch.optim.SGD([param], lr=0.1)
    calls = []
    opt.register_step_post_hook(lambda *args: calls.append("post"))
    optimizers.wrap(opt, clipvalue=0.5)
    opt.step()
    assert calls == ["post"] and opt.iterations == 1
    assert param.tolist() == [-0.05000000074505806]


def test_nadam_follows_keras_update_rule():
    """Keras's Nadam written out for two steps, in float64."""
    param = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optimizers.Nadam(learning_rate=0.1).build([param])
    grads = [torch.tensor([0.5, -1.5], dtype=torch.float64),
             torch.tensor([-0.25, 2.0], dtype=torch.float64)]
    w, m, v, u_product = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.0, 0.0, 1.0
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 0.1
    for t, g in enumerate(grads, start=1):
        u_t = b1 * (1 - 0.5 * 0.96**t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product *= u_t
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
        v_hat = v / (1 - b2**t)
        w = w - m_hat * lr / (torch.sqrt(v_hat) + eps)
        param.grad = g.clone()
        opt.step()
    # torch keeps the momentum product in float32, hence the 1e-7 tolerance.
    torch.testing.assert_close(param.detach(), w, rtol=1e-7, atol=0)
