"""CallbackList: dispatch to overriders only, logs built on demand, slow-hook warning, profiling."""

from __future__ import annotations

import json
import re
import time
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence.callbacks import Callback, CallbackList, History, ProgbarLogger, timing
from cadence.callbacks import callback_list as callback_list_module


def tiny_model():
    model = cadence.Model(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    return model


def tiny_data(samples=32):
    rng = np.random.default_rng(0)
    return rng.random((samples, 3), dtype=np.float32), rng.random(samples, dtype=np.float32)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("on_train_batch_end", batch, logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("on_epoch_end", epoch, logs))


class SleepyEnd(Callback):
    """Sleeps in on_train_batch_end for the batches it is told to."""

    def __init__(self, seconds, batches=None):
        super().__init__()
        self.seconds = seconds
        self.batches = batches

    def on_train_batch_end(self, batch, logs=None):
        if self.batches is None or batch in self.batches:
            time.sleep(self.seconds)


# ----------------------------------------------------------------------------- dispatch
def test_hooks_reach_only_the_callbacks_that_override_them():
    recorder = Recorder()
    callbacks = CallbackList([recorder], add_history=True)
    assert callbacks.wants("on_train_batch_end") and callbacks.wants("on_epoch_end")
    assert not callbacks.wants("on_train_batch_begin")
    assert not callbacks.wants("on_predict_batch_end")
    assert [type(c) for c in callbacks] == [Recorder, History]


def test_user_callbacks_get_one_plain_dict_per_hook_and_see_each_others_changes():
    seen = []

    class Adds(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["learning_rate"] = 0.5

    class Reads(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((type(logs), dict(logs)))

    callbacks = CallbackList([Adds(), Reads()])
    callbacks.on_epoch_end(0, {"loss": torch.tensor(2.0), "mae": torch.tensor(0.25)})
    assert seen == [(dict, {"loss": 2.0, "mae": 0.25, "learning_rate": 0.5})]
    json.dumps(seen[0][1])


def test_lazy_callbacks_get_the_device_view_of_batch_logs_without_a_conversion():
    received = []

    class Lazy(Callback):
        accepts_lazy_logs = True

        def on_train_batch_end(self, batch, logs=None):
            received.append(logs)

    device_logs = {"loss": torch.tensor(1.5)}
    before = logs_module.conversions
    CallbackList([Lazy()]).on_train_batch_end(0, device_logs)
    assert received == [device_logs] and received[0] is device_logs
    assert logs_module.conversions == before


def test_a_hook_nobody_overrides_builds_no_logs():
    before = logs_module.conversions
    callbacks = CallbackList([History()])
    for batch in range(20):
        callbacks.on_train_batch_begin(batch)
        callbacks.on_train_batch_end(batch, {"loss": torch.tensor(1.0)})
    assert logs_module.conversions == before


def test_an_error_in_a_timed_hook_names_the_callback_and_hook():
    class Boom(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == timing.WARMUP_BATCHES + 1:
                raise RuntimeError("boom")

    callbacks = CallbackList([Boom()])
    with pytest.raises(RuntimeError, match="boom") as info:
        for batch in range(10):
            callbacks.on_train_batch_begin(batch)
            callbacks.on_train_batch_end(batch, {})
    assert info.value.__notes__ == ["Raised by callback Boom in on_train_batch_end."]


# ----------------------------------------------------------------------------- slow hooks
def test_a_batch_hook_slower_than_the_batch_warns_once_naming_callback_hook_and_times():
    x, y = tiny_data(16 * 12)
    model = tiny_model()
    with pytest.warns(UserWarning) as record:
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[SleepyEnd(0.02)])
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    match = re.fullmatch(
        r"Callback method `on_train_batch_end` of SleepyEnd is slow compared to the batch time "
        r"\(batch time: (\d+\.\d{4})s vs `on_train_batch_end` time: (\d+\.\d{4})s, means over "
        rf"{timing.TIMED_BATCHES} batches\)\. Check your callbacks\.",
        messages[0],
    )
    assert match is not None, messages[0]
    batch_time, hook_time = float(match.group(1)), float(match.group(2))
    assert hook_time >= 0.02 and batch_time < hook_time  # The sleep, and what triggered the warning.


@pytest.mark.filterwarnings("error:Callback method")  # Overrides the suite's ignore.
def test_only_batches_after_the_warm_up_are_timed():
    # Slow only during the warm-up batches, fast afterwards: no warning.
    x, y = tiny_data(16 * 12)
    model = tiny_model()
    slow_warm_up = SleepyEnd(0.02, batches=set(range(timing.WARMUP_BATCHES)))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[slow_warm_up])


@pytest.mark.filterwarnings("error:Callback method")  # Overrides the suite's ignore.
def test_a_slow_hook_after_the_timed_window_costs_no_warning():
    x, y = tiny_data(16 * 12)
    model = tiny_model()
    late = SleepyEnd(0.02, batches={timing.WARMUP_BATCHES + timing.TIMED_BATCHES + 1})
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[late])


def test_slow_evaluation_and_prediction_hooks_are_reported_with_their_own_hook():
    class SlowTest(Callback):
        def on_test_batch_begin(self, batch, logs=None):
            time.sleep(0.02)

        def on_predict_batch_end(self, batch, logs=None):
            time.sleep(0.02)

    x, y = tiny_data(8 * 8)
    model = tiny_model()
    with pytest.warns(UserWarning, match=r"`on_test_batch_begin` of SlowTest is slow"):
        model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[SlowTest()])
    with pytest.warns(UserWarning, match=r"`on_predict_batch_end` of SlowTest is slow"):
        model.predict(x, batch_size=8, verbose=0, callbacks=[SlowTest()])


def test_warn_slow_compares_means_and_ignores_hooks_under_the_floor():
    check = timing.SlowCheck()
    n = timing.TIMED_BATCHES
    check.batch_time = 1e-4 * n
    check.hook_time = {
        ("Fast", "on_train_batch_end"): 5e-5 * n,       # faster than the batch
        ("Tiny", "on_train_batch_end"): 5e-4 * n,       # slower, but under the 1 ms floor
        ("Slow", "on_train_batch_begin"): 3e-3 * n,     # slower and over the floor
    }
    with pytest.warns(UserWarning) as record:
        timing.warn_slow(check)
    assert [str(w.message) for w in record] == [
        "Callback method `on_train_batch_begin` of Slow is slow compared to the batch time "
        "(batch time: 0.0001s vs `on_train_batch_begin` time: 0.0030s, means over 5 batches). "
        "Check your callbacks."
    ]


def test_the_check_reads_the_clock_only_for_a_few_batches(monkeypatch):
    calls = []

    def fake_clock():
        calls.append(1)
        return float(len(calls)) * 1e-9

    monkeypatch.setattr(callback_list_module, "time", types.SimpleNamespace(perf_counter=fake_clock))
    counts = []
    for batches in (10, 40):
        calls.clear()
        callbacks = CallbackList([Recorder()])
        for batch in range(batches):
            callbacks.on_train_batch_begin(batch)
            callbacks.on_train_batch_end(batch, {})
        counts.append(len(calls))
    assert counts[0] == counts[1] > 0


def test_duplicate_callback_classes_are_numbered():
    assert list(timing.callback_labels([Recorder(), History(), Recorder()]).values()) == [
        "Recorder", "History", "Recorder#2"
    ]


# ----------------------------------------------------------------------------- profiling
def test_profile_counts_every_call_of_every_overridden_hook():
    callbacks = CallbackList([Recorder(), Recorder()], add_history=True, profile=True)
    callbacks.on_train_begin()
    for epoch in range(2):
        callbacks.on_epoch_begin(epoch)
        for batch in range(7):
            callbacks.on_train_batch_begin(batch)
            callbacks.on_train_batch_end(batch, {"loss": torch.tensor(1.0)})
        callbacks.on_epoch_end(epoch, {"loss": 1.0})
    callbacks.on_train_end({"loss": 1.0})
    rows = callbacks.callback_times()
    calls = {(row["callback"], row["hook"]): row["calls"] for row in rows}
    assert calls == {
        ("Recorder", "on_train_batch_end"): 14,
        ("Recorder#2", "on_train_batch_end"): 14,
        ("(logs to floats)", "on_train_batch_end"): 14,
        ("Recorder", "on_epoch_end"): 2,
        ("Recorder#2", "on_epoch_end"): 2,
        ("History", "on_epoch_end"): 2,
        ("History", "on_train_begin"): 1,
    }
    assert [row["total_s"] for row in rows] == sorted((row["total_s"] for row in rows), reverse=True)
    for row in rows:
        assert row["mean_s"] == pytest.approx(row["total_s"] / row["calls"])


def test_without_profile_nothing_is_recorded():
    callbacks = CallbackList([Recorder()])
    for batch in range(10):
        callbacks.on_train_batch_end(batch, {"loss": torch.tensor(1.0)})
    assert callbacks.callback_times() == []


def test_fit_with_profile_callbacks_prints_the_table_and_keeps_the_rows(capsys):
    x, y = tiny_data(32)
    model = tiny_model()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Recorder()],
                        validation_split=0.25, profile_callbacks=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Callback times:"
    assert out[1].split() == ["callback", "hook", "calls", "total", "s", "mean", "ms"]
    rows = history.callback_times
    assert {(r["callback"], r["hook"], r["calls"]) for r in rows} >= {
        ("Recorder", "on_train_batch_end", 6), ("Recorder", "on_epoch_end", 2),
        ("History", "on_epoch_end", 2),
    }
    assert len(out) == 2 + len(rows)
    for line, row in zip(out[2:], rows, strict=True):
        assert line.startswith(row["callback"])
        assert line[len(row["callback"]):].split()[:2] == [row["hook"], str(row["calls"])]
    assert model.history is history


def test_fit_without_profiling_leaves_callback_times_none(capsys):
    x, y = tiny_data(16)
    history = tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.callback_times is None
    assert capsys.readouterr().out == ""


def test_format_callback_times_without_rows():
    assert timing.format_callback_times([]) == (
        "Callback times: no callback overrides any hook that ran."
    )


def test_default_callbacks_trigger_no_slow_warning_on_a_long_run():
    x, y = tiny_data(8 * 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0,
                         callbacks=[ProgbarLogger()])


def _batch_hook_callbacks(tmp_path, frequency):
    """Built-in callbacks whose batch hooks matter only at a per-batch ``frequency``."""
    model = tiny_model()
    scheduler = torch.optim.lr_scheduler.StepLR(model.optimizer, step_size=1)
    per = "batch" if frequency == 2 else "epoch"
    return model, [
        cadence.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.pt"), save_freq=frequency),
        cadence.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=frequency),
        cadence.callbacks.HyperparameterScheduler("learning_rate", lambda step, value: value, per=per),
        cadence.callbacks.TorchScheduler(scheduler, per=per),
    ]


@pytest.mark.parametrize(("frequency", "wanted"), [("epoch", False), (2, True)])
def test_built_in_callbacks_want_batch_hooks_only_when_their_settings_use_them(
    tmp_path, frequency, wanted
):
    model, callbacks = _batch_hook_callbacks(tmp_path, frequency)
    for callback in callbacks:
        listed = CallbackList([callback], model=model)
        assert listed.wants_batch_hooks("train") is wanted, type(callback).__name__


def test_a_subclass_batch_hook_is_called_whatever_the_parent_callback_wants(tmp_path):
    calls = []

    class Recording(cadence.callbacks.ModelCheckpoint):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    subclass = Recording
    checkpoint = subclass(str(tmp_path / "ckpt.weights.pt"))
    x, y = tiny_data(32)
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[checkpoint])
    assert calls == [0, 1, 2, 3]


def test_a_hook_set_on_the_instance_is_called_whatever_the_callback_wants(tmp_path):
    calls = []
    checkpoint = cadence.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.pt"))
    checkpoint.on_train_batch_end = lambda batch, logs=None: calls.append(batch)
    x, y = tiny_data(16)
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[checkpoint])
    assert calls == [0, 1]
