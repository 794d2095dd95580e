"""Saving and loading a model for continued training: weights, optimizer, scaler, metric states.

``model.save(path)`` writes one checksummed cadence state file, atomically (a temporary file in
the same folder, fsynced, renamed into place): the weights (``model.state_dict()``), the
optimizer's state (its moments, step counts, ``iterations``, learning rate and other
hyperparameters as they are now), the gradient scaler of ``precision="16-mixed"``, the
gradient-accumulation counter and the configuration ``compile`` was called with, as strings and
numbers. No Python object is pickled, so :func:`load_model` unpickles nothing but tensors.

The architecture is not in the file: as in PyTorch, it comes from your code. Build the model
the same way, then load into it::

    model = build_model()                    # the same code that built the saved model
    model.compile(optimizer="adam", loss="mse")
    cadence.load_model("model.pt", model)    # weights, optimizer state, counters
    model.fit(x, y, epochs=5)                # continues as if training had never stopped

Continued training matches an uninterrupted run when the data order and random state do too:
``fit`` draws each run's data seed from torch's global generator, so seed it
(``torch.manual_seed``) the same way before ``fit`` in both cases.
"""

from __future__ import annotations

import numbers
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from cadence import distributed, io

MODEL_FORMAT = "cadence-model"
MODEL_VERSION = 1


def plain_state(obj: Any) -> Any:
    """Return ``obj`` with number-like leaves as Python numbers, for :func:`cadence.io.save_state`.

    Subclasses of ``float`` and ``int`` (an optimizer's ``Hyperparameter``, numpy's ``float64``)
    and numpy scalars become ``float`` / ``int`` / ``bool``; dicts, lists and tuples are copied;
    every other leaf (tensors, strings, ...) is kept as it is.
    """
    kind = type(obj)
    if kind in (dict, OrderedDict):
        copy = kind((key, plain_state(value)) for key, value in obj.items())
        if hasattr(obj, "_metadata"):  # A module state_dict's versions, used by load_state_dict.
            copy._metadata = obj._metadata  # type: ignore[attr-defined]
        return copy
    if kind in (list, tuple):
        return kind(plain_state(value) for value in obj)
    if kind in (int, float, bool, str) or obj is None or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.generic) and not isinstance(obj, np.ndarray):
        return obj.item()
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    return obj


def _require_model(model: Any, action: str) -> None:
    from cadence.model import Model

    if not isinstance(model, Model):
        raise TypeError(
            f"{action} needs a cadence.Model (build it with the code that built the saved one); "
            f"received {type(model).__name__}."
        )


def training_state(model: Any) -> dict[str, Any]:
    """Return everything of ``model`` that training changes, to resume it exactly.

    The weights, the optimizer's state and class, the gradient scaler, the gradient-accumulation
    counter (and the gradients accumulated so far, when a backup falls between two optimizer
    steps), every metric's state (the running averages of a partly done epoch) and
    ``stop_training``.
    """
    optimizer = model.optimizer
    accumulation = int(getattr(model, "_accumulation", 1))
    micro_step = int(getattr(model, "_micro_step", 0))
    grads = None
    if micro_step % accumulation:
        grads = [p.grad.detach() if p.grad is not None else None for p in model.parameters()]
    scaler = getattr(model, "_scaler", None)
    return {
        "weights": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "micro_step": micro_step,
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
    name = type(optimizer).__name__
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


def check_training_state(model: Any, state: dict[str, Any], path: Any) -> None:
    """Check, before anything is changed, that a :func:`training_state` fits ``model``.

    Raises:
        ValueError: Naming ``path`` and what differs (weights, optimizer, metrics, gradients).
    """
    check_weights(model, state["weights"], path)
    check_optimizer(model, state["optimizer"], state.get("optimizer_class"), path)
    if (state.get("scaler") is None) != (getattr(model, "_scaler", None) is None):
        raise ValueError(
            f"'{os.fspath(path)}' was written with{'out' if state.get('scaler') is None else ''} "
            "a gradient scaler (precision='16-mixed'); the model is compiled "
            f"with{'out' if getattr(model, '_scaler', None) is None else ''} one."
        )
    grads = state.get("grads")
    count = len(list(model.parameters()))
    if grads is not None and len(grads) != count:
        raise ValueError(
            f"'{os.fspath(path)}' holds {len(grads)} accumulated gradients; the model has "
            f"{count} parameters."
        )
    saved = [entry["name"] for entry in state["metrics"]]
    built = [metric.name for metric in model.metrics]
    if saved[: len(built)] != built and built[: len(saved)] != saved:
        raise ValueError(
            f"'{os.fspath(path)}' holds the states of the metrics {saved}; the model's metrics are "
            f"{built}. Compile the model with the same loss and metrics."
        )


def load_training_state(model: Any, state: dict[str, Any], metrics: bool = True) -> None:
    """Load a :func:`training_state` into ``model`` (check it first with :func:`check_training_state`).

    Metrics that the model builds on its first batch (compiled metrics, per-output losses) do not
    exist yet when a backup is restored: their states are handed to the compiled loss and metrics,
    which load them as soon as they build them, before that batch updates them. So a restored
    mid-epoch state needs a training batch to run before the metrics are read.

    Args:
        model: The model.
        state: A :func:`training_state`.
        metrics: Whether to restore the metric states (only a backup taken mid-epoch needs them).
    """
    model.load_state_dict(state["weights"])
    if state["optimizer"] is not None:
        model.optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler") is not None:
        model._scaler.load_state_dict(state["scaler"])
    model._micro_step = int(state.get("micro_step", 0))
    grads = state.get("grads")
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
    model.stop_training = bool(state.get("stop_training", False))


def save_model(model: Any, filepath: Any) -> None:
    """Save ``model`` for continued training, atomically (see the module docstring).

    Args:
        model: A :class:`cadence.Model`.
        filepath: The file to write (any suffix; ``.pt`` is usual); parent folders are created.

    Raises:
        TypeError: If ``model`` is not a ``cadence.Model``.
    """
    _require_model(model, "save")
    optimizer = getattr(model, "optimizer", None)
    scaler = getattr(model, "_scaler", None)
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "weights": distributed.full_state_dict(model),  # Under FSDP: gathered, every rank calls.
        "optimizer": (distributed.full_optimizer_state_dict(model, optimizer, rank_zero_only=False)
                      if optimizer is not None else None),
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "micro_step": int(getattr(model, "_micro_step", 0)),
        "compile_config": plain_state(getattr(model, "compile_config", None)),
    }
    io.save_state(plain_state(payload), os.fspath(filepath))


def _known_loss(name: Any) -> bool:
    from cadence import losses

    if name is None:
        return True
    try:
        losses.get(name)
    except (ValueError, TypeError):
        return False
    return True


def _compile_from_config(model: Any, config: Any, path: Any) -> None:
    usable = (
        isinstance(config, dict)
        and isinstance(config.get("loss"), str | type(None))
        and _known_loss(config.get("loss"))
        and isinstance(config.get("metrics") or [], list)
        and all(isinstance(m, str) for m in (config.get("metrics") or []))
        and str(config.get("optimizer", "")).lower() in _optimizer_names()
    )
    if not usable:
        raise ValueError(
            f"'{os.fspath(path)}' holds an optimizer state, but the model is not compiled and the "
            f"saved compile configuration ({config!r}) is not made of names cadence can rebuild. "
            "Compile the model as it was compiled before saving, then load."
        )
    model.compile(
        optimizer=str(config["optimizer"]).lower(),
        loss=config.get("loss"),
        metrics=list(config.get("metrics") or []) or None,
        precision=config.get("precision", "32"),
        gradient_accumulation_steps=int(config.get("gradient_accumulation_steps", 1)),
    )


def _optimizer_names() -> set[str]:
    from cadence.optimizers.registry import NAMES

    return set(NAMES)


def load_model(filepath: Any, model: Any, compile: bool = True) -> Any:
    """Load a file written by ``model.save`` into ``model``, built by your code.

    The weights are always loaded. The optimizer state (and gradient scaler, and accumulation
    counter) is loaded into the model's optimizer when the model is compiled; an uncompiled model
    is first compiled from the saved configuration when ``compile`` is True and that
    configuration is made of names (``"adam"``, ``"mse"``, ``["accuracy"]``). Everything is
    checked before anything is changed. Loading uses ``weights_only=True``: a file holding a
    pickled object is refused.

    Args:
        filepath: The file written by :meth:`cadence.Model.save`.
        model: The model to load into (same architecture as the saved one).
        compile: Compile an uncompiled model from the saved configuration.

    Returns:
        ``model``.

    Raises:
        ValueError: If the file is not a saved model, or its layout differs from ``model``'s.
        cadence.io.CorruptFileError: If the file is truncated or altered.
        cadence.io.UnsafeFileError: If the file holds pickled Python objects.
    """
    _require_model(model, "load_model")
    path = os.fspath(filepath)
    state = io.load_state(path)
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ValueError(
            f"'{path}' is not a model saved by model.save (no '{MODEL_FORMAT}' format tag); to "
            "load weights alone, use model.load_weights."
        )
    if state.get("version") != MODEL_VERSION:
        raise ValueError(
            f"'{path}' has model format version {state.get('version')!r}; this cadence reads "
            f"version {MODEL_VERSION}."
        )
    check_weights(model, state["weights"], path)
    if not model.compiled and compile and state["optimizer"] is not None:
        _compile_from_config(model, state.get("compile_config"), path)
    if model.compiled and state["optimizer"] is not None:
        check_optimizer(model, state["optimizer"], state.get("optimizer_class"), path)
    distributed.load_full_state_dict(model, state["weights"])  # Under FSDP: each rank its slice.
    if model.compiled:
        if state["optimizer"] is not None:
            distributed.load_full_optimizer_state_dict(model, model.optimizer, state["optimizer"])
        if state.get("scaler") is not None and getattr(model, "_scaler", None) is not None:
            model._scaler.load_state_dict(state["scaler"])
        model._micro_step = int(state.get("micro_step", 0))
    return model
