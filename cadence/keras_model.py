"""Keras's model API that callbacks and scripts use, mixed into :class:`cadence.Model`.

``layers``, ``get_layer``, ``name``, ``weights``, ``trainable``, ``count_params``, ``summary``,
``build``, ``train_on_batch``, ``test_on_batch``, ``predict_on_batch``, and calling the model on
numpy arrays. The training, evaluation and prediction of one batch are the model's own
``train_step`` / ``test_step`` / ``predict_step``, called by their public names, so an overridden
step is what ``train_on_batch`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from cadence.data import tree
from cadence.data.class_weight import check_class_weight, sample_weight_from_class_weight
from cadence.layers import (
    Layer,
    count_params,
    is_trainable,
    layer_modules,
    layer_names,
    set_trainable,
    split_weights,
)
from cadence.logs import to_python
from cadence.losses.shapes import snake_case
from cadence.model_summary import input_spec_of, print_summary, probe_shapes
from cadence.trainer.arguments import require_compiled
from cadence.weights import weight_tensors

#: The input spec of a model whose first inputs were not all tensors with a batch axis.
_UNKNOWN = "unknown"


def _to_numpy(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    if value.dtype in (torch.bfloat16, torch.float16):
        value = value.float()
    return value.numpy()


class KerasModelMixin:
    """Keras's model methods for a ``torch.nn.Module`` (mixed into :class:`cadence.Model`)."""

    #: The nest of ``(shape after the batch axis, dtype)`` of the first input seen; None before.
    _input_spec: Any = None
    _shape_cache: Any = None
    _keras_name: str | None = None

    # ----------------------------------------------------------------- layers
    @property
    def layers(self) -> Any:
        """Keras's layers of the model, as :class:`cadence.layers.Layer` views.

        Which modules are layers and how they are named is described in
        :mod:`cadence.layers`. A model whose own code assigns a child module named ``layers``
        (often an ``nn.ModuleList``) gets that module back, as its ``forward`` expects.
        """
        own = dict(self.named_children()).get("layers")
        if own is not None:
            return own
        modules = layer_modules(self)
        return [Layer(m, name, self) for m, name in zip(modules, layer_names(modules), strict=True)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Return a layer by its name or its index in ``layers``, as Keras's ``get_layer``."""
        layers = self.layers
        if index is not None and name is not None:
            raise ValueError(
                f"Provide only a layer name or a layer index. Received: index={index}, name={name}."
            )
        if index is not None:
            if len(layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has "
                    f"{len(layers)} layers."
                )
            return layers[index]
        if name is not None:
            for layer in layers:
                if layer.name == name:
                    return layer
            raise ValueError(
                f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}."
            )
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    @property
    def name(self) -> str:
        """The model's name: its class name snake-cased (``sequential``, ``my_net``), or as set."""
        return self._keras_name or snake_case(type(self).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self._keras_name = value

    @property
    def weights(self) -> list[torch.Tensor]:
        """Every parameter and buffer, in ``state_dict`` order (what ``get_weights`` returns)."""
        return weight_tensors(self)

    @property
    def trainable(self) -> bool:
        """Whether the model trains; setting it sets every parameter's ``requires_grad``."""
        return is_trainable(self)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        set_trainable(self, value)

    def count_params(self) -> int:
        """Return the number of scalars in the model's weights, buffers included, as Keras."""
        trainable, frozen = split_weights(self)
        return count_params(trainable + frozen)

    # ----------------------------------------------------------------- shapes and summary
    def build(self, input_shape: Any) -> None:
        """Record the model's input shape, as Keras's ``build``, and run it once on zeros.

        Args:
            input_shape: One shape such as ``(None, 784)`` (the first axis is the batch and is
                ignored), or a list, tuple or dict of shapes for a model taking several inputs
                (passed positionally, a dict as one argument). Inputs are of torch's default
                floating-point dtype.

        The run (in eval mode, without gradients) materialises lazy modules (``nn.LazyLinear``)
        and makes output shapes known to ``summary`` and ``layers[i].output_shape``.
        """
        def spec(shape: Any) -> Any:
            if isinstance(shape, dict):
                return {key: spec(value) for key, value in shape.items()}
            if isinstance(shape, list | tuple) and shape and all(
                isinstance(d, int) or d is None for d in shape
            ):
                if any(d is None or d < 1 for d in shape[1:]):
                    raise ValueError(
                        "build needs every axis after the batch axis to be a positive integer; "
                        f"received input_shape={input_shape!r}."
                    )
                return (tuple(shape[1:]), torch.get_default_dtype())
            if isinstance(shape, list | tuple) and shape:
                return type(shape)(spec(item) for item in shape)
            raise ValueError(
                "build expects a shape such as (None, 784), or a list or dict of shapes; "
                f"received input_shape={input_shape!r}."
            )

        built = spec(input_shape)
        is_one = isinstance(built, tuple) and len(built) == 2 and isinstance(built[1], torch.dtype)
        previous = self._input_spec, self._shape_cache
        self._input_spec = [built] if is_one or isinstance(built, dict) else list(built)
        self._shape_cache = None
        try:
            self.layer_shapes()
        except Exception:
            self._input_spec, self._shape_cache = previous  # A failed build teaches nothing.
            raise

    def layer_shapes(self) -> dict[nn.Module, tuple[Any, Any]] | None:
        """Return ``{module: (input_shape, output_shape)}`` of the layers and the model.

        ``None`` until the model has seen an input (see :meth:`build`). Computed once per input
        shape and set of layers (see :mod:`cadence.model_summary`).
        """
        if self._input_spec is None or self._input_spec == _UNKNOWN:
            return None
        modules = [self, *layer_modules(self)]
        key = (id(self._input_spec), tuple(id(m) for m in modules))
        if self._shape_cache is None or self._shape_cache[0] != key:
            self._shape_cache = (key, probe_shapes(self, self._input_spec, modules))
        return self._shape_cache[1]

    def summary(
        self,
        line_length: int | None = None,
        positions: list[float] | None = None,
        print_fn: Callable[..., Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Any = None,
    ) -> None:
        """Print the model's layers and parameter counts as Keras 3's ``summary``.

        See :func:`cadence.model_summary.print_summary` for the arguments.
        """
        print_summary(self, line_length, positions, print_fn, expand_nested, show_trainable,
                      layer_range)

    # ----------------------------------------------------------------- one batch
    def _input_device(self) -> torch.device:
        return next((t.device for t in self.parameters()), torch.device("cpu"))

    def _batch_tensors(self, data: Any) -> Any:
        """Return ``data`` with numpy arrays as tensors (float64 as float32) on the model's device."""
        device = self._input_device()

        def convert(value: Any) -> Any:
            if isinstance(value, np.ndarray | np.generic):
                return tree.to_tensor(value).to(device)
            if isinstance(value, torch.Tensor) and value.device != device:
                return value.to(device)
            return value

        return tree.map_structure(convert, data)

    def prepare_call(self, args: tuple) -> tuple:
        """Turn numpy arguments of a call into tensors on the model's device; note the input shape.

        ``Model.__call__`` calls this when its first argument is not a tensor or when no input
        has been seen yet: ``model(numpy_array)`` works as in Keras (float64 arrays become
        float32, Keras's default float type), and the first input's shape is remembered for
        ``summary`` and the layers' shapes.
        """
        if any(isinstance(leaf, np.ndarray | np.generic) for leaf in tree.flatten(list(args))):
            device = self._input_device()
            args = tuple(tree.map_structure(
                lambda v: tree.to_tensor(v).to(device) if isinstance(v, np.ndarray | np.generic)
                else v, list(args)))
        if self._input_spec is None:
            # Inputs that cannot be replayed (not all tensors) are not looked at again.
            self._input_spec = input_spec_of(args) or _UNKNOWN
        return args

    def train_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: dict | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Run one training step on one batch, as Keras's ``train_on_batch``.

        The metrics are reset first, so the values are this batch's. The model runs in
        training mode (its mode before the call is restored after).

        Returns:
            The loss when there are no metrics, else the list of loss and metric values in
            ``metrics_names`` order, or a dict with ``return_dict=True``.
        """
        require_compiled(self, "train_on_batch")
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(
                    "Arguments `sample_weight` and `class_weight` cannot be specified at the "
                    f"same time. Received: sample_weight={sample_weight}, "
                    f"class_weight={class_weight}"
                )
            sample_weight = sample_weight_from_class_weight(
                tree.to_tensor(y), check_class_weight(class_weight))
        data = self._batch_tensors(tree.pack_x_y_sample_weight(x, y, sample_weight))
        self.reset_metrics()
        was_training = self.training
        self.train()
        try:
            logs = self.train_step(data)
        finally:
            self.train(was_training)
        return self._batch_result(logs, return_dict)

    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """Evaluate one batch, as Keras's ``test_on_batch`` (metrics reset first; eval mode).

        Returns:
            As :meth:`train_on_batch`.
        """
        require_compiled(self, "test_on_batch")
        data = self._batch_tensors(tree.pack_x_y_sample_weight(x, y, sample_weight))
        self.reset_metrics()
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                logs = self.test_step(data)
        finally:
            self.train(was_training)
        return self._batch_result(logs, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """Return the model's outputs for one batch as numpy arrays (eval mode, no gradients)."""
        data = self._batch_tensors((x,))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                outputs = self.predict_step(data)
        finally:
            self.train(was_training)
        return tree.map_structure(_to_numpy, outputs)

    def _batch_result(self, logs: Any, return_dict: bool) -> Any:
        logs = to_python(logs)
        if return_dict:
            return logs
        names = [name for name in self.metrics_names if name in logs]
        values = [logs[name] for name in names]
        values += [logs[key] for key in sorted(logs) if key not in names]
        return values[0] if len(values) == 1 else values
