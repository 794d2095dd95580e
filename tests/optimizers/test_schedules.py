"""Keras 3's learning-rate schedules: values from Keras's documented formulas, by hand."""

import math

import numpy as np
import pytest
import torch

from cadence import keras, optimizers
from cadence.optimizers import schedules


def test_reachable_as_keras_optimizers_schedules():
    assert keras.optimizers.schedules is schedules
    assert keras.optimizers.schedules.ExponentialDecay is schedules.ExponentialDecay


def test_exponential_decay():
    smooth = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert smooth(0) == 0.1
    assert smooth(5) == pytest.approx(0.1 * math.sqrt(0.5), rel=1e-12)
    assert smooth(20) == pytest.approx(0.025, rel=1e-12)
    stairs = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [stairs(step) for step in (9, 10, 19, 20)] == [0.1, 0.05, 0.05, 0.025]
    assert smooth.get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5,
        "staircase": False, "name": "ExponentialDecay",
    }
    with pytest.raises(ValueError, match=r"^Argument `decay_steps` must be > 0\. "
                       r"Received: decay_steps=0$"):
        schedules.ExponentialDecay(0.1, 0, 0.5)


def test_piecewise_constant_decay_keras_docstring_example():
    schedule = schedules.PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    values = [schedule(step) for step in (0, 100000, 100001, 110000, 110001)]
    assert values == [1.0, 1.0, 0.5, 0.5, 0.1]
    assert schedule.name == "PiecewiseConstant"
    with pytest.raises(ValueError, match=r"^The length of boundaries should be 1 less than the "
                       r"length of values\. Received: boundaries=\[1\] of length 1, and "
                       r"values=\[1\.0\] of length 1\.$"):
        schedules.PiecewiseConstantDecay([1], [1.0])


def test_polynomial_decay():
    schedule = schedules.PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.01, power=0.5)
    assert schedule(0) == pytest.approx(0.1, rel=1e-12)
    assert schedule(5) == pytest.approx(0.09 * 0.5**0.5 + 0.01, rel=1e-12)
    assert schedule(10) == pytest.approx(0.01, rel=1e-12)
    assert schedule(30) == pytest.approx(0.01, rel=1e-12)  # Held at the end rate.
    cycling = schedules.PolynomialDecay(0.1, 10, 0.01, power=0.5, cycle=True)
    assert cycling(0) == pytest.approx(0.1, rel=1e-12)
    # Step 15: decay_steps becomes 10 * ceil(15 / 10) = 20, so the fraction is 0.75.
    assert cycling(15) == pytest.approx(0.09 * 0.25**0.5 + 0.01, rel=1e-12)
    linear = schedules.PolynomialDecay(1.0, 4)
    assert linear(2) == pytest.approx((1.0 - 0.0001) * 0.5 + 0.0001, rel=1e-12)


def test_inverse_time_decay():
    schedule = schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.5)
    assert schedule(2) == pytest.approx(0.1 / 2.0, rel=1e-12)
    stairs = schedules.InverseTimeDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=True)
    assert stairs(3) == pytest.approx(0.1 / 1.5, rel=1e-12)
    assert stairs(1) == 0.1


def test_cosine_decay_without_and_with_warmup():
    schedule = schedules.CosineDecay(0.1, decay_steps=10)
    assert schedule(0) == pytest.approx(0.1, rel=1e-12)
    assert schedule(5) == pytest.approx(0.05, rel=1e-12)
    assert schedule(10) == pytest.approx(0.0, abs=1e-15)
    floor = schedules.CosineDecay(0.1, decay_steps=10, alpha=0.1)
    assert floor(10) == pytest.approx(0.01, rel=1e-12)
    assert floor(25) == pytest.approx(0.01, rel=1e-12)  # Capped at decay_steps.
    warm = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=10)
    assert warm(5) == pytest.approx(0.05, rel=1e-12)
    assert warm(10) == pytest.approx(0.1, rel=1e-12)
    assert warm(15) == pytest.approx(0.05, rel=1e-12)
    assert warm(40) == pytest.approx(0.0, abs=1e-15)
    assert warm.get_config() == {
        "initial_learning_rate": 0.0, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": 0.1, "warmup_steps": 10,
    }


def test_cosine_decay_restarts():
    schedule = schedules.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    # Periods: [0, 10) with peak 1, [10, 30) with peak 0.5, [30, 70) with peak 0.25.
    assert schedule(0) == pytest.approx(1.0, rel=1e-12)
    assert schedule(5) == pytest.approx(0.5, rel=1e-12)
    assert schedule(10) == pytest.approx(0.5, rel=1e-12)
    assert schedule(20) == pytest.approx(0.25, rel=1e-12)
    assert schedule(30) == pytest.approx(0.25, rel=1e-12)
    constant_periods = schedules.CosineDecayRestarts(1.0, 10, t_mul=1.0, m_mul=0.5, alpha=0.2)
    # Step 15: second period (peak 0.5), halfway: 0.8 * 0.5 * 0.5 * (1 + cos(pi/2)) + 0.2.
    assert constant_periods(15) == pytest.approx(0.8 * 0.25 + 0.2, rel=1e-12)
    assert schedule.name == "SGDRDecay"
    with pytest.raises(ValueError, match=r"^Argument `first_decay_steps` must be > 0\. "
                       r"Received: first_decay_steps=0$"):
        schedules.CosineDecayRestarts(1.0, 0)


def test_schedules_take_numpy_and_tensor_steps():
    schedule = schedules.ExponentialDecay(1.0, 1, 0.5)
    assert schedule(np.int64(2)) == 0.25
    assert schedule(torch.tensor(3)) == 0.125


def test_base_class_and_subclass():
    base = schedules.LearningRateSchedule()
    with pytest.raises(NotImplementedError, match=r"^Learning rate schedule "
                       r"'LearningRateSchedule' must override `__call__\(self, step\)`\.$"):
        base(0)
    with pytest.raises(NotImplementedError, match=r"must override `get_config\(\)` in order to "
                       r"be serializable\.$"):
        base.get_config()

    class Halving(schedules.LearningRateSchedule):
        def __init__(self, initial_learning_rate):
            self.initial_learning_rate = initial_learning_rate

        def __call__(self, step):
            return self.initial_learning_rate / 2**step

        def get_config(self):
            return {"initial_learning_rate": self.initial_learning_rate}

    rebuilt = Halving.from_config(Halving(0.8).get_config())
    assert rebuilt(3) == 0.1
    config = schedules.serialize(rebuilt)
    assert config["class_name"] == "Halving"
    assert schedules.deserialize(config, custom_objects={"Halving": Halving})(1) == 0.4
    with pytest.raises(ValueError, match=r"^Unknown learning rate schedule: 'Halving'\."):
        schedules.deserialize(config)


def test_serialize_round_trip_and_optimizer_config():
    schedule = schedules.PolynomialDecay(0.1, 100, cycle=True)
    config = schedules.serialize(schedule)
    assert config == {
        "module": "cadence.optimizers.schedules", "class_name": "PolynomialDecay",
        "config": {"initial_learning_rate": 0.1, "decay_steps": 100,
                   "end_learning_rate": 0.0001, "power": 1.0, "cycle": True,
                   "name": "PolynomialDecay"},
    }
    assert schedules.deserialize(config).get_config() == schedule.get_config()
    spec = optimizers.SGD(learning_rate=schedule)
    assert spec.get_config()["learning_rate"] == config
    rebuilt = optimizers.SGD.from_config(spec.get_config())
    assert isinstance(rebuilt.learning_rate, schedules.PolynomialDecay)
    assert rebuilt.learning_rate.get_config() == schedule.get_config()
