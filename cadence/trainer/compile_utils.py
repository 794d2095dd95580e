"""The compiled loss and metrics: Keras names over torch, single or multiple outputs."""

from __future__ import annotations

from typing import Any

import torch

from cadence import losses as losses_module
from cadence import metrics as metrics_module
from cadence.data import tree


def output_names(y_pred: Any) -> list[str] | None:
    """Return Keras's names for a multi-output prediction, or ``None`` for a single output."""
    if isinstance(y_pred, dict):
        return list(y_pred)
    if isinstance(y_pred, tuple | list):
        return [f"output_{i + 1}" for i in range(len(y_pred))]
    return None


def _outputs(value: Any, names: list[str]) -> list[Any]:
    if isinstance(value, dict):
        return [value[name] for name in names]
    return list(value)


class CompiledLoss:
    """The loss of ``compile``: one loss, or one per output with ``loss_weights``.

    For several outputs the per-output losses are also tracked as ``{output}_loss`` logs.
    """

    def __init__(self, loss: Any, loss_weights: Any = None) -> None:
        self.spec = loss
        self.loss_weights = loss_weights
        self.built = False
        self.names: list[str] | None = None
        self.losses: list[Any] = []
        self.weights: list[float] = []
        self.trackers: list[Any] = []
        if not isinstance(loss, dict | list | tuple):
            self.single = losses_module.get(loss)
        else:
            self.single = None

    @property
    def needs_targets(self) -> bool:
        """Whether a loss was given (it then needs ``y``)."""
        return self.spec is not None

    def build(self, y_pred: Any) -> None:
        """Resolve one loss per output from the first prediction's structure."""
        self.names = output_names(y_pred)
        if self.names is None:
            self.losses = [self.single]
            self.weights = [1.0 if self.loss_weights is None else float(self.loss_weights)]
        else:
            count = len(self.names)
            spec = self.spec
            if isinstance(spec, dict):
                unknown = sorted(set(spec) - set(self.names))
                if unknown:
                    raise ValueError(
                        f"loss names outputs {unknown} that the model does not return; its "
                        f"outputs are {self.names}."
                    )
                self.losses = [losses_module.get(spec.get(n)) for n in self.names]
            elif isinstance(spec, list | tuple):
                if len(spec) != count:
                    raise ValueError(
                        f"loss is a list of {len(spec)} losses but the model returns {count} "
                        "outputs; give one loss per output."
                    )
                self.losses = [losses_module.get(s) for s in spec]
            else:
                self.losses = [self.single] * count
            weights = self.loss_weights
            if weights is None:
                self.weights = [1.0] * count
            elif isinstance(weights, dict):
                self.weights = [float(weights.get(n, 1.0)) for n in self.names]
            else:
                self.weights = [float(w) for w in weights]
            self.trackers = [
                metrics_module.Mean(name=f"{n}_loss")
                for n, loss in zip(self.names, self.losses, strict=True)
                if loss is not None
            ]
        self.built = True

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """Return the total loss of a batch (the weighted sum over outputs)."""
        if not self.built:
            self.build(y_pred)
        if self.names is None:
            return self.losses[0](y_true, y_pred, sample_weight) * self.weights[0] \
                if self.weights[0] != 1.0 else self.losses[0](y_true, y_pred, sample_weight)
        trues = _outputs(y_true, self.names)
        preds = _outputs(y_pred, self.names)
        weights = (
            _outputs(sample_weight, self.names)
            if isinstance(sample_weight, dict | list | tuple)
            else [sample_weight] * len(self.names)
        )
        total = None
        trackers = iter(self.trackers)
        batch = tree.batch_size_of(preds[0])
        for loss, weight, t, p, w in zip(self.losses, self.weights, trues, preds, weights,
                                         strict=True):
            if loss is None:
                continue
            value = loss(t, p, w)
            next(trackers).update_state(value.detach(), sample_weight=batch)
            total = value * weight if total is None else total + value * weight
        return total


class CompiledMetrics:
    """The metrics of ``compile``, resolved on the first batch (some depend on its shapes).

    ``metrics`` are computed without sample weights, ``weighted_metrics`` with them, as in Keras.
    """

    def __init__(self, metrics: Any, weighted_metrics: Any, loss: Any) -> None:
        self.metrics_spec = metrics
        self.weighted_spec = weighted_metrics
        self.loss = loss
        self.built = False
        self.entries: list[tuple[Any, int | None, bool]] = []  # (metric, output index, weighted)

    @property
    def metrics(self) -> list[Any]:
        """The metric objects, once built."""
        return [metric for metric, _, _ in self.entries]

    def _loss_for(self, index: int | None) -> Any:
        compiled = self.loss
        if compiled is None:
            return None
        if index is None:
            return compiled.single if compiled.single is not None else compiled.spec
        if compiled.losses:
            return compiled.losses[index]
        return compiled.single

    def _per_output(self, spec: Any, names: list[str]) -> list[list[Any]]:
        if spec is None:
            return [[] for _ in names]
        if isinstance(spec, dict):
            return [_as_list(spec.get(n)) for n in names]
        spec = list(spec)
        if spec and all(isinstance(s, list | tuple) or s is None for s in spec):
            if len(spec) != len(names):
                raise ValueError(
                    f"metrics has {len(spec)} lists but the model returns {len(names)} outputs."
                )
            return [_as_list(s) for s in spec]
        return [list(spec) for _ in names]

    def build(self, y_true: Any, y_pred: Any) -> None:
        """Resolve every metric identifier against the first batch."""
        names = output_names(y_pred)
        entries: list[tuple[Any, int | None, bool]] = []
        if names is None:
            for weighted, spec in ((False, self.metrics_spec), (True, self.weighted_spec)):
                for identifier in _as_list(spec):
                    metric = metrics_module.resolve(
                        identifier, loss=self._loss_for(None), y_true=y_true, y_pred=y_pred
                    )
                    entries.append((metric, None, weighted))
        else:
            trues = _outputs(y_true, names) if y_true is not None else [None] * len(names)
            preds = _outputs(y_pred, names)
            for weighted, spec in ((False, self.metrics_spec), (True, self.weighted_spec)):
                for index, identifiers in enumerate(self._per_output(spec, names)):
                    for identifier in identifiers:
                        metric = metrics_module.resolve(
                            identifier, loss=self._loss_for(index),
                            y_true=trues[index], y_pred=preds[index],
                        )
                        metric.name = f"{names[index]}_{metric.name}"
                        entries.append((metric, index, weighted))
        seen: set[str] = set()
        for metric, _, weighted in entries:
            if metric.name in seen and weighted:
                metric.name = f"weighted_{metric.name}"
            seen.add(metric.name)
        self.entries = entries
        self.built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Update every metric with a batch."""
        if not self.built:
            self.build(y_true, y_pred)
        names = output_names(y_pred) if self.entries and self.entries[0][1] is not None else None
        for metric, index, weighted in self.entries:
            weight = sample_weight if weighted else None
            if index is None:
                metric.update_state(y_true, y_pred, sample_weight=weight)
            else:
                true = _outputs(y_true, names)[index]
                pred = _outputs(y_pred, names)[index]
                if isinstance(weight, dict | list | tuple):
                    weight = _outputs(weight, names)[index]
                metric.update_state(true, pred, sample_weight=weight)

    def reset_state(self) -> None:
        """Reset every metric."""
        for metric, _, _ in self.entries:
            metric.reset_state()


def _as_list(spec: Any) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, list | tuple):
        return list(spec)
    return [spec]
