"""Saving and loading a model for continued training: weights, optimizer, metric states.

``model.save(path)`` writes one checksummed cadence state file, atomically (a temporary file in
the same folder, fsynced, renamed into place): the weights (``model.state_dict()``), the
optimizer's state (its moments, step counts, ``iterations``, learning rate and other
hyperparameters as they are now) and the configuration ``compile`` was called with, as strings
and numbers. The gradient scaler of ``precision="16-mixed"`` and the gradient-accumulation
counter belong to a run (each ``fit`` starts them afresh; a backup of a run holds them). No
Python object is pickled, so :func:`load_model` unpickles nothing but tensors.

The architecture is not in the file: as in PyTorch, it comes from your code. Build the model
the same way, then load into it::

    model = build_model()                    # the same code that built the saved model
    model.compile(optimizer="adam", loss="mse")
    cadence.load_model("model.pt", model)    # weights and optimizer state
    model.fit(x, y, epochs=5)                # continues as if training had never stopped

Continued training matches an uninterrupted run when the data order and random state do too:
``fit`` draws each run's data seed from torch's global generator, so seed it
(``torch.manual_seed``) the same way before ``fit`` in both cases.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from cadence import distributed, io, losses
from cadence.logs import plain_numbers
from cadence.optimizers import updating_optimizer
from cadence.optimizers.registry import NAMES as OPTIMIZER_NAMES
from cadence.trainer.model_state import check_optimizer, check_weights

MODEL_FORMAT = "cadence-model"
MODEL_VERSION = 1


def _require_model(model: Any, action: str) -> None:
    # model.py imports this module, so a cadence.Model is recognised by what it defines (a
    # torch module with Keras's compile and its `compiled` flag), not by importing the class.
    if not isinstance(model, nn.Module) or not hasattr(model, "compiled"):
        raise TypeError(
            f"{action} needs a cadence.Model (build it with the code that built the saved one); "
            f"received {type(model).__name__}."
        )


def save_model(model: Any, filepath: Any) -> None:
    """Save ``model`` for continued training, atomically (see the module docstring).

    Args:
        model: A :class:`cadence.Model`.
        filepath: The file to write (any suffix; ``.pt`` is usual); parent folders are created.

    Under ``strategy="fsdp"`` every rank calls it: the whole weights and optimizer state are
    gathered on every rank, rank 0 writes the file, and every rank returns once it is written.

    Raises:
        TypeError: If ``model`` is not a ``cadence.Model``.
    """
    _require_model(model, "save")
    optimizer = getattr(model, "optimizer", None)
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "weights": distributed.full_state_dict(model),  # Under FSDP: gathered, every rank calls.
        "optimizer": (distributed.full_optimizer_state_dict(model, optimizer, rank_zero_only=False)
                      if optimizer is not None else None),
        "optimizer_class": (
            type(updating_optimizer(optimizer)).__name__ if optimizer is not None else None
        ),
        "compile_config": plain_numbers(getattr(model, "compile_config", None)),
    }
    if not distributed.is_sharded(model):
        io.save_state(plain_numbers(payload), os.fspath(filepath))
        return
    if distributed.is_rank_zero():  # FSDP: every rank gathered the whole state; rank 0 writes.
        io.save_state(plain_numbers(payload), os.fspath(filepath))
    distributed.barrier()  # Every rank returns once the file is written (it may load it next).


def _known_loss(name: Any) -> bool:
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
    return set(OPTIMIZER_NAMES)


def load_model(filepath: Any, model: Any, compile: bool = True) -> Any:
    """Load a file written by ``model.save`` into ``model``, built by your code.

    The weights are always loaded. The optimizer state is loaded into the model's optimizer
    when the model is compiled; an uncompiled model is first compiled from the saved
    configuration when ``compile`` is True and that configuration is made of names
    (``"adam"``, ``"mse"``, ``["accuracy"]``). Everything is checked before anything is changed.
    Loading uses ``weights_only=True``: a file holding a pickled object is refused.

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
    return model
