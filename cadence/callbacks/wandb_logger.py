"""WandbLogger: a run's configuration, metrics and best checkpoint, to Weights & Biases."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cadence import extras
from cadence.callbacks.callback import Callback
from cadence.callbacks.log_values import check_log_every_n_batches
from cadence.logs import to_python


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _learning_rate(model: Any) -> float | None:
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    try:
        return None if rate is None else float(rate)
    except (TypeError, ValueError):
        return None


class WandbLogger(Callback):
    """Log a training run to Weights & Biases (``wandb``): configuration, metrics, checkpoint.

    What is logged:

    - The run's configuration, when training begins: the model's ``compile_config``
      (optimizer, loss, metrics, ...), the optimizer's initial ``learning_rate``, ``fit``'s
      ``epochs``, ``steps`` (per epoch) and ``batch_size`` where known, the model class and its
      number of trainable parameters, and your own ``config``.
    - Every numeric key of ``on_epoch_end``'s logs under Keras's names (``loss``,
      ``val_loss``, ``accuracy``, ...), with ``epoch`` (from 0) and the optimizer's
      ``learning_rate``. The W&B step is the global number of training batches run, so epoch
      and batch values share one axis.
    - With ``log_every_n_batches=N``: each training key as ``batch_<key>`` every N batches (the
      batch logs are read from the device only at that rate).
    - With ``log_checkpoint``: at the end of training, the files it names (a path or a glob
      pattern, e.g. ``ModelCheckpoint(..., save_best_only=True)``'s file) as one artifact of type
      ``"model"``, named ``model-<run id>``, with the aliases ``best`` and ``latest``. A callback
      cannot see the other callbacks of ``fit``, so name the file here.

    Offline mode is W&B's own: ``WANDB_MODE=offline`` (or ``mode="offline"``) writes the run
    under ``WANDB_DIR`` (or ``dir``) for ``wandb sync`` later; nothing needs a network.

    The run id is this callback's state: when ``BackupAndRestore`` resumes an interrupted
    ``fit``, logging continues in the same W&B run (``wandb.init(id=..., resume="allow")``).
    Epochs the killed process logged after its last backup are logged again at the same steps
    by the resumed one; W&B keeps the first value it received for a step.

    Runs on rank 0 only in a distributed run (``writes_files``). Needs the ``wandb`` extra
    (``pip install 'cadence[wandb]'``).

    Args:
        project: The W&B project (``WANDB_PROJECT`` or W&B's default when ``None``).
        name: The run's display name (W&B picks one when ``None``).
        config: More configuration values (e.g. your data's settings).
        log_every_n_batches: Also log batch-level metrics every this many training batches.
        log_checkpoint: A file or glob pattern uploaded as a model artifact when training ends.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; ``None`` leaves it to W&B
            (``WANDB_MODE``).
        dir: The folder W&B writes its files under (``WANDB_DIR`` when ``None``).
        **init_kwargs: Passed on to ``wandb.init`` (``entity``, ``tags``, ``group``,
            ``settings``, ...).
    """

    #: Only rank 0 of a distributed run logs.
    writes_files = True
    #: Batch logs are read only every ``log_every_n_batches`` batches.
    accepts_lazy_logs = True

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        log_every_n_batches: int | None = None,
        log_checkpoint: str | os.PathLike | None = None,
        mode: str | None = None,
        dir: str | os.PathLike | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        check_log_every_n_batches(log_every_n_batches)
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(
                f"mode must be None, 'online', 'offline' or 'disabled'; received mode={mode!r}."
            )
        for key in ("id", "resume", "config", "project", "name", "mode", "dir"):
            if key in init_kwargs:
                raise TypeError(
                    f"WandbLogger sets wandb.init's {key!r} itself; received it in init_kwargs."
                )
        extras.require("wandb", "cadence.callbacks.WandbLogger")
        self.project = project
        self.name = name
        self.config = dict(config or {})
        self.log_every_n_batches = log_every_n_batches
        self.log_checkpoint = None if log_checkpoint is None else os.fspath(log_checkpoint)
        self.mode = mode
        self.dir = None if dir is None else os.fspath(dir)
        self.init_kwargs = dict(init_kwargs)
        #: The W&B run's id (``None`` before training begins).
        self.run_id: str | None = None
        #: The live ``wandb`` run while training.
        self.wandb_run: Any = None
        self._global_train_batch = 0
        self._restored = False

    def collect_config(self) -> dict[str, Any]:
        """Return the configuration this callback logs: compile's and fit's, plus ``config``."""
        model = self.model
        values: dict[str, Any] = {}
        compile_config = getattr(model, "compile_config", None)
        if isinstance(compile_config, Mapping):
            values.update({key: _plain(value) for key, value in compile_config.items()})
        rate = _learning_rate(model)
        if rate is not None:
            values["learning_rate"] = rate
        for key in ("epochs", "steps", "batch_size"):
            if self.params.get(key) is not None:
                values[key] = self.params[key]
        if model is not None:
            values["model"] = type(model).__name__
            values["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        values.update(self.config)
        return values

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the run id and the global batch count, so a resumed fit logs to the same run."""
        return {"run_id": self.run_id or "", "global_train_batch": self._global_train_batch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the W&B run recorded in ``state`` when training begins."""
        self.run_id = str(state["run_id"]) or None
        self._global_train_batch = int(state["global_train_batch"])
        self._restored = True

    # ------------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        """Start a W&B run (or resume the one of a restored backup) and log the configuration."""
        wandb = extras.require("wandb", "cadence.callbacks.WandbLogger")
        if self.wandb_run is not None:  # An earlier fit with this callback raised: close its run.
            self.wandb_run.finish(exit_code=1)
            self.wandb_run = None
        if not self._restored:
            self.run_id = None
            self._global_train_batch = 0
        self._restored = False
        # A run of an earlier fit that raised is left as it was; this fit's run is its own.
        options: dict[str, Any] = {"reinit": "create_new", **self.init_kwargs}
        for key in ("project", "name", "mode", "dir"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if self.run_id is not None:
            options.update(id=self.run_id, resume="allow")
        self.wandb_run = wandb.init(config=self.collect_config(), **options)
        self.run_id = self.wandb_run.id

    def on_train_batch_end(self, batch, logs=None):
        """Count the batch (the W&B step); log ``batch_<key>`` every ``log_every_n_batches``."""
        self._global_train_batch += 1
        if self.log_every_n_batches and self._global_train_batch % self.log_every_n_batches == 0:
            values = {
                f"batch_{key}": value for key, value in to_python(logs).items() if _is_number(value)
            }
            self._log(values)

    def on_epoch_end(self, epoch, logs=None):
        """Log every numeric key of the epoch's logs, with ``epoch`` and ``learning_rate``."""
        values = {key: value for key, value in (logs or {}).items() if _is_number(value)}
        if "learning_rate" not in values and "lr" not in values:
            rate = _learning_rate(self.model)
            if rate is not None:
                values["learning_rate"] = rate
        values["epoch"] = epoch
        self._log(values)

    def on_train_end(self, logs=None):
        """Upload the checkpoint artifact (with ``log_checkpoint``) and finish the run."""
        run = self.wandb_run
        if run is None:
            return
        try:
            if self.log_checkpoint is not None:
                self._log_checkpoint(run)
        finally:
            run.finish()
            self.wandb_run = None

    # ------------------------------------------------------------------- helpers
    def _log(self, values: dict[str, Any]) -> None:
        if self.wandb_run is None:
            raise RuntimeError("WandbLogger logs inside model.fit(); no W&B run is active.")
        self.wandb_run.log(values, step=self._global_train_batch)

    def _log_checkpoint(self, run: Any) -> None:
        import wandb

        pattern = self.log_checkpoint
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else (
            [pattern] if os.path.isfile(pattern) else []
        )
        if not matches:
            raise FileNotFoundError(
                f"WandbLogger found no file for log_checkpoint={pattern!r}; nothing was uploaded."
            )
        artifact = wandb.Artifact(f"model-{run.id}", type="model")
        for path in matches:
            artifact.add_file(path)
        run.log_artifact(artifact, aliases=["best", "latest"])


def _plain(value: Any) -> Any:
    """Return a configuration value W&B can store: numbers, strings, lists, dicts; else ``repr``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence):
        return [_plain(item) for item in value]
    return repr(value)
