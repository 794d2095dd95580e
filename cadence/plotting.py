"""Training curves: one panel per metric, training and validation together, drawn with matplotlib.

Curves come from a :class:`~cadence.callbacks.History`, a ``{key: [value per epoch]}`` dict, or
a CSV log written by :class:`~cadence.callbacks.CSVLogger`. Figures are drawn with matplotlib's
non-interactive ``Agg`` canvas, so plotting works on machines without a display. In a Jupyter
notebook the returned figure is shown inline, as the cell's result (``history.plot()``).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from cadence import extras, io

#: Keys that are not metrics and never get a panel.
_NOT_METRICS = frozenset({"epoch"})
_VAL = "val_"
#: Keys holding the optimizer's learning rate: drawn last, as one "optimizer" curve.
_RATES = frozenset({"learning_rate", "lr"})


def read_csv_log(path: str | os.PathLike, separator: str | None = None) -> dict[str, list[float]]:
    """Read a CSV training log into ``{key: [value per row]}``; empty cells become NaN.

    Args:
        path: The CSV file (CSVLogger's format: a header row, then one row per epoch).
        separator: The column separator; sniffed from the header (``,``, ``;``, tab) if omitted.

    Returns:
        The columns, in file order, each a list of floats (the ``epoch`` column included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No CSV log at {str(path)!r}.")
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"The CSV log {str(path)!r} is empty; expected a header row and data rows.")
    if separator is None:
        header = lines[0]
        separator = max((",", ";", "\t"), key=header.count)
    rows = list(csv.reader(lines, delimiter=separator))
    names = rows[0]
    columns: dict[str, list[float]] = {name: [] for name in names}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise ValueError(
                f"Row {number} of {str(path)!r} has {len(row)} cells; the header has {len(names)}."
            )
        for name, cell in zip(names, row, strict=True):
            columns[name].append(_to_float(cell))
    return columns


def _to_float(cell: str) -> float:
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _curves(source: Any) -> tuple[list[float], dict[str, list[float]]]:
    """Return the epoch numbers (from 1) and the metric columns of any supported source."""
    if isinstance(source, str | os.PathLike):
        columns = read_csv_log(source)
        epochs = columns.pop("epoch", None)
        count = max((len(v) for v in columns.values()), default=0)
        if epochs is None or any(math.isnan(e) for e in epochs):
            epochs = list(range(count))
        return [e + 1 for e in epochs], columns
    history = getattr(source, "history", source)
    if not isinstance(history, Mapping):
        raise TypeError(
            "plot_curves expects a History, a {key: [values]} dict or the path of a CSV log; "
            f"received {type(source).__name__}."
        )
    columns = {str(k): [_number(x) for x in v] for k, v in history.items() if _is_series(v)}
    recorded = getattr(source, "epoch", None)
    count = max((len(v) for v in columns.values()), default=0)
    if isinstance(recorded, Sequence) and len(recorded) == count:
        epochs = [float(e) + 1 for e in recorded]
    else:
        epochs = [float(e) for e in range(1, count + 1)]
    return epochs, columns


def _is_series(values: Any) -> bool:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return False
    return all(isinstance(_number(x), float) for x in values)


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_names(columns: Mapping[str, Any]) -> list[str]:
    """Return the metric names that get a panel: ``loss`` first, the learning rate last.

    The other metrics keep their order of appearance; a ``val_<name>`` key joins ``<name>``.
    """
    names: list[str] = []
    for key in columns:
        if key in _NOT_METRICS:
            continue
        name = key[len(_VAL):] if key.startswith(_VAL) else key
        if name not in names:
            names.append(name)
    return sorted(names, key=lambda n: 0 if n == "loss" else 2 if n in _RATES else 1)


def plot_curves(
    source: Any,
    output_path: str | os.PathLike | None = None,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Any:
    """Draw training and validation curves, one panel per metric, and optionally save them.

    Each panel has the epoch (counted from 1, as the progress bar counts) on the x axis and the
    metric's name on the y axis; the training curve is solid, the validation curve (the
    ``val_`` key) dashed, with a legend. In a CSV log, empty cells (epochs without validation
    under ``validation_freq > 1``) are skipped. A ``History`` does not record which epochs were
    validated, so a validation list shorter than the training list is drawn against its own
    count and its legend entry says so.

    Args:
        source: A ``History``, a ``{key: [value per epoch]}`` dict, or the path of a CSV log.
        output_path: Where to save the figure (PNG, SVG or PDF by suffix); ``None`` saves nothing.
        keys: The metrics to draw (names without ``val_``); all of them by default.
        title: A title over the panels.
        dpi: Resolution of the saved image.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    extras.require("matplotlib", "cadence.plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs, columns = _curves(source)
    available = metric_names(columns)
    if keys is None:
        names = available
    else:
        names = [k[len(_VAL):] if k.startswith(_VAL) else k for k in keys]
        unknown = [k for k in names if k not in available]
        if unknown:
            raise KeyError(f"No values recorded for {unknown}; the recorded metrics are {available}.")
    if not names:
        raise ValueError("There is nothing to plot: no metric values were recorded.")
    count = len(names)
    ncols = min(count, 3)
    nrows = math.ceil(count / ncols)
    figure = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        _panel(ax, name, epochs, columns)
    for ax in axes[count:]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    _show_figures_inline()
    if output_path is not None:
        output_path = Path(output_path)
        buffer = BytesIO()
        figure.savefig(buffer, dpi=dpi, format=output_path.suffix.lstrip(".").lower() or "png")
        io.atomic_write_bytes(output_path, buffer.getvalue())
    return figure


def _panel(ax: Any, name: str, epochs: list[float], columns: Mapping[str, list[float]]) -> None:
    from matplotlib.ticker import MaxNLocator

    first = "optimizer" if name in _RATES else "training"
    for key, label, style in ((name, first, "-"), (_VAL + name, "validation", "--")):
        values = columns.get(key)
        if not values:
            continue
        if len(values) == len(epochs):
            pairs = [(e, v) for e, v in zip(epochs, values, strict=True) if not math.isnan(v)]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            xs, ys = [float(i) for i in range(1, len(values) + 1)], values
            label = f"{label} (by its own count: {len(values)} of {len(epochs)} epochs)"
        ax.plot(xs, ys, style, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(name)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if name in _RATES:
        values = [v for v in columns.get(name, []) if not math.isnan(v)]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")


def _figure_png(figure: Any) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _show_figures_inline() -> None:
    """In an IPython shell (a Jupyter kernel), display a returned figure as a PNG image.

    ``matplotlib.pyplot`` registers this display when it is imported in a notebook; cadence
    draws on ``Figure`` objects without pyplot (no global state, no display needed), so it
    registers the same display itself. Outside IPython nothing happens.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type_by_name("matplotlib.figure", "Figure", _figure_png)
