"""The `cadence` command: help, demo, plot and metric-definitions, through main(argv) and the script."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from cadence import cli, demo
from cadence.integrations.sagemaker import metric_definitions

SCRIPT = Path(sys.executable).with_name("cadence")


def _run(argv):
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue()


def test_the_console_script_prints_help_with_every_command():
    completed = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for command in ("demo", "plot", "metric-definitions"):
        assert command in completed.stdout
    assert "cadence plot runs/demo/training.csv -o curves.png" in completed.stdout


def test_no_command_and_bad_arguments_exit_with_2_and_say_why(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--epochs", "0"])
    assert exit_info.value.code == 2
    assert "argument --epochs: expected a positive integer; received '0'" in capsys.readouterr().err


def test_plot_writes_the_png_of_a_csv_log(tmp_path):
    log = tmp_path / "training.csv"
    log.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.6,0.9\n1,0.8,0.5,0.7,0.6\n2,0.9,0.3,0.75,0.5\n")
    output = tmp_path / "curves.png"
    code, printed = _run(["plot", str(log), "-o", str(output), "--title", "digits"])
    assert (code, printed) == (0, f"Wrote {output}\n")
    pixels = imread(output)
    assert pixels.shape[:2] == (320, 840)  # two panels: loss, accuracy
    assert float(np.var(pixels[..., :3])) > 0.005


def test_plot_of_a_missing_file_or_key_is_an_error_on_stderr(tmp_path, capsys):
    assert _run(["plot", str(tmp_path / "nope.csv")])[0] == 1
    assert re.search(r"cadence plot: error: No CSV log at '.*nope\.csv'\.", capsys.readouterr().err)
    log = tmp_path / "training.csv"
    log.write_text("epoch,loss\n0,1.0\n")
    assert _run(["plot", str(log), "--keys", "mae"])[0] == 1
    assert "cadence plot: error: No values recorded for ['mae']; the recorded metrics are ['loss']." in capsys.readouterr().err


def test_metric_definitions_prints_the_sagemaker_json():
    code, printed = _run(["metric-definitions", "--keys", "loss", "val_loss", "accuracy"])
    assert code == 0
    definitions = json.loads(printed)
    assert definitions == metric_definitions(["loss", "val_loss", "accuracy"])
    assert [d["Name"] for d in definitions] == ["train_loss", "val_loss", "train_accuracy"]
    line = "Epoch 3/10 - train_loss: 0.1234; - train_accuracy: 0.9500; - val_loss: 0.2345;"
    found = {d["Name"]: re.search(d["Regex"], line).group(1) for d in definitions}
    assert found == {"train_loss": "0.1234", "val_loss": "0.2345", "train_accuracy": "0.9500"}


def test_metric_definitions_defaults_and_keys_from_a_csv_header(tmp_path):
    assert [d["Name"] for d in json.loads(_run(["metric-definitions"])[1])] == ["train_loss", "val_loss"]
    log = tmp_path / "training.csv"
    log.write_text("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n")
    code, printed = _run(["metric-definitions", "--csv", str(log), "--prefix-train", "", "--indent", "0"])
    assert code == 0
    assert [d["Name"] for d in json.loads(printed)] == ["accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]


def test_demo_command_prints_the_summary(tmp_path):
    run_dir = tmp_path / "run"
    code, printed = _run(["demo", "--run-dir", str(run_dir), "--epochs", "2", "--verbose", "0"])
    assert code == 0
    assert "Trained 2 epochs (ran every epoch" in printed
    assert re.search(r"Test accuracy: \d+\.\d\d%   test loss: \d\.\d{4}", printed)
    assert f"  CSV log           {run_dir / 'training.csv'}" in printed
    assert (run_dir / "training.csv").is_file()


def test_ctrl_c_during_the_demo_says_how_to_resume(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    code, printed = _run(["demo", "--run-dir", str(tmp_path / "run")])
    assert code == 130
    assert printed == (
        f"cadence demo: starting (loading torch and scikit-learn's digits; outputs go to {tmp_path / 'run'})\n"
        "\nInterrupted. Run the same command again to resume from the last backup in "
        f"{tmp_path / 'run' / 'backup'}.\n"
    )


def test_version_prints_the_installed_version(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"cadence {metadata.version('cadence')}\n"
    import cadence

    assert metadata.version("cadence") == cadence.__version__


def test_demo_without_scikit_learn_names_the_extra_before_writing_anything(tmp_path, monkeypatch, capsys):
    real_find_spec = demo.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "sklearn" else real_find_spec(name, *args)

    monkeypatch.setattr(demo.importlib.util, "find_spec", find_spec)
    code, printed = _run(["demo", "--run-dir", str(tmp_path / "run")])
    assert code == 1
    assert capsys.readouterr().err == (
        "cadence demo: error: cadence demo needs scikit-learn, which is not installed. Install "
        "the demo's extra with: pip install 'cadence[demo]'\n"
    )
    assert not (tmp_path / "run").exists()
    with pytest.raises(demo.MissingExtraError, match=r"pip install 'cadence\[demo\]'"):
        demo.run_demo(tmp_path / "run")
    assert not (tmp_path / "run").exists()
