"""The model's part of a run's state: weights, optimizer, accumulated gradients, metric states.

:class:`~cadence.trainer.state.TrainState` saves, checks and loads it with the rest of the run
(:class:`~cadence.callbacks.BackupAndRestore` writes it all in one file), and
:func:`cadence.load_model` checks a saved model's weights and optimizer with the same
:func:`check_weights` and :func:`check_optimizer`. Every check runs before anything is changed and
names the file and what differs.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from cadence.optimizers import updating_optimizer


def model_state_dict(model: Any, pending_micro_steps: int) -> dict[str, Any]:
    """Return everything of ``model`` that training changes, to resume it exactly.

    Args:
        model: The model being trained.
        pending_micro_steps: Backward passes since the last optimizer step (gradient
            accumulation): when not 0, the gradients accumulated so far are saved too.

    Returns:
        The weights, the optimizer's state and class, those gradients (or ``None``), every
        metric's state (the running averages of a partly done epoch) and ``stop_training``.
    """
    optimizer = model.optimizer
    grads = None
    if pending_micro_steps:
        grads = [p.grad.detach() if p.grad is not None else None for p in model.parameters()]
    return {
        "weights": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_class": (
            type(updating_optimizer(optimizer)).__name__ if optimizer is not None else None
        ),
        "grads": grads,
        "metrics": [
            {"name": metric.name, "state": metric.state_dict()}
            for metric in model.metrics
            if callable(getattr(metric, "state_dict", None))
        ],
        "stop_training": bool(model.stop_training),
    }


def check_weights(model: Any, weights: Any, path: Any) -> None:
    """Raise a ``ValueError`` naming ``path`` when ``weights`` do not fit ``model``'s layout."""
    if not isinstance(weights, dict):
        raise ValueError(
            f"'{os.fspath(path)}' holds no weights dict (found {type(weights).__name__})."
        )
    current = model.state_dict()
    missing = [key for key in current if key not in weights]
    unexpected = [key for key in weights if key not in current]
    shapes = [
        f"{key}: {tuple(weights[key].shape)} in the file, {tuple(value.shape)} in the model"
        for key, value in current.items()
        if key in weights
        and isinstance(value, torch.Tensor)
        and isinstance(weights[key], torch.Tensor)
        and tuple(weights[key].shape) != tuple(value.shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if shapes:
            problems.append("different shapes (" + "; ".join(shapes) + ")")
        raise ValueError(
            f"'{os.fspath(path)}' was written by a model of another layout: "
            + ", ".join(problems)
            + ". Build the model with the same code as the one that wrote it."
        )


def check_optimizer(model: Any, saved: Any, saved_class: Any, path: Any) -> None:
    """Raise a ``ValueError`` naming ``path`` when an optimizer state does not fit the model's."""
    optimizer = model.optimizer
    if saved is None or optimizer is None:
        if (saved is None) != (optimizer is None):
            raise ValueError(
                f"'{os.fspath(path)}' has {'no' if saved is None else 'an'} optimizer state but "
                f"the model has {'one' if optimizer is not None else 'none'}."
            )
        return
    name = type(updating_optimizer(optimizer)).__name__
    if saved_class is not None and saved_class != name:
        raise ValueError(
            f"'{os.fspath(path)}' holds the state of a {saved_class} optimizer; the model's "
            f"optimizer is a {name}. Compile the model with the same optimizer."
        )
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    expected = [len(group["params"]) for group in optimizer.param_groups]
    found = [len(group.get("params", [])) for group in groups] if isinstance(groups, list) else None
    if found != expected:
        raise ValueError(
            f"'{os.fspath(path)}' holds an optimizer state for parameter groups of sizes {found}; "
            f"the model's optimizer has groups of sizes {expected}."
        )


def check_model_state(model: Any, state: Any, path: Any) -> None:
    """Check, before anything is changed, that a :func:`model_state_dict` fits ``model``.

    Raises:
        ValueError: Naming ``path`` and what differs (weights, optimizer, metrics, gradients).
    """
    keys = ("weights", "optimizer", "optimizer_class", "grads", "metrics", "stop_training")
    if not isinstance(state, dict) or any(key not in state for key in keys):
        raise ValueError(
            f"'{os.fspath(path)}' holds no model state with the keys {list(keys)}; received "
            f"{sorted(state) if isinstance(state, dict) else type(state).__name__}."
        )
    check_weights(model, state["weights"], path)
    check_optimizer(model, state["optimizer"], state["optimizer_class"], path)
    grads = state["grads"]
    count = len(list(model.parameters()))
    if grads is not None and (not isinstance(grads, list) or len(grads) != count):
        found = len(grads) if isinstance(grads, list) else type(grads).__name__
        raise ValueError(
            f"'{os.fspath(path)}' holds {found} accumulated gradients; the model has "
            f"{count} parameters."
        )
    if not isinstance(state["metrics"], list) or not all(
        isinstance(entry, dict) and "name" in entry and "state" in entry for entry in state["metrics"]
    ):
        raise ValueError(
            f"'{os.fspath(path)}' holds metric states that are not a list of "
            "{'name': ..., 'state': ...} entries."
        )
    saved = [entry["name"] for entry in state["metrics"]]
    built = [metric.name for metric in model.metrics]
    if saved[: len(built)] != built and built[: len(saved)] != saved:
        raise ValueError(
            f"'{os.fspath(path)}' holds the states of the metrics {saved}; the model's metrics are "
            f"{built}. Compile the model with the same loss and metrics."
        )


def load_model_state(model: Any, state: dict[str, Any], metrics: bool = True) -> None:
    """Load a :func:`model_state_dict` into ``model`` (check it first with :func:`check_model_state`).

    Metrics that the model builds on its first batch (compiled metrics, per-output losses) do not
    exist yet when a backup is restored: their states are handed to the compiled loss and metrics,
    which load them as soon as they build them, before that batch updates them. So a restored
    mid-epoch state needs a training batch to run before the metrics are read.

    Args:
        model: The model.
        state: A :func:`model_state_dict`.
        metrics: Whether to restore the metric states (only a backup taken mid-epoch needs them).
    """
    model.load_state_dict(state["weights"])
    if state["optimizer"] is not None:
        model.optimizer.load_state_dict(state["optimizer"])
    grads = state["grads"]
    if grads is not None:
        for param, grad in zip(model.parameters(), grads, strict=True):
            param.grad = None if grad is None else grad.to(param.device, param.dtype).clone()
    pending = {entry["name"]: entry["state"] for entry in state["metrics"]} if metrics else {}
    for metric in model.metrics:
        saved = pending.pop(metric.name, None)
        if saved is not None and callable(getattr(metric, "load_state_dict", None)):
            metric.load_state_dict(saved)
    for compiled in (model._compiled_loss, model._compiled_metrics):
        if compiled is not None:
            compiled.pending_states = dict(pending)
    model.stop_training = bool(state["stop_training"])
