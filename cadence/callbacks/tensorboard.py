"""TensorBoard: event files with Keras 3's run folders and tag names, written by the tensorboard package."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import Any

import torch

from cadence import extras, output_paths, remote
from cadence.callbacks.callback import Callback
from cadence.callbacks.log_values import check_log_keys, plain_value
from cadence.logs import to_python

_VAL = "val_"


def _check_profile_batch(profile_batch: Any) -> tuple[int, int]:
    """Return ``(start, stop)`` (1-based global batches, inclusive); ``(0, 0)`` disables."""
    value = profile_batch
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",")]
        except ValueError:
            value = None
        if value is not None and len(value) == 1:
            value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        start = stop = value
    elif isinstance(value, tuple | list) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        start, stop = value
    else:
        start, stop = -1, -1
    if start < 0 or stop < start or (start == 0) != (stop == 0):
        raise ValueError(
            "profile_batch must be a non-negative integer (0 disables profiling) or a pair of "
            "positive integers (start, stop) with start <= stop, the range of batches to profile; "
            f"received profile_batch={profile_batch!r}."
        )
    return start, stop


class TensorBoard(Callback):
    """Write TensorBoard logs: scalars, learning rate, weight histograms, the graph, a profile.

    Event files are written with the ``tensorboard`` package's writer (through
    ``torch.utils.tensorboard.SummaryWriter``), as Keras 3 lays them out: training values in
    ``log_dir/train`` and validation values in ``log_dir/validation``, under the same tags so
    TensorBoard overlays them. Tags, as in Keras 3:

    - ``epoch_<key>`` at step ``epoch`` (from 0): every training key in the train run, plus
      ``epoch_learning_rate`` (the optimizer's learning rate at the end of the epoch) and, with
      ``write_steps_per_second``, ``epoch_steps_per_second``; every ``val_<key>`` as
      ``epoch_<key>`` in the validation run.
    - ``evaluation_<key>_vs_iterations`` in the validation run at step ``optimizer.iterations``,
      after every validation pass and every ``evaluate``.
    - ``batch_<key>`` in the train run every ``update_freq`` batches, at the global batch count
      (from 1); with ``write_steps_per_second``, ``batch_steps_per_second`` likewise.
    - ``<parameter name>/histogram`` (and ``/image`` with ``write_images``) in the train run
      every ``histogram_freq`` epochs, for every parameter and floating-point buffer.

    Batch logs are read from the device only at the ``update_freq`` rate, never every batch.
    Numpy and torch scalars in the logs are written as numbers; a log key that is not a string
    is refused. ``log_dir`` (and its ``train``/``validation`` folders) is checked in
    ``on_train_begin``: a file there is refused before the first batch. The event writers
    (and their threads) are closed however ``fit`` ends, an exception included.

    Run ``tensorboard --logdir <log_dir>`` to view them. Needs the ``tensorboard`` extra
    (``pip install 'cadence[tensorboard]'``).

    Args:
        log_dir: The folder of the logs; ``train/`` and ``validation/`` are created in it.
        histogram_freq: Write weight histograms every this many epochs (0: never).
        write_graph: Write the model's graph, traced with ``torch.jit.trace`` on the first
            training batch's inputs (in eval mode, without touching the RNG streams). A model
            that cannot be traced gets one warning, and training goes on without the graph.
        write_images: Write 1-D and 2-D weights as images with the histograms.
        write_steps_per_second: Write training batches per second, per epoch and per batch.
        update_freq: ``"epoch"`` (only epoch summaries), ``"batch"`` (every batch) or an int N:
            batch-level scalars every N batches.
        profile_batch: A batch (from 1) or a ``(start, stop)`` range of batches, counted over the
            whole run, to profile with ``torch.profiler``; the trace is written to
            ``log_dir/train`` for TensorBoard's profiler plugin. 0 disables profiling.
        embeddings_freq: Accepted for Keras compatibility; only 0 (no embeddings) is supported.
        embeddings_metadata: Accepted for Keras compatibility; only ``None`` is supported.
    """

    #: Identifies the instance in a backup (see ``Callback.state_key``).
    state_key_attributes = ("log_dir",)
    #: Writes on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: str | int = "epoch",
        profile_batch: int | tuple[int, int] | str = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ) -> None:
        super().__init__()
        if embeddings_freq or embeddings_metadata is not None:
            raise ValueError(
                "cadence's TensorBoard does not write embedding projections (torch modules have "
                "no Keras Embedding layers to find); received "
                f"embeddings_freq={embeddings_freq!r}, embeddings_metadata={embeddings_metadata!r}. "
                "Use torch.utils.tensorboard.SummaryWriter.add_embedding in a callback instead."
            )
        if not isinstance(histogram_freq, int) or isinstance(histogram_freq, bool) or histogram_freq < 0:
            raise ValueError(
                "histogram_freq must be a non-negative integer (0 disables histograms); "
                f"received histogram_freq={histogram_freq!r}."
            )
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (
            not isinstance(update_freq, int) or isinstance(update_freq, bool) or update_freq < 1
        ):
            raise ValueError(
                "update_freq must be 'epoch', 'batch' or a positive integer number of batches; "
                f"received update_freq={update_freq!r}."
            )
        self._start_batch, self._stop_batch = _check_profile_batch(profile_batch)
        if self._start_batch and remote.is_remote(log_dir):
            raise ValueError(
                "profile_batch needs a local log_dir: torch.profiler writes its traces to local "
                f"files; received log_dir={os.fspath(log_dir)!r}, profile_batch={profile_batch!r}."
            )
        self._summary_writer_class = extras.require(
            "torch.utils.tensorboard", "cadence.callbacks.TensorBoard", "tensorboard"
        ).SummaryWriter
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq
        self.profile_batch = profile_batch
        self._writers: dict[str, Any] = {}
        self._global_train_batch = 0
        self._epochs_written = 0
        self._purge_step: int | None = None
        self._validation_purge_step: int | None = None
        self._restored = False
        self._graph_pending = self.write_graph
        self._graph_inputs: tuple | None = None
        self._graph_hook: Any = None
        self._profiler: Any = None
        self._batch_start = 0.0
        self._epoch_start = 0.0
        self._epoch_batches = 0

    # ------------------------------------------------------------------ writers
    @property
    def train_dir(self) -> str:
        """The folder of the training run."""
        return os.path.join(self.log_dir, "train")

    @property
    def validation_dir(self) -> str:
        """The folder of the validation run."""
        return os.path.join(self.log_dir, "validation")

    def _writer(self, run: str) -> Any:
        writer = self._writers.get(run)
        if writer is None:
            folder = self.train_dir if run == "train" else self.validation_dir
            purge = self._purge_step if run == "train" else self._validation_purge_step
            writer = self._summary_writer_class(folder, purge_step=purge)
            self._writers[run] = writer
        return writer

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        self._purge_step = None
        self._validation_purge_step = None

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the global batch count, the epochs written, the optimizer step and the graph flag."""
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return {
            "global_train_batch": self._global_train_batch,
            "epochs_written": self._epochs_written,
            "iterations": -1 if iterations is None else int(iterations),
            "graph_written": self.write_graph and not self._graph_pending,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume counting; events at or after the restored epoch are hidden from TensorBoard.

        With ``update_freq="epoch"`` the training run is reopened with ``purge_step`` set to the
        next epoch, so values written after the backup by the interrupted run do not show
        twice. With batch-level scalars the steps of the two scales differ, so nothing is
        purged and the batches between the backup and the interruption appear twice. The
        validation run is purged on the optimizer-step scale of its
        ``evaluation_*_vs_iterations`` points (so none before the backup is lost); an
        ``epoch_*`` validation value written after the backup may then show twice. The graph
        is not written again.
        """
        self._global_train_batch = int(state["global_train_batch"])
        self._epochs_written = int(state["epochs_written"])
        self._close_writers()
        if self.update_freq == "epoch":
            self._purge_step = self._epochs_written
        iterations = int(state.get("iterations", -1))
        if iterations >= 0:
            self._validation_purge_step = iterations + 1
        if state.get("graph_written"):
            self._graph_pending = False
        self._restored = True

    # ------------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        """Check ``log_dir``, start counting batches (unless restored), prepare the graph capture."""
        if not remote.is_remote(self.log_dir):  # tensorboard writes remote folders itself.
            for folder in (self.log_dir, self.train_dir, self.validation_dir):
                output_paths.check_output_folder(folder, "TensorBoard", "log_dir")
        if not self._restored:
            self._global_train_batch = 0
            self._epochs_written = 0
        self._restored = False
        if self._graph_pending and self.model is not None:
            self._graph_hook = self.model.register_forward_pre_hook(self._capture_inputs)

    def _capture_inputs(self, module: Any, args: tuple) -> None:
        if self._graph_inputs is None:
            self._graph_inputs = tuple(
                a.detach() if isinstance(a, torch.Tensor) else a for a in args
            )
        self._remove_graph_hook()

    def _remove_graph_hook(self) -> None:
        if self._graph_hook is not None:
            self._graph_hook.remove()
            self._graph_hook = None

    def on_epoch_begin(self, epoch, logs=None):
        """Note the time at which the epoch began."""
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        """Count the batch; start the profiler on the first batch of its range."""
        self._global_train_batch += 1
        self._epoch_batches += 1
        if self.write_steps_per_second:
            self._batch_start = time.perf_counter()
        if self._start_batch and self._global_train_batch == self._start_batch:
            self._start_profiler()

    def on_train_batch_end(self, batch, logs=None):
        """Write the graph once, batch scalars every ``update_freq`` batches, stop the profiler."""
        if self._graph_pending:
            self._graph_pending = False
            self._write_graph()
        step = self._global_train_batch
        if self.update_freq != "epoch" and step % self.update_freq == 0:
            values = _scalars(to_python(logs), "on_train_batch_end")
            if self.write_steps_per_second:
                elapsed = time.perf_counter() - self._batch_start
                values["steps_per_second"] = 1.0 / elapsed if elapsed > 0 else float("inf")
            writer = self._writer("train")
            for key, value in values.items():
                writer.add_scalar(f"batch_{key}", value, step)
        if self._profiler is not None and step >= self._stop_batch:
            self._stop_profiler()

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's training and validation scalars, and the histograms when due."""
        logs = _scalars(logs, "on_epoch_end")
        train = {k: v for k, v in logs.items() if not k.startswith(_VAL)}
        validation = {k[len(_VAL):]: v for k, v in logs.items() if k.startswith(_VAL)}
        rate = _learning_rate(self.model)
        if rate is not None:
            train["learning_rate"] = rate
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_batches / elapsed if elapsed > 0 else 0.0
        writer = self._writer("train")
        for key, value in train.items():
            writer.add_scalar(f"epoch_{key}", value, epoch)
        if validation:
            val_writer = self._writer("validation")
            for key, value in validation.items():
                val_writer.add_scalar(f"epoch_{key}", value, epoch)
            val_writer.flush()
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_weights(epoch)
        writer.flush()
        self._epochs_written = epoch + 1

    def on_test_end(self, logs=None):
        """Write ``evaluation_<key>_vs_iterations`` at the optimizer's step count."""
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is None or not logs:
            return
        writer = self._writer("validation")
        for key, value in _scalars(logs, "on_test_end").items():
            writer.add_scalar(f"evaluation_{key}_vs_iterations", value, int(iterations))
        writer.flush()

    def on_train_end(self, logs=None):
        """Stop a running profile and close the event files."""
        self.release_resources()

    def release_resources(self) -> None:
        """Stop a running profile and close the event files; ``fit`` calls this however it ends."""
        self._remove_graph_hook()
        self._stop_profiler()
        self._close_writers()

    # ----------------------------------------------------------------- helpers
    def _write_weights(self, epoch: int) -> None:
        writer = self._writer("train")
        named = list(self.model.named_parameters()) + [
            (name, b) for name, b in self.model.named_buffers() if b.is_floating_point()
        ]
        for name, tensor in named:
            values = tensor.detach().float().cpu()
            if values.numel() == 0:
                continue
            writer.add_histogram(f"{name}/histogram", values, epoch)
            if self.write_images:
                image = _weight_image(values)
                if image is not None:
                    writer.add_image(f"{name}/image", image, epoch, dataformats="HW")

    def _write_graph(self) -> None:
        self._remove_graph_hook()
        inputs = self._graph_inputs
        self._graph_inputs = None
        if inputs is None:
            warnings.warn(
                "TensorBoard did not write the model graph: the model was not called during the "
                "first training batch, so there were no inputs to trace. Training continues.",
                stacklevel=2,
            )
            return
        model = self.model
        was_training = model.training
        devices = [model.device] if getattr(model.device, "type", "cpu") == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad(), warnings.catch_warnings():
                # torch.utils.tensorboard traces with torch.jit.trace, deprecated in recent torch.
                warnings.filterwarnings("ignore", message=".*torch.jit", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                model.eval()
                self._writer("train").add_graph(model, inputs[0] if len(inputs) == 1 else inputs)
        except Exception as error:  # noqa: BLE001 - any tracing failure only costs the graph
            warnings.warn(
                f"TensorBoard could not trace the model's graph ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); training continues without it.",
                stacklevel=2,
            )
        finally:
            model.train(was_training)

    def _start_profiler(self) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if getattr(getattr(self.model, "device", None), "type", "cpu") == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        os.makedirs(self.train_dir, exist_ok=True)
        self._profiler = torch.profiler.profile(
            activities=activities,
            on_trace_ready=torch.profiler.tensorboard_trace_handler(self.train_dir),
            record_shapes=True,
        )
        self._profiler.start()

    def _stop_profiler(self) -> None:
        if self._profiler is not None:
            profiler, self._profiler = self._profiler, None
            with contextlib.suppress(RuntimeError):
                profiler.stop()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalars(logs: dict | None, hook: str) -> dict[str, Any]:
    """Return the numeric values of ``logs`` (numpy and torch scalars as numbers)."""
    check_log_keys(logs, "TensorBoard", hook)
    values = {key: plain_value(value) for key, value in (logs or {}).items()}
    return {key: value for key, value in values.items() if _is_scalar(value)}


def _learning_rate(model: Any) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        groups = getattr(optimizer, "param_groups", None)
        if not groups or "lr" not in groups[0]:
            return None
        rate = groups[0]["lr"]
    try:
        return float(rate)
    except (TypeError, ValueError):
        return None


def _weight_image(values: torch.Tensor) -> torch.Tensor | None:
    """Return a 1-D or 2-D weight as an ``HW`` image scaled to [0, 1]; ``None`` for other shapes."""
    image = values.squeeze()
    if image.ndim == 0:
        return None
    if image.ndim == 1:
        image = image.unsqueeze(0)
    elif image.ndim == 2:
        if image.shape[0] > image.shape[1]:
            image = image.t()
    else:
        return None
    low, high = image.min(), image.max()
    span = high - low
    return (image - low) / span if span > 0 else torch.zeros_like(image)
