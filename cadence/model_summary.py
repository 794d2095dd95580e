"""``model.summary()`` as Keras 3 prints it, and the shapes of a model's layers (torchinfo).

The layer table is Keras 3's (``Layer (type)``, ``Output Shape``, ``Param #``, drawn by ``rich``
as Keras draws it), followed by the ``Total params``, ``Trainable params`` and
``Non-trainable params`` lines (and ``Optimizer params`` once the optimizer holds state). A
layer's count is every scalar of its weights, buffers included, as Keras counts a batch norm's
moving statistics. Output shapes are shown once the model has seen an input (``build``, a first
call or batch); they come from running the model (in eval mode, without gradients) through
``torchinfo`` on zeros of the recorded input shape, twice, with batches of 2 and 3, so the axes
that follow the batch read ``None``. Shapes are torch's (channels first for a ``Conv2d``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cadence import extras
from cadence.data import tree
from cadence.layers import Layer, count_params, layer_names, split_weights, sublayers

#: The batch sizes of the two probing passes; an axis whose size differs between them is ``None``.
_PROBE_BATCHES = (2, 3)


class Shape(tuple):
    """The shape of one tensor, ``None`` for the axes that follow the batch size."""

    def __repr__(self) -> str:
        return "(" + ", ".join(str(d) for d in self) + ("," if len(self) == 1 else "") + ")"


def input_spec_of(args: tuple) -> Any:
    """Return the nest of ``(shape after the batch axis, dtype)`` of a call's tensors, or None.

    None when some leaf is not a tensor with a batch axis (then nothing can be replayed).
    """
    leaves = tree.flatten(list(args))
    if not leaves or not all(isinstance(t, torch.Tensor) and t.ndim >= 1 for t in leaves):
        return None
    return tree.map_structure(lambda t: (tuple(t.shape[1:]), t.dtype), list(args))


def _zeros(spec: Any, batch: int, device: torch.device) -> Any:
    def make(entry: Any) -> torch.Tensor:
        shape, dtype = entry
        return torch.zeros((batch, *shape), dtype=dtype, device=device)

    return _map_spec(make, spec)


def _map_spec(fn: Callable[[Any], Any], spec: Any) -> Any:
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], torch.dtype):
        return fn(spec)
    if isinstance(spec, dict):
        return {key: _map_spec(fn, value) for key, value in spec.items()}
    return type(spec)(_map_spec(fn, value) for value in spec)


def _shapes_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return {key: _shapes_of(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_shapes_of(item) for item in value) if not hasattr(value, "_fields") \
            else tuple(_shapes_of(item) for item in value)
    return None


def _merge(first: Any, second: Any) -> Any:
    """Return the shapes of two passes as one, ``None`` on the axes whose sizes differ."""
    if isinstance(first, dict):
        return {key: _merge(first[key], second[key]) for key in first}
    if isinstance(first, list) or (
        isinstance(first, tuple) and first and not isinstance(first[0], int | None)
    ):
        return type(first)(_merge(a, b) for a, b in zip(first, second, strict=True))
    if isinstance(first, tuple):
        return Shape(a if a == b else None for a, b in zip(first, second, strict=True))
    return None


def _run(model: nn.Module, modules: list[nn.Module], spec: Any, batch: int,
         device: torch.device) -> dict[nn.Module, tuple[Any, Any]]:
    torchinfo = extras.require("torchinfo", "model.summary() and layer shapes", extra="summary")
    seen: dict[nn.Module, tuple[Any, Any]] = {}

    def record(module: nn.Module, inputs: tuple, output: Any) -> None:
        if module not in seen:
            shapes = _shapes_of(inputs)
            seen[module] = (shapes[0] if len(shapes) == 1 else shapes, _shapes_of(output))

    handles = [m.register_forward_hook(record) for m in modules]
    try:
        torchinfo.summary(model, input_data=list(_zeros(spec, batch, device)), device=device,
                          mode="eval", verbose=0, depth=1)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def probe_shapes(model: nn.Module, spec: Any, modules: list[nn.Module]) -> dict[nn.Module, tuple[Any, Any]]:
    """Return ``{module: (input_shape, output_shape)}`` for the modules the model calls.

    Args:
        model: The model, called on zeros of ``spec`` (eval mode, no gradients).
        spec: The nest of ``(shape after the batch axis, dtype)`` of the model's inputs.
        modules: The modules whose shapes to record; the model itself may be one of them.
    """
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    first, second = (_run(model, modules, spec, batch, device) for batch in _PROBE_BATCHES)
    return {
        module: (_merge(first[module][0], second[module][0]), _merge(first[module][1], second[module][1]))
        for module in first if module in second
    }


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, Shape):
        return repr(shape)
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{key}: {_format_shape(value)}" for key, value in shape.items()) + "}"
    inner = ", ".join(_format_shape(value) for value in shape)
    return f"[{inner}]" if isinstance(shape, list) else f"({inner})"


def readable_memory_size(size: float) -> str:
    """Return a byte count as Keras prints it (``5.88 KB``: two decimals, units of 1024)."""
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _memory(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _optimizer_state(model: Any) -> list[torch.Tensor]:
    optimizer = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or optimizer is None:
        return []
    state = getattr(optimizer, "state", None) or {}
    return [t for entry in state.values() for t in tree.flatten(entry) if isinstance(t, torch.Tensor)]


def _layer_range(layers: list[Layer], layer_range: Any) -> tuple[int, int]:
    if layer_range is None:
        return 0, len(layers)
    if not isinstance(layer_range, list | tuple) or len(layer_range) != 2:
        raise ValueError(
            "layer_range must be a list or tuple of length 2. Received: "
            f"layer_range = {layer_range!r}"
        )
    if not all(isinstance(bound, str) for bound in layer_range):
        raise ValueError(f"layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    upper = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not lower or not upper:
        raise ValueError(
            "Passed layer_names do not match the layer names in the model. "
            f"Received: {layer_range}"
        )
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: list[float] | None = None,
    print_fn: Callable[..., Any] | None = None,
    expand_nested: bool = False,
    show_trainable: bool = False,
    layer_range: Any = None,
) -> None:
    """Print ``model``'s summary as Keras 3's ``model.summary()`` (see the module docstring).

    Args:
        model: A ``cadence.Model``.
        line_length: Total width of the table; ``min(88, terminal columns - 4)`` by default.
        positions: Right edges of the columns as fractions (or absolute widths) of the line.
        print_fn: Called once with the whole summary as a string; printed to stdout otherwise.
        expand_nested: Also list the modules inside each layer, indented.
        show_trainable: Add a ``Trainable`` column (``Y``, ``N`` or ``-`` without weights).
        layer_range: Two regular expressions: the first and last layer names to list.
    """
    extras.require("rich", "model.summary()", extra="summary")
    import rich.console  # An optional extra's submodules, once it is known to be installed.
    import rich.markup
    import rich.table

    layers = model.layers
    shapes = model.layer_shapes() or {}
    header, alignment = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    default_length, positions = 88, positions or [0.45, 0.80, 1.0]
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        alignment.append("center")
    line_length = line_length or min(default_length, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    columns = [rich.table.Column(name, justify=align, width=width)
               for name, align, width in zip(header, alignment, widths, strict=True)]
    table = rich.table.Table(*columns, width=line_length, show_lines=True)

    def rows(module: nn.Module, name: str, level: int) -> list[list[str]]:
        prefix = "   " * level + "└ " if level else ""
        label = rich.markup.escape(f"{prefix}{name}")
        label += f" ({rich.markup.escape(type(module).__name__)})"
        trainable, frozen = split_weights(module)
        fields = [label, _format_shape(shapes[module][1]) if module in shapes else "?",
                  f"{count_params(trainable + frozen):,}"]
        if show_trainable:
            if trainable or frozen:
                fields.append("[bold]Y[/]" if Layer(module, name).trainable else "[bold]N[/]")
            else:
                fields.append("[bold]-[/]")
        found = [fields]
        if expand_nested:
            inner = sublayers(module)
            for child, child_name in zip(inner, layer_names(inner), strict=True):
                found.extend(rows(child, child_name, level + 1))
        return found

    start, stop = _layer_range(layers, layer_range)
    for layer in layers[start:stop]:
        for row in rows(layer.module, layer.name, 0):
            table.add_row(*row)

    trainable, frozen = split_weights(model)
    optimizer = _optimizer_state(model)
    total = count_params(trainable + frozen + optimizer)
    total_memory = _memory(trainable) + _memory(frozen) + _memory(optimizer)
    if print_fn:
        console = rich.console.Console(highlight=False, force_terminal=False, color_system=None)
        console.begin_capture()
    else:
        console = rich.console.Console(highlight=False)
    console.print(f'[bold]Model: "{rich.markup.escape(model.name)}"[/]')
    console.print(table)
    console.print(f"[bold] Total params: [/]{total:,} ({readable_memory_size(total_memory)})")
    console.print(f"[bold] Trainable params: [/]{count_params(trainable):,} "
                  f"({readable_memory_size(_memory(trainable))})")
    console.print(f"[bold] Non-trainable params: [/]{count_params(frozen):,} "
                  f"({readable_memory_size(_memory(frozen))})")
    if optimizer:
        console.print(f"[bold] Optimizer params: [/]{count_params(optimizer):,} "
                      f"({readable_memory_size(_memory(optimizer))})")
    if print_fn:
        print_fn(console.end_capture())
