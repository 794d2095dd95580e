"""TorchScheduler: a ``torch.optim.lr_scheduler`` object stepped by the training loop."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch

from cadence.callbacks.callback import Callback, overridden_below
from cadence.callbacks.hyperparameter_scheduler import check_per
from cadence.optimizers import check_settable_learning_rate

_OWNER = "TorchScheduler"


def _needs_metric(scheduler: Any) -> bool:
    """Return whether ``scheduler.step`` takes a monitored value (``ReduceLROnPlateau``-style)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return True
    try:
        parameters = list(inspect.signature(scheduler.step).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(
        p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in parameters
    )


class TorchScheduler(Callback):
    """Step any ``torch.optim.lr_scheduler`` scheduler from ``fit``, per epoch or per batch.

    Build the scheduler on ``model.optimizer`` after ``model.compile(...)`` (or, when you
    compiled with a torch optimizer object, on that object, before or after ``compile``: the
    ``TorchOptimizerWrapper`` that ``model.optimizer`` then is shares its parameter groups),
    then pass it in::

        model.compile(optimizer="sgd", loss="mse")
        steps = math.ceil(len(x) / 32)
        sched = torch.optim.lr_scheduler.OneCycleLR(model.optimizer, max_lr=0.1, epochs=5,
                                                    steps_per_epoch=steps)
        model.fit(x, y, batch_size=32, epochs=5, callbacks=[TorchScheduler(sched, per="batch")])

    ``per="epoch"`` calls ``scheduler.step()`` at every epoch end (after validation), the usual
    torch loop; ``per="batch"`` calls it after every training batch in which the optimizer stepped
    (OneCycleLR, CyclicLR, warm-up schedules): with ``gradient_accumulation_steps=k`` once every
    k batches, and not after a step the float16 gradient scaler skipped.

    A ``ReduceLROnPlateau``-style scheduler (one whose ``step`` requires a value) is stepped per
    epoch with ``logs[monitor]``; if that key is missing from an epoch's logs (e.g. no validation
    that epoch) the step is skipped and one warning names the keys that exist.

    At each epoch end ``logs["learning_rate"]`` is the first parameter group's learning rate
    during the epoch's last training batch (read before the epoch-end step), as Keras logs it.

    :meth:`state_dict` / :meth:`load_state_dict` save and restore the torch scheduler's own state,
    so ``BackupAndRestore`` resumes it exactly (the learning rate itself is in the optimizer's
    state). Per-batch stepping adds no host-device synchronisation.

    Args:
        scheduler: A ``torch.optim.lr_scheduler`` object (or any object with ``optimizer``,
            ``step``, ``state_dict`` and ``load_state_dict``) built on ``model.optimizer`` or on
            the torch optimizer it wraps.
        per: ``"epoch"`` or ``"batch"``.
        monitor: The epoch-log key fed to a ``ReduceLROnPlateau``-style scheduler; defaults to
            ``"val_loss"``. Only for such schedulers.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True  # batch logs are never read, so per-batch steps cost no conversion

    def __init__(self, scheduler: Any, per: str = "epoch", monitor: str | None = None) -> None:
        super().__init__()
        missing = [
            name for name in ("optimizer", "step", "state_dict", "load_state_dict")
            if not hasattr(scheduler, name)
        ]
        if missing:
            raise TypeError(
                f"{_OWNER}: scheduler must be a torch.optim.lr_scheduler object built on "
                f"model.optimizer; received {type(scheduler).__name__}, which has no "
                f"{', '.join(missing)}."
            )
        self.scheduler = scheduler
        self.per = check_per(per, _OWNER)
        self.needs_metric = _needs_metric(scheduler)
        if monitor is not None and not self.needs_metric:
            raise ValueError(
                f"{_OWNER}: monitor is only used by schedulers whose step() takes a value, like "
                f"ReduceLROnPlateau; {type(scheduler).__name__} takes none. Received "
                f"monitor={monitor!r}."
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"{_OWNER}: monitor must be a log key; received monitor={monitor!r}.")
        if self.needs_metric and per == "batch":
            raise ValueError(
                f"{_OWNER}: {type(scheduler).__name__} is fed a monitored value from the epoch "
                "logs, so it steps per epoch; received per='batch'."
            )
        self.monitor = monitor if monitor is not None else "val_loss"
        self._warned = False
        self._last_lr: Any = None
        self._iterations_before: int | None = None

    def on_train_begin(self, logs=None):
        """Check that the scheduler drives ``model.optimizer``, before any batch runs."""
        optimizer = getattr(self.model, "optimizer", None)
        driven = self.scheduler.optimizer
        if driven is not optimizer and driven is not getattr(optimizer, "inner_optimizer", None):
            raise ValueError(
                f"{_OWNER}: the scheduler was built on another optimizer "
                f"({type(self.scheduler.optimizer).__name__} at "
                f"{id(self.scheduler.optimizer):#x}) than model.optimizer "
                f"({type(optimizer).__name__} at {id(optimizer):#x}). Build it on model.optimizer "
                "after model.compile(...), e.g. StepLR(model.optimizer, step_size=10)."
            )
        check_settable_learning_rate(optimizer)  # A schedule would overwrite the scheduler's rate.

    def _current_lr(self) -> Any:
        lr = self.scheduler.optimizer.param_groups[0]["lr"]
        return lr.detach().clone() if isinstance(lr, torch.Tensor) else lr

    def _iterations(self) -> int | None:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return iterations if isinstance(iterations, int) else None

    def wants_hook(self, hook: str) -> bool:
        """Return False for the training batch hooks when the scheduler steps once per epoch."""
        if hook in ("on_train_batch_begin", "on_train_batch_end") and self.per != "batch":
            return overridden_below(self, TorchScheduler, hook)
        return True

    def on_train_batch_begin(self, batch, logs=None):
        """Remember the optimizer's step count, to tell whether this batch steps it."""
        if self.per == "batch":
            self._iterations_before = self._iterations()

    def on_train_batch_end(self, batch, logs=None):
        """Step a per-batch scheduler after a batch in which the optimizer stepped."""
        if self.per != "batch":
            return
        iterations = self._iterations()
        if iterations is not None and iterations == self._iterations_before:
            return  # gradient accumulation, or a step skipped by the float16 gradient scaler
        self._last_lr = self._current_lr()
        self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        """Log the epoch's learning rate, then step a per-epoch scheduler."""
        logs = logs if logs is not None else {}
        present = list(logs)
        value = logs.get(self.monitor) if self.needs_metric else None
        lr = self._last_lr if self.per == "batch" and self._last_lr is not None else self._current_lr()
        logs["learning_rate"] = float(lr)
        if self.per != "epoch":
            return
        if not self.needs_metric:
            self.scheduler.step()
            return
        if value is None:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{_OWNER}: {type(self.scheduler).__name__} is conditioned on "
                    f"{self.monitor!r}, which is not in the epoch logs; the scheduler was not "
                    f"stepped. Available keys: {', '.join(present)}.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return
        self.scheduler.step(float(value))

    def state_dict(self) -> dict[str, Any]:
        """Return the torch scheduler's state."""
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the torch scheduler's state saved by :meth:`state_dict`."""
        self.scheduler.load_state_dict(state["scheduler"])
