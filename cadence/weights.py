"""Keras's weight methods for a torch module: get/set as numpy, save/load files atomically and safely."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def weight_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Return the module's parameters and persistent buffers, in ``state_dict`` order."""
    state = module.state_dict(keep_vars=True)
    return [t for t in state.values() if isinstance(t, torch.Tensor)]


def get_weights(module: torch.nn.Module) -> list[np.ndarray]:
    """Return every parameter and buffer of ``module`` as a numpy array, in ``state_dict`` order."""
    return [t.detach().cpu().numpy().copy() for t in weight_tensors(module)]


def set_weights(module: torch.nn.Module, weights: list[Any]) -> None:
    """Set every parameter and buffer of ``module`` from arrays returned by :func:`get_weights`."""
    tensors = weight_tensors(module)
    if len(weights) != len(tensors):
        raise ValueError(
            f"set_weights expects {len(tensors)} arrays (one per parameter and buffer); "
            f"received {len(weights)}."
        )
    with torch.no_grad():
        for index, (tensor, value) in enumerate(zip(tensors, weights, strict=True)):
            value = torch.as_tensor(np.asarray(value))
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"set_weights: array {index} has shape {tuple(value.shape)}; expected "
                    f"{tuple(tensor.shape)}."
                )
            tensor.copy_(value.to(tensor.dtype))


class WeightsMixin:
    """``get_weights`` / ``set_weights`` / ``save_weights`` / ``load_weights`` / ``save`` for a Model.

    Mixed into :class:`cadence.Model` ahead of ``torch.nn.Module``; it uses only the module's
    ``state_dict`` and ``load_state_dict``.
    """

    def get_weights(self) -> list[np.ndarray]:
        """Return every parameter and buffer as a numpy array, in ``state_dict`` order."""
        return get_weights(self)

    def set_weights(self, weights: list[Any]) -> None:
        """Set every parameter and buffer from numpy arrays returned by :meth:`get_weights`."""
        set_weights(self, weights)

    def save_weights(self, filepath: Any) -> None:
        """Save the weights atomically; ``.safetensors`` or a checksummed torch file by suffix."""
        from cadence import io

        io.save_weights_file(self.state_dict(), str(filepath))

    def load_weights(self, filepath: Any) -> None:
        """Load weights saved by :meth:`save_weights` (or a torch ``state_dict`` file), safely.

        A file written by :meth:`save` (also ``ModelCheckpoint``'s full checkpoint) is accepted
        too: its weights are loaded, as Keras's ``load_weights`` reads a ``.keras`` file.
        """
        from cadence import io

        state = io.load_weights_file(str(filepath))
        if isinstance(state, dict) and state.get("format") == "cadence-model":
            state = state["weights"]
        elif isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        self.load_state_dict(state)

    def save(self, filepath: Any) -> None:
        """Save weights, optimizer state and compile config atomically (see :mod:`cadence.saving`)."""
        from cadence import saving

        saving.save_model(self, filepath)
