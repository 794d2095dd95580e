"""plot_curves: panels, labels and legends, from History, dicts and CSV logs; PNGs that are not blank."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from cadence.extras import MissingExtraError
from cadence.plotting import metric_names, plot_curves, read_csv_log

CURVES = {
    "accuracy": [0.5, 0.7, 0.8, 0.9],
    "learning_rate": [0.1, 0.1, 0.05, 0.05],
    "loss": [1.0, 0.6, 0.4, 0.3],
    "val_accuracy": [0.55, 0.65, 0.75, 0.8],
    "val_loss": [0.9, 0.7, 0.5, 0.45],
}


def _panels(figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def _lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_one_panel_per_metric_loss_first_learning_rate_last_with_labels_and_legends():
    figure = plot_curves(CURVES)
    panels = _panels(figure)
    assert [ax.get_title() for ax in panels] == ["loss", "accuracy", "learning_rate"]
    assert [ax.get_xlabel() for ax in panels] == ["epoch"] * 3
    assert [ax.get_ylabel() for ax in panels] == ["loss", "accuracy", "learning_rate"]
    loss = _lines(panels[0])
    assert loss == {"training": ([1, 2, 3, 4], CURVES["loss"]), "validation": ([1, 2, 3, 4], CURVES["val_loss"])}
    assert [t.get_text() for t in panels[0].get_legend().get_texts()] == ["training", "validation"]
    assert list(_lines(panels[2])) == ["optimizer"]


def test_keys_select_panels_and_unknown_keys_name_the_recorded_ones():
    assert [ax.get_title() for ax in _panels(plot_curves(CURVES, keys=["val_accuracy"]))] == ["accuracy"]
    with pytest.raises(KeyError, match=r"No values recorded for \['mae'\]; the recorded metrics are \['loss', 'accuracy', 'learning_rate'\]"):
        plot_curves(CURVES, keys=["mae"])


def test_nothing_to_plot_and_wrong_sources_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="There is nothing to plot"):
        plot_curves({})
    with pytest.raises(TypeError, match=r"plot_curves expects a History, a \{key: \[values\]\} dict or the path of a CSV log; received int\."):
        plot_curves(3)
    with pytest.raises(FileNotFoundError, match=r"No CSV log at '.*missing\.csv'\."):
        plot_curves(tmp_path / "missing.csv")


def test_png_has_the_size_of_the_figure_and_is_not_blank(tmp_path):
    path = tmp_path / "nested" / "curves.png"
    plot_curves(CURVES, path, dpi=50)
    pixels = imread(path)
    # 3 panels in one row: 4.2 x 3.2 inches each, at 50 dots per inch.
    assert pixels.shape[:2] == (160, 630)
    assert float(np.var(pixels[..., :3])) > 0.005
    # Curves are drawn in colour, not only the black frame and labels.
    assert np.any(np.abs(pixels[..., 0] - pixels[..., 2]) > 0.3)


def test_csv_log_with_empty_validation_cells_skips_those_epochs(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,val_loss\n0,1.0,0.9\n1,0.5,\n2,0.25,0.4\n3,0.2,\n")
    assert read_csv_log(path)["val_loss"][0] == 0.9 and math.isnan(read_csv_log(path)["val_loss"][1])
    lines = _lines(_panels(plot_curves(path))[0])
    assert lines["training"] == ([1, 2, 3, 4], [1.0, 0.5, 0.25, 0.2])
    assert lines["validation"] == ([1, 3], [0.9, 0.4])


def test_csv_separator_is_sniffed_and_ragged_rows_are_named(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch;loss\n0;1.5\n1;1.25\n")
    assert read_csv_log(path) == {"epoch": [0.0, 1.0], "loss": [1.5, 1.25]}
    path.write_text("epoch,loss\n0,1.5\n1\n")
    with pytest.raises(ValueError, match=r"Row 3 of '.*log\.csv' has 1 cells; the header has 2\."):
        read_csv_log(path)
    path.write_text("")
    with pytest.raises(ValueError, match=r"is empty; expected a header row"):
        read_csv_log(path)


def test_a_shorter_validation_series_from_a_history_says_so():
    figure = plot_curves({"loss": [1.0, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.7]})
    lines = _lines(_panels(figure)[0])
    assert lines["validation (by its own count: 2 of 4 epochs)"] == ([1, 2], [0.9, 0.7])


def test_metric_names_joins_val_keys_and_skips_epoch():
    assert metric_names({"epoch": [], "val_mae": [], "lr": [], "mae": [], "loss": []}) == ["loss", "mae", "lr"]


def test_missing_matplotlib_names_the_plot_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"needs the optional package 'matplotlib'.*pip install 'cadence\[plot\]'"):
        plot_curves(CURVES)
