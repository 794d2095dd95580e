"""HyperparameterScheduler: schedule any optimizer hyperparameter per epoch or per batch.

The helpers here (reading and writing a hyperparameter by Keras name or ``param_groups`` key,
calling a schedule with one or two arguments, checking what it returns) are shared with
:class:`~cadence.callbacks.LearningRateScheduler`.
"""

from __future__ import annotations

import bisect
import inspect
import numbers
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from cadence.callbacks.callback import Callback, overridden_below
from cadence.optimizers.mixin import HYPERPARAMETERS, OptimizerMixin
from cadence.optimizers.rate import check_settable_learning_rate

PER = ("epoch", "batch")


def check_per(per: Any, owner: str) -> str:
    """Return ``per`` if it is ``"epoch"`` or ``"batch"``, else raise a ValueError."""
    if per not in PER:
        raise ValueError(f"{owner}: per must be 'epoch' or 'batch'; received per={per!r}.")
    return per


def check_verbose(verbose: Any, owner: str) -> int:
    """Return ``verbose`` as an int if it is a non-negative integer, else raise."""
    if isinstance(verbose, bool) or not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"{owner}: verbose must be an integer >= 0; received verbose={verbose!r}.")
    return int(verbose)


def takes_value(schedule: Callable[..., Any]) -> bool | None:
    """Return whether ``schedule`` accepts ``(step, value)`` (True) or only ``(step)`` (False).

    Returns ``None`` when its signature cannot be read (some built-in callables); the schedule is
    then called with two arguments first and with one if that raises ``TypeError``, as Keras does.

    Raises:
        TypeError: If the schedule accepts no positional argument at all.
    """
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
        ):
            positional += 1
    if positional == 0:
        raise TypeError(
            "A schedule must accept the step (epoch or batch index) as its first argument, and "
            f"optionally the current value as its second; received {schedule!r}, which takes no "
            "positional argument."
        )
    return positional >= 2


def to_number(value: Any, owner: str, call: str) -> float:
    """Return what a schedule returned as a Python float, or raise a TypeError naming its type.

    Accepted: Python ints and floats, numpy numbers and 0-d arrays, and 0-d tensors (read with
    one host transfer).
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point():
        return float(value.detach().item())
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
    raise TypeError(
        f"{owner}: the schedule must return a float, a numpy number or a 0-d floating-point "
        f"tensor; {call} returned {type(value).__module__}.{type(value).__qualname__}{shape}: "
        f"{value!r}."
    )


def _is_keras_name(optimizer: Any, name: str) -> bool:
    return name in HYPERPARAMETERS and isinstance(optimizer, OptimizerMixin)


def _group_key(optimizer: Any, name: str) -> str:
    # A plain torch optimizer (not wrapped by cadence): only the learning rate is renamed.
    return "lr" if name == "learning_rate" and not isinstance(optimizer, OptimizerMixin) else name


def has_hyperparameter(optimizer: Any, name: str) -> bool:
    """Return whether ``optimizer`` has the hyperparameter ``name`` (Keras name or group key)."""
    if _is_keras_name(optimizer, name):
        return hasattr(optimizer, name)
    groups = getattr(optimizer, "param_groups", None)
    return bool(groups) and _group_key(optimizer, name) in groups[0]


def require_hyperparameter(optimizer: Any, name: str, owner: str) -> None:
    """Raise a ValueError naming what the optimizer has if it lacks ``name``."""
    if optimizer is None:
        raise ValueError(f"{owner}: the model has no optimizer; call model.compile(...) first.")
    if has_hyperparameter(optimizer, name):
        return
    keras = [n for n in HYPERPARAMETERS if _is_keras_name(optimizer, n) and hasattr(optimizer, n)]
    groups = getattr(optimizer, "param_groups", None) or [{}]
    keys = [k for k, v in groups[0].items() if k != "params" and _is_number(v)]
    raise ValueError(
        f"{owner}: the {type(optimizer).__name__} optimizer has no hyperparameter {name!r}. It "
        f"has the Keras names {keras} and the param_groups keys {keys}."
    )


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def read_hyperparameter(optimizer: Any, name: str) -> float:
    """Return the hyperparameter's value in the first parameter group as a Python float.

    A tensor-valued entry (torch's ``lr`` as a tensor) is read with one host transfer.
    """
    if _is_keras_name(optimizer, name):
        return float(getattr(optimizer, name))
    value = optimizer.param_groups[0][_group_key(optimizer, name)]
    return float(value.detach().item()) if isinstance(value, torch.Tensor) else float(value)


def write_hyperparameter(optimizer: Any, name: str, value: float) -> None:
    """Write a Python float onto every parameter group (a tensor entry is filled in place)."""
    if _is_keras_name(optimizer, name):
        setattr(optimizer, name, value)
        return
    key = _group_key(optimizer, name)
    for group in optimizer.param_groups:
        if isinstance(group[key], torch.Tensor):
            group[key].fill_(value)
        else:
            group[key] = value


def _check_pairs(schedule: Sequence[Any]) -> tuple[list[int], list[float]]:
    pairs = list(schedule)
    if not pairs:
        raise ValueError(
            "HyperparameterScheduler: a list schedule needs at least one (step, value) pair; "
            "received an empty list."
        )
    steps: list[int] = []
    values: list[float] = []
    for pair in pairs:
        ok = isinstance(pair, tuple | list) and len(pair) == 2
        step, value = pair if ok else (None, None)
        if (
            not ok or isinstance(step, bool) or not isinstance(step, numbers.Integral)
            or step < 0 or not _is_number(value) or isinstance(value, torch.Tensor)
        ):
            raise ValueError(
                "HyperparameterScheduler: a list schedule holds (step, value) pairs with an "
                f"integer step >= 0 and a number value; received {pair!r}."
            )
        steps.append(int(step))
        values.append(float(value))
    if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
        raise ValueError(
            "HyperparameterScheduler: the steps of a list schedule must be strictly increasing; "
            f"received steps {steps}."
        )
    return steps, values


class HyperparameterScheduler(Callback):
    """Set an optimizer hyperparameter from a schedule, every epoch or every training batch.

    Seed 004's schedules, one line each::

        # "decayed by a factor of 1.0000002 every batch update until it reached 1e-6"
        HyperparameterScheduler("learning_rate", lambda step, lr: max(lr / 1.0000002, 1e-6), per="batch")
        # "momentum increased linearly over the first 200 epochs from 0.9 to 0.99"
        HyperparameterScheduler("momentum", lambda epoch: 0.9 + 0.09 * min(epoch, 200) / 200)

    and a piecewise-constant schedule: ``HyperparameterScheduler("learning_rate", [(0, 0.1),
    (3, 0.05), (6, 0.01)])`` uses 0.1 for epochs 0-2, 0.05 for 3-5 and 0.01 from epoch 6 on.

    Before each epoch (``per="epoch"``, step = the epoch index) or each training batch
    (``per="batch"``, step = the number of training batches this callback has seen, counted across
    epochs and ``fit`` calls, like Keras's ``optimizer.iterations``), the value for that step is
    computed and written onto every parameter group. A function schedule is called as
    ``schedule(step, value)`` with the value in effect before this step (a Python float), or as
    ``schedule(step)`` if it takes one argument; it may return a float, a numpy number or a 0-d
    tensor. A list schedule is a list of ``(step, value)`` pairs: from each step on, the value of
    the last pair whose step has been reached; before the first pair's step nothing is written.

    Per-batch scheduling adds no host-device synchronisation: one-argument and list schedules
    never read the optimizer, and a Python float is written into ``param_groups`` (a tensor-valued
    entry is filled in place). Only a two-argument schedule reads the current value, which is a
    host transfer if the optimizer keeps that hyperparameter as a tensor.

    At each epoch end the value in effect for the epoch's last batch is added to the logs under
    the hyperparameter's name (``logs["momentum"]``), so History and CSVLogger record it.

    The batch counter is saved by :meth:`state_dict`; the hyperparameter itself lives in the
    optimizer's state, so a run resumed by ``BackupAndRestore`` continues with the same values.

    Args:
        hyperparameter: A Keras name (``"learning_rate"``, ``"momentum"``, ``"weight_decay"``,
            ``"beta_1"``, ``"beta_2"``, ``"rho"``, ``"epsilon"``; see
            :mod:`cadence.optimizers.mixin` for how they map onto torch) or a raw ``param_groups``
            key (``"lr"``, ``"dampening"``, ``"lr_decay"``, ...).
        schedule: A function ``f(step, value) -> value`` or ``f(step) -> value``, or a list of
            ``(step, value)`` pairs.
        per: ``"epoch"`` (at ``on_epoch_begin``) or ``"batch"`` (at ``on_train_batch_begin``).
        verbose: 1 prints a line whenever the value changes.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True  # it never reads batch logs, so batch hooks cost no conversion

    def __init__(
        self,
        hyperparameter: str,
        schedule: Callable[..., Any] | Sequence[tuple[int, float]],
        per: str = "epoch",
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(hyperparameter, str) or not hyperparameter:
            raise ValueError(
                "HyperparameterScheduler: hyperparameter must be a non-empty string such as "
                f"'learning_rate' or 'momentum'; received hyperparameter={hyperparameter!r}."
            )
        self.hyperparameter = hyperparameter
        self.per = check_per(per, "HyperparameterScheduler")
        self.verbose = check_verbose(verbose, "HyperparameterScheduler")
        self.schedule = schedule
        self._pairs: tuple[list[int], list[float]] | None = None
        self._takes_value: bool | None = False
        if callable(schedule):
            self._takes_value = takes_value(schedule)
        elif isinstance(schedule, Sequence) and not isinstance(schedule, str | bytes):
            self._pairs = _check_pairs(schedule)
        else:
            raise TypeError(
                "HyperparameterScheduler: schedule must be a function f(step, value) or f(step), "
                "or a list of (step, value) pairs; received "
                f"{type(schedule).__name__}: {schedule!r}."
            )
        self.batches_seen = 0
        self._last: float | None = None

    def _value_for(self, step: int) -> float | None:
        if self._pairs is not None:
            steps, values = self._pairs
            index = bisect.bisect_right(steps, step) - 1
            return values[index] if index >= 0 else None
        owner = "HyperparameterScheduler"
        if self._takes_value is False:
            return to_number(self.schedule(step), owner, f"schedule({step})")
        current = read_hyperparameter(self.model.optimizer, self.hyperparameter)
        if self._takes_value:
            return to_number(self.schedule(step, current), owner, f"schedule({step}, {current!r})")
        try:
            result = self.schedule(step, current)
        except TypeError:
            return to_number(self.schedule(step), owner, f"schedule({step})")
        return to_number(result, owner, f"schedule({step}, {current!r})")

    def _apply(self, step: int, unit: str) -> None:
        value = self._value_for(step)
        if value is None:
            return
        write_hyperparameter(self.model.optimizer, self.hyperparameter, value)
        if self.verbose and value != self._last:
            print(
                f"\n{unit} {step + 1}: HyperparameterScheduler setting {self.hyperparameter} "
                f"to {value}.",
                file=sys.stdout,
            )
        self._last = value

    def on_train_begin(self, logs=None):
        """Check that the optimizer has the hyperparameter, before any batch runs."""
        optimizer = getattr(self.model, "optimizer", None)
        require_hyperparameter(optimizer, self.hyperparameter, "HyperparameterScheduler")
        if self.hyperparameter in ("learning_rate", "lr"):
            check_settable_learning_rate(optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        """Set the value for this epoch (``per="epoch"``)."""
        if self.per == "epoch":
            self._apply(epoch, "Epoch")

    def wants_hook(self, hook: str) -> bool:
        """Return False for ``on_train_batch_begin`` when the value changes once per epoch."""
        if hook == "on_train_batch_begin" and self.per != "batch":
            return overridden_below(self, HyperparameterScheduler, hook)
        return True

    def on_train_batch_begin(self, batch, logs=None):
        """Set the value for this training batch (``per="batch"``) and count the batch."""
        if self.per == "batch":
            self._apply(self.batches_seen, "Batch")
            self.batches_seen += 1

    def on_epoch_end(self, epoch, logs=None):
        """Add the hyperparameter's value to the epoch's logs."""
        if logs is not None:
            logs[self.hyperparameter] = read_hyperparameter(self.model.optimizer, self.hyperparameter)

    def state_dict(self) -> dict[str, Any]:
        """Return the number of training batches seen (the per-batch step)."""
        return {"batches_seen": self.batches_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the batch count saved by :meth:`state_dict`."""
        self.batches_seen = int(state["batches_seen"])
