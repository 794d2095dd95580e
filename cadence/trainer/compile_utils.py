"""The compiled loss and metrics: Keras names over torch, single or multiple outputs.

A model whose ``forward`` returns a tuple or list has several outputs, named ``output_1``,
``output_2``, ... (Keras's names for the outputs of a subclassed model); one that returns a
dict has outputs named by its keys. ``y`` (and ``sample_weight``, when it is per output) then
holds one entry per output: a tuple/list in output order, or a dict keyed by output name.
``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` may be one value for every
output, a list in output order, or a dict by output name. The logs are Keras's:

- ``loss``: the sum over outputs of ``loss_weight * output_loss``;
- ``{name}_loss`` per output with a loss (``output_1_loss``, or ``"digits_loss"`` for a dict
  key ``"digits"``);
- ``{name}_{metric}`` per output metric (``output_1_mean_absolute_error``, ``output_2_mae``:
  the metric's own name, i.e. the string as given); a weighted metric whose name is already
  taken by an unweighted one gets the prefix ``weighted_``.
"""


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


def _outputs(value: Any, names: list[str], what: str = "y") -> list[Any]:
    """Return ``value``'s entries in output order, or raise naming what does not match."""
    if isinstance(value, dict):
        missing = [name for name in names if name not in value]
        if missing:
            raise ValueError(
                f"{what} is a dict with keys {sorted(value)}, but the model's outputs are "
                f"{names}; missing {missing}."
            )
        return [value[name] for name in names]
    if isinstance(value, tuple | list):
        if len(value) != len(names):
            raise ValueError(
                f"{what} has {len(value)} entries but the model returns {len(names)} outputs "
                f"{names}; give one entry per output."
            )
        return list(value)
    raise ValueError(
        f"The model returns {len(names)} outputs {names} but {what} is a single "
        f"{type(value).__name__}; pass a tuple/list with one entry per output, or a dict keyed "
        "by output name."
    )


def _one(spec: Any, what: str) -> Any:
    """Return the single entry of a one-element list/dict given for a single-output model."""
    if isinstance(spec, dict | list | tuple):
        values = list(spec.values()) if isinstance(spec, dict) else list(spec)
        if len(values) != 1:
            raise ValueError(
                f"The model returns a single output but {what} has {len(values)} entries; "
                "give one."
            )
        return values[0]
    return spec


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
        self.pending_states: dict[str, Any] = {}  # Restored by a backup before build().
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
            single = self.single if self.single is not None else losses_module.get(_one(self.spec, "loss"))
            self.single = single
            self.losses = [single]
            weight = _one(self.loss_weights, "loss_weights")
            self.weights = [1.0 if weight is None else float(weight)]
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
                unknown = sorted(set(weights) - set(self.names))
                if unknown:
                    raise ValueError(
                        f"loss_weights names outputs {unknown} that the model does not return; "
                        f"its outputs are {self.names}."
                    )
                self.weights = [float(weights.get(n, 1.0)) for n in self.names]
            elif isinstance(weights, list | tuple):
                if len(weights) != count:
                    raise ValueError(
                        f"loss_weights has {len(weights)} entries but the model returns {count} "
                        f"outputs {self.names}; give one weight per output."
                    )
                self.weights = [float(w) for w in weights]
            else:
                self.weights = [float(weights)] * count
            if all(loss is None for loss in self.losses):
                raise ValueError(f"loss gives no loss for any of the outputs {self.names}.")
            self.trackers = [
                metrics_module.Mean(name=f"{n}_loss")
                for n, loss in zip(self.names, self.losses, strict=True)
                if loss is not None
            ]
        load_pending_states(self.trackers, self.pending_states)
        self.built = True

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """Return the total loss of a batch (the weighted sum over outputs)."""
        if not self.built:
            self.build(y_pred)
        if self.names is None:
            return self.losses[0](y_true, y_pred, sample_weight) * self.weights[0] \
                if self.weights[0] != 1.0 else self.losses[0](y_true, y_pred, sample_weight)
        trues = _outputs(y_true, self.names)
        preds = _outputs(y_pred, self.names, "the prediction")
        weights = (
            _outputs(sample_weight, self.names, "sample_weight")
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
        self.pending_states: dict[str, Any] = {}  # Restored by a backup before build().
        self.single_output = True
        for spec in (metrics, weighted_metrics):
            _check_identifiers(spec)

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
            preds = _outputs(y_pred, names, "the prediction")
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
        self.single_output = names is None
        load_pending_states(self.metrics, self.pending_states)
        self.built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Update every metric with a batch."""
        if not self.built:
            self.build(y_true, y_pred)
        if self.single_output:
            for metric, _, weighted in self.entries:
                metric.update_state(y_true, y_pred, sample_weight=sample_weight if weighted else None)
            return
        names = output_names(y_pred)
        for metric, index, weighted in self.entries:
            weight = sample_weight if weighted else None
            if index is None:
                metric.update_state(y_true, y_pred, sample_weight=weight)
            else:
                true = _outputs(y_true, names)[index]
                pred = _outputs(y_pred, names)[index]
                if isinstance(weight, dict | list | tuple):
                    weight = _outputs(weight, names, "sample_weight")[index]
                metric.update_state(true, pred, sample_weight=weight)

    def reset_state(self) -> None:
        """Reset every metric."""
        for metric, _, _ in self.entries:
            metric.reset_state()


def load_pending_states(metrics: list[Any], pending: dict[str, Any]) -> None:
    """Load the states a restored backup holds for metrics that are built only now, by name."""
    for metric in metrics:
        state = pending.pop(metric.name, None)
        if state is not None:
            metric.load_state_dict(state)


def _check_identifiers(spec: Any) -> None:
    """Raise now, at ``compile``, for any metric in a (nested) spec cadence cannot use.

    Only the choice that depends on the first batch's shapes (which accuracy ``"accuracy"``
    means) waits for ``build``.
    """
    if spec is None:
        return
    if isinstance(spec, dict):
        for value in spec.values():
            _check_identifiers(value)
        return
    if isinstance(spec, list | tuple):
        for value in spec:
            _check_identifiers(value)
        return
    metrics_module.check(spec)


def _as_list(spec: Any) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, list | tuple):
        return list(spec)
    return [spec]
