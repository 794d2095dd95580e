"""TrainState: where a training run is (epoch, batch, step, data position, RNG states)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

_KEYS = ("epoch", "step_in_epoch", "global_step", "data_seed", "data_position", "rng")


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
    """The position of a training run, resumable exactly.

    ``fit`` creates one per run (``model._train_state``); :class:`~cadence.callbacks.BackupAndRestore`
    saves its :meth:`state_dict` and restores it with :meth:`load_state_dict` in
    ``on_train_begin``, and the loop then continues from :attr:`epoch` and
    :attr:`step_in_epoch`: mid-epoch, without a second ``on_epoch_begin``, at the next batch of
    the same data order.

    Attributes:
        epoch: Epochs completed (the index of the epoch being run or to run next).
        step_in_epoch: Training batches completed in the current epoch.
        global_step: Training batches completed since the run began.
        data_seed: The seed that orders every pass over the training data.
        epoch_iterator: The run's :class:`~cadence.data.EpochIterator` (its position is saved).
        epoch_logs: The logs of the last completed epoch (what ``on_train_end`` receives), or
            ``None``.
        callbacks: The run's :class:`~cadence.callbacks.CallbackList`, so that a backup can save
            every callback's state.
        restored: Whether :meth:`load_state_dict` was called in this run.
    """

    def __init__(self, epoch: int = 0, data_seed: int = 0) -> None:
        self.epoch = epoch
        self.step_in_epoch = 0
        self.global_step = 0
        self.data_seed = data_seed
        self.epoch_iterator: Any = None
        self.epoch_logs: dict[str, Any] | None = None
        self.callbacks: Any = None
        self.restored = False

    def state_dict(self) -> dict[str, Any]:
        """Return the position, the data order and the RNG states.

        A ``Sequence`` (or map-style ``Dataset``) given to ``fit`` that defines ``state_dict()``
        and ``load_state_dict()`` has its state saved too (under ``"data_state"``).
        """
        iterator = self.epoch_iterator
        position = iterator.state_dict() if iterator is not None else {}
        source = _data_source(iterator)
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "data_seed": self.data_seed,
            "data_position": position,
            "data_state": source.state_dict() if source is not None else None,
            "epoch_logs": _plain_logs(self.epoch_logs),
            "rng": capture_rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position, data order and RNG states; the loop resumes from there.

        Raises:
            ValueError: If ``state`` lacks one of the keys :meth:`state_dict` writes; nothing is
                changed then.
        """
        check_state_dict(state)
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.data_seed = int(state["data_seed"])
        logs = state.get("epoch_logs")
        self.epoch_logs = dict(logs) if logs is not None else None
        if self.epoch_iterator is not None:
            self.epoch_iterator.set_seed(self.data_seed)
            if state["data_position"]:
                self.epoch_iterator.load_state_dict(state["data_position"])
        source = _data_source(self.epoch_iterator)
        if source is not None and state.get("data_state") is not None:
            source.load_state_dict(state["data_state"])
        restore_rng_states(state["rng"])
        self.restored = True


def check_state_dict(state: Any, source: str = "the training state") -> None:
    """Raise a ``ValueError`` if ``state`` lacks a key that :meth:`TrainState.state_dict` writes."""
    missing = [key for key in _KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(
            f"Cannot restore {source}: it lacks the keys {missing}; expected the keys "
            f"{list(_KEYS)} written by TrainState.state_dict()."
        )


def _plain_logs(logs: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return epoch logs with number-like values (numpy scalars, ...) as Python numbers."""
    if logs is None:
        return None
    plain: dict[str, Any] = {}
    for key, value in logs.items():
        if value is None or isinstance(value, str):
            plain[key] = None if value is None else str(value)
        elif isinstance(value, bool | int):
            plain[key] = bool(value) if isinstance(value, bool) else int(value)
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            plain[key] = value.item()
        else:
            try:
                plain[key] = float(value)
            except (TypeError, ValueError):
                continue  # Not a number: on_train_end of a resumed run goes without it.
    return plain
