"""TrainState: the run's one state (position, data, RNG, scaler, callbacks), checked, through a file and back."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

import cadence
from cadence import io
from cadence.callbacks import BackupAndRestore, Callback, CallbackList, EarlyStopping, ModelCheckpoint
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


KEYS = ["callbacks", "data_position", "data_seed", "data_state", "epoch", "epoch_logs", "global_step",
        "micro_step", "model", "rng", "scaler", "step_in_epoch"]


def test_state_dict_holds_every_part_of_the_run():
    state = TrainState(epoch=2, data_seed=7)
    state.global_step, state.step_in_epoch, state.micro_step = 9, 1, 18
    saved = state.state_dict()
    assert sorted(saved) == KEYS
    assert (saved["epoch"], saved["global_step"], saved["step_in_epoch"], saved["micro_step"]) == (2, 9, 1, 18)
    assert saved["data_seed"] == 7 and saved["callbacks"] == {} and saved["scaler"] is None
    assert saved["data_position"] == {} and saved["data_state"] is None and saved["epoch_logs"] is None
    assert saved["model"] is None  # No model given: nothing of one to save.


def test_load_state_dict_refuses_a_state_without_its_keys_and_changes_nothing():
    state = TrainState(epoch=4)
    missing = ["callbacks", "data_position", "data_state", "epoch_logs", "micro_step", "model", "rng", "scaler"]
    with pytest.raises(ValueError, match=re.escape(
        f"Cannot restore the training state: it lacks the keys {missing}; expected the keys {KEYS} "
        "written by TrainState.state_dict()."
    )):
        state.load_state_dict({"epoch": 1, "step_in_epoch": 0, "global_step": 0, "data_seed": 0})
    assert state.epoch == 4 and not state.restored


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epoch", -1, "epoch must be an int >= 0; received -1."),
        ("epoch", 1.0, "epoch must be an int >= 0; received 1.0."),
        ("global_step", True, "global_step must be an int >= 0; received True."),
        ("micro_step", "3", "micro_step must be an int >= 0; received '3'."),
        ("step_in_epoch", 5, "step_in_epoch=5 exceeds global_step=3."),
        ("data_position", [1], "data_position must be a dict; received list."),
        ("epoch_logs", [0.5], "epoch_logs must be None or a dict; received list."),
        ("scaler", 3, "scaler must be None or a dict; received int."),
        ("callbacks", [], "The saved callback states must be a dict of {state_key: state}; received list."),
    ],
)
def test_check_state_dict_refuses_wrong_values_naming_them(key, value, message):
    state = TrainState()
    state.global_step = 3
    saved = state.state_dict()
    saved[key] = value
    state.callbacks = CallbackList([])
    before = torch.get_rng_state()
    with pytest.raises(ValueError, match=re.escape(f"Cannot restore the training state: {message}")):
        state.load_state_dict(saved)
    assert not state.restored and torch.equal(torch.get_rng_state(), before)


def test_check_state_dict_refuses_a_non_dict_and_a_broken_rng_state():
    state = TrainState()
    with pytest.raises(ValueError, match=re.escape(
        "Cannot restore the training state: expected the dict written by TrainState.state_dict(); "
        "received list."
    )):
        state.check_state_dict([])
    saved = state.state_dict()
    saved["rng"] = {"python": saved["rng"]["python"]}
    with pytest.raises(ValueError, match=re.escape(
        "Cannot restore the training state: rng must be a dict with the states ['python', 'numpy', "
        "'torch']; received ['python']."
    )):
        state.check_state_dict(saved)
    saved["rng"] = dict(state.state_dict()["rng"], torch=[1, 2])
    with pytest.raises(ValueError, match=re.escape(
        "rng['torch'] must be a uint8 tensor (torch's generator state); received list."
    )):
        state.check_state_dict(saved)


def test_a_gradient_scaler_state_is_saved_checked_and_restored():
    state = TrainState()
    state.scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    saved = state.state_dict()
    assert saved["scaler"]["scale"] == 8.0
    plain = TrainState()
    with pytest.raises(ValueError, match=re.escape(
        "Cannot restore the training state: it was written by a run with a gradient scaler and this "
        "run has none. Compile with the same precision."
    )):
        plain.load_state_dict(saved)
    other = TrainState()
    other.scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    other.load_state_dict(saved)
    assert other.scaler.state_dict()["scale"] == 8.0


class Counter(Callback):
    """A stateful callback identified by its name."""

    state_key_attributes = ("name",)

    def __init__(self, name, count=0):
        super().__init__()
        self.name, self.count = name, count

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_callback_states_go_back_to_their_own_callbacks_in_any_order(tmp_path):
    state = TrainState()
    CallbackList([Counter("a", 1), Counter("b", 2), Counter("b", 3)]).set_run(state)
    saved = state.state_dict()
    assert saved["callbacks"] == {"Counter(name='a')": {"count": 1}, "Counter(name='b')": {"count": 2},
                                  "Counter(name='b')#2": {"count": 3}}
    io.save_state(saved, tmp_path / "state")
    a, b, b2 = Counter("a"), Counter("b"), Counter("b")
    restored = TrainState()
    CallbackList([b, a, b2]).set_run(restored)
    restored.load_state_dict(io.load_state(tmp_path / "state"))
    assert (a.count, b.count, b2.count) == (1, 2, 3)  # Equal keys keep their order among themselves.


def test_callback_states_of_other_callbacks_are_refused_naming_them_before_anything_loads():
    state = TrainState()
    CallbackList([Counter("a", 1), Counter("b", 2)]).set_run(state)
    saved = state.state_dict()
    a, c = Counter("a"), Counter("c", 5)
    restored = TrainState(epoch=3)
    CallbackList([a, c]).set_run(restored)
    with pytest.raises(ValueError, match=re.escape(
        "Cannot restore the training state: The saved callback states do not match this run's "
        "callbacks: there are saved states for [\"Counter(name='b')\"], which this run does not have; "
        "there is no saved state for [\"Counter(name='c')\"] of this run. This run's callbacks with a "
        "state are [\"Counter(name='a')\", \"Counter(name='c')\"]. Pass the same callbacks, with the "
        "same settings, as the run that saved them."
    )):
        restored.load_state_dict(saved)
    assert a.count == 0 and c.count == 5 and restored.epoch == 3


def test_a_callback_refusing_its_state_is_named():
    class Strict(Counter):
        def load_state_dict(self, state):
            raise KeyError("total")

    state = TrainState()
    CallbackList([Counter("a", 1)]).set_run(state)
    restored = TrainState()
    CallbackList([Strict("a")]).set_run(restored)
    with pytest.raises(ValueError, match=re.escape(
        "The saved state of callback Strict(name='a') could not be loaded: KeyError('total')."
    )):
        restored.load_state_dict({**state.state_dict(), "callbacks": {"Strict(name='a')": {"count": 1}}})


X = np.random.default_rng(0).random((40, 4), dtype=np.float32)
Y = np.random.default_rng(1).random((40, 1), dtype=np.float32)


class ValLosses(Callback):
    """Records every epoch's val_loss, and crashes at the end of a given epoch."""

    def __init__(self, crash_at=None):
        super().__init__()
        self.values, self.crash_at = [], crash_at

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(logs["val_loss"])
        if epoch == self.crash_at:
            raise RuntimeError("crash")


class Probe(Callback):
    """Reads the other callbacks' states right after the backup is restored."""

    def __init__(self, lowest, highest, early):
        super().__init__()
        self.lowest, self.highest, self.early, self.seen = lowest, highest, early, None

    def on_train_begin(self, logs=None):
        self.seen = (self.lowest.best, self.highest.best, self.early.best, self.early.wait, self.run.epoch)


def _model():
    torch.manual_seed(0)
    model = cadence.Sequential(torch.nn.Linear(4, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss="mse")
    return model


def _checkpoints(tmp_path):
    lowest = ModelCheckpoint(str(tmp_path / "low.weights.pt"), monitor="val_loss",
                             save_best_only=True, save_weights_only=True)
    highest = ModelCheckpoint(str(tmp_path / "high.weights.pt"), monitor="val_loss", mode="max",
                              save_best_only=True, save_weights_only=True)
    return lowest, highest, EarlyStopping(monitor="val_loss", patience=10)


def test_two_model_checkpoints_and_early_stopping_keep_their_own_states_in_another_order(tmp_path):
    lowest, highest, early = _checkpoints(tmp_path)
    recorder = ValLosses(crash_at=2)
    with pytest.raises(RuntimeError, match="crash"):
        _model().fit(X, Y, batch_size=8, epochs=4, verbose=0, validation_split=0.25,
                     callbacks=[BackupAndRestore(str(tmp_path / "backup")), lowest, highest, early,
                                recorder])
    v0, v1 = recorder.values[:2]  # The backup of epoch 1 is the last one taken before the crash.
    assert v0 != v1
    best_wait = (v1, 0) if v1 < v0 else (v0, 1)  # EarlyStopping (min_delta=0): better is lower.

    lowest, highest, early = _checkpoints(tmp_path)
    probe = Probe(lowest, highest, early)
    _model().fit(X, Y, batch_size=8, epochs=4, verbose=0, validation_split=0.25,
                 callbacks=[early, highest, probe, BackupAndRestore(str(tmp_path / "backup")), lowest,
                            ValLosses()])
    assert probe.seen == (min(v0, v1), max(v0, v1), *best_wait, 2)


def test_a_backup_of_a_checkpoint_with_another_filepath_is_refused_naming_both(tmp_path):
    lowest, highest, early = _checkpoints(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        _model().fit(X, Y, batch_size=8, epochs=3, verbose=0, validation_split=0.25,
                     callbacks=[BackupAndRestore(str(tmp_path / "backup")), lowest, ValLosses(crash_at=1)])
    moved = ModelCheckpoint(str(tmp_path / "moved.weights.pt"), monitor="val_loss", save_best_only=True,
                            save_weights_only=True)
    old_key = f"ModelCheckpoint(filepath={str(tmp_path / 'low.weights.pt')!r}, monitor='val_loss')"
    new_key = f"ModelCheckpoint(filepath={str(tmp_path / 'moved.weights.pt')!r}, monitor='val_loss')"
    with pytest.raises(ValueError, match=re.escape(
        f"there are saved states for [{old_key!r}], which this run does not have; there is no saved "
        f"state for [{new_key!r}] of this run."
    )):
        _model().fit(X, Y, batch_size=8, epochs=3, verbose=0, validation_split=0.25,
                     callbacks=[BackupAndRestore(str(tmp_path / "backup")), moved])
    assert moved.best is None  # Refused before anything was loaded.
