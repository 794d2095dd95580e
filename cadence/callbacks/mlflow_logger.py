"""MLflowLogger: parameters, per-epoch metrics and artifacts of a run, to any MLflow tracking store."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cadence import extras, output_paths
from cadence.callbacks.callback import Callback
from cadence.callbacks.log_values import check_log_every_n_batches, check_log_keys, plain_value
from cadence.logs import to_python

_INVALID_KEY = re.compile(r"[^\w\-. /]")
# mlflow logs these through `logging` at INFO while it creates a new SQLite store's tables.
_CHATTY_LOGGERS = ("mlflow.store.db.utils", "mlflow.store.db.db_types", "alembic")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation notices mlflow's own dependencies raise, and its table-creation logs.

    mlflow's SQLite store imports SQLAlchemy ORM options that SQLAlchemy 2.1 deprecates
    (``SADeprecationWarning`` from inside ``mlflow.store``), which is not the user's to fix;
    only deprecation warnings attributed to mlflow, SQLAlchemy and alembic modules are
    ignored, and only while this callback calls mlflow.
    """
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(mlflow|sqlalchemy|alembic)\b")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _metric_key(key: str) -> str:
    """Return ``key`` with characters MLflow refuses in metric names replaced by ``_``."""
    return _INVALID_KEY.sub("_", key)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class MLflowLogger(Callback):
    """Log a training run to MLflow: parameters, metrics per epoch (and per batch), artifacts.

    Works against any tracking URI: ``tracking_uri``, else the environment variable
    ``MLFLOW_TRACKING_URI`` (as MLflow itself), else ``sqlite:///mlruns.db``, a local SQLite
    file, so nothing needs a server (``mlflow ui --backend-store-uri sqlite:///mlruns.db`` to
    browse it). The callback talks to MLflow through its own ``MlflowClient`` and never starts,
    ends or changes the fluent API's active run, so it coexists with ``mlflow.start_run()``.

    What is logged:

    - Parameters, once per run when the first values are logged: the model's
      ``compile_config`` (optimizer, loss, metrics, precision, ...), the optimizer's initial
      ``learning_rate``, ``fit``'s ``epochs`` and ``steps`` (per epoch), the model class and its
      number of trainable parameters, and your own ``params``.
    - Every numeric key of ``on_epoch_end``'s logs (training and ``val_`` keys) with
      ``step=epoch`` (from 0), plus ``learning_rate`` (the optimizer's, unless the logs have it).
    - With ``log_every_n_batches=N``: each training key as ``batch_<key>`` every N batches, with
      the global batch count (from 1) as the step; batch logs are read only at that rate.
    - At the end of training: every file matching ``artifact_paths`` (paths or glob patterns,
      e.g. a ``CSVLogger`` file and ``"ckpt/*.pt"`` for ``ModelCheckpoint``'s files; a folder is
      uploaded whole), then the run is marked finished. A callback cannot see the other
      callbacks of ``fit``, so pass their output paths here.

    A run interrupted before ``on_train_end`` stays ``RUNNING`` in MLflow; when
    ``BackupAndRestore`` resumes training, this callback's state (the run id) is restored and
    logging continues in the same run. Epochs and batches that the interrupted process logged
    after its last backup are not logged again (a resumed run recomputes the same values), so
    every step appears once.

    Needs the ``mlflow`` extra (``pip install 'cadence[mlflow]'``).

    Args:
        tracking_uri: The tracking store: ``sqlite:///path.db``, a folder, ``http://host:5000``,
            ``databricks``, ...; ``None`` (the default) reads ``MLFLOW_TRACKING_URI``, and
            without it uses ``sqlite:///mlruns.db``.
        experiment_name: The experiment; created if it does not exist.
        run_name: The run's name (MLflow picks one if ``None``).
        log_every_n_batches: Also log batch-level metrics every this many batches.
        artifact_paths: Files, folders or glob patterns uploaded as artifacts at the end.
        artifact_location: Where a newly created experiment stores artifacts (MLflow's default,
            ``./mlruns`` under the working directory, if ``None``).
        params: Extra parameters to log (e.g. ``batch_size``, which a callback cannot see).
        tags: Tags set on the run.
    """

    #: Logs on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True

    def __init__(
        self,
        tracking_uri: str | os.PathLike | None = None,
        experiment_name: str = "cadence",
        run_name: str | None = None,
        log_every_n_batches: int | None = None,
        artifact_paths: Sequence[str | os.PathLike] = (),
        artifact_location: str | os.PathLike | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        check_log_every_n_batches(log_every_n_batches)
        if not isinstance(experiment_name, str) or not experiment_name:
            raise ValueError(
                f"experiment_name must be a non-empty string; received experiment_name={experiment_name!r}."
            )
        if isinstance(artifact_paths, str | os.PathLike):
            artifact_paths = [artifact_paths]
        with _quiet():
            extras.require("mlflow", "cadence.callbacks.MLflowLogger")
        if tracking_uri is None:
            tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlruns.db"
        self.tracking_uri = os.fspath(tracking_uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.log_every_n_batches = log_every_n_batches
        self.artifact_paths = [os.fspath(p) for p in artifact_paths]
        self.artifact_location = os.fspath(artifact_location) if artifact_location is not None else None
        self.extra_params = dict(params or {})
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._client: Any = None
        self._initial_learning_rate: float | None = None
        self._params_logged = False
        self._global_train_batch = 0
        self._restored = False
        self._logged_through: dict[str, int] = {"epoch": -1, "batch": 0}

    # ------------------------------------------------------------------ client
    @property
    def client(self) -> Any:
        """The ``mlflow.MlflowClient`` for ``tracking_uri`` (created on first use)."""
        if self._client is None:
            with _quiet():
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _ensure_run(self) -> str:
        """Return the run id, creating the run (and the experiment) on first use."""
        if self.run_id is not None:
            return self.run_id
        client = self.client
        with _quiet():
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                experiment_id = client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location
                )
            else:
                experiment_id = experiment.experiment_id
            run = client.create_run(experiment_id, run_name=self.run_name, tags=self.tags or None)
        self.run_id = run.info.run_id
        self._params_logged = False
        return self.run_id

    def _log_metrics(self, values: Mapping[str, Any], step: int, prefix: str = "", hook: str = "") -> None:
        from mlflow.entities import Metric

        check_log_keys(values, "MLflowLogger", hook)
        values = {key: plain_value(value) for key, value in values.items()}
        run_id = self._ensure_run()
        self._log_params_once(run_id)
        stamp = _now_ms()
        metrics = [
            Metric(_metric_key(prefix + key), float(value), stamp, step)
            for key, value in values.items()
            if _is_number(value)
        ]
        if metrics:
            with _quiet():
                self.client.log_batch(run_id, metrics=metrics)

    def _log_params_once(self, run_id: str) -> None:
        if self._params_logged:
            return
        from mlflow.entities import Param

        values = self.collect_params()
        params = [Param(key, _param_value(value)) for key, value in values.items()]
        with _quiet():
            for start in range(0, len(params), 100):
                self.client.log_batch(run_id, params=params[start:start + 100])
        self._params_logged = True

    def collect_params(self) -> dict[str, Any]:
        """Return the parameters this callback logs: compile's and fit's, plus ``params``."""
        model = self.model
        values: dict[str, Any] = {}
        config = getattr(model, "compile_config", None)
        if isinstance(config, Mapping):
            values.update(config)
        rate = self._initial_learning_rate
        if rate is None:
            rate = _learning_rate(model)
        if rate is not None:
            values["learning_rate"] = rate
        for key in ("epochs", "steps"):
            if key in self.params:
                values[key] = self.params[key]
        if model is not None:
            values["model"] = type(model).__name__
            values["trainable_params"] = sum(
                p.numel() for p in model.parameters() if p.requires_grad
            )
        values.update(self.extra_params)
        return values

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the run id and the global batch count, so a resumed fit logs to the same run."""
        return {
            "run_id": self.run_id or "",
            "params_logged": self._params_logged,
            "global_train_batch": self._global_train_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run recorded in ``state`` (parameters are not logged twice)."""
        self.run_id = state["run_id"] or None
        self._params_logged = bool(state["params_logged"]) and self.run_id is not None
        self._global_train_batch = int(state["global_train_batch"])
        self._restored = True
        self._logged_through = {"epoch": -1, "batch": 0}
        if self.run_id is not None:
            with _quiet():
                self.client.update_run(self.run_id, status="RUNNING")
                keys = self.client.get_run(self.run_id).data.metrics
                for key in keys:
                    kind = "batch" if key.startswith("batch_") else "epoch"
                    steps = [m.step for m in self.client.get_metric_history(self.run_id, key)]
                    self._logged_through[kind] = max([self._logged_through[kind], *steps])

    def _check_store(self) -> None:
        uri = self.tracking_uri
        if uri.startswith("sqlite:///"):
            path = uri[len("sqlite:///"):].split("?")[0]
            if path and path != ":memory:":
                output_paths.check_output_file(path, "MLflowLogger", "tracking_uri")
        elif uri.startswith("file://"):
            output_paths.check_output_folder(uri[len("file://"):], "MLflowLogger", "tracking_uri")
        elif "://" not in uri and not uri.startswith("databricks"):
            output_paths.check_output_folder(uri, "MLflowLogger", "tracking_uri")

    # ------------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        """Start a new run for this ``fit``, unless a backup was just restored into this callback.

        A local store (``sqlite:///path.db``, a folder, ``file://``) is checked first: a path
        under a file, or an SQLite file that is a folder, is refused before the first batch.
        """
        self._check_store()
        if not self._restored:
            self.run_id = None
            self._params_logged = False
            self._global_train_batch = 0
            self._logged_through = {"epoch": -1, "batch": 0}
        # The parameters are logged with the first metrics; the learning rate is the one the
        # run starts with, before any schedule changes it.
        self._initial_learning_rate = _learning_rate(self.model)
        self._restored = False

    def on_train_batch_end(self, batch, logs=None):
        """Log ``batch_<key>`` every ``log_every_n_batches`` batches."""
        self._global_train_batch += 1
        if self._global_train_batch <= self._logged_through["batch"]:
            return
        if self.log_every_n_batches and self._global_train_batch % self.log_every_n_batches == 0:
            self._log_metrics(
                to_python(logs), self._global_train_batch, prefix="batch_", hook="on_train_batch_end"
            )

    def on_epoch_end(self, epoch, logs=None):
        """Log every numeric key of the epoch's logs at ``step=epoch``."""
        if epoch <= self._logged_through["epoch"]:
            return
        values = dict(logs or {})
        if "learning_rate" not in values and "lr" not in values:
            rate = _learning_rate(self.model)
            if rate is not None:
                values["learning_rate"] = rate
        self._log_metrics(values, epoch, hook="on_epoch_end")

    def on_train_end(self, logs=None):
        """Upload the artifacts and mark the run finished."""
        run_id = self._ensure_run()
        self._log_params_once(run_id)
        missing: list[str] = []
        with _quiet():
            for pattern in self.artifact_paths:
                matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else (
                    [pattern] if os.path.exists(pattern) else []
                )
                if not matches:
                    missing.append(pattern)
                for path in matches:
                    if os.path.isdir(path):
                        self.client.log_artifacts(run_id, path, artifact_path=os.path.basename(path))
                    else:
                        self.client.log_artifact(run_id, path)
            self.client.set_terminated(run_id, status="FINISHED")
        if missing:
            warnings.warn(
                f"MLflowLogger found no file for artifact_paths {missing}; nothing was uploaded "
                "for them.",
                stacklevel=2,
            )


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not _is_number(value) else str(value)
    return text[:6000]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _learning_rate(model: Any) -> float | None:
    """Return the model's optimizer's learning rate as a float, or None when it has none."""
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    if rate is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return float(rate)
    return None
