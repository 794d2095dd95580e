"""BackupAndRestore: exact mid-epoch resume, hook order, file handling, refusals."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import io
from cadence.callbacks import BackupAndRestore, Callback, EarlyStopping

# Saving a backup takes longer than a batch of these tiny models; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Callback method .* is slow:UserWarning")

X = np.random.default_rng(0).random((50, 8), dtype=np.float32)
Y = np.random.default_rng(1).random((50, 1), dtype=np.float32)


class Crash(Callback):
    """Raise at the end of a given global step, as a kill would stop the run there."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if self.run.global_step == self.at:
            raise RuntimeError("crash")


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []
        self.batch_logs = {}

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))
        self.batch_logs[self.run.global_step] = dict(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", dict(logs or {})))


def make(accumulation=1, hidden=16, optimizer="adam"):
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 1))
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"],
                  gradient_accumulation_steps=accumulation)
    return model


def fit(model, backup, extra=(), epochs=3, **kwargs):
    torch.manual_seed(1)  # The same command: the same seed before fit.
    kwargs.setdefault("validation_split", 0.2)
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=True,
                     callbacks=[*extra, backup], **kwargs)


def run_with_crashes(directory, crashes, backup_kwargs=None, make_kwargs=None, **fit_kwargs):
    for at in crashes:
        with pytest.raises(RuntimeError, match="crash"):
            fit(make(**(make_kwargs or {})), BackupAndRestore(directory, **(backup_kwargs or {})),
                [Crash(at)], **fit_kwargs)
    model, recorder = make(**(make_kwargs or {})), Recorder()
    history = fit(model, BackupAndRestore(directory, **(backup_kwargs or {})), [recorder], **fit_kwargs)
    return model, history, recorder


def assert_same_run(a, b):
    (model_a, history_a, _), (model_b, history_b, _) = a, b
    for (key, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
    assert history_a.history == history_b.history and history_a.epoch == history_b.epoch
    assert model_a.optimizer.iterations == model_b.optimizer.iterations


@pytest.mark.parametrize(
    ("backup_kwargs", "crashes", "fit_kwargs", "make_kwargs"),
    [
        ({"save_freq": 2}, [3, 5, 6, 9, 14], {}, {}),
        ({"save_freq": 3}, [4, 7, 8], {"steps_per_epoch": 4}, {}),
        ({"save_freq": "epoch"}, [3, 7, 12], {}, {}),
        ({"save_freq": 2, "double_checkpoint": False}, [4, 7, 13], {}, {}),
        ({"save_freq": 1}, [2, 5, 10], {}, {"accumulation": 3}),
    ],
    ids=["every-2-batches", "steps-per-epoch", "epoch", "single-file", "accumulation"],
)
@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # steps_per_epoch=4 of 5.
def test_interrupted_runs_end_as_the_uninterrupted_one(tmp_path, backup_kwargs, crashes, fit_kwargs,
                                                       make_kwargs):
    reference = run_with_crashes(tmp_path / "a", [], backup_kwargs, make_kwargs, **fit_kwargs)
    resumed = run_with_crashes(tmp_path / "b", crashes, backup_kwargs, make_kwargs, **fit_kwargs)
    assert_same_run(reference, resumed)
    # The running averages of the resumed batches are those of the uninterrupted run.
    logs_a, logs_b = reference[2].batch_logs, resumed[2].batch_logs
    assert logs_b and all(logs_b[step] == logs_a[step] for step in logs_b)
    assert not (tmp_path / "b").exists()  # delete_checkpoint after a normal end.


def test_resume_mid_epoch_skips_epoch_begin_and_continues_the_batch_index(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Crash(9)])
    recorder = Recorder()
    backup = BackupAndRestore(tmp_path, save_freq=2)
    fit(make(), backup, [recorder], epochs=2)
    assert backup.restored_from == tmp_path / "backup.cadence"
    # 5 batches per epoch; the backup after global step 8 is epoch 1 with batches 0-2 done.
    assert recorder.calls[:4] == [("train_begin",), ("batch_end", 3), ("batch_end", 4), ("epoch_end", 1)]
    assert recorder.calls[4][0] == "train_end"


def test_backup_at_epoch_end_holds_every_callbacks_epoch_end(tmp_path):
    class Raise(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    early = EarlyStopping(monitor="val_loss", patience=5)
    with pytest.raises(RuntimeError, match="crash"):
        # BackupAndRestore comes first in the list, but it saves after History and EarlyStopping.
        make().fit(X, Y, batch_size=8, epochs=3, verbose=0, validation_split=0.2,
                   callbacks=[BackupAndRestore(tmp_path), early, Raise()])
    saved = io.load_state(tmp_path / "backup.cadence")
    assert saved["train_state"]["callbacks"]["History"]["epoch"] == [0]
    assert saved["train_state"]["epoch"] == 1 and saved["train_state"]["step_in_epoch"] == 0
    assert sorted(saved["train_state"]["callbacks"]) == ["EarlyStopping(monitor='val_loss')", "History"]


def test_restore_runs_before_every_other_on_train_begin(tmp_path):
    seen = []

    class Reader(Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.run.restored)

    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Reader(), Crash(3)])
    fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Reader()])
    assert seen == [False, True]


def test_a_run_stopped_before_the_kill_does_not_train_again(tmp_path):
    class Stop(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    class FailAtEnd(Callback):
        def on_train_end(self, logs=None):
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path), [Stop(), FailAtEnd()], epochs=5)
    recorder = Recorder()
    history = fit(make(), BackupAndRestore(tmp_path), [Stop(), recorder], epochs=5)
    assert history.epoch == [0, 1]
    assert [c[0] for c in recorder.calls] == ["train_begin", "train_end"]
    assert recorder.calls[1][1] == {k: v[-1] for k, v in history.history.items()}


def test_truncated_newest_backup_falls_back_to_the_previous_with_a_warning(tmp_path):
    reference = run_with_crashes(tmp_path / "a", [], {"save_freq": 2})
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path / "b", save_freq=2), [Crash(7)])
    newest = tmp_path / "b" / "backup.cadence"
    assert io.load_state(newest)["train_state"]["global_step"] == 6
    assert io.load_state(str(newest) + ".prev")["train_state"]["global_step"] == 4
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    recorder = Recorder()
    backup = BackupAndRestore(tmp_path / "b", save_freq=2)
    with pytest.warns(UserWarning, match=r"Skipping backup '.*backup.cadence' \(truncated: expected \d+ bytes, found \d+\); loading '.*backup.cadence.prev' instead"):
        model = make()
        history = fit(model, backup, [recorder])
    assert backup.restored_from == tmp_path / "b" / "backup.cadence.prev"
    assert min(recorder.batch_logs) == 5  # Resumed after global step 4.
    assert_same_run(reference, (model, history, recorder))


def test_single_file_backup_that_is_corrupt_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2, double_checkpoint=False), [Crash(5)])
    assert not (tmp_path / "backup.cadence.prev").exists()
    path = tmp_path / "backup.cadence"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(io.CorruptFileError, match=r"Corrupt file '.*backup.cadence': truncated"):
        fit(make(), BackupAndRestore(tmp_path, double_checkpoint=False))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_backup_holding_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    backup = tmp_path / "backup"
    backup.mkdir()
    torch.save({"format": "cadence-backup", "payload": _RunsCode(str(marker))}, backup / "backup.cadence")
    model = make()
    before = [t.clone() for t in model.state_dict().values()]
    with pytest.raises(io.UnsafeFileError, match=r"Refusing to load '.*backup.cadence': it contains a pickled Python object .*cadence never runs code from files"):
        fit(model, BackupAndRestore(backup))
    assert not marker.exists()
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))
    # The same bytes behind a valid checksum header are refused too.
    raw = pickle.dumps(_RunsCode(str(marker)))
    with pytest.raises(io.UnsafeFileError):
        io.load_state(_write_with_header(tmp_path / "x.cadence", raw))
    assert not marker.exists()


def _write_with_header(path, payload):
    import hashlib

    header = f"cadence-state v1 {len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode()
    path.write_bytes(header + payload)
    return path


@pytest.mark.parametrize(
    ("make_kwargs", "message"),
    [
        ({"hidden": 12}, r"'.*backup.cadence' was written by a model of another layout: different "
                         r"shapes \(module.0.weight: \(16, 8\) in the file, \(12, 8\) in the model"),
        ({"optimizer": "sgd"}, r"'.*backup.cadence' holds the state of a Adam optimizer; the model's "
                               r"optimizer is a SGD"),
    ],
)
def test_a_backup_of_another_layout_is_refused_before_anything_changes(tmp_path, make_kwargs, message):
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Crash(3)])
    model = make(**make_kwargs)
    before = [t.clone() for t in model.state_dict().values()]
    with pytest.raises(ValueError, match=message):
        fit(model, BackupAndRestore(tmp_path, save_freq=2))
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))
    assert (tmp_path / "backup.cadence").exists()


def test_a_backup_of_other_callbacks_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Crash(3), EarlyStopping(patience=2)])
    with pytest.raises(ValueError, match=r"The saved callback states do not match this run's callbacks: there are "
                                         r"saved states for \[\"EarlyStopping\(monitor='val_loss'\)\"\], which this "
                                         r"run does not have\. This run's callbacks with a state are \['History'\]\."):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2))


def test_callbacks_sharing_a_state_key_get_numbered_keys(tmp_path):
    class Counter(Callback):
        def __init__(self, step):
            super().__init__()
            self.step, self.count = step, 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += self.step

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]

    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Counter(1), Counter(10), Crash(5)])
    saved = io.load_state(tmp_path / "backup.cadence")["train_state"]["callbacks"]
    assert saved["Counter"] == {"count": 4} and saved["Counter#2"] == {"count": 40}
    counters = [Counter(1), Counter(10)]
    fit(make(), BackupAndRestore(tmp_path, save_freq=2), counters)
    assert [c.count for c in counters] == [15, 150]  # 3 epochs of 5 batches, none counted twice.


def test_a_sequence_with_state_dict_resumes_its_own_shuffling(tmp_path):
    class Shuffled(cadence.data.Sequence):
        def __init__(self):
            self.indexes = np.arange(40)

        def __len__(self):
            return 5

        def __getitem__(self, index):
            rows = self.indexes[index * 8:(index + 1) * 8]
            return X[rows], Y[rows]

        def on_epoch_end(self):
            np.random.shuffle(self.indexes)

        def state_dict(self):
            return {"indexes": self.indexes.tolist()}

        def load_state_dict(self, state):
            self.indexes = np.array(state["indexes"])

    def run(directory, crashes):
        for at in crashes:
            with pytest.raises(RuntimeError, match="crash"):
                np.random.seed(3)
                make().fit(Shuffled(), epochs=3, verbose=0, callbacks=[Crash(at), BackupAndRestore(directory, save_freq=2)])
        np.random.seed(3)
        model = make()
        history = model.fit(Shuffled(), epochs=3, verbose=0, callbacks=[BackupAndRestore(directory, save_freq=2)])
        return model, history, None

    assert_same_run(run(tmp_path / "a", []), run(tmp_path / "b", [7, 12]))


def test_delete_checkpoint_false_keeps_the_backup_and_an_exception_always_does(tmp_path):
    fit(make(), BackupAndRestore(tmp_path / "keep", delete_checkpoint=False), epochs=1)
    assert (tmp_path / "keep" / "backup.cadence").exists()
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path / "crash", save_freq=2), [Crash(3)])
    assert sorted(os.listdir(tmp_path / "crash")) == ["backup.cadence"]


def test_state_that_cannot_be_saved_names_its_path(tmp_path):
    class Holder(Callback):
        def state_dict(self):
            return {"array": np.zeros(2), "thing": object()}

    with pytest.raises(TypeError, match=r"value at 'train_state.callbacks.Holder.thing' has type 'object'"):
        fit(make(), BackupAndRestore(tmp_path), [Holder()], epochs=1)


def test_outside_fit_is_an_error():
    callbacks = cadence.callbacks.CallbackList([BackupAndRestore("unused")], model=make())
    with pytest.raises(RuntimeError, match=r"BackupAndRestore works inside model.fit\(\)"):
        callbacks.on_train_begin()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backup_dir": ""}, ValueError, r"^Empty `backup_dir` argument passed$"),
        ({"backup_dir": None}, ValueError, r"^Empty `backup_dir` argument passed$"),
        ({"backup_dir": 3}, ValueError, r"^backup_dir must be a path to a folder; received backup_dir=3\.$"),
        ({"save_freq": 0}, ValueError, r"^Invalid value for argument `save_freq`\. Received: save_freq=0\. Expected either "
                                       r"'epoch' or a positive integer value\.$"),
        ({"save_freq": "batch"}, ValueError, r"Received: save_freq=batch\."),
        ({"save_freq": True}, ValueError, r"Received: save_freq=True\."),
        ({"double_checkpoint": 1}, TypeError, r"double_checkpoint must be True or False; received double_checkpoint=1\."),
        ({"delete_checkpoint": None}, TypeError, r"delete_checkpoint must be True or False; received delete_checkpoint=None\."),
    ],
)
def test_arguments_are_checked(kwargs, error, message):
    kwargs = {"backup_dir": "b", **kwargs}
    with pytest.raises(error, match=message):
        BackupAndRestore(**kwargs)


# --------------------------------------------------------------- whole-backup validation


def _tamper(directory, change):
    """Rewrite the backup in ``directory`` with ``change(payload)`` applied, checksum valid."""
    path = directory / "backup.cadence"
    payload = io.load_state(path)
    change(payload)
    io.save_state(payload, path)
    (directory / "backup.cadence.prev").unlink(missing_ok=True)


def _untouched(model):
    fresh = make()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    assert int(model.optimizer.iterations) == 0


def test_a_backup_with_impossible_values_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq=2), [Crash(4)])
    _tamper(tmp_path, lambda payload: payload["train_state"].update(epoch=-5))
    model = make()
    with pytest.raises(ValueError, match=r"^Cannot restore the training state of '.*backup\.cadence': epoch must be an int >= 0; received -5\."):
        fit(model, BackupAndRestore(tmp_path, save_freq=2))
    _untouched(model)


def test_a_malformed_callback_state_is_refused_before_weights_and_optimizer_load(tmp_path):
    csv_path = tmp_path / "log.csv"
    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path / "b", save_freq="epoch"),
            [cadence.callbacks.CSVLogger(csv_path), Crash(7)])
    written = csv_path.read_bytes()

    def break_rows(payload):
        (key,) = [k for k in payload["train_state"]["callbacks"] if k.startswith("CSVLogger")]
        payload["train_state"]["callbacks"][key]["rows"] = [{"epoch": 0}]

    _tamper(tmp_path / "b", break_rows)
    model = make()
    with pytest.raises(ValueError, match=(
        r"backup\.cadence': The saved state of callback CSVLogger\(filename='.*log\.csv'\) is malformed: row 0 must be a dict "
        r"of strings to strings; received \{'epoch': 0\}\n"
    )):
        fit(model, BackupAndRestore(tmp_path / "b", save_freq="epoch"),
            [cadence.callbacks.CSVLogger(csv_path)])
    _untouched(model)
    assert csv_path.read_bytes() == written


def test_numpy_values_in_logs_are_backed_up_as_numbers_and_lists(tmp_path):
    class AddNumpy(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["vector"] = np.array([1.5, 2.5], dtype=np.float32)
            logs["scalar"] = np.float32(0.25)
            logs["count"] = np.int64(3)

    with pytest.raises(RuntimeError, match="crash"):
        fit(make(), BackupAndRestore(tmp_path, save_freq="epoch", delete_checkpoint=False),
            [AddNumpy(), Crash(7)])
    payload = io.load_state(tmp_path / "backup.cadence")
    (key,) = [k for k in payload["train_state"]["callbacks"] if k.startswith("History")]
    history = payload["train_state"]["callbacks"][key]
    found = {name: history["history"][name] for name in ("vector", "scalar", "count")}
    assert found == {"vector": [[1.5, 2.5]], "scalar": [0.25], "count": [3]}
    assert type(found["count"][0]) is int and type(found["scalar"][0]) is float
    logs = payload["train_state"]["epoch_logs"]
    assert (logs["scalar"], logs["count"]) == (0.25, 3)
