"""TrainState: where a training run is (epoch, batch, step, data position, RNG states)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


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


class TrainState:
    """The position of a training run, resumable exactly.

    Attributes:
        epoch: Epochs completed (the index of the epoch being run or to run next).
        step_in_epoch: Training batches completed in the current epoch.
        global_step: Training batches completed since the run began.
        data_seed: The seed that orders every pass over the training data.
        data_position: The epoch iterator's position (pass index, batch within the pass).
    """

    def __init__(self, epoch: int = 0, data_seed: int = 0) -> None:
        self.epoch = epoch
        self.step_in_epoch = 0
        self.global_step = 0
        self.data_seed = data_seed
        self.epoch_iterator: Any = None
        self.restored = False

    def state_dict(self) -> dict[str, Any]:
        """Return the position, the data order and the RNG states."""
        position = self.epoch_iterator.state_dict() if self.epoch_iterator is not None else {}
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "data_seed": self.data_seed,
            "data_position": position,
            "rng": capture_rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position, data order and RNG states; the loop resumes from there."""
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.data_seed = int(state["data_seed"])
        if self.epoch_iterator is not None and state["data_position"]:
            self.epoch_iterator.load_state_dict(state["data_position"])
            self.epoch_iterator.set_seed(self.data_seed)
        restore_rng_states(state["rng"])
        self.restored = True
