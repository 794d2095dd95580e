"""Keras 3's learning-rate schedules: the rate as a function of the optimizer step.

A schedule is passed as an optimizer's `learning_rate` (a cadence optimizer, or
`compile(optimizer=...)` with one): before every optimizer step the rate is set to
`schedule(optimizer.iterations)`, the number of steps applied so far (0 for the first).
Reachable as `cadence.optimizers.schedules` and, through cadence's Keras alias, as
`keras.optimizers.schedules`.

The constructor arguments, defaults and formulas are Keras 3's. The built-in schedules
compute in Python floats from the integer step, so evaluating them costs no device work;
they accept a Python or numpy number or a 0-d tensor as the step and return a Python
float. Subclass `LearningRateSchedule` and implement `__call__(step)` (and `get_config`)
for your own; it may return a number or a 0-d tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cadence.optimizers.hyperparameter import to_scalar

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]


class LearningRateSchedule:
    """The base class of learning-rate schedules, as in Keras.

    A subclass implements `__call__(step)`, returning the rate for optimizer step `step`
    (an int, counting applied steps from 0), and `get_config()`, returning the
    constructor arguments so that `from_config` rebuilds it.

    Example::

        class Halving(cadence.optimizers.schedules.LearningRateSchedule):
            def __init__(self, initial_learning_rate):
                self.initial_learning_rate = initial_learning_rate

            def __call__(self, step):
                return self.initial_learning_rate / (step + 1)

            def get_config(self):
                return {"initial_learning_rate": self.initial_learning_rate}

        optimizer = cadence.optimizers.SGD(learning_rate=Halving(0.1))
    """

    def __call__(self, step: Any) -> Any:
        """Return the learning rate at `step`.

        Args:
            step: The number of optimizer steps applied so far.

        Raises:
            NotImplementedError: Always, in the base class.
        """
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments.

        Raises:
            NotImplementedError: Always, in the base class.
        """
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        """Create a schedule from the output of `get_config`.

        Args:
            config: The constructor arguments.

        Returns:
            A new schedule.
        """
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        arguments = ", ".join(f"{key}={value!r}" for key, value in config.items())
        return f"{type(self).__name__}({arguments})"


def _step(step: Any) -> float:
    return to_scalar(step, "step")


def _positive_steps(name: str, value: Any) -> None:
    if not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`.

    With `staircase=True`, `step / decay_steps` is floored, so the rate drops in steps.

    Args:
        initial_learning_rate: The rate at step 0.
        decay_steps: The number of steps over which the rate is multiplied by
            `decay_rate`; must be positive.
        decay_rate: The decay factor.
        staircase: Whether to decay at discrete intervals.
        name: The schedule's name. Defaults to `"ExponentialDecay"`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _positive_steps("decay_steps", decay_steps)

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        progress = _step(step) / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return self.initial_learning_rate * self.decay_rate**progress

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate between boundaries: `values[i]` for `boundaries[i-1] < step <= boundaries[i]`.

    `values[0]` applies while `step <= boundaries[0]`, `values[-1]` once
    `step > boundaries[-1]`.

    Args:
        boundaries: Increasing step numbers.
        values: The rates, one more than `boundaries`.
        name: The schedule's name. Defaults to `"PiecewiseConstant"`.

    Raises:
        ValueError: If `len(values) != len(boundaries) + 1`.
    """

    def __init__(
        self, boundaries: Sequence[Any], values: Sequence[Any], name: str = "PiecewiseConstant"
    ) -> None:
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        step = _step(step)
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """A polynomial decay from `initial_learning_rate` to `end_learning_rate` over `decay_steps`.

    The rate is `(initial - end) * (1 - step / decay_steps) ** power + end`, with `step`
    capped at `decay_steps`. With `cycle=True` the step is not capped; instead
    `decay_steps` is multiplied by `ceil(step / decay_steps)` (1 at step 0), so the decay
    restarts from a lower peak.

    Args:
        initial_learning_rate: The rate at step 0.
        decay_steps: The number of steps to decay over; must be positive.
        end_learning_rate: The final rate. Defaults to 0.0001.
        power: The polynomial's power. Defaults to 1.0 (linear).
        cycle: Whether to cycle beyond `decay_steps`.
        name: The schedule's name. Defaults to `"PolynomialDecay"`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _positive_steps("decay_steps", decay_steps)

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        step = _step(step)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        fraction = step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * (1 - fraction) ** self.power + self.end_learning_rate

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`.

    With `staircase=True`, `step / decay_steps` is floored.

    Args:
        initial_learning_rate: The rate at step 0.
        decay_steps: How often the decay is applied; must be positive.
        decay_rate: The decay rate.
        staircase: Whether to decay at discrete intervals.
        name: The schedule's name. Defaults to `"InverseTimeDecay"`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _positive_steps("decay_steps", decay_steps)

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        progress = _step(step) / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return self.initial_learning_rate / (1 + self.decay_rate * progress)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


def _cosine(fraction: float, alpha: float) -> float:
    """Return `(1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha`."""
    return (1 - alpha) * 0.5 * (1.0 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    """A cosine decay, with an optional linear warmup, as in Keras 3 (SGDR without restarts).

    Without `warmup_target`, the rate is
    `initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)`
    with `s = min(step, decay_steps)`. With `warmup_target`, the rate rises linearly from
    `initial_learning_rate` to `warmup_target` over `warmup_steps`, then decays from
    `warmup_target` by the same formula with `s = min(step, warmup_steps + decay_steps) -
    warmup_steps`.

    Args:
        initial_learning_rate: The rate at step 0.
        decay_steps: The number of steps to decay over; must be positive.
        alpha: The final rate as a fraction of the rate decayed from. Defaults to 0.
        name: The schedule's name. Defaults to `"CosineDecay"`.
        warmup_target: The rate reached at the end of the warmup, or `None` for no
            warmup.
        warmup_steps: The number of warmup steps. Defaults to 0.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _positive_steps("decay_steps", decay_steps)

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        step = _step(step)
        if self.warmup_target is None:
            fraction = min(step, self.decay_steps) / self.decay_steps
            return self.initial_learning_rate * _cosine(fraction, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * step / self.warmup_steps + self.initial_learning_rate
        fraction = (step - self.warmup_steps) / self.decay_steps
        return self.warmup_target * _cosine(fraction, self.alpha)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """A cosine decay with warm restarts (SGDR), as in Keras 3.

    The first period lasts `first_decay_steps`; each next one is `t_mul` times longer and
    starts from a peak `m_mul` times the previous one. Within period `i`, at fraction `f`
    of it, the rate is
    `initial_learning_rate * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi * f)) + alpha)`.

    Args:
        initial_learning_rate: The rate at step 0.
        first_decay_steps: The length of the first period; must be positive.
        t_mul: The factor by which each period is longer than the one before.
            Defaults to 2.0.
        m_mul: The factor by which each period's peak is lower. Defaults to 1.0.
        alpha: The minimum rate as a fraction of `initial_learning_rate`. Defaults to 0.
        name: The schedule's name. Defaults to `"SGDRDecay"`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str = "SGDRDecay",
    ) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _positive_steps("first_decay_steps", first_decay_steps)

    def __call__(self, step: Any) -> float:
        """Return the learning rate at `step`."""
        fraction = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(
                math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul)
            )
            completed = (1.0 - self.t_mul**restart) / (1.0 - self.t_mul)
            fraction = (fraction - completed) / self.t_mul**restart
        peak = self.m_mul**restart
        cosine = 0.5 * peak * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


_BUILT_IN = {
    cls.__name__: cls
    for cls in (
        CosineDecay,
        CosineDecayRestarts,
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Return `{"class_name": ..., "config": ...}` for a schedule, as Keras serializes it.

    Args:
        schedule: A `LearningRateSchedule`.

    Returns:
        A dict that `deserialize` turns back into an equal schedule.

    Raises:
        TypeError: If `schedule` is not a `LearningRateSchedule`.
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            "serialize expects a LearningRateSchedule; received "
            f"{type(schedule).__name__}: {schedule!r}."
        )
    return {
        "module": type(schedule).__module__,
        "class_name": type(schedule).__name__,
        "config": schedule.get_config(),
    }


def deserialize(
    config: dict[str, Any], custom_objects: dict[str, type] | None = None
) -> LearningRateSchedule:
    """Rebuild a schedule from `serialize`'s output.

    Args:
        config: A dict with `class_name` and `config`.
        custom_objects: Your own schedule classes by name.

    Returns:
        The schedule.

    Raises:
        ValueError: If the class name is neither built in nor in `custom_objects`.
    """
    known = {**_BUILT_IN, **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in known:
        raise ValueError(
            f"Unknown learning rate schedule: {name!r}. Expected one of "
            f"{sorted(known)}, or pass your class in custom_objects."
        )
    return known[name].from_config(dict(config.get("config", {})))
