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
- both are on the first prediction's device, and the model was not recompiled (nor given
  another optimizer) since the plan was made.

Any other batch goes through the general step (from the prediction on, so the model is still
called once per batch). The model is called as ``train_step`` calls it: its wrapped module
directly while that is the same thing, through ``__call__`` once it has hooks or runs under
DDP. A planned step computes exactly what the general one does, with the same kernels (for
``mse_loss``/``l1_loss`` the native kernel ``F.mse_loss`` calls after its checks), so its
values are the same to the last bit.

Nothing is planned when a step is overridden (``train_step``, ``test_step``,
``compute_loss``, ``compute_metrics``, ``backward_and_step``, ``__call__`` or
``get_metrics_result``), with mixed precision, gradient accumulation, or several outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from cadence.data import tree
from cadence.overriding import defining_class, redefined_below

#: The Model methods a planned step stands for; a subclass overriding one is never planned.
_STEP_METHODS = (
    "train_step", "test_step", "compute_loss", "compute_metrics", "backward_and_step",
    "__call__", "get_metrics_result", "autocast", "_train_on_prediction", "_test_on_prediction",
)


def _kernel_speaks_for(obj: Any, kernel: str, methods: tuple[str, ...]) -> bool:
    """Whether ``obj.<kernel>`` still stands for ``methods``: none is redefined below it.

    A subclass of a built-in loss or metric that overrides ``__call__``, ``fused``,
    ``update_state`` or ``fused_sum`` (or an instance given its own) must go the general way:
    the built-in kernel would skip what it changed.
    """
    kernel_owner = defining_class(type(obj), kernel)
    return kernel_owner is not None and not redefined_below(obj, kernel_owner, (kernel, *methods))


def _metric_updaters(model: Any, y: Tensor, y_pred: Tensor) -> list[Callable[[Tensor, Tensor, int], None]]:
    """Return one ``update(y, y_pred, samples)`` per compiled metric, kernels decided now."""
    updaters: list[Callable[[Tensor, Tensor, int], None]] = []
    for metric, _, _ in model._compiled_metrics.entries:
        # Without sample weights, a weighted metric is updated as an unweighted one.
        kernel = None
        if _kernel_speaks_for(metric, "fused_sum_kernel", ("update_state", "fused_sum", "_add")):
            kernel = metric.fused_sum_kernel(y, y_pred)
        if kernel is not None and metric.device == y_pred.device and metric._states:
            add = metric._add

            def update(target: Tensor, prediction: Tensor, samples: int, kernel=kernel, add=add) -> None:
                add(kernel(target, prediction), samples)
        else:
            update_state = metric.update_state

            def update(target: Tensor, prediction: Tensor, samples: int, update_state=update_state) -> None:
                update_state(target, prediction, sample_weight=None)
        updaters.append(update)
    return updaters


def _loss_kernel(model: Any, y: Tensor, y_pred: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """Return ``kernel(y, y_pred)``: the compiled loss of a batch like this one."""
    compiled_loss = model._compiled_loss
    loss = compiled_loss.losses[0]
    kernel = None
    if _kernel_speaks_for(loss, "fused_kernel", ("__call__", "fused")):
        kernel = loss.fused_kernel(y, y_pred)
    weight = compiled_loss.weights[0]
    if kernel is None:
        def kernel(target: Tensor, prediction: Tensor) -> Tensor:
            return compiled_loss(target, prediction, None)
    elif weight != 1.0:
        unweighted = kernel

        def kernel(target: Tensor, prediction: Tensor) -> Tensor:
            return unweighted(target, prediction) * weight
    return kernel


#: Returned by a planned step whose model was recompiled since the plan was made.
_STALE = object()


def _plan(model: Any, y: Tensor, y_pred: Tensor, training: bool, general: Callable[[Any], Any]):
    """Return the planned step for batches like this one: ``run(data) -> logs or _STALE``."""
    compiled_loss, compiled_metrics, optimizer = (
        model._compiled_loss, model._compiled_metrics, model.optimizer
    )
    loss_kernel = _loss_kernel(model, y, y_pred)
    updaters = tuple(_metric_updaters(model, y, y_pred))
    add_loss = model._loss_tracker._add
    finish = model._train_on_prediction if training else model._test_on_prediction
    logs = model.get_metrics_result()  # The same lazy view until the model is recompiled.
    modules = model._modules
    state = model.__dict__
    device = y_pred.device
    y_dtype, y_rank, y_tail = y.dtype, y.dim(), y.shape[1:]
    pred_dtype, pred_rank, pred_tail = y_pred.dtype, y_pred.dim(), y_pred.shape[1:]

    def run(data: Any) -> Any:
        if (
            model._compiled_metrics is not compiled_metrics
            or model._compiled_loss is not compiled_loss
            or model.optimizer is not optimizer
        ):
            return _STALE
        if type(data) is not tuple or len(data) != 2 or type(data[1]) is not Tensor:
            return general(data)
        x, y = data
        if model._ddp_route is None and model._wraps_plainly():
            y_pred = modules["module"](x)
        else:
            y_pred = model(x)
        if type(y_pred) is not Tensor or y_pred.dim() != pred_rank or y.dim() != y_rank:
            return finish(x, y, y_pred, None)
        y_shape, pred_shape = y.shape, y_pred.shape
        if not (
            y.dtype is y_dtype and y_pred.dtype is pred_dtype and y_shape[0] == pred_shape[0]
            and y_shape[1:] == y_tail and pred_shape[1:] == pred_tail
            and y_pred.device == device and y.device == device
        ):
            return finish(x, y, y_pred, None)
        loss = loss_kernel(y, y_pred)
        count = x.shape[0] if type(x) is Tensor else tree.batch_size_of(x)
        add_loss(loss.detach(), count, alpha=count)
        if training:  # As backward_and_step without scaling or accumulation.
            loss.backward()
            state["_micro_step"] += 1  # Part of a backup.
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            y_pred = y_pred.detach()
        samples = y_shape[0]
        for update in updaters:
            update(y, y_pred, samples)
        return logs

    return run


def _plannable_batch(model: Any, y: Tensor, y_pred: Any) -> bool:
    """Whether batches like this one can be planned (the settings were checked before the step)."""
    if type(y_pred) is not Tensor:
        return False
    if y_pred.dim() == 0 or y.dim() == 0 or y.shape[0] == 0:  # Nothing a batch plan can cover.
        return False
    compiled_loss, compiled_metrics = model._compiled_loss, model._compiled_metrics
    if not compiled_loss.built or compiled_loss.names is not None or len(compiled_loss.losses) != 1:
        return False
    if compiled_loss.losses[0] is None or not compiled_metrics.built or not compiled_metrics.single_output:
        return False
    tracker = model._loss_tracker
    return bool(tracker._states) and tracker.device == y_pred.device


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

    return redefined_below(model, Model, _STEP_METHODS)


def _planned(model: Any, training: bool) -> Callable[[Any], Any]:
    """Return the step: the general one until a plan is made from a batch, then the plan."""
    general = model.train_step if training else model.test_step
    finish = model._train_on_prediction if training else model._test_on_prediction
    run: Callable[[Any], Any] | None = None
    refused: tuple | None = None  # The compiled objects no plan could be made for.

    def step(data: Any) -> Any:
        nonlocal run, refused
        if run is not None:
            logs = run(data)
            if logs is not _STALE:
                return logs
            run = None
        if type(data) is not tuple or len(data) != 2 or type(data[1]) is not Tensor:
            return general(data)
        compiled = (model._compiled_loss, model._compiled_metrics, model.optimizer)
        if refused is not None and all(a is b for a, b in zip(compiled, refused, strict=True)):
            return general(data)
        if not _settings_plannable(model):
            refused = compiled
            return general(data)
        x, y = data
        y_pred = model(x)
        logs = finish(x, y, y_pred, None)  # The general way, which builds the loss and metrics.
        if _plannable_batch(model, y, y_pred):
            run = _plan(model, y, y_pred, training, general)
        else:
            refused = compiled
        return logs

    return step


def train_function(model: Any) -> Callable[[Any], Any]:
    """Return the function ``fit`` calls with every batch: a planned ``model.train_step``.

    Returns ``model.train_step`` itself when a step method is overridden.
    """
    if _steps_overridden(model):
        return model.train_step
    return _planned(model, training=True)


def test_function(model: Any) -> Callable[[Any], Any]:
    """Return the function ``evaluate`` calls with every batch: a planned ``model.test_step``.

    Returns ``model.test_step`` itself when a step method is overridden.
    """
    if _steps_overridden(model):
        return model.test_step
    return _planned(model, training=False)
