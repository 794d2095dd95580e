"""SageMaker: the Estimator's ``metric_definitions`` that read MetricsLogger's lines back.

A SageMaker Estimator scrapes the training job's log with one regex per metric::

    from cadence.callbacks import MetricsLogger
    from cadence.integrations.sagemaker import metric_definitions

    model.fit(x, y, validation_split=0.2, callbacks=[MetricsLogger()])   # in the training script
    estimator = sagemaker.estimator.Estimator(..., metric_definitions=metric_definitions(
        ["loss", "root_mean_squared_error"]))                           # in the launcher

Each regex is anchored on the ``- `` that precedes every item of a MetricsLogger line, so
``- loss: `` never matches inside ``- val_loss: `` or ``- train_loss: ``, and it captures exactly
the printed number (``4.6889``, ``-0.5000``, ``1e-05``, ``nan``, ``inf``, ``-inf``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cadence.callbacks.metrics_logger import printed_name

#: The printed value: a decimal number (optionally with an exponent), nan or inf; one group.
VALUE_PATTERN = r"([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?nan|[-+]?inf)"


def metric_regex(name: str) -> str:
    """Return the regex that captures the value printed for ``name`` (already prefixed)."""
    return rf"- {re.escape(name)}: {VALUE_PATTERN};"


def _model_keys(model: Any) -> list[str]:
    if not getattr(model, "compiled", False):
        raise ValueError(
            "metric_definitions received a model that is not compiled; call model.compile(...) "
            "first, or pass the log keys, e.g. metric_definitions(['loss', 'mean_absolute_error'])."
        )
    parts = [getattr(model, "_compiled_loss", None), getattr(model, "compiled_metrics", None)]
    if not all(getattr(part, "built", True) for part in parts if part is not None):
        raise ValueError(
            "metric_definitions(model) reads model.metrics_names, which are known only once the "
            "model has run a batch (as in Keras: a model's metrics are built from its first "
            "outputs). Call it after fit/evaluate, or pass the log keys, e.g. "
            f"metric_definitions(['loss', ...]); the model so far has {list(model.metrics_names)}."
        )
    return list(model.metrics_names)


def metric_definitions(
    model_or_keys: Any,
    validation: bool = True,
    prefix_train: str = "train_",
    extra_keys: Iterable[str] = (),
) -> list[dict[str, str]]:
    """Return SageMaker ``metric_definitions`` for the lines :class:`MetricsLogger` prints.

    Args:
        model_or_keys: A compiled cadence ``Model`` that has run at least one batch (its
            ``metrics_names`` are used: ``loss``, the per-output losses and the metrics, with
            their ``val_`` versions when ``validation`` is true), or an iterable of epoch-log keys
            such as ``["loss", "val_loss", "learning_rate"]`` (used as given).
        validation: With a model, also define the ``val_`` metrics (``fit`` with validation data).
        prefix_train: The ``MetricsLogger`` prefix of keys that do not start with ``val_``.
        extra_keys: More epoch-log keys, such as ``"learning_rate"`` added by an LR scheduler.

    Returns:
        One ``{"Name": printed name, "Regex": regex}`` per key, e.g.
        ``{"Name": "train_loss", "Regex": "- train_loss: (...);"}``; the name is the key as
        MetricsLogger prints it (``train_loss``, ``val_root_mean_squared_error``).

    Raises:
        ValueError: If the model is not compiled or has not run a batch yet, or a key repeats.
        TypeError: If ``model_or_keys`` is a single string or holds a non-string key.
    """
    if not isinstance(prefix_train, str):
        raise TypeError(f"metric_definitions: prefix_train must be a string; received {prefix_train!r}.")
    if isinstance(model_or_keys, str):
        raise TypeError(
            "metric_definitions takes a model or a list of log keys; received the single string "
            f"{model_or_keys!r}. Use metric_definitions([{model_or_keys!r}])."
        )
    if hasattr(model_or_keys, "metrics_names"):
        names = _model_keys(model_or_keys)
        keys = names + ([f"val_{name}" for name in names] if validation else [])
    elif isinstance(model_or_keys, Iterable):
        keys = list(model_or_keys)
    else:
        raise TypeError(
            "metric_definitions takes a compiled cadence Model or an iterable of log keys; "
            f"received {type(model_or_keys).__name__}: {model_or_keys!r}."
        )
    keys += list(extra_keys)
    for key in keys:
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"metric_definitions: every log key must be a non-empty string; received {key!r}."
            )
    printed = [printed_name(key, prefix_train) for key in keys]
    repeated = sorted({name for name in printed if printed.count(name) > 1})
    if repeated:
        raise ValueError(f"metric_definitions: these metric names repeat: {repeated}.")
    return [{"Name": name, "Regex": metric_regex(name)} for name in printed]
