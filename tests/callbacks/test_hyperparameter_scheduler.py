"""HyperparameterScheduler: seed 004's schedules in one line, lists, any hyperparameter, state, no sync."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cadence
from cadence import backend as K
from cadence import logs as logs_module
from cadence.callbacks import Callback, CallbackList, HyperparameterScheduler

X = torch.arange(48, dtype=torch.float32).reshape(16, 3) / 48
Y = X.sum(dim=1, keepdim=True)


def make_model(optimizer=None):
    model = cadence.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model.compile(optimizer=optimizer or cadence.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="mse")
    return model


class BatchValues(Callback):
    """Records a param_groups entry at every training batch begin (after the scheduler)."""

    def __init__(self, key="lr"):
        super().__init__()
        self.key = key
        self.values = []

    def on_train_batch_begin(self, batch, logs=None):
        self.values.append(self.model.optimizer.param_groups[0][self.key])


def fit(model, callbacks, epochs=2, batch_size=8, **kwargs):
    return model.fit(X, Y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
                     callbacks=callbacks, **kwargs)


def test_seed_004_per_batch_decay_in_one_line_matches_a_hand_loop():
    lr0 = 1e-6 * 1.0000002**3  # reaches the 1e-6 floor after three batches
    model = make_model(cadence.optimizers.SGD(learning_rate=lr0))
    probe = BatchValues()
    history = fit(model, [
        HyperparameterScheduler("learning_rate", lambda step, lr: max(lr / 1.0000002, 1e-6), per="batch"),
        probe,
    ], epochs=3)
    expected, lr = [], lr0
    for _ in range(6):
        lr = max(lr / 1.0000002, 1e-6)
        expected.append(lr)
    assert probe.values == expected
    assert expected[-1] == 1e-6 and expected[0] > 1e-6
    assert history.history["learning_rate"] == [expected[1], expected[3], expected[5]]


def test_seed_004_lrschedule_callback_and_the_one_liner_train_identically():
    # Seed 004's LRSchedule, with K = cadence.backend and self.model for the global model.
    class LRSchedule(cadence.callbacks.Callback):
        def __init__(self):
            super(LRSchedule, self).__init__()  # noqa: UP008  (the seed's code as written)

        def on_batch_end(self, batch, logs):
            current_lr = K.get_value(self.model.optimizer.lr)
            if current_lr > 1e-6:
                lr = current_lr / 1.0000002  # 1.00002
                K.set_value(self.model.optimizer.lr, lr)
            else:
                K.set_value(self.model.optimizer.lr, 1e-6)

    lr0 = 1.0000003e-6
    theirs = make_model(cadence.optimizers.SGD(learning_rate=lr0))
    ours = make_model(cadence.optimizers.SGD(learning_rate=lr0))
    ours.load_state_dict(theirs.state_dict())
    their_probe, our_probe = BatchValues(), BatchValues()
    fit(theirs, [LRSchedule(), their_probe], epochs=3)
    # The seed decays after each batch, so the first batch keeps the initial rate.
    one_liner = lambda step, lr: lr if step == 0 else (lr / 1.0000002 if lr > 1e-6 else 1e-6)  # noqa: E731
    fit(ours, [HyperparameterScheduler("learning_rate", one_liner, per="batch"), our_probe], epochs=3)
    assert our_probe.values == their_probe.values
    # lr0, two decays (the second dips below 1e-6, as the seed's test allows), then 1e-6.
    assert our_probe.values == [lr0, lr0 / 1.0000002, lr0 / 1.0000002 / 1.0000002] + [1e-6] * 3
    assert our_probe.values[2] < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(theirs.parameters(), ours.parameters(), strict=True))


def test_seed_004_momentum_ramp_in_one_line_matches_a_hand_loop():
    model = make_model(cadence.optimizers.SGD(learning_rate=0.01, momentum=0.9))
    ramp = HyperparameterScheduler("momentum", lambda epoch: 0.9 + 0.09 * min(epoch, 200) / 200)
    history = model.fit(X[:4], Y[:4], batch_size=4, epochs=203, verbose=0, callbacks=[ramp])
    expected = [0.9 + 0.09 * min(epoch, 200) / 200 for epoch in range(203)]
    assert history.history["momentum"] == expected
    assert expected[200] == expected[202] == pytest.approx(0.99, abs=1e-15)
    assert model.optimizer.param_groups[0]["momentum"] == expected[-1]


def test_seed_004_momentum_schedule_overshoots_where_the_one_liner_does_not():
    # Seed 004's MomentumSchedule, from examples/ (imports changed only); driven without training.
    from examples.seed_004_callbacks import MomentumSchedule

    theirs, ours = make_model(), make_model()
    their_list = CallbackList([MomentumSchedule()], model=theirs, epochs=205, steps=1, verbose=0)
    our_list = CallbackList([HyperparameterScheduler("momentum", lambda e: 0.9 + 0.09 * min(e, 200) / 200)],
                            model=ours, epochs=205, steps=1, verbose=0)
    their_values, our_values = [], []
    our_list.on_train_begin()
    for epoch in range(205):
        our_list.on_epoch_begin(epoch)
        their_values.append(theirs.optimizer.momentum)
        our_values.append(ours.optimizer.momentum)
        their_list.on_epoch_end(epoch, {})
        our_list.on_epoch_end(epoch, {})
    assert our_values[:201] == pytest.approx(their_values[:201], abs=1e-12)
    assert their_values[201] == pytest.approx(0.99045)  # the seed's one-epoch overshoot
    assert our_values[201:] == [our_values[200]] * 4 and their_values[202:] == [0.99] * 3


def test_list_schedule_is_piecewise_constant_per_epoch():
    model = make_model()
    history = fit(model, [HyperparameterScheduler("learning_rate", [(1, 0.05), (3, 0.01)])], epochs=5)
    assert history.history["learning_rate"] == [0.1, 0.05, 0.05, 0.01, 0.01]


def test_list_schedule_per_batch_counts_global_batches():
    model = make_model()
    probe = BatchValues("momentum")
    scheduler = HyperparameterScheduler("momentum", [(0, 0.5), (3, 0.7)], per="batch")
    fit(model, [scheduler, probe], epochs=3)
    assert probe.values == [0.5, 0.5, 0.5, 0.7, 0.7, 0.7]
    assert scheduler.state_dict() == {"batches_seen": 6}


def test_per_batch_step_is_global_not_the_batch_index_and_resumes_from_state():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.01 * (step + 1)

    scheduler = HyperparameterScheduler("learning_rate", schedule, per="batch")
    fit(make_model(), [scheduler], epochs=2)
    assert seen == [0, 1, 2, 3]
    restored = HyperparameterScheduler("learning_rate", schedule, per="batch")
    restored.load_state_dict(scheduler.state_dict())
    fit(make_model(), [restored], epochs=1)
    assert seen == [0, 1, 2, 3, 4, 5]


def test_resumed_per_batch_run_matches_an_uninterrupted_one():
    def run(split):
        model = make_model()
        model.load_state_dict(reference.state_dict())
        scheduler = HyperparameterScheduler("learning_rate", lambda step, lr: lr * 0.9, per="batch")
        probe = BatchValues()
        if not split:
            fit(model, [scheduler, probe], epochs=4)
            return model, probe.values
        fit(model, [scheduler, probe], epochs=2)
        resumed = make_model()
        resumed.load_state_dict(model.state_dict())
        resumed.optimizer.load_state_dict(model.optimizer.state_dict())
        again = HyperparameterScheduler("learning_rate", lambda step, lr: lr * 0.9, per="batch")
        again.load_state_dict(scheduler.state_dict())
        fit(resumed, [again, probe], epochs=4, initial_epoch=2)
        return resumed, probe.values

    reference = make_model()
    straight, straight_lrs = run(False)
    resumed, resumed_lrs = run(True)
    assert resumed_lrs == straight_lrs
    assert all(torch.isfinite(p).all() for p in straight.parameters())
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(), strict=True))


@pytest.mark.parametrize(
    ("optimizer", "name", "key", "index"),
    [
        (lambda: cadence.optimizers.SGD(learning_rate=0.1, momentum=0.5), "momentum", "momentum", None),
        (lambda: cadence.optimizers.SGD(learning_rate=0.1), "weight_decay", "weight_decay", None),
        (lambda: cadence.optimizers.SGD(learning_rate=0.1), "dampening", "dampening", None),
        (lambda: cadence.optimizers.SGD(learning_rate=0.1), "lr", "lr", None),
        (lambda: cadence.optimizers.Adam(learning_rate=0.01), "beta_1", "betas", 0),
        (lambda: cadence.optimizers.Adam(learning_rate=0.01), "momentum", "betas", 0),
        (lambda: cadence.optimizers.Adam(learning_rate=0.01), "beta_2", "betas", 1),
        (lambda: cadence.optimizers.Adam(learning_rate=0.01), "epsilon", "eps", None),
        (lambda: cadence.optimizers.RMSprop(learning_rate=0.01), "rho", "alpha", None),
        (lambda: cadence.optimizers.AdamW(learning_rate=0.01), "weight_decay", "weight_decay", None),
    ],
)
def test_any_hyperparameter_by_keras_name_or_group_key(optimizer, name, key, index):
    model = make_model(optimizer())
    history = fit(model, [HyperparameterScheduler(name, lambda epoch: 0.25 + epoch / 8)], epochs=2)
    value = model.optimizer.param_groups[0][key]
    assert (value if index is None else value[index]) == 0.375
    assert history.history[name] == [0.25, 0.375]


def test_two_argument_schedule_receives_the_current_value():
    calls = []

    def schedule(epoch, value):
        calls.append((epoch, value))
        return value / 2

    fit(make_model(), [HyperparameterScheduler("momentum", schedule)], epochs=3)
    assert calls == [(0, 0.9), (1, 0.45), (2, 0.225)]


def test_unknown_hyperparameter_is_rejected_before_any_batch():
    model = make_model(cadence.optimizers.Adam(learning_rate=0.01))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"^HyperparameterScheduler: the Adam optimizer has no hyperparameter "
                       r"'rho'\. It has the Keras names \['learning_rate', 'momentum', 'beta_1', 'beta_2', "
                       r"'epsilon', 'weight_decay'\] and the param_groups keys \['lr', 'eps', 'weight_decay'"):
        fit(model, [HyperparameterScheduler("rho", lambda e: 0.9)])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_argument_errors():
    with pytest.raises(ValueError, match=r"^HyperparameterScheduler: per must be 'epoch' or 'batch'; "
                       r"received per='step'\.$"):
        HyperparameterScheduler("momentum", lambda e: 0.9, per="step")
    with pytest.raises(ValueError, match=r"^HyperparameterScheduler: hyperparameter must be a non-empty string "
                       r"such as 'learning_rate' or 'momentum'; received hyperparameter=''\.$"):
        HyperparameterScheduler("", lambda e: 0.9)
    with pytest.raises(TypeError, match=r"^HyperparameterScheduler: schedule must be a function f\(step, value\) "
                       r"or f\(step\), or a list of \(step, value\) pairs; received float: 0\.9\.$"):
        HyperparameterScheduler("momentum", 0.9)
    with pytest.raises(ValueError, match=r"needs at least one \(step, value\) pair; received an empty list\.$"):
        HyperparameterScheduler("momentum", [])
    with pytest.raises(ValueError, match=r"integer step >= 0 and a number value; received \(-1, 0\.5\)\.$"):
        HyperparameterScheduler("momentum", [(-1, 0.5)])
    with pytest.raises(ValueError, match=r"received \(0, 'x'\)\.$"):
        HyperparameterScheduler("momentum", [(0, "x")])
    with pytest.raises(ValueError, match=r"received \(1\.5, 0\.5\)\.$"):
        HyperparameterScheduler("momentum", [(1.5, 0.5)])
    with pytest.raises(ValueError, match=r"must be strictly increasing; received steps \[2, 2\]\.$"):
        HyperparameterScheduler("momentum", [(2, 0.5), (2, 0.6)])
    with pytest.raises(ValueError, match=r"received verbose=True\.$"):
        HyperparameterScheduler("momentum", lambda e: 0.9, verbose=True)


def test_bad_schedule_return_names_the_type():
    with pytest.raises(TypeError, match=r"^HyperparameterScheduler: the schedule must return a float, a numpy "
                       r"number or a 0-d floating-point tensor; schedule\(0\) returned builtins\.list: \[0\.9\]\."):
        fit(make_model(), [HyperparameterScheduler("momentum", lambda e: [0.9])])


def test_verbose_prints_when_the_value_changes(capsys):
    fit(make_model(), [HyperparameterScheduler("momentum", [(0, 0.5), (2, 0.6)], verbose=1)], epochs=3)
    assert capsys.readouterr().out == (
        "\nEpoch 1: HyperparameterScheduler setting momentum to 0.5.\n"
        "\nEpoch 3: HyperparameterScheduler setting momentum to 0.6.\n"
    )


def test_per_batch_scheduling_reads_no_device_value(monkeypatch):
    layer = nn.Linear(2, 1)
    lr = torch.tensor(0.1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr)

    class Fake:
        pass

    fake = Fake()
    fake.optimizer = optimizer
    scheduler = HyperparameterScheduler("lr", lambda step: 0.1 / (step + 1), per="batch")
    scheduler.set_model(fake)
    scheduler.on_train_begin()

    def forbidden(*args, **kwargs):
        raise AssertionError("host-device transfer")

    with monkeypatch.context() as patch:
        for name in ("item", "__float__", "tolist", "cpu", "numpy"):
            patch.setattr(torch.Tensor, name, forbidden)
        for batch in range(3):
            scheduler.on_train_batch_begin(batch)
    assert optimizer.param_groups[0]["lr"] is lr
    assert float(lr) == pytest.approx(0.1 / 3)


def test_per_batch_scheduling_adds_no_log_conversion():
    def conversions(callbacks):
        before = logs_module.conversions
        fit(make_model(), callbacks, epochs=2)
        return logs_module.conversions - before

    baseline = conversions([])
    assert conversions([HyperparameterScheduler("learning_rate", lambda s, lr: lr * 0.99, per="batch")]) == baseline
