"""Planned steps: ``Model.train_step`` and ``test_step`` with their decisions taken once.

The built-in steps decide, on every batch, how to unpack it, how to call the model, which
loss kernel fits the targets' shape and dtype, and how each metric is updated. On a small
model those decisions cost as much as the arithmetic. After the first batch has gone the
general way (which builds the compiled loss and metrics), :func:`train_function` and
:func:`test_function` take the decisions once, for that batch's *signature*, and return a
step that only checks that each new batch has the same signature:

- the batch is an ``(x, y)`` tuple with a tensor ``y`` (no sample weights);
- the prediction is one tensor with ``y``'s batch size and the first batch's dtype and sizes
  after the batch axis, and ``y`` has the first batch's dtype and sizes after the batch axis;
- both are on the model's device; the model was not recompiled and gained no module hooks.

Any other batch goes through the general step (from the prediction on, so the model is still
called once per batch). A planned step computes exactly what the general one does, with the
same kernels, so its values are the same to the last bit.

Nothing is planned when a step is overridden (``train_step``, ``test_step``,
``compute_loss``, ``compute_metrics``, ``backward_and_step``, ``__call__`` or
``get_metrics_result``), with mixed precision, gradient accumulation, or several outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from cadence.data import tree

#: The Model methods a planned step stands for; a subclass overriding one is never planned.
_STEP_METHODS = (
    "train_step", "test_step", "compute_loss", "compute_metrics", "backward_and_step",
    "__call__", "get_metrics_result",
)


class _Signature:
    """What a plan assumes about a batch: ``y`` and the prediction's dtypes and trailing sizes."""

    __slots__ = ("device", "key")

    def __init__(self, y: Tensor, y_pred: Tensor) -> None:
        self.device = y_pred.device
        self.key = (y.dtype, y.shape[1:], y_pred.dtype, y_pred.shape[1:])

    def matches(self, y: Tensor, y_pred: Any) -> bool:
        """Whether a new ``(y, y_pred)`` has this signature."""
        return (
            type(y_pred) is Tensor
            and y.shape[0] == y_pred.shape[0]
            and (y.dtype, y.shape[1:], y_pred.dtype, y_pred.shape[1:]) == self.key
            and y_pred.device == self.device
            and y.device == self.device
        )


def _metric_updaters(model: Any, y: Tensor, y_pred: Tensor) -> list[Callable[[Tensor, Tensor, int], None]]:
    """Return one ``update(y, y_pred, batch_size)`` per compiled metric, kernels decided now."""
    compiled = model._compiled_metrics
    updaters: list[Callable[[Tensor, Tensor, int], None]] = []
    for metric, _, _ in compiled.entries:
        # Without sample weights, a weighted metric is updated as an unweighted one.
        kernel_of = getattr(metric, "fused_sum_kernel", None)
        kernel = kernel_of(y, y_pred) if kernel_of is not None else None
        if kernel is not None and metric.device == y_pred.device and metric._states:
            add = metric._add

            def update(target: Tensor, prediction: Tensor, count: int, kernel=kernel, add=add) -> None:
                add(kernel(target, prediction), count)
        else:
            update_state = metric.update_state

            def update(target: Tensor, prediction: Tensor, count: int, update_state=update_state) -> None:
                update_state(target, prediction, sample_weight=None)
        updaters.append(update)
    return updaters


class _Plan:
    """The decisions of a planned step, taken from one batch's ``y`` and prediction."""

    def __init__(self, model: Any, y: Tensor, y_pred: Tensor) -> None:
        self.model = model
        self.compiled_loss = model._compiled_loss
        self.compiled_metrics = model._compiled_metrics
        self.optimizer = model.optimizer
        self.loss_tracker = model._loss_tracker
        self.signature = _Signature(y, y_pred)
        loss = self.compiled_loss.losses[0]
        kernel = loss.fused_kernel(y, y_pred) if hasattr(loss, "fused_kernel") else None
        weight = self.compiled_loss.weights[0]
        if kernel is None:
            compiled_loss = self.compiled_loss

            def kernel(target: Tensor, prediction: Tensor) -> Tensor:
                return compiled_loss(target, prediction, None)
        elif weight != 1.0:
            unweighted = kernel

            def kernel(target: Tensor, prediction: Tensor) -> Tensor:
                return unweighted(target, prediction) * weight
        self.loss = kernel
        self.update_metrics = _metric_updaters(model, y, y_pred)

    def current(self) -> bool:
        """Whether the model still has the compiled loss, metrics and optimizer planned for."""
        model = self.model
        return (
            model._compiled_metrics is self.compiled_metrics
            and model._compiled_loss is self.compiled_loss
            and model.optimizer is self.optimizer
        )

    def train(self, x: Any, y: Tensor, y_pred: Tensor) -> Any:
        """Run the rest of a training step (loss, backward, optimizer step, metrics)."""
        model = self.model
        loss = self.loss(y, y_pred)
        count = x.shape[0] if type(x) is Tensor else tree.batch_size_of(x)
        self.loss_tracker._add(loss.detach(), count, alpha=count)
        loss.backward()
        state = model.__dict__  # As backward_and_step: the micro-step count is part of a backup.
        state["_micro_step"] += 1
        optimizer = self.optimizer
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        prediction = y_pred.detach()
        samples = y.shape[0]
        for update in self.update_metrics:
            update(y, prediction, samples)
        return model.get_metrics_result()

    def test(self, x: Any, y: Tensor, y_pred: Tensor) -> Any:
        """Run the rest of an evaluation step (loss and metrics)."""
        loss = self.loss(y, y_pred)
        count = x.shape[0] if type(x) is Tensor else tree.batch_size_of(x)
        self.loss_tracker._add(loss.detach(), count, alpha=count)
        samples = y.shape[0]
        for update in self.update_metrics:
            update(y, y_pred, samples)
        return self.model.get_metrics_result()


def _plan_from(model: Any, y: Tensor, y_pred: Any) -> _Plan | None:
    """Return the plan for batches like this one, or ``None`` when they cannot be planned."""
    if type(y_pred) is not Tensor or not _settings_plannable(model):
        return None
    compiled_loss, compiled_metrics = model._compiled_loss, model._compiled_metrics
    if not compiled_loss.built or compiled_loss.names is not None or len(compiled_loss.losses) != 1:
        return None
    if compiled_loss.losses[0] is None or not compiled_metrics.built:
        return None
    if not compiled_metrics.single_output:
        return None
    tracker = model._loss_tracker
    if not tracker._states or tracker.device != y_pred.device:
        return None
    return _Plan(model, y, y_pred)


def _settings_plannable(model: Any) -> bool:
    return (
        model._compiled_loss is not None
        and model._compiled_metrics is not None
        and model._autocast_dtype is None
        and model._scaler is None
        and model._accumulation == 1
    )


def _steps_overridden(model: Any) -> bool:
    """Whether ``model`` (its class or the instance) replaces a method a plan stands for."""
    from cadence.model import Model

    cls = type(model)
    return any(
        getattr(cls, name) is not getattr(Model, name) or name in model.__dict__
        for name in _STEP_METHODS
    )


def _forward(model: Any, x: Any) -> Any:
    """Call the model as ``train_step`` does (its wrapped module directly when that is the same)."""
    if model._ddp_route is None and model._wraps_plainly():
        return model._modules["module"](x)
    return model(x)


def _planned(
    model: Any, general: Callable[[Any], Any], finish_name: str, run_name: str
) -> Callable[[Any], Any]:
    """Return the planned step: ``general`` until a plan is made, then the plan's ``run_name``."""
    plan: _Plan | None = None
    refused: tuple | None = None  # The compiled objects no plan could be made for.
    finish = getattr(model, finish_name)

    def step(data: Any) -> Any:
        nonlocal plan, refused
        if type(data) is not tuple or len(data) != 2 or type(data[1]) is not Tensor:
            return general(data)
        if plan is not None and plan.current():
            x, y = data
            y_pred = _forward(model, x)
            if plan.signature.matches(y, y_pred):
                return getattr(plan, run_name)(x, y, y_pred)
            return finish(x, y, y_pred, None)
        compiled = (model._compiled_loss, model._compiled_metrics, model.optimizer)
        if refused is not None and all(a is b for a, b in zip(compiled, refused, strict=True)):
            return general(data)
        if not _settings_plannable(model):
            refused = compiled
            return general(data)
        x, y = data
        y_pred = _forward(model, x)
        logs = finish(x, y, y_pred, None)  # The general way, which builds the loss and metrics.
        plan = _plan_from(model, y, y_pred)
        if plan is None:
            refused = compiled
        return logs

    return step


def train_function(model: Any) -> Callable[[Any], Any]:
    """Return the function ``fit`` calls with every batch: a planned ``model.train_step``.

    Returns ``model.train_step`` itself when a step method is overridden.
    """
    if _steps_overridden(model):
        return model.train_step
    return _planned(model, model.train_step, "_train_on_prediction", "train")


def test_function(model: Any) -> Callable[[Any], Any]:
    """Return the function ``evaluate`` calls with every batch: a planned ``model.test_step``.

    Returns ``model.test_step`` itself when a step method is overridden.
    """
    if _steps_overridden(model):
        return model.test_step
    return _planned(model, model.test_step, "_test_on_prediction", "test")
