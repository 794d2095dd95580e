"""TrainState: position, data order and RNG states, through a file and back."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cadence import io
from cadence.data import EpochIterator
from cadence.data.adapters import ArrayAdapter
from cadence.optimizers.hyperparameter import Hyperparameter
from cadence.trainer.state import TrainState, capture_rng_states, restore_rng_states


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), np.random.normal()


def test_rng_states_round_trip_through_a_state_file(tmp_path):
    np.random.normal()  # Leave a cached gaussian in numpy's state.
    io.save_state(capture_rng_states(), tmp_path / "rng")
    expected = _draws()
    _draws()
    restore_rng_states(io.load_state(tmp_path / "rng"))
    assert _draws() == expected


def test_state_dict_round_trip_restores_position_seed_logs_and_rng(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    state = TrainState(epoch=0, data_seed=5)
    state.epoch_iterator = EpochIterator(ArrayAdapter(x, batch_size=4, shuffle=True, seed=5))
    batches = state.epoch_iterator.epoch()
    next(batches), next(batches)
    state.epoch, state.step_in_epoch, state.global_step = 3, 2, 17
    state.epoch_logs = {"loss": np.float64(0.5), "lr": Hyperparameter(0.1, None, "lr"),
                        "n": np.int64(3), "t": torch.tensor(2.0), "note": "x", "obj": object()}
    io.save_state(state.state_dict(), tmp_path / "state")
    expected_rest = [b[0].tolist() for b in batches]
    expected_draws = _draws()

    restored = TrainState(epoch=0, data_seed=99)
    restored.epoch_iterator = EpochIterator(ArrayAdapter(x, batch_size=4, shuffle=True, seed=99))
    restored.load_state_dict(io.load_state(tmp_path / "state"))
    assert (restored.epoch, restored.step_in_epoch, restored.global_step) == (3, 2, 17)
    assert restored.data_seed == 5 and restored.restored
    assert restored.epoch_logs == {"loss": 0.5, "lr": 0.1, "n": 3.0, "t": 2.0, "note": "x"}
    assert type(restored.epoch_logs["lr"]) is float
    assert _draws() == expected_draws
    assert [b[0].tolist() for b in restored.epoch_iterator.epoch()] == expected_rest


def test_a_data_source_with_state_dict_is_saved_and_restored():
    class Source:
        def __init__(self):
            self.order = [0, 1, 2]

        def state_dict(self):
            return {"order": list(self.order)}

        def load_state_dict(self, state):
            self.order = list(state["order"])

    class Adapter(ArrayAdapter):
        pass

    adapter = Adapter(np.zeros((4, 1), dtype=np.float32), batch_size=2)
    adapter.sequence = Source()
    adapter.sequence.order = [2, 0, 1]
    state = TrainState()
    state.epoch_iterator = EpochIterator(adapter)
    saved = state.state_dict()
    assert saved["data_state"] == {"order": [2, 0, 1]}
    adapter.sequence.order = [0, 1, 2]
    state.load_state_dict(saved)
    assert adapter.sequence.order == [2, 0, 1]


def test_load_state_dict_refuses_a_state_without_its_keys_and_changes_nothing():
    state = TrainState(epoch=4)
    with pytest.raises(ValueError, match=r"Cannot restore the training state: it lacks the keys "
                                         r"\['data_position', 'rng'\]; expected the keys"):
        state.load_state_dict({"epoch": 1, "step_in_epoch": 0, "global_step": 0, "data_seed": 0})
    assert state.epoch == 4 and not state.restored
