"""`TorchOptimizerWrapper`: Keras's optimizer extras around a torch optimizer the user built.

`model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))` keeps the user's
optimizer object exactly as it is: its class, attributes and hooks are never changed.
`model.optimizer` is then a `TorchOptimizerWrapper` around it, which

* shares the wrapped optimizer's `param_groups` and `state` (the same list and dict
  objects, read through on every access, also after the wrapped optimizer's
  `load_state_dict` replaced them): a torch LR scheduler built on the user's optimizer,
  before or after `compile`, keeps driving the rate the model trains with, and
  `model.optimizer.lr = 0.01` is seen by the user's optimizer;
* delegates `step`, `zero_grad`, `state_dict`, `load_state_dict`, `add_param_group` and
  the `register_*_hook` methods to it (a hook registered through the wrapper is called
  with the wrapped optimizer, as torch calls it);
* adds what every cadence optimizer has (`OptimizerMixin`): `learning_rate` / `lr` and the
  other Keras hyperparameter names, `iterations`, schedules, `decay`, clipping, `use_ema`,
  `apply_gradients`, `get_config`. They act in the wrapper's `step()`, around the wrapped
  optimizer's: stepping the user's optimizer object directly updates the weights without
  them (no clipping, no count, no moving average).

It is a `torch.optim.Optimizer`, so torch LR schedulers and `torch.amp.GradScaler` accept
`model.optimizer`, and `inner_optimizer` is the user's object (Keras's wrappers, such as
`LossScaleOptimizer`, use the same name). It does not run `torch.optim.Optimizer.__init__`,
which would give it parameter groups and a state of its own: everything `__init__` sets up
is the wrapped optimizer's, reached through the methods above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cadence.optimizers.mixin import OptimizerMixin


class _Delegated(torch.optim.Optimizer):
    """The torch optimizer API of `TorchOptimizerWrapper`, answered by `inner_optimizer`."""

    inner_optimizer: torch.optim.Optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The wrapped optimizer's parameter groups (the same list)."""
        return self.inner_optimizer.param_groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        """The wrapped optimizer's per-parameter state (the same dict)."""
        return self.inner_optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's default hyperparameters."""
        return self.inner_optimizer.defaults

    def state_dict(self) -> dict[str, Any]:
        """Return the wrapped optimizer's `state_dict()`."""
        return self.inner_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load `state_dict` into the wrapped optimizer."""
        self.inner_optimizer.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of the wrapped optimizer's parameters."""
        self.inner_optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group to the wrapped optimizer."""
        self.inner_optimizer.add_param_group(param_group)

    def register_step_pre_hook(self, hook: Callable[..., Any]) -> Any:
        """Register `hook` on the wrapped optimizer; it runs inside the wrapper's `step()`."""
        return self.inner_optimizer.register_step_pre_hook(hook)

    def register_step_post_hook(self, hook: Callable[..., Any]) -> Any:
        """Register `hook` on the wrapped optimizer; it runs inside the wrapper's `step()`."""
        return self.inner_optimizer.register_step_post_hook(hook)

    def register_state_dict_pre_hook(self, hook: Callable[..., Any], prepend: bool = False) -> Any:
        """Register `hook` on the wrapped optimizer's `state_dict()`."""
        return self.inner_optimizer.register_state_dict_pre_hook(hook, prepend=prepend)

    def register_state_dict_post_hook(self, hook: Callable[..., Any], prepend: bool = False) -> Any:
        """Register `hook` on the wrapped optimizer's `state_dict()`."""
        return self.inner_optimizer.register_state_dict_post_hook(hook, prepend=prepend)

    def register_load_state_dict_pre_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> Any:
        """Register `hook` on the wrapped optimizer's `load_state_dict()`."""
        return self.inner_optimizer.register_load_state_dict_pre_hook(hook, prepend=prepend)

    def register_load_state_dict_post_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> Any:
        """Register `hook` on the wrapped optimizer's `load_state_dict()`."""
        return self.inner_optimizer.register_load_state_dict_post_hook(hook, prepend=prepend)


class TorchOptimizerWrapper(OptimizerMixin, _Delegated):
    """A torch optimizer the user built, with Keras's optimizer extras, left unchanged.

    `compile` wraps a `torch.optim.Optimizer` instance in it; see the module docstring for
    what is shared and what is delegated. The Keras settings may be given here too:

        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model.compile(optimizer=cadence.optimizers.TorchOptimizerWrapper(opt, use_ema=True),
                      loss="mse")

    Args:
        optimizer: The `torch.optim.Optimizer` to drive. It keeps its own learning rate
            and other hyperparameters; it is not copied.
        learning_rate: `None` (keep the optimizer's rate), a number, a
            `cadence.optimizers.schedules.LearningRateSchedule` or a callable taking no
            argument, as for `cadence.optimizers.Optimizer`.
        clipnorm: Clip each gradient to this L2 norm.
        clipvalue: Clip each gradient element into `[-clipvalue, clipvalue]`.
        global_clipnorm: Clip all gradients together to this joint L2 norm.
        use_ema: Keep Keras 3's exponential moving average of the weights.
        ema_momentum: The moving average's momentum, in [0, 1].
        ema_overwrite_frequency: `None` or an integer >= 1.
        decay: tf.keras 2's time-based decay, >= 0.

    Raises:
        TypeError: If `optimizer` is not a `torch.optim.Optimizer`, or already a cadence
            optimizer.

    Attributes:
        inner_optimizer: The wrapped torch optimizer.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        learning_rate: Any = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        decay: float | None = None,
    ) -> None:
        if isinstance(optimizer, OptimizerMixin):
            raise TypeError(
                f"TorchOptimizerWrapper wraps a plain torch optimizer; received a cadence "
                f"optimizer ({type(optimizer).__name__}), which has the Keras extras already. "
                "Pass it to compile as it is."
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "TorchOptimizerWrapper expects a torch.optim.Optimizer instance; received "
                f"{type(optimizer).__name__}: {optimizer!r}."
            )
        self.inner_optimizer = optimizer
        self._cadence_setup(
            clip={
                "clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm
            },
            rate=learning_rate,
            decay=decay,
            ema_settings=(use_ema, ema_momentum, ema_overwrite_frequency),
        )

    def _install_step_hooks(self) -> None:
        """Nothing to install: `step()` calls `_before_step` and `_after_step` itself."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Apply the Keras extras around one step of the wrapped optimizer.

        Before: the scheduled or decayed learning rate, then clipping. After: the
        rate restored from the decay, the moving average, `iterations + 1`.

        Args:
            closure: As for torch's `step`: re-evaluates the model and returns the loss.

        Returns:
            What the wrapped optimizer's `step` returns.
        """
        closure = self._before_step(closure)
        if closure is None:
            loss = self.inner_optimizer.step()
        else:
            loss = self.inner_optimizer.step(closure)
        self._after_step()
        return loss

    def __repr__(self) -> str:
        return f"TorchOptimizerWrapper({self.inner_optimizer!r})"

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._cadence_setup(**state["extras"])

    def __reduce_ex__(self, protocol: Any) -> tuple[Callable[..., Any], tuple[Any], Any]:
        # Rebuilt through the constructor, then the extras and counters are put back (not
        # torch's Optimizer protocol, which would give it parameter groups of its own).
        return (TorchOptimizerWrapper, (self.inner_optimizer,), {"extras": self._cadence_extras()})


def wrap(optimizer: torch.optim.Optimizer, **clip: Any) -> torch.optim.Optimizer:
    """Return a cadence optimizer for `optimizer`, as `compile` does.

    A cadence optimizer is returned as it is (clipping settings given are applied to it);
    a plain torch optimizer is wrapped in a new `TorchOptimizerWrapper` and itself left
    unchanged.

    Args:
        optimizer: A `torch.optim.Optimizer` instance.
        **clip: Optional `clipnorm`, `clipvalue` or `global_clipnorm`.

    Returns:
        An `OptimizerMixin`: `optimizer` itself, or its wrapper.
    """
    if isinstance(optimizer, OptimizerMixin):
        if clip:
            optimizer._set_clipping(**clip)
        return optimizer
    return TorchOptimizerWrapper(optimizer, **clip)
