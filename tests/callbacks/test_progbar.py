"""ProgbarLogger: Keras 3's bar and lines, device reads at the refresh rate only, a real terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence import metrics
from cadence.callbacks import ProgbarLogger
from cadence.callbacks import progbar as progbar_module
from cadence.logs import MetricLogs

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BAR = "━" * 20


def keras_number(value):
    """Keras's Progbar: %.4f, or %.4e when the value's size is at most 1e-3."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


class FakeClock:
    def __init__(self, step):
        self.now = 0.0
        self.step = step

    def monotonic(self):
        self.now += self.step
        return self.now


def _drive(monkeypatch, clock_step, batches=50, refresh=1.0):
    monkeypatch.setattr(progbar_module, "time", types.SimpleNamespace(monotonic=FakeClock(clock_step).monotonic))
    loss = metrics.Mean(name="loss")
    loss.update_state(torch.tensor([0.5]))
    bar = ProgbarLogger(refresh_seconds=refresh, interactive=True)
    bar.set_params({"epochs": 1, "steps": batches, "verbose": 1})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    before = logs_module.conversions
    for batch in range(batches):
        bar.on_train_batch_end(batch, MetricLogs([loss]))
    reads = logs_module.conversions - before
    bar.on_epoch_end(0, {"loss": 0.5})
    bar.on_train_end()
    return reads


def test_the_bar_reads_no_logs_between_refreshes(monkeypatch, capsys):
    assert _drive(monkeypatch, clock_step=0.0) == 0
    out = capsys.readouterr().out
    assert not out.startswith("Epoch")  # Keras prints "Epoch 1/N" only when N > 1.
    assert ANSI.sub("", out.split("\r")[-1]) == f"50/50 {BAR} 0s 0s/step - loss: 0.5000\n"


def test_the_bar_reads_once_per_refresh_interval(monkeypatch, capsys):
    # Every clock reading advances 0.25 s: with a 1 s refresh, one read every 4 batches.
    assert _drive(monkeypatch, clock_step=0.25, batches=40) == 10
    capsys.readouterr()


def test_keras_number_time_and_eta_formats():
    """Keras's Progbar: values %.4f / %.4e by size, us/ms/s per step, eta as s, m:ss, h:mm:ss."""
    assert progbar_module.format_logs({"loss": 0.5, "lr": 1e-4, "n": 3, "zero": 0.0, "name": "x", "v": [1.0, 2.0]}) == (
        "loss: 0.5000 - lr: 1.0000e-04 - n: 3.0000 - zero: 0.0000e+00 - v: 1.5000"
    )
    assert progbar_module.format_value(-2.5) == "-2.5000"
    assert [progbar_module.format_time(s) for s in (0, 2e-5, 0.0021, 1.4, 3.0)] == [
        " 0s/step", " 20us/step", " 2ms/step", " 1s/step", " 3s/step"
    ]
    assert [progbar_module.format_eta(s) for s in (7.2, 125, 3723)] == ["7s", "2:05", "1:02:03"]


@pytest.mark.parametrize("steps", [None, 0])
def test_unknown_or_zero_steps(monkeypatch, capsys, steps):
    """Keras: `%7d/Unknown` while the count is unknown; the final line takes the count seen."""
    clock = FakeClock(0.0)  # Advanced by hand: one second a batch.
    monkeypatch.setattr(progbar_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    bar = ProgbarLogger(refresh_seconds=0, interactive=True)
    bar.set_params({"epochs": 1, "steps": steps, "verbose": 1})
    bar.on_predict_begin()
    for batch in range(3):
        clock.now += 1.0
        bar.on_predict_batch_end(batch, {"outputs": None})
    bar.on_predict_end()
    segments = [ANSI.sub("", s) for s in capsys.readouterr().out.split("\r") if s]
    assert segments[:3] == ["      1/Unknown 1s 1s/step", "      2/Unknown 2s 1s/step", "      3/Unknown 3s 1s/step"]
    assert segments[-1] == f"3/3 {BAR} 3s 1s/step\n"
    bar.on_predict_begin()
    bar.on_predict_end()  # No batch at all.
    assert ANSI.sub("", capsys.readouterr().out) == "\r      0/Unknown 0s 0s/step\n"


def _fit(verbose, epochs=2):
    torch.manual_seed(0)
    model = cadence.Model(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 2), dtype=np.float32), rng.random(16, dtype=np.float32)
    return model.fit(x, y, batch_size=4, epochs=epochs, verbose=verbose)


def test_verbose_0_prints_nothing(capsys):
    _fit(0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_kerass_one_line_per_epoch(capsys):
    """Keras: verbose=2 prints `4/4 - 0s - 3ms/step - loss: 0.1234` after each `Epoch i/n`."""
    history = _fit(2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line, loss in zip(lines[1::2], history.history["loss"], strict=True):
        assert re.fullmatch(rf"4/4 - \d+s - \d+(us|ms|s)/step - loss: {re.escape(keras_number(loss))}", line)


def test_non_interactive_output_gets_the_final_bar_line_only(capsys):
    # capsys's stdout is not a terminal: no redrawn bar, the final line of each, no colours.
    before = logs_module.conversions
    history = _fit(verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line, loss in zip((lines[1], lines[3]), history.history["loss"], strict=True):
        assert re.fullmatch(rf"4/4 {BAR} \d+s \d+(us|ms|s)/step - loss: {re.escape(keras_number(loss))}", line)
    assert logs_module.conversions - before == 2  # The epoch ends' logs, nothing per batch.


def test_a_notebook_gets_tqdms_widget_with_kerass_values(monkeypatch, capsys):
    pytest.importorskip("ipywidgets")
    bars = []

    class FakeWidget:
        def __init__(self, total, unit, leave):
            self.total, self.n, self.postfix, self.closed = total, 0, "", False
            bars.append(self)

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr("tqdm.notebook.tqdm", FakeWidget)
    monkeypatch.setattr(progbar_module, "_in_kernel", lambda: True)
    history = _fit(verbose=1)
    assert [(b.total, b.n, b.closed) for b in bars] == [(4, 4, True), (4, 4, True)]
    assert [b.postfix for b in bars] == [f"loss: {keras_number(v)}" for v in history.history["loss"]]
    assert capsys.readouterr().out == "Epoch 1/2\nEpoch 2/2\n"


def test_a_notebook_bar_left_open_by_ctrl_c_is_closed_by_the_next_run(monkeypatch, capsys):
    pytest.importorskip("ipywidgets")
    bars = []

    class FakeWidget:
        def __init__(self, total, unit, leave):
            self.n, self.closed = 0, False
            bars.append(self)

        def set_postfix_str(self, text, refresh=True):
            pass

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    class Interrupt(cadence.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr("tqdm.notebook.tqdm", FakeWidget)
    monkeypatch.setattr(progbar_module, "_in_kernel", lambda: True)
    with pytest.raises(KeyboardInterrupt):
        _fit_with(1, [Interrupt()])
    assert [(b.n, b.closed) for b in bars] == [(1, False)]
    _fit_with(1, [])
    assert [(b.n, b.closed) for b in bars] == [(1, True), (4, True)]
    capsys.readouterr()


def _fit_with(epochs, callbacks):
    torch.manual_seed(0)
    model = cadence.Model(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    x = np.zeros((16, 2), np.float32)
    return model.fit(x, x[:, 0], batch_size=4, epochs=epochs, verbose=1, callbacks=callbacks)


_SCRIPT = textwrap.dedent("""
    import gc, json, warnings
    # A bar redrawn every batch (refresh_seconds=0) may rightly be reported as slow; not the point here.
    warnings.filterwarnings("ignore", message="Callback method .* is slow")
    import numpy as np, torch
    from torch import nn
    import cadence
    from cadence.callbacks import Callback, ProgbarLogger

    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"], device="cpu")
    x = np.random.default_rng(0).random((80, 3), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    live = lambda: ProgbarLogger(refresh_seconds=0)
    history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, callbacks=[live()])
    print("HISTORY " + json.dumps(history.history))
    result = model.evaluate(x, y, batch_size=8, return_dict=True, callbacks=[live()])
    print("EVALUATE " + json.dumps(result))
    model.predict(x, batch_size=8, callbacks=[live()])

    class Interrupt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise KeyboardInterrupt

    try:
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[Interrupt(), live()])
    except KeyboardInterrupt:
        print("INTERRUPTED")
    gc.collect()
    model.fit(x[:40], y[:40], batch_size=8, epochs=1, callbacks=[live()])
    print("DONE")
""")


def _run_in_terminal(tmp_path, columns=80):
    """Run the script with stdout and stderr on a pseudo-terminal of ``columns`` columns."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(cadence.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "", "PYTHONWARNINGS": "error"}
    env.pop("COLUMNS")
    main, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen([sys.executable, str(script)], stdout=replica, stderr=replica,
                               stdin=subprocess.DEVNULL, cwd=tmp_path, env=env)
    os.close(replica)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError("the script printed nothing for 120 s")
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the script closed the terminal.
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def _lines(section):
    """Split terminal output into (live redraws, final lines), ANSI codes removed."""
    live, final = [], []
    for row in section.split("\n")[:-1]:
        segments = [ANSI.sub("", s) for s in row.split("\r") if ANSI.sub("", s)]
        final.append(segments[-1] if segments else "")
        live.extend(segments[:-1])
    return live, final


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_verbose_1_in_an_80_column_terminal_shows_every_value_as_keras(tmp_path):
    """Keras: `8/8 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - loss: ... - val_mse: ...`, nothing cut."""
    out = _run_in_terminal(tmp_path)
    assert "\x1b[1m" in out and "\x1b[32m" in out  # Keras's bold count and green bar.
    fit_part, rest = out.split("HISTORY ", 1)
    history_text, rest = rest.split("\n", 1)
    history = json.loads(history_text)
    live, final = _lines(fit_part)
    keys = ["loss", "mae", "mse", "val_loss", "val_mae", "val_mse"]
    assert final[0] == "Epoch 1/2" and final[2] == "Epoch 2/2"
    for epoch, line in ((0, final[1]), (1, final[3])):
        values = " - ".join(f"{k}: {keras_number(history[k][epoch])}" for k in keys)
        assert re.fullmatch(rf"8/8 {BAR} \d+s \d+(us|ms|s)/step - {re.escape(values)}", line), line
        assert len(line) > 80  # Wider than the terminal: it wraps, nothing is cut.
    assert len(final) == 4
    # Live redraws fit on one row (so they can be redrawn in place) and keep Keras's format.
    assert live and all(len(s) <= 79 for s in live), live
    for segment in live:
        assert re.fullmatch(rf"\d/8 {BAR} \d+s \d+(us|ms|s)/step( - \w+: \S+)*", segment), segment

    evaluate_part, rest = rest.split("EVALUATE ", 1)
    result_text, rest = rest.split("\n", 1)
    result = json.loads(result_text)
    _, final = _lines(evaluate_part)
    values = " - ".join(f"{k}: {keras_number(result[k])}" for k in ["loss", "mae", "mse"])
    assert len(final) == 1 and re.fullmatch(rf"10/10 {BAR} \d+s \d+(us|ms|s)/step - {re.escape(values)}", final[0])

    predict_part, rest = rest.split("INTERRUPTED", 1)
    # The interrupted bar stays where it was: its last redraw, then the message on that row.
    _, final = _lines(predict_part + "INTERRUPTED\n")
    assert re.fullmatch(rf"10/10 {BAR} \d+s \d+(us|ms|s)/step", final[0])
    assert re.fullmatch(r" 3/10 ━{20} \d+s \d+(us|ms|s)/step( - \w+: \S+)*INTERRUPTED", final[1]), final[1]
    # After Ctrl-C, nothing of the interrupted bar is drawn again: only the next fit's bar.
    after, done = rest.split("DONE", 1)
    assert after.startswith("\n")  # The end of the row of the message.
    live, final = _lines(after[1:])
    assert final[0] == "" and len(final) == 2, final  # The new bar starts on a fresh row.
    assert all(re.match(r"[1-5]/5 ", s) for s in live + final[1:]), (live, final)
    assert re.fullmatch(rf"5/5 {BAR} \d+s \d+(us|ms|s)/step - loss: \S+ - mae: \S+ - mse: \S+", final[1])
    assert done == "\n"
