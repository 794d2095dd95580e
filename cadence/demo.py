"""The demo: an MLP on scikit-learn's digits, with every callback a real run uses, in one folder.

``cadence demo`` (and ``make demo``) runs :func:`run_demo`: it trains a 64-128-10 MLP on the
8x8 digits bundled with scikit-learn (no download), with a live progress bar, early stopping,
learning-rate reduction on plateaus, a best-model checkpoint, a CSV log, TensorBoard event
files, an MLflow run in a local SQLite store and a backup every epoch, all under one run folder.
Interrupted (Ctrl-C, a kill), the same command resumes from the last backup.

MLflow is slow to start (importing it, then creating a new SQLite store's tables takes seconds),
so the demo's MLflowLogger runs in a worker thread (:class:`InBackground`): training starts at
once and the demo waits for MLflow only at the end, saying so. It needs the ``demo`` extra
(``pip install 'cadence[demo]'``), checked before anything is written.
"""

from __future__ import annotations

import importlib.util
import queue
import shutil
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

import cadence
from cadence import callbacks as cb
from cadence.callbacks.mlflow_logger import _quiet as quiet_mlflow
from cadence.extras import MissingExtraError

#: Fractions of the 1,797 digits held out for testing, then (of the rest) for validation.
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
BATCH_SIZE = 32
#: The packages the demo needs (its ``demo`` extra), by import name and distribution name.
DEMO_PACKAGES = {"sklearn": "scikit-learn", "mlflow": "mlflow", "tensorboard": "tensorboard",
                 "matplotlib": "matplotlib"}


def check_demo_packages() -> None:
    """Raise :class:`~cadence.extras.MissingExtraError` if a package of the demo is missing.

    Only looks the packages up (nothing is imported), so it is instant.
    """
    missing = [name for module, name in DEMO_PACKAGES.items() if importlib.util.find_spec(module) is None]
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise MissingExtraError(
            f"cadence demo needs {names}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed. Install the demo's extra with: pip install 'cadence[demo]'"
        )


@dataclass
class DemoResult:
    """What a demo run produced: its scores, how it ran and where its outputs are."""

    test_accuracy: float
    test_loss: float
    epochs_run: int
    stopped_early: bool
    best_epoch: int | None
    resumed_from: Path | None
    samples: dict[str, int]
    paths: dict[str, Path]
    mlflow_uri: str
    mlflow_run_id: str | None
    history: Any = field(repr=False)


def load_digits_splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return standardised ``train``/``validation``/``test`` splits of scikit-learn's digits.

    The split is stratified and fixed by ``seed``; features are scaled with the training
    split's mean and standard deviation only.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=VALIDATION_FRACTION, random_state=seed, stratify=y_rest
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return {
        name: (((features - mean) / std).astype(np.float32), labels)
        for name, features, labels in (
            ("train", x_train, y_train), ("validation", x_val, y_val), ("test", x_test, y_test)
        )
    }


def build_model(seed: int = 0) -> cadence.Sequential:
    """Return the compiled 64-128-10 MLP (dropout 0.2, Adam 1e-3), initialised from ``seed``."""
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    model.compile(
        optimizer=cadence.optimizers.Adam(learning_rate=1e-3),
        loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        device="cpu",
    )
    return model


def output_paths(run_dir: str | Path) -> dict[str, Path]:
    """Return where each output of a demo run goes, all inside ``run_dir``."""
    run_dir = Path(run_dir)
    return {
        "run folder": run_dir,
        "CSV log": run_dir / "training.csv",
        "best checkpoint": run_dir / "checkpoints" / "best.pt",
        "TensorBoard logs": run_dir / "tensorboard",
        "MLflow store": run_dir / "mlflow.db",
        "MLflow artifacts": run_dir / "mlflow-artifacts",
        "curves": run_dir / "curves.png",
        "backup": run_dir / "backup",
    }


def run_demo(
    run_dir: str | Path = "runs/demo",
    epochs: int = 60,
    seed: int = 0,
    verbose: int = 1,
    extra_callbacks: list[cb.Callback] | None = None,
) -> DemoResult:
    """Train the demo MLP on digits with the full set of callbacks; resume if a backup exists.

    Args:
        run_dir: The folder for every output (created if needed).
        epochs: The most epochs to train (early stopping usually ends sooner).
        seed: Fixes the data split, the initial weights and the data order.
        verbose: The progress display (``fit``'s ``verbose``: 0 silent, 1 bar, 2 a line/epoch).
        extra_callbacks: More callbacks to run alongside the demo's own.

    Returns:
        A :class:`DemoResult` with the test accuracy and the output paths.
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; received epochs={epochs!r}.")
    check_demo_packages()
    paths = output_paths(run_dir)
    paths["run folder"].mkdir(parents=True, exist_ok=True)
    backup_dir = paths["backup"]
    if not (backup_dir.is_dir() and any(backup_dir.iterdir())) and paths["TensorBoard logs"].is_dir():
        # A fresh start: the previous run's curves would be mixed with this one's in TensorBoard.
        shutil.rmtree(paths["TensorBoard logs"])
    # MLflow starts first: its worker thread sets up while the data loads and training runs.
    mlflow_uri = f"sqlite:///{paths['MLflow store'].resolve()}"
    early_stopping = cb.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)
    backup = cb.BackupAndRestore(backup_dir, save_freq="epoch")

    def mlflow_logger_with_its_store() -> cb.MLflowLogger:
        logger = cb.MLflowLogger(
            tracking_uri=mlflow_uri,
            experiment_name="cadence-demo",
            artifact_paths=[paths["CSV log"], paths["best checkpoint"], paths["curves"]],
            artifact_location=paths["MLflow artifacts"].resolve().as_uri(),
            params={"batch_size": BATCH_SIZE, "seed": seed, "data": "sklearn digits"},
        )
        with quiet_mlflow():  # Creates a new store's tables now, before the first epoch ends.
            logger.client.get_experiment_by_name("cadence-demo")
        return logger

    mlflow_logger = InBackground(mlflow_logger_with_its_store, state_key="MLflowLogger",
                                 waiting="(waiting for MLflow to set up its store)")
    splits = load_digits_splits(seed)
    x_train, y_train = splits["train"]
    model = build_model(seed)
    run_callbacks: list[cb.Callback] = [
        cb.ProgbarLogger(),
        early_stopping,
        cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5),
        cb.ModelCheckpoint(paths["best checkpoint"], monitor="val_loss", save_best_only=True,
                           save_weights_only=True),
        cb.CSVLogger(paths["CSV log"]),
        cb.TensorBoard(paths["TensorBoard logs"], histogram_freq=5),
        _PlotCurves(paths["curves"]),
        mlflow_logger,
        backup,
        *(extra_callbacks or []),
    ]
    torch.manual_seed(seed)
    history = model.fit(
        x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=verbose,
        validation_data=splits["validation"], callbacks=run_callbacks,
    )
    x_test, y_test = splits["test"]
    scores = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    epochs_run = len(history.epoch) and history.epoch[-1] + 1
    return DemoResult(
        test_accuracy=float(scores["accuracy"]),
        test_loss=float(scores["loss"]),
        epochs_run=epochs_run,
        stopped_early=epochs_run < epochs,
        best_epoch=getattr(early_stopping, "best_epoch", None),
        resumed_from=backup.restored_from,
        samples={name: len(labels) for name, (_, labels) in splits.items()},
        paths=paths,
        mlflow_uri=mlflow_uri,
        mlflow_run_id=getattr(mlflow_logger.callback, "run_id", None),
        history=history,
    )


class InBackground(cb.Callback):
    """Run a slow callback's train and epoch hooks in a worker thread, in order.

    The callback is built by ``factory`` in the worker too (MLflowLogger imports mlflow), and
    every hook it gets is queued, so training does not wait for it. Two calls wait until the
    worker has run everything queued, printing ``waiting`` if it is not done yet:
    :meth:`state_dict` (so that a backup holds the callback's exact state, e.g. MLflow's run
    id) and ``on_train_end``. Its batch hooks are not called. An error in the worker is
    reported as a warning when training ends: the run's other outputs are kept. One ``fit``.

    Args:
        factory: Returns the callback.
        state_key: The callback's name in backups.
        waiting: What to print when training ends before the worker is done.
    """

    def __init__(self, factory: Callable[[], cb.Callback], state_key: str, waiting: str) -> None:
        super().__init__()
        self.callback: Any = None
        self.error: BaseException | None = None
        self._key = state_key
        self._waiting = waiting
        self._state: dict[str, Any] = {}
        self._said_waiting = False
        self._tasks: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work, args=(factory,), daemon=True)
        self._worker.start()

    @property
    def state_key(self) -> str:
        """The name given to this callback's entry in backups."""
        return self._key

    def _work(self, factory: Callable[[], cb.Callback]) -> None:
        try:
            self.callback = factory()
        except BaseException as error:  # noqa: BLE001 - reported when training ends
            self.error = error
        while True:
            task = self._tasks.get()
            if task is None:
                self._tasks.task_done()
                return
            name, args = task
            try:
                if self.error is None:
                    getattr(self.callback, name)(*args)
                    self._state = self.callback.state_dict()
            except BaseException as error:  # noqa: BLE001 - reported when training ends
                self.error = error
            finally:
                self._tasks.task_done()

    def _queue(self, name: str, *args: Any) -> None:
        self._tasks.put((name, args))

    def set_model(self, model: Any) -> None:
        """Attach the model, to this wrapper and (in the worker) to the callback."""
        super().set_model(model)
        self._queue("set_model", model)

    def set_params(self, params: dict[str, Any]) -> None:
        """Set the run's parameters, here and (in the worker) on the callback."""
        super().set_params(params)
        self._queue("set_params", dict(params))

    def _wait(self) -> None:
        done = self._tasks.all_tasks_done
        with done:
            if not done.wait_for(lambda: not self._tasks.unfinished_tasks, timeout=0.5):
                if not self._said_waiting:
                    print(f"{self._waiting}...", flush=True)
                    self._said_waiting = True
                done.wait_for(lambda: not self._tasks.unfinished_tasks)

    def state_dict(self) -> dict[str, Any]:
        """Return the callback's state once the worker has run every hook queued so far."""
        self._wait()
        return dict(self._state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the callback's state (in the worker, before its next hook)."""
        self._state = dict(state)
        self._queue("load_state_dict", dict(state))

    def on_train_begin(self, logs=None):
        """Queue the hook."""
        self._queue("on_train_begin", dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        """Queue the hook with a copy of the logs."""
        self._queue("on_epoch_end", epoch, dict(logs or {}))

    def on_train_end(self, logs=None):
        """Queue the hook, then wait for the worker to finish everything."""
        self._queue("on_train_end", dict(logs or {}))
        self._tasks.put(None)
        self._wait()
        self._worker.join()
        if self.error is not None:
            warnings.warn(
                f"{self._key} failed in the background ({type(self.error).__name__}: "
                f"{self.error}); the run's other outputs are complete.",
                stacklevel=2,
            )


class _PlotCurves(cb.Callback):
    """Draw the run's curves from the History at the end of training (before MLflow uploads)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        """Save the curves of the whole run (restored epochs included)."""
        history = getattr(self.model, "history", None)
        if history is not None and history.history:
            history.plot(path=self.path)


def format_summary(result: DemoResult) -> str:
    """Return the summary the demo prints: scores, how training went and every output path."""
    samples = result.samples
    lines = [
        "",
        f"cadence demo: MLP 64-128-10 on scikit-learn digits ({samples['train']} train / "
        f"{samples['validation']} validation / {samples['test']} test samples)",
    ]
    if result.resumed_from is not None:
        lines.append(f"Resumed from the backup {result.resumed_from}")
    stop = "stopped early by EarlyStopping" if result.stopped_early else "ran every epoch"
    best = f"; best val_loss at epoch {result.best_epoch + 1}" if result.best_epoch is not None else ""
    lines.append(f"Trained {result.epochs_run} epochs ({stop}{best}; its weights restored).")
    lines.append(f"Test accuracy: {result.test_accuracy:.2%}   test loss: {result.test_loss:.4f}")
    lines.append("Outputs:")
    shown = dict(result.paths)
    backup = shown.pop("backup")
    for name, path in shown.items():
        lines.append(f"  {name:<17} {path}")
    lines.append(f"  {'backup':<17} {backup} (removed when training finishes; kept if interrupted)")
    tensorboard = result.paths["TensorBoard logs"]
    lines += [
        "Look at them with:",
        f"  tensorboard --logdir {tensorboard}",
        f"  mlflow ui --backend-store-uri {result.mlflow_uri}   (run {result.mlflow_run_id})",
        f"  cadence plot {result.paths['CSV log']} -o curves.png",
    ]
    return "\n".join(lines)


def main(run_dir: str | Path = "runs/demo", epochs: int = 60, verbose: int = 1,
         out: TextIO | None = None) -> int:
    """Run the demo and print its summary; on Ctrl-C say how to resume. Returns an exit code."""
    out = out or sys.stdout
    # The model is tiny: one thread avoids the cost of splitting each small matmul across cores.
    torch.set_num_threads(1)
    try:
        result = run_demo(run_dir, epochs=epochs, verbose=verbose)
    except KeyboardInterrupt:
        print(
            f"\nInterrupted. Run the same command again to resume from the last backup in "
            f"{output_paths(run_dir)['backup']}.",
            file=out,
        )
        return 130
    print(format_summary(result), file=out)
    return 0
