"""Keras's layers of a model: ``model.layers[i].get_weights()``, ``.name``, ``.trainable``, ...

A Keras model is made of layers; a torch model is made of modules. :func:`layer_modules` says
which modules of a cadence model are its Keras layers, as Keras does for its own models (the
top-level layers, not every nested one):

- the model's own child modules, in the order they were assigned;
- the wrapped module of ``cadence.Model(module)`` (and of ``cadence.Sequential``) stands for its
  children, so ``Sequential(a, b, c).layers`` are ``a, b, c`` and ``Model(resnet).layers`` are
  the ResNet's top-level blocks; a wrapped module without children is itself the one layer;
- an ``nn.ModuleList`` or ``nn.ModuleDict`` stands for its items (Keras tracks a list of layers
  the same way); an ``nn.Sequential`` child is one layer, as a nested Keras model is.

Layers are named as Keras names them, from their class: torch's class name snake-cased
(``Linear`` -> ``linear``, ``Conv2d`` -> ``conv2d``, ``BatchNorm2d`` -> ``batch_norm2d``,
``ReLU`` -> ``re_lu``), with ``_1``, ``_2``, ... for the second, third, ... of a name within
the model.

A :class:`Layer` is a view of its module: its weights are the module's tensors, ``trainable``
reads and sets their ``requires_grad``, so freezing a layer takes effect at the next batch
without recompiling (torch optimizers skip parameters without a gradient).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from cadence.losses.shapes import snake_case
from cadence.weights import get_weights, set_weights, weight_tensors

__all__ = ["Layer", "count_params", "layer_modules", "layer_names", "split_weights", "sublayers"]


def layer_modules(model: nn.Module) -> list[nn.Module]:
    """Return the modules that are ``model``'s Keras layers (see the module docstring)."""
    found: list[nn.Module] = []
    for name, child in model.named_children():
        if name == "module" and child is getattr(model, "module", None):
            grandchildren = list(child.children())
            if grandchildren:
                found.extend(sublayers(child))
            else:
                found.append(child)
        else:
            found.extend(_expand_container(child))
    return found


def sublayers(module: nn.Module) -> list[nn.Module]:
    """Return the children of ``module``, each ModuleList or ModuleDict standing for its items."""
    return [layer for child in module.children() for layer in _expand_container(child)]


def _expand_container(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.ModuleList | nn.ModuleDict):
        return sublayers(module)
    return [module]


def layer_names(modules: list[nn.Module]) -> list[str]:
    """Return Keras's names for ``modules``: the snake-cased class name, ``_1``, ``_2`` ... on repeats."""
    seen: dict[str, int] = {}
    names = []
    for module in modules:
        base = snake_case(type(module).__name__)
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count}")
    return names


def split_weights(module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return ``(trainable, non_trainable)``: the module's weights, each shared tensor once.

    The weights are the tensors of the module's ``state_dict``; trainable ones are parameters
    that require gradients, the others (frozen parameters, buffers such as batch norm's running
    statistics) are non-trainable, as Keras counts a batch norm's moving mean and variance.
    """
    trainable, frozen, seen = [], [], set()
    for tensor in weight_tensors(module):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if isinstance(tensor, nn.Parameter) and tensor.requires_grad:
            trainable.append(tensor)
        else:
            frozen.append(tensor)
    return trainable, frozen


def count_params(tensors: list[torch.Tensor]) -> int:
    """Return the number of scalars in ``tensors``."""
    return int(sum(math.prod(t.shape) for t in tensors))


def is_trainable(module: nn.Module) -> bool:
    """Whether ``module`` trains: it has no parameters, or one of them requires gradients."""
    parameters = list(module.parameters())
    return not parameters or any(p.requires_grad for p in parameters)


def set_trainable(module: nn.Module, value: Any) -> None:
    """Freeze (``False``) or unfreeze (``True``) every parameter of ``module``."""
    if not isinstance(value, bool):
        raise TypeError(f"trainable must be True or False; received trainable={value!r}.")
    for parameter in module.parameters():
        if parameter.is_floating_point() or parameter.is_complex():
            parameter.requires_grad_(value)


class Layer:
    """Keras's view of one of a model's modules (an item of ``model.layers``).

    Args:
        module: The torch module.
        name: Its Keras name within the model.
        model: The model it belongs to (for ``input_shape`` / ``output_shape``).
    """

    def __init__(self, module: nn.Module, name: str, model: Any = None) -> None:
        self.module = module
        self.name = name
        self.model = model

    def __repr__(self) -> str:
        return f"<Layer {self.name!r} ({type(self.module).__name__})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and other.module is self.module and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self.module), self.name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the module."""
        return self.module(*args, **kwargs)

    @property
    def built(self) -> bool:
        """Always ``True``: a torch module's weights exist once it is constructed."""
        return True

    @property
    def weights(self) -> list[torch.Tensor]:
        """The module's parameters and buffers, in ``state_dict`` order."""
        return weight_tensors(self.module)

    variables = weights

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        """The parameters that require gradients."""
        return split_weights(self.module)[0]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        """Frozen parameters and buffers (such as batch norm's running statistics)."""
        return split_weights(self.module)[1]

    non_trainable_variables = non_trainable_weights

    def parameters(self, recurse: bool = True) -> Any:
        """Return the module's parameters (for torch code, such as optimizer parameter groups)."""
        return self.module.parameters(recurse)

    def get_weights(self) -> list[np.ndarray]:
        """Return the layer's weights as numpy arrays (copies), in ``weights`` order."""
        return get_weights(self.module)

    def set_weights(self, weights: list[Any]) -> None:
        """Set the layer's weights from arrays in ``weights`` order (as ``get_weights`` returns)."""
        set_weights(self.module, weights)

    def count_params(self) -> int:
        """Return the number of scalars in the layer's weights, buffers included, as Keras."""
        trainable, frozen = split_weights(self.module)
        return count_params(trainable + frozen)

    @property
    def trainable(self) -> bool:
        """Whether the layer trains; setting it sets every parameter's ``requires_grad``.

        A layer without parameters reads ``True`` (there is nothing to freeze).
        """
        return is_trainable(self.module)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        set_trainable(self.module, value)

    @property
    def dtype(self) -> str:
        """The dtype of the layer's first floating-point weight, else torch's default."""
        for tensor in weight_tensors(self.module):
            if tensor.is_floating_point():
                return str(tensor.dtype).removeprefix("torch.")
        return str(torch.get_default_dtype()).removeprefix("torch.")

    @property
    def input_shape(self) -> Any:
        """The shape of the layer's input, ``None`` for the batch axis (see ``output_shape``)."""
        return self._shapes("input_shape")[0]

    @property
    def output_shape(self) -> Any:
        """The shape of the layer's output, ``None`` for the batch axis.

        Known once the model has seen an input: ``model.build(input_shape)``, a first call, a
        first batch of ``fit`` / ``evaluate`` / ``predict`` or an ``*_on_batch`` call. A nest of
        shapes for a layer that returns a nest.

        Raises:
            AttributeError: When no input has been seen yet.
        """
        return self._shapes("output_shape")[1]

    def _shapes(self, what: str) -> tuple[Any, Any]:
        shapes = self.model.layer_shapes() if self.model is not None else None
        if shapes is None:
            raise AttributeError(
                f"The layer {self.name!r} has never been called and thus has no defined "
                f"{what}: build the model first, e.g. model.build((None, 784)), or call it on "
                "a batch."
            )
        if self.module not in shapes:
            raise AttributeError(
                f"The layer {self.name!r} was not called when the model ran, so it has no "
                f"defined {what}."
            )
        return shapes[self.module]
