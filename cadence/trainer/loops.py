"""The fit, evaluate and predict loops: epoch, then batch, then hooks, readable top to bottom.

Which hooks fire when training stops
====================================

=====================================  ===================  ==============  ============
How training stops                     rest of the epoch    on_epoch_end    on_train_end
=====================================  ===================  ==============  ============
all epochs done                        --                   yes             yes
``model.stop_training = True``         skipped after the    yes (after      yes
(EarlyStopping, TerminateOnNaN, ...)   current batch        validation)
the data runs out (a generator)        skipped              yes             yes
an exception in a step or a callback   skipped              no              no
``KeyboardInterrupt`` (Ctrl-C)         skipped              no              no
SIGTERM/SIGUSR1 with BackupAndRestore  skipped after the    no              no
(:mod:`~cadence.trainer.preemption`)   current batch
SIGTERM/SIGUSR1 without a backup       as a stop            yes             yes
=====================================  ===================  ==============  ============

As in Keras, ``on_train_end`` means training finished normally; an exception or Ctrl-C
propagates to the caller at once, after the callback's name and hook are added to it as a note.
Every file cadence writes itself is complete at every instant, so nothing is left half-written, and
``BackupAndRestore`` resumes an interrupted run exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadence import distributed
from cadence.callbacks.callback_list import CallbackList
from cadence.callbacks.timing import format_callback_times
from cadence.data import EpochIterator, get_adapter, tree
from cadence.data.adapters import is_array_like
from cadence.data.class_weight import (
    apply_class_weight,
    check_class_weight,
    sample_weight_from_class_weight,
)
from cadence.logs import to_python
from cadence.optimizers import OptimizerMixin
from cadence.trainer import arguments, preemption
from cadence.trainer.state import TrainState


def _draw_seed() -> int:
    """Draw the run's data seed from torch's global generator (so manual_seed fixes it).

    In several processes every rank gets rank 0's seed, so all shuffle alike and shard alike.
    """
    return distributed.broadcast_object(int(torch.randint(0, 2**62, (1,)).item()))


def _mover(model: Any):
    """Return the function that moves a batch to the model's device, or None on the CPU."""
    device = model.device
    if device.type == "cpu":
        return None
    return lambda batch: tree.to_device(batch, device, non_blocking=True)


def _read_logs(model: Any, logs: Any, several: bool) -> dict[str, Any]:
    """Return the logs of an epoch or an evaluation as floats (over all ranks in several)."""
    logs = logs if logs is not None else model.get_metrics_result()
    return distributed.reduce_logs(model, logs) if several else to_python(logs)


def _keras2_params(model: Any, adapter: Any, do_validation: bool) -> dict[str, Any]:
    """Return tf.keras 2's extra ``params`` that ``fit`` knows: batch size, samples, validation.

    ``metrics`` (the log keys, ``val_`` ones included) is there when the model's metrics are
    already built; else :func:`_metric_names` fills it in after the first training step.
    """
    params: dict[str, Any] = {"do_validation": do_validation}
    samples = getattr(adapter, "num_samples", None)
    batch_size = getattr(adapter, "batch_size", None)
    if isinstance(samples, int):
        params["samples"] = samples
    if isinstance(batch_size, int):
        params["batch_size"] = batch_size
    parts = (model._compiled_loss, model._compiled_metrics)
    if all(part is None or part.built for part in parts):
        params["metrics"] = _metric_names(model, do_validation)
    return params


def _metric_names(model: Any, do_validation: bool) -> list[str]:
    """Return tf.keras 2's ``params["metrics"]``: the log keys, ``val_`` ones included."""
    names = list(model.metrics_names)
    return names + [f"val_{name}" for name in names] if do_validation else names


def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu()


def _new_scaler(model: Any) -> Any:
    """Return a fresh gradient scaler for a float16 run (``precision="16-mixed"``), else None."""
    if model.precision != "16-mixed":
        return None
    return torch.amp.GradScaler(model.device.type)


def _with_class_weight(batch: Any, table: dict[int, float]) -> Any:
    return apply_class_weight(batch, table)


def fit(
    model: Any,
    x: Any = None,
    y: Any = None,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: int | str | bool = "auto",
    callbacks: Any = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    class_weight: dict | None = None,
    sample_weight: Any = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_batch_size: int | None = None,
    validation_freq: int | list[int] = 1,
    workers: int | None = None,
    use_multiprocessing: bool | None = None,
    max_queue_size: int | None = None,
    profile_callbacks: bool = False,
) -> Any:
    """Train ``model`` for ``epochs`` epochs; Keras's arguments with Keras's meaning.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` (Keras 2's ``fit`` arguments)
    load a Sequence or a Dataset in torch ``DataLoader`` worker processes; ``None`` keeps a
    Sequence's own settings.

    ``profile_callbacks=True`` times every call of every callback hook and prints a table of
    total and mean time per callback and hook at the end of training; the rows are also
    ``history.callback_times`` (``None`` without profiling).

    Returns:
        The :class:`~cadence.callbacks.History` of the run (also ``model.history``).
    """
    arguments.require_compiled(model, "fit")
    arguments.check_fit(
        x, y, batch_size, epochs, verbose, validation_split, validation_data, class_weight,
        sample_weight, initial_epoch, steps_per_epoch, validation_steps, validation_batch_size,
        validation_freq, shuffle, workers, use_multiprocessing, max_queue_size,
    )
    verbose = arguments.normalize_verbose(verbose)
    loader = arguments.loader_options(model, workers, use_multiprocessing, max_queue_size)
    if validation_split:
        (x, y, sample_weight), validation_data = arguments.split_validation(
            x, y, sample_weight, validation_split
        )
    table = check_class_weight(class_weight) if class_weight is not None else None
    if table is not None and is_array_like(x) and y is not None:
        sample_weight = sample_weight_from_class_weight(y, table)
        table = None
    state = TrainState(
        epoch=initial_epoch, data_seed=_draw_seed(), scaler=_new_scaler(model),
        accumulation=model.gradient_accumulation_steps, model=model,
    )
    adapter = get_adapter(x, y, sample_weight, batch_size, shuffle=shuffle, seed=state.data_seed,
                          **loader)
    several = distributed.is_initialized()  # torch.distributed: see cadence.distributed.
    if several:
        distributed.shard_adapter(adapter, training=True)
    iterator = EpochIterator(adapter, steps_per_epoch)
    state.epoch_iterator = iterator
    validation = arguments.validation_adapter(
        validation_data, validation_batch_size or batch_size, **loader
    )
    if several and validation is not None:
        distributed.shard_adapter(validation, training=False)
    callback_list = CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model,
        profile=profile_callbacks, epochs=epochs, steps=iterator.steps, verbose=verbose,
        **_keras2_params(model, adapter, validation is not None),
    )
    callback_list.set_run(state)
    model._train_state = state  # What the model's own step reads: the scaler, the accumulation.
    model.stop_training = False
    model.train()
    model.optimizer.zero_grad(set_to_none=True)  # Accumulation starts afresh with the run.
    move = _mover(model)
    stop = reduce_batch = None
    if several:
        distributed.wrap_model(model)
        stop = distributed.StopAgreement(model, callback_list.may_stop_each_batch())
        reduce_batch = callback_list.needs_plain_logs("on_train_batch_end")
    train_step = model.make_train_function()
    with preemption.guard(model, callback_list, state) as preempt:  # SIGTERM: back up, exit.
        callback_list.on_train_begin()
        if several:  # Every rank has read a backup before rank 0 may write or delete one.
            distributed.barrier()
        # A restored backup (BackupAndRestore) sets the position, the last epoch's logs, and
        # stop_training when it was taken after training was told to stop.
        training_logs: dict[str, Any] | None = state.epoch_logs
        stopped_before = state.restored and model.stop_training
        epoch = state.epoch
        while epoch < epochs:
            if state.step_in_epoch == 0:
                if stopped_before:
                    break
                model.reset_metrics()
                callback_list.on_epoch_begin(epoch)
            model.train()
            logs: Any = None
            hooked = callback_list.wants_batch_hooks("train")  # Else both batch hooks do nothing.
            for batch in () if stopped_before else iterator.epoch():
                step = state.step_in_epoch
                if hooked:
                    callback_list.on_train_batch_begin(step)
                if table is not None:
                    batch = _with_class_weight(batch, table)
                logs = train_step(batch if move is None else move(batch))
                if "metrics" not in callback_list.params:  # Built by the run's first step.
                    callback_list.params["metrics"] = _metric_names(model, validation is not None)
                state.step_in_epoch += 1
                state.global_step += 1
                if hooked:
                    callback_list.on_train_batch_end(
                        step, distributed.reduce_logs(model, logs) if reduce_batch else logs
                    )
                preempt.after_batch()
                if model.stop_training if stop is None else stop.after_batch():
                    break
            adapter.on_epoch_end()
            epoch_logs = _read_logs(model, logs, several)
            if validation is not None and arguments.should_validate(epoch, validation_freq):
                val_logs = run_evaluation(model, validation, callback_list, validation_steps)
                epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
            state.epoch = epoch + 1
            state.step_in_epoch = 0
            state.epoch_logs = epoch_logs  # The same dict: what callbacks add to it is backed up.
            callback_list.on_epoch_end(epoch, epoch_logs)
            preempt.after_epoch()
            training_logs = epoch_logs
            if stop is not None:
                stop.after_epoch()
            if model.stop_training or iterator.exhausted:
                break
            epoch += 1
        if epochs > 0 and isinstance(model.optimizer, OptimizerMixin):
            model.optimizer.finalize_variable_values()  # Keras 3: EMA weights replace the raw ones.
        callback_list.on_train_end(training_logs)
    model.history = callback_list.history
    model.history.callback_times = callback_list.callback_times() if profile_callbacks else None
    if profile_callbacks:
        print(format_callback_times(model.history.callback_times), flush=True)
    return callback_list.history


def run_evaluation(
    model: Any, adapter: Any, callbacks: CallbackList, steps: int | None = None
) -> dict[str, Any]:
    """Run one evaluation pass with the ``on_test_*`` hooks; return its logs as floats."""
    was_training = model.training
    model.eval()
    model.reset_metrics()
    model.stop_evaluating = False
    move = _mover(model)
    test_step = model.make_test_function()
    callbacks.on_test_begin()
    hooked = callbacks.wants_batch_hooks("test")
    logs: Any = None
    with torch.no_grad(), distributed.gathered(model):  # FSDP: whole weights, gathered once.
        for step, batch in enumerate(EpochIterator(adapter, steps).epoch()):
            if hooked:
                callbacks.on_test_batch_begin(step)
            logs = test_step(batch if move is None else move(batch))
            if hooked:
                callbacks.on_test_batch_end(step, logs)
            if model.stop_evaluating:
                break
    result = _read_logs(model, logs, distributed.is_initialized())
    callbacks.on_test_end(result)
    model.train(was_training)
    return result


def evaluate(
    model: Any,
    x: Any = None,
    y: Any = None,
    batch_size: int | None = None,
    verbose: int | str | bool = "auto",
    sample_weight: Any = None,
    steps: int | None = None,
    callbacks: Any = None,
    return_dict: bool = False,
    workers: int | None = None,
    use_multiprocessing: bool | None = None,
    max_queue_size: int | None = None,
) -> Any:
    """Evaluate ``model``: the loss and metrics over the data, with ``on_test_*`` hooks.

    Returns:
        A dict with ``return_dict=True``; otherwise the loss alone when there are no metrics,
        else the list of values in ``model.metrics_names`` order.
    """
    arguments.require_compiled(model, "evaluate")
    arguments.check_common(x, y, batch_size, verbose, sample_weight, steps)
    verbose = arguments.normalize_verbose(verbose)
    adapter = get_adapter(x, y, sample_weight, batch_size, shuffle=False, **arguments.loader_options(
        model, workers, use_multiprocessing, max_queue_size))
    if distributed.is_initialized():
        distributed.shard_adapter(adapter, training=False)
    callback_list = CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, epochs=1,
        steps=steps if steps is not None else adapter.num_batches, verbose=verbose,
    )
    logs = run_evaluation(model, adapter, callback_list, steps)
    if return_dict:
        return logs
    values = [logs[name] for name in model.metrics_names if name in logs]
    values += [value for key, value in logs.items() if key not in model.metrics_names]
    return values[0] if len(values) == 1 else values


def predict(
    model: Any,
    x: Any,
    batch_size: int | None = None,
    verbose: int | str | bool = "auto",
    steps: int | None = None,
    callbacks: Any = None,
    workers: int | None = None,
    use_multiprocessing: bool | None = None,
    max_queue_size: int | None = None,
) -> Any:
    """Return the model's outputs for ``x`` as numpy arrays, with ``on_predict_*`` hooks."""
    arguments.check_common(x, None, batch_size, verbose, None, steps)
    verbose = arguments.normalize_verbose(verbose)
    adapter = get_adapter(x, None, None, batch_size, shuffle=False, **arguments.loader_options(
        model, workers, use_multiprocessing, max_queue_size))
    several = distributed.is_initialized()
    unit = distributed.shard_adapter(adapter, training=False) if several else None
    callback_list = CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, epochs=1,
        steps=steps if steps is not None else adapter.num_batches, verbose=verbose,
    )
    if getattr(model, "device", None) is None or not model.compiled:
        model.device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    model.stop_predicting = False
    move = _mover(model)
    predict_step = model.make_predict_function()
    outputs: list[Any] = []
    callback_list.on_predict_begin()
    hooked = callback_list.wants_batch_hooks("predict")  # Else both batch hooks do nothing.
    with torch.no_grad(), distributed.gathered(model):  # FSDP: whole weights, gathered once.
        for step, batch in enumerate(EpochIterator(adapter, steps).epoch()):
            if hooked:
                callback_list.on_predict_batch_begin(step)
            batch_outputs = predict_step(batch if move is None else move(batch))
            if hooked:
                callback_list.on_predict_batch_end(step, {"outputs": batch_outputs})
            outputs.append(tree.map_structure(_to_host, batch_outputs))
            if model.stop_predicting:
                break
    callback_list.on_predict_end()
    model.train(was_training)
    if several:  # Every rank's outputs, in the data's order, on every rank.
        return distributed.gather_predictions(adapter, unit, outputs, _concatenate)
    if not outputs:
        raise ValueError("predict received no batches: the data is empty.")
    return _concatenate(outputs)


def _concatenate(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, dict):
        return {key: _concatenate([o[key] for o in outputs]) for key in first}
    if isinstance(first, tuple | list):
        return type(first)(_concatenate([o[i] for o in outputs]) for i in range(len(first)))
    merged = torch.cat(outputs, dim=0)
    if merged.dtype in (torch.bfloat16, torch.float16):
        merged = merged.float()
    return np.asarray(merged.numpy())
