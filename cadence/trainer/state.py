"""TrainState: the run's one state object (position, data, RNG, scaler, accumulation, callbacks)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from cadence.logs import plain_numbers
from cadence.trainer import model_state

#: The keys of :meth:`TrainState.state_dict`.
KEYS = (
    "callbacks",
    "data_position",
    "data_seed",
    "data_state",
    "epoch",
    "epoch_logs",
    "global_step",
    "micro_step",
    "model",
    "rng",
    "scaler",
    "step_in_epoch",
)
_COUNTERS = ("epoch", "step_in_epoch", "global_step", "micro_step", "data_seed")
_RNG_KEYS = ("python", "numpy", "torch")


def capture_rng_states() -> dict[str, Any]:
    """Return the RNG states of Python, numpy and torch (CPU and every CUDA device)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Restore RNG states returned by :func:`capture_rng_states`."""
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = states["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _data_source(iterator: Any) -> Any:
    """Return the user's data object (a Sequence or Dataset) when it has resumable state.

    An adapter with state of its own (a ``StatefulDataLoader``'s) is its own data source.
    """
    adapter = getattr(iterator, "adapter", None)
    for source in (getattr(adapter, "sequence", None), getattr(adapter, "dataset", None), adapter):
        if callable(getattr(source, "state_dict", None)) and callable(
            getattr(source, "load_state_dict", None)
        ):
            return source
    return None


class TrainState:
    """The run's one state object: where training is, and everything needed to resume it exactly.

    ``fit`` creates one per run and hands it to every callback with
    :meth:`~cadence.callbacks.CallbackList.set_run` (a callback reads it as ``self.run``).
    :class:`~cadence.callbacks.BackupAndRestore` saves :meth:`state_dict` with the model's
    weights, optimizer and metric states, checks a saved one with :meth:`check_state_dict` and
    restores it with :meth:`load_state_dict` in ``on_train_begin``; the loop then continues from
    :attr:`epoch` and :attr:`step_in_epoch`: mid-epoch, without a second ``on_epoch_begin``, at
    the next batch of the same data order.

    Attributes:
        epoch: Epochs completed (the index of the epoch being run or to run next).
        step_in_epoch: Training batches completed in the current epoch.
        global_step: Training batches completed since the run began.
        data_seed: The seed that orders every pass over the training data.
        epoch_iterator: The run's :class:`~cadence.data.EpochIterator` (its position is saved).
        epoch_logs: The logs of the last completed epoch (what ``on_train_end`` receives), or
            ``None``.
        callbacks: The run's :class:`~cadence.callbacks.CallbackList` (set by its ``set_run``),
            whose callbacks' states are part of :meth:`state_dict`.
        restored: Whether :meth:`load_state_dict` was called in this run.
        model: The model being trained (its weights, optimizer and metric states are part of
            :meth:`state_dict`), or ``None``.
        scaler: The run's ``torch.amp.GradScaler`` (``precision="16-mixed"``), or ``None``.
        accumulation: Batches whose gradients are summed before each optimizer step
            (``compile(gradient_accumulation_steps=...)``).
        micro_step: Training batches backpropagated in this run; the optimizer steps when it
            reaches a multiple of ``accumulation``.
    """

    def __init__(
        self, epoch: int = 0, data_seed: int = 0, scaler: Any = None, accumulation: int = 1,
        model: Any = None,
    ) -> None:
        self.epoch = epoch
        self.step_in_epoch = 0
        self.global_step = 0
        self.data_seed = data_seed
        self.epoch_iterator: Any = None
        self.epoch_logs: dict[str, Any] | None = None
        self.callbacks: Any = None
        self.restored = False
        self.model = model
        self.scaler = scaler
        self.accumulation = accumulation
        self.micro_step = 0

    def state_dict(self) -> dict[str, Any]:
        """Return the whole state of the run, the model's part included.

        Keys (:data:`KEYS`): ``epoch``, ``step_in_epoch``, ``global_step`` and ``micro_step``
        (ints), ``data_seed``, ``data_position`` (the epoch iterator's position), ``data_state``
        (the ``state_dict()`` of a ``Sequence`` or map-style ``Dataset`` given to ``fit`` that
        defines ``state_dict()`` and ``load_state_dict()``, else ``None``), ``epoch_logs``,
        ``model`` (:func:`cadence.trainer.model_state.model_state_dict`: weights, optimizer,
        accumulated gradients, metric states; ``None`` without a model),
        ``rng`` (Python, numpy, torch and CUDA generators), ``scaler`` (the gradient scaler's
        state, or ``None``) and ``callbacks`` (:meth:`CallbackList.state_dict
        <cadence.callbacks.CallbackList.state_dict>`: each stateful callback's state by its
        ``state_key``).
        """
        iterator = self.epoch_iterator
        position = iterator.state_dict() if iterator is not None else {}
        source = _data_source(iterator)
        return {
            "callbacks": self.callbacks.state_dict() if self.callbacks is not None else {},
            "data_position": position,
            "data_seed": self.data_seed,
            "data_state": source.state_dict() if source is not None else None,
            "epoch": self.epoch,
            "epoch_logs": _epoch_logs(self.epoch_logs),
            "global_step": self.global_step,
            "micro_step": self.micro_step,
            "model": (
                model_state.model_state_dict(self.model, self.micro_step % self.accumulation)
                if self.model is not None else None
            ),
            "rng": capture_rng_states(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step_in_epoch": self.step_in_epoch,
        }

    def check_state_dict(
        self, state: Any, source: str = "the training state", path: Any = None
    ) -> None:
        """Raise a ``ValueError`` unless ``state`` can be loaded into this run; load nothing.

        Checks every key of :meth:`state_dict` and its value: the counters are ints >= 0 (not
        bools) with ``step_in_epoch <= global_step``; ``data_position`` is a dict;
        ``epoch_logs`` is ``None`` or a dict; ``rng`` holds the Python, numpy and torch
        states; ``scaler`` is a dict exactly when this run has a gradient scaler; and
        ``callbacks`` matches this run's callbacks one by one (by ``state_key``).

        Args:
            state: A dict from :meth:`state_dict` (possibly read from a file).
            source: What ``state`` is, for messages (``"the training state of 'backup.cadence'"``).
            path: The file ``state`` was read from, named in the messages about the model's part
                (weights, optimizer, metrics).
        """
        if not isinstance(state, dict):
            raise ValueError(
                f"Cannot restore {source}: expected the dict written by TrainState.state_dict(); "
                f"received {type(state).__name__}."
            )
        missing = [key for key in KEYS if key not in state]
        if missing:
            raise ValueError(
                f"Cannot restore {source}: it lacks the keys {missing}; expected the keys "
                f"{list(KEYS)} written by TrainState.state_dict()."
            )
        if self.model is not None:  # The weights and optimizer first: the likeliest mismatch.
            model_state.check_model_state(self.model, state["model"], path or source)
        for key in _COUNTERS:
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"Cannot restore {source}: {key} must be an int >= 0; received {value!r}."
                )
        if state["step_in_epoch"] > state["global_step"]:
            raise ValueError(
                f"Cannot restore {source}: step_in_epoch={state['step_in_epoch']} exceeds "
                f"global_step={state['global_step']}."
            )
        for key, allowed in (("data_position", (dict,)), ("epoch_logs", (dict, type(None)))):
            if not isinstance(state[key], allowed):
                raise ValueError(
                    f"Cannot restore {source}: {key} must be "
                    f"{'a dict' if key == 'data_position' else 'None or a dict'}; received "
                    f"{type(state[key]).__name__}."
                )
        rng = state["rng"]
        if not isinstance(rng, dict) or any(key not in rng for key in _RNG_KEYS):
            raise ValueError(
                f"Cannot restore {source}: rng must be a dict with the states {list(_RNG_KEYS)}; "
                f"received {sorted(rng) if isinstance(rng, dict) else type(rng).__name__}."
            )
        if not isinstance(rng["torch"], torch.Tensor) or rng["torch"].dtype != torch.uint8:
            raise ValueError(
                f"Cannot restore {source}: rng['torch'] must be a uint8 tensor (torch's generator "
                f"state); received {type(rng['torch']).__name__}."
            )
        saved_scaler = state["scaler"]
        if saved_scaler is not None and not isinstance(saved_scaler, dict):
            raise ValueError(
                f"Cannot restore {source}: scaler must be None or a dict; received "
                f"{type(saved_scaler).__name__}."
            )
        if (saved_scaler is None) != (self.scaler is None):
            raise ValueError(
                f"Cannot restore {source}: it was written by a run "
                f"{'without' if saved_scaler is None else 'with'} a gradient scaler and this run "
                f"has {'one' if saved_scaler is None else 'none'}. Compile with the same precision."
            )
        if self.callbacks is not None:
            try:
                self.callbacks.check_state_dict(state["callbacks"])
            except ValueError as error:
                raise ValueError(f"Cannot restore {source}: {error}") from error
        elif state["callbacks"]:
            raise ValueError(
                f"Cannot restore {source}: it holds callback states "
                f"{sorted(state['callbacks'])} and this run has no callback list."
            )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check ``state`` with :meth:`check_state_dict`, then restore all of it; RNG states last.

        The callbacks' states, the position, data order, the data source's own state, the
        gradient scaler and the accumulation counter; the loop resumes from there.

        Raises:
            ValueError: If ``state`` does not fit this run; nothing is changed then.
        """
        self.check_state_dict(state)
        if self.model is not None:  # Metric states matter only mid-epoch: an epoch starts afresh.
            model_state.load_model_state(self.model, state["model"], metrics=state["step_in_epoch"] > 0)
        if self.callbacks is not None:
            self.callbacks.load_state_dict(state["callbacks"])
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.micro_step = state["micro_step"]
        self.data_seed = state["data_seed"]
        logs = state["epoch_logs"]
        self.epoch_logs = dict(logs) if logs is not None else None
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.epoch_iterator is not None:
            self.epoch_iterator.set_seed(self.data_seed)
            if state["data_position"]:
                self.epoch_iterator.load_state_dict(state["data_position"])
        source = _data_source(self.epoch_iterator)
        if source is not None and state["data_state"] is not None:
            source.load_state_dict(state["data_state"])
        restore_rng_states(state["rng"])
        self.restored = True


def _epoch_logs(logs: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return epoch logs with number-like values as Python numbers, dropping what is not one."""
    if logs is None:
        return None
    plain: dict[str, Any] = {}
    for key, value in plain_numbers(dict(logs)).items():
        if value is None or isinstance(value, str | bool | int | float):
            plain[key] = value
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            plain[key] = value.item()
        elif isinstance(value, np.ndarray) and value.size == 1:
            plain[key] = value.item()
        # Anything else (an array, an object) is not a number: on_train_end of a resumed run
        # goes without it.
    return plain
