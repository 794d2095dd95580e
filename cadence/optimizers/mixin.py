"""Keras-style extras mixed into any `torch.optim.Optimizer`.

`OptimizerMixin` adds Keras's optimizer attributes to a torch optimizer without
replacing it: the object stays an instance of its torch class, so `param_groups`,
`step`, `zero_grad`, `state_dict` and torch's LR schedulers work unchanged.

Hyperparameters map onto the torch parameter groups as follows:

==================  ===============================================================
Keras attribute     torch parameter-group entry
==================  ===============================================================
``learning_rate``   ``lr`` (alias ``lr``)
``momentum``        ``momentum`` (SGD, RMSprop); ``betas[0]`` (Adam family)
``beta_1``          ``betas[0]``
``beta_2``          ``betas[1]``
``rho``             ``alpha`` (RMSprop), ``rho`` (Adadelta)
``epsilon``         ``eps``
``weight_decay``    ``weight_decay``
==================  ===============================================================

Reading returns a `Hyperparameter` (a float) with the value of the first group;
assigning writes the value onto every group. An attribute the optimizer does not have
raises `AttributeError`, so `hasattr(opt, "momentum")` is False for Adagrad.

The learning rate may also be driven by a schedule, and tf.keras 2's `decay` and Keras 3's
moving average of the weights are available: see `cadence.optimizers.rate` and
`cadence.optimizers.ema`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from cadence.optimizers import clipping, ema
from cadence.optimizers.ema import EmaMixin
from cadence.optimizers.groups import HYPERPARAMETERS, find, read, write
from cadence.optimizers.hyperparameter import Hyperparameter, to_scalar
from cadence.optimizers.rate import RateMixin
from cadence.optimizers.schedules import LearningRateSchedule, serialize

ITERATIONS_KEY = "iterations"


def _hyperparameter(name: str, doc: str) -> property:
    def getter(self: torch.optim.Optimizer) -> Hyperparameter:
        return read(self, name)

    def setter(self: torch.optim.Optimizer, value: Any) -> None:
        write(self, name, value)

    return property(getter, setter, doc=doc)


def _clip_setting(name: str) -> property:
    def getter(self: OptimizerMixin) -> float | None:
        return self._cadence_clip[name]

    def setter(self: OptimizerMixin, value: Any) -> None:
        self._set_clipping(**{name: value})

    return property(getter, setter, doc=f"The Keras `{name}` gradient clipping setting.")


class OptimizerMixin(RateMixin, EmaMixin):
    """Keras-style attributes and methods for a torch optimizer.

    Do not instantiate it; `cadence.optimizers.get` and `wrap` put it in front of a torch
    optimizer class. See the module docstring for how hyperparameters map onto the
    parameter groups.

    `iterations` counts the calls of `step()` that ran (a step skipped by a
    `GradScaler` on overflow is not counted); it is saved by `state_dict()` under the
    top-level key ``"iterations"``, which plain torch optimizers ignore on load.

    `clipnorm` (each gradient's L2 norm), `global_clipnorm` (all gradients' joint norm)
    and `clipvalue` (each element) clip the `.grad` tensors inside `step()`, before the
    torch update, without host synchronisation. At most one may be set. When `step` is
    given a closure, the gradients it computes are clipped after it runs.

    `learning_rate` may also be a `cadence.optimizers.schedules.LearningRateSchedule`
    (or, as in Keras, a callable taking no argument): before every step the rate of every
    group is set to `schedule(iterations)`. Reading `learning_rate` then gives the rate
    for the next step, and assigning a number raises Keras's `TypeError`.

    `decay` is tf.keras 2's time-based decay: when it is above 0, each step uses
    `learning_rate / (1 + decay * iterations)` while `learning_rate` itself keeps its
    value.

    `use_ema`, `ema_momentum` and `ema_overwrite_frequency` are Keras 3's exponential
    moving average of the weights (see `cadence.optimizers.ema`); the averages are saved
    by `state_dict()` under ``"ema_averages"``, and `finalize_variable_values()` (called
    by `fit` after the last epoch) copies them into the weights.
    """

    _cadence_base: type[torch.optim.Optimizer]
    _cadence_iterations: int
    _cadence_clip: dict[str, float | None]

    _cadence_rate: Any
    _cadence_decay: float
    _cadence_ema: tuple[bool, float, int | None]
    _cadence_averages: list[torch.Tensor] | None
    momentum = _hyperparameter("momentum", "Momentum: `momentum` or `betas[0]`.")
    weight_decay = _hyperparameter("weight_decay", "Weight decay (torch's `weight_decay`).")
    epsilon = _hyperparameter("epsilon", "The numerical-stability epsilon (torch's `eps`).")
    beta_1 = _hyperparameter("beta_1", "The first-moment decay rate (`betas[0]`).")
    beta_2 = _hyperparameter("beta_2", "The second-moment decay rate (`betas[1]`).")
    rho = _hyperparameter("rho", "The decay rate (`alpha` for RMSprop, `rho` for Adadelta).")
    clipnorm = _clip_setting("clipnorm")
    clipvalue = _clip_setting("clipvalue")
    global_clipnorm = _clip_setting("global_clipnorm")

    def _cadence_setup(
        self,
        clip: dict[str, Any] | None = None,
        iterations: int = 0,
        rate: Any = None,
        decay: Any = 0.0,
        ema_settings: tuple[Any, Any, Any] = (False, 0.99, None),
        averages: list[torch.Tensor] | None = None,
    ) -> None:
        """Installs the counters and hooks; called once per optimizer object."""
        self._cadence_iterations = iterations
        self._cadence_clip = dict.fromkeys(clipping.CLIP_NAMES)
        self._cadence_clip_handle = None
        self._cadence_rate = None
        self._cadence_decay = 0.0
        self._cadence_rate_handle = None
        self._cadence_undecayed: list[Any] | None = None
        self._cadence_ema = ema.check_settings(*ema_settings)
        self._cadence_averages = averages
        self._cadence_count_handle = self.register_step_post_hook(_after_step)
        self._set_clipping(**(clip or {}))
        self.decay = decay
        if rate is not None:
            self.learning_rate = rate



    def _set_clipping(self, **settings: Any) -> None:
        new = dict(self._cadence_clip)
        for name, value in settings.items():
            new[name] = clipping.check_clip_value(name, value)
        clipping.check_exclusive(new)
        self._cadence_clip = new
        active = any(value is not None for value in new.values())
        if active and self._cadence_clip_handle is None:
            self._cadence_clip_handle = self.register_step_pre_hook(_clip_before_step)
        elif not active and self._cadence_clip_handle is not None:
            self._cadence_clip_handle.remove()
            self._cadence_clip_handle = None

    def _clip_now(self) -> None:
        grads = [
            param.grad
            for group in self.param_groups
            for param in group["params"]
            if param.grad is not None
        ]
        clipping.clip_gradients_(grads, self._cadence_clip)

    @property
    def iterations(self) -> int:
        """The number of optimizer steps taken so far."""
        return self._cadence_iterations

    @iterations.setter
    def iterations(self, value: Any) -> None:
        self._cadence_iterations = _to_count(value)

    def state_dict(self) -> dict[str, Any]:
        """Return torch's optimizer state dict plus the step count under ``"iterations"``.

        With `use_ema`, the moving averages (once a step has created them) are under
        ``"ema_averages"``, one tensor per parameter in the groups' order.
        """
        state = super().state_dict()
        state[ITERATIONS_KEY] = self._cadence_iterations
        if self._cadence_averages is not None:
            state[ema.EMA_KEY] = list(self._cadence_averages)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by a cadence or a plain torch optimizer.

        Without an ``"iterations"`` entry (a plain torch state dict), the step count is
        taken from the largest per-parameter ``"step"`` in the state, or 0 if none.
        Without ``"ema_averages"``, the averages start afresh at the next step.

        Args:
            state_dict: The dict returned by `state_dict()`.

        """
        state_dict = dict(state_dict)
        iterations = state_dict.pop(ITERATIONS_KEY, None)
        averages = state_dict.pop(ema.EMA_KEY, None)
        if averages is not None:
            averages = ema.check_loaded(averages, self._managed_params())
        super().load_state_dict(state_dict)
        self._cadence_averages = averages
        if iterations is None:
            steps = [
                entry["step"] for entry in self.state.values() if "step" in entry
            ]
            iterations = max((int(to_scalar(step, "step")) for step in steps), default=0)
        self._cadence_iterations = _to_count(iterations)

    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[torch.Tensor | None, torch.Tensor]]
    ) -> int:
        """Apply gradients to variables, as Keras's `apply_gradients` does.

        Each gradient is stored in its variable's `.grad` (a `None` gradient leaves the
        variable without one), then `step()` runs. The `.grad`s are left in place.

        Args:
            grads_and_vars: Pairs of (gradient, parameter).

        Returns:
            The new `iterations` count.

        """
        pairs = list(grads_and_vars)
        return self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def apply(
        self,
        grads: Sequence[torch.Tensor | None],
        trainable_variables: Sequence[torch.Tensor] | None = None,
    ) -> int:
        """Apply gradients, as Keras's `Optimizer.apply` does.

        Args:
            grads: One gradient (or `None`) per variable.
            trainable_variables: The parameters, all managed by this optimizer. Defaults
                to every parameter of every group, in order.

        Returns:
            The new `iterations` count.

        Raises:
            ValueError: If the counts differ or a variable is not managed by this
                optimizer.

        """
        grads = list(grads)
        managed = [p for group in self.param_groups for p in group["params"]]
        variables = managed if trainable_variables is None else list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(
                f"apply received {len(grads)} gradients for {len(variables)} variables; "
                "expected one gradient per variable."
            )
        managed_ids = {id(p) for p in managed}
        for variable in variables:
            if id(variable) not in managed_ids:
                raise ValueError(
                    "apply received a variable of shape "
                    f"{tuple(variable.shape)} that this optimizer does not manage; expected "
                    "parameters from the optimizer's param_groups."
                )
        for grad, variable in zip(grads, variables, strict=True):
            variable.grad = grad
        self.step()
        return self._cadence_iterations

    def get_config(self) -> dict[str, Any]:
        """Return the Keras-style configuration: name, hyperparameters and clipping."""
        config: dict[str, Any] = {"name": type(self).__name__.lower()}
        for name in HYPERPARAMETERS:
            location = find(self, name)
            if location is not None and (name != "momentum" or location[0] == "momentum"):
                config[name] = float(read(self, name))
        for flag in ("nesterov", "amsgrad", "centered", "initial_accumulator_value"):
            if flag in self.defaults:
                config[flag] = self.defaults[flag]
        if self._cadence_rate is not None:
            rate = self._cadence_rate
            config["learning_rate"] = (
                serialize(rate) if isinstance(rate, LearningRateSchedule) else rate
            )
        config.update(self._cadence_clip)
        config["use_ema"], config["ema_momentum"], config["ema_overwrite_frequency"] = (
            self._cadence_ema
        )
        if self._cadence_decay:
            config["decay"] = self._cadence_decay
        return config

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_cadence_iterations"] = self._cadence_iterations
        state["_cadence_clip"] = dict(self._cadence_clip)
        state["_cadence_rate"] = self._cadence_rate
        state["_cadence_decay"] = self._cadence_decay
        state["_cadence_ema"] = self._cadence_ema
        state["_cadence_averages"] = self._cadence_averages
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict also calls __setstate__, on a set-up optimizer with
        # only "state" and "param_groups": the counter and hooks are then kept.
        state = dict(state)
        iterations = state.pop("_cadence_iterations", 0)
        clip = state.pop("_cadence_clip", None)
        extras = {
            "rate": state.pop("_cadence_rate", None),
            "decay": state.pop("_cadence_decay", 0.0),
            "ema_settings": state.pop("_cadence_ema", (False, 0.99, None)),
            "averages": state.pop("_cadence_averages", None),
        }
        super().__setstate__(state)
        if "_cadence_count_handle" not in self.__dict__:
            self._cadence_setup(clip=clip, iterations=iterations, **extras)

    def __reduce_ex__(self, protocol: Any) -> tuple[Callable[..., Any], tuple[Any], Any]:
        return (_restore, (type(self)._cadence_base,), self.__getstate__())



def _to_count(value: Any) -> int:
    number = to_scalar(value, ITERATIONS_KEY)
    if number < 0 or number != int(number):
        raise ValueError(f"iterations must be a non-negative integer; received {value!r}.")
    return int(number)



def _after_step(optimizer: OptimizerMixin, args: Any, kwargs: Any) -> None:
    """Undo the decay, update the moving averages, then count the step."""
    optimizer._restore_undecayed()
    if optimizer._cadence_ema[0]:
        optimizer._update_averages()
    optimizer._cadence_iterations += 1


def _clip_before_step(
    optimizer: OptimizerMixin, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
    if closure is None:
        optimizer._clip_now()
        return None

    def clipped_closure() -> Any:
        loss = closure()
        optimizer._clip_now()
        return loss

    if "closure" in kwargs:
        return args, {**kwargs, "closure": clipped_closure}
    return (args[0], clipped_closure, *args[2:]), kwargs


@functools.cache
def mixed_class(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """Return the cached subclass of (`OptimizerMixin`, `base`).

    It keeps `base`'s name, so reprs and profiler labels read as before.

    Args:
        base: A `torch.optim.Optimizer` subclass.

    Returns:
        A class deriving from both `OptimizerMixin` and `base`.

    """
    namespace = {
        "__module__": __name__,
        "__qualname__": base.__qualname__,
        "_cadence_base": base,
    }
    return type(base.__name__, (OptimizerMixin, base), namespace)


def wrap(optimizer: torch.optim.Optimizer, **clip: Any) -> torch.optim.Optimizer:
    """Add the Keras-style extras to an existing torch optimizer, in place.

    The object's class is switched to `mixed_class(type(optimizer))`, so it stays an
    instance of its torch class and keeps its state and hooks. Wrapping twice is a no-op
    (clipping settings given the second time are applied).

    Args:
        optimizer: A `torch.optim.Optimizer` instance.
        **clip: Optional `clipnorm`, `clipvalue` or `global_clipnorm`.

    Returns:
        The same object.

    """
    if isinstance(optimizer, OptimizerMixin):
        if clip:
            optimizer._set_clipping(**clip)
        return optimizer
    optimizer.__class__ = mixed_class(type(optimizer))
    optimizer._cadence_setup(clip=clip)
    return optimizer


def _restore(base: type[torch.optim.Optimizer]) -> torch.optim.Optimizer:
    """Create an empty optimizer of `mixed_class(base)` for unpickling."""
    cls = mixed_class(base)
    return cls.__new__(cls)
