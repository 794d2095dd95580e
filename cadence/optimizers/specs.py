"""Keras-named optimizer specifications that build torch optimizers.

As in Keras, an optimizer is constructed without parameters
(`cadence.optimizers.RMSprop(learning_rate=0.1)`) and built over them later, by
`Model.compile` through `cadence.optimizers.get`, or by calling `build(params)`. The
result is the torch optimizer named in each class's docstring, with the extras of
`cadence.optimizers.OptimizerMixin`.

Defaults are Keras 3's. Keras arguments map onto torch's as follows: `learning_rate`
to `lr`; `epsilon` to `eps`; `beta_1`, `beta_2` to `betas`; `rho` to RMSprop's `alpha`
and Adadelta's `rho`. Where the two libraries' update rules differ, torch's is used:

* `weight_decay` is passed to torch's `weight_decay`. For AdamW it is decoupled, as in
  Keras; for the other optimizers torch adds it to the gradient (L2 regularisation),
  whereas Keras 3 decays the weights directly.
* Adam, Adamax and RMSprop add `epsilon` where torch does, which differs slightly from
  Keras's placement; results agree closely but not bit for bit.
* SGD's momentum follows torch (`v = m * v + g; w -= lr * v`), the same as Keras's rule
  while the learning rate is constant.
* Nadam uses torch's `NAdam` with `momentum_decay=1.0`, which reproduces Keras's
  momentum schedule `beta_1 * (1 - 0.5 * 0.96 ** t)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from cadence.optimizers import ema, schedules
from cadence.optimizers.clipping import check_clip_value, check_exclusive
from cadence.optimizers.hyperparameter import to_scalar
from cadence.optimizers.mixin import mixed_class


def _checked(name: str, value: Any, low: float, high: float | None = None) -> float:
    """Return `value` as a float after checking it lies in `[low, high]`."""
    if not isinstance(value, torch.Tensor) and callable(value):
        raise TypeError(
            f"{name} must be a number; received the callable {value!r}. To change it during "
            "training, use a callback such as cadence.callbacks.HyperparameterScheduler."
        )
    number = to_scalar(value, name)
    if number < low or (high is not None and number > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}; received {name}={value!r}.")
    return number


def _learning_rate(value: Any) -> Any:
    """Return a checked learning rate: a non-negative float, a schedule or a callable."""
    if isinstance(value, dict) and "class_name" in value:
        return schedules.deserialize(value)
    if isinstance(value, schedules.LearningRateSchedule) or (
        callable(value) and not isinstance(value, torch.Tensor)
    ):
        return value
    return _checked("learning_rate", value, 0.0)


class Optimizer:
    """Base class of the Keras-named optimizer specifications.

    Args:
        learning_rate: The learning rate: a non-negative number, a
            `cadence.optimizers.schedules.LearningRateSchedule` evaluated at
            `optimizer.iterations` before every step, or a callable taking no argument
            that returns the rate (called before every step), as in Keras.
        weight_decay: Weight decay, or `None` for none (see the module docstring).
        clipnorm: If set, each gradient is scaled so that its L2 norm is at most this.
        clipvalue: If set, each gradient element is clamped into `[-clipvalue, clipvalue]`.
        global_clipnorm: If set, all gradients are scaled together so that their joint
            L2 norm is at most this.
        use_ema: Whether to keep an exponential moving average of the weights, which
            overwrites them every `ema_overwrite_frequency` steps and at the end of `fit`
            (Keras 3's EMA; see `cadence.optimizers.ema`).
        ema_momentum: The average's momentum: `average = ema_momentum * average +
            (1 - ema_momentum) * weight`. Defaults to 0.99.
        ema_overwrite_frequency: `None` (only at the end of `fit`) or an integer >= 1.
        name: A name for the optimizer; defaults to the class's Keras name.
        **kwargs: Only tf.keras 2's `decay`: each step then uses
            `learning_rate / (1 + decay * iterations)` (Keras 3 ignores it with a
            warning; cadence applies it, see the README's "Differences from Keras").

    Raises:
        ValueError: For an argument Keras does not know (Keras's message) or a value
            out of range.
    """

    torch_class: ClassVar[type[torch.optim.Optimizer]]
    default_name: ClassVar[str]

    def __init__(
        self,
        learning_rate: Any,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        decay = kwargs.pop("decay", None)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        self.learning_rate = _learning_rate(learning_rate)
        self.weight_decay = (
            None if weight_decay is None else _checked("weight_decay", weight_decay, 0.0)
        )
        self.clipnorm = check_clip_value("clipnorm", clipnorm)
        self.clipvalue = check_clip_value("clipvalue", clipvalue)
        self.global_clipnorm = check_clip_value("global_clipnorm", global_clipnorm)
        check_exclusive(self._clip_settings())
        self.use_ema, self.ema_momentum, self.ema_overwrite_frequency = ema.check_settings(
            use_ema, ema_momentum, ema_overwrite_frequency
        )
        self.decay = None if decay is None else _checked("decay", decay, 0.0)
        self.name = self.default_name if name is None else name

    def _clip_settings(self) -> dict[str, float | None]:
        return {
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    def _torch_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for `torch_class`, besides `params`."""
        rate = self.learning_rate
        if isinstance(rate, schedules.LearningRateSchedule):
            rate = to_scalar(rate(0), "learning_rate")
        elif callable(rate):
            rate = to_scalar(rate(), "learning_rate")
        return {"lr": rate, "weight_decay": self.weight_decay or 0.0}

    def _own_config(self) -> dict[str, Any]:
        """Return the subclass's own constructor arguments."""
        return {}

    def build(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """Build the torch optimizer over `params`.

        Args:
            params: Parameters or parameter-group dicts, as torch optimizers take them.

        Returns:
            An instance of `torch_class` with the Keras-style extras.

        """
        optimizer = mixed_class(self.torch_class)(params, **self._torch_kwargs())
        rate = self.learning_rate
        optimizer._cadence_setup(
            clip=self._clip_settings(),
            rate=rate if callable(rate) else None,
            decay=self.decay or 0.0,
            ema_settings=(self.use_ema, self.ema_momentum, self.ema_overwrite_frequency),
        )
        return optimizer

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments, so that `from_config` rebuilds this spec.

        A schedule is given as `{"class_name": ..., "config": ...}`, as Keras serializes
        it.
        """
        rate = self.learning_rate
        if isinstance(rate, schedules.LearningRateSchedule):
            rate = schedules.serialize(rate)
        config = {
            "name": self.name,
            "learning_rate": rate,
            **self._own_config(),
            "weight_decay": self.weight_decay,
            **self._clip_settings(),
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
        }
        if self.decay is not None:
            config["decay"] = self.decay
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """Create a spec from the output of `get_config`."""
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({arguments})"


class SGD(Optimizer):
    """Stochastic gradient descent, built as `torch.optim.SGD`.

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.01.
        momentum: Momentum in [0, 1]. Defaults to 0.
        nesterov: Whether to use Nesterov momentum (needs `momentum > 0`).
        **kwargs: `weight_decay`, the clipping and EMA arguments, `name` (see `Optimizer`).

    """

    torch_class = torch.optim.SGD
    default_name = "SGD"

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum = _checked("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                f"nesterov=True needs a momentum > 0; received momentum={momentum!r}."
            )

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _own_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop, built as `torch.optim.RMSprop` (`rho` becomes torch's `alpha`).

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.001.
        rho: Decay rate of the squared-gradient average. Defaults to 0.9.
        momentum: Momentum in [0, 1]. Defaults to 0.
        epsilon: Numerical-stability constant. Defaults to 1e-7.
        centered: Whether to normalise by the gradient's estimated variance.
        **kwargs: `weight_decay`, the clipping and EMA arguments, `name` (see `Optimizer`).

    """

    torch_class = torch.optim.RMSprop
    default_name = "rmsprop"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho = _checked("rho", rho, 0.0, 1.0)
        self.momentum = _checked("momentum", momentum, 0.0, 1.0)
        self.epsilon = _checked("epsilon", epsilon, 0.0)
        self.centered = bool(centered)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            **super()._torch_kwargs(),
            "alpha": self.rho,
            "momentum": self.momentum,
            "eps": self.epsilon,
            "centered": self.centered,
        }

    def _own_config(self) -> dict[str, Any]:
        return {
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class _AdamLike(Optimizer):
    """Shared arguments of the optimizers that take `beta_1`, `beta_2` and `epsilon`."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _checked("beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _checked("beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _checked("epsilon", epsilon, 0.0)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            **super()._torch_kwargs(),
            "betas": (self.beta_1, self.beta_2),
            "eps": self.epsilon,
        }

    def _own_config(self) -> dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adam(_AdamLike):
    """Adam, built as `torch.optim.Adam`.

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.001.
        beta_1: First-moment decay rate. Defaults to 0.9.
        beta_2: Second-moment decay rate. Defaults to 0.999.
        epsilon: Numerical-stability constant. Defaults to 1e-7.
        amsgrad: Whether to use the AMSGrad variant. Defaults to False.
        **kwargs: `weight_decay`, the clipping and EMA arguments, `name` (see `Optimizer`).

    """

    torch_class = torch.optim.Adam
    default_name = "adam"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "amsgrad": self.amsgrad}

    def _own_config(self) -> dict[str, Any]:
        return {**super()._own_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay, built as `torch.optim.AdamW`.

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.001.
        weight_decay: Decoupled weight decay. Defaults to 0.004.
        **kwargs: `beta_1`, `beta_2`, `epsilon`, `amsgrad`, and the clipping arguments.

    """

    torch_class = torch.optim.AdamW
    default_name = "adamw"

    def __init__(
        self, learning_rate: Any = 0.001, weight_decay: float = 0.004, **kwargs: Any
    ) -> None:
        if weight_decay is None:
            raise ValueError("AdamW needs a number for weight_decay; received weight_decay=None.")
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """Adagrad, built as `torch.optim.Adagrad`.

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.001.
        initial_accumulator_value: Starting value of the accumulators. Defaults to 0.1.
        epsilon: Numerical-stability constant. Defaults to 1e-7.
        **kwargs: `weight_decay`, the clipping and EMA arguments, `name` (see `Optimizer`).

    """

    torch_class = torch.optim.Adagrad
    default_name = "adagrad"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _checked(
            "initial_accumulator_value", initial_accumulator_value, 0.0
        )
        self.epsilon = _checked("epsilon", epsilon, 0.0)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {
            **super()._torch_kwargs(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.epsilon,
        }

    def _own_config(self) -> dict[str, Any]:
        return {
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adamax(_AdamLike):
    """Adamax, built as `torch.optim.Adamax`; arguments as for `Adam` without `amsgrad`."""

    torch_class = torch.optim.Adamax
    default_name = "adamax"


class Nadam(_AdamLike):
    """Nadam, built as `torch.optim.NAdam` with Keras's momentum schedule.

    Arguments are as for `Adam` without `amsgrad`.
    """

    torch_class = torch.optim.NAdam
    default_name = "nadam"

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "momentum_decay": 1.0}


class Adadelta(Optimizer):
    """Adadelta, built as `torch.optim.Adadelta`.

    Args:
        learning_rate: The learning rate or a schedule (see `Optimizer`). Defaults to 0.001.
        rho: Decay rate of the running averages. Defaults to 0.95.
        epsilon: Numerical-stability constant. Defaults to 1e-7.
        **kwargs: `weight_decay`, the clipping and EMA arguments, `name` (see `Optimizer`).

    """

    torch_class = torch.optim.Adadelta
    default_name = "adadelta"

    def __init__(
        self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho = _checked("rho", rho, 0.0, 1.0)
        self.epsilon = _checked("epsilon", epsilon, 0.0)

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "rho": self.rho, "eps": self.epsilon}

    def _own_config(self) -> dict[str, Any]:
        return {"rho": self.rho, "epsilon": self.epsilon}
