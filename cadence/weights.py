"""Keras's weight methods for a torch module: get/set as numpy, save/load files atomically and safely."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadence import distributed, io


def weight_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Return the module's parameters and persistent buffers, in ``state_dict`` order."""
    state = module.state_dict(keep_vars=True)
    return [t for t in state.values() if isinstance(t, torch.Tensor)]


def get_weights(module: torch.nn.Module) -> list[np.ndarray]:
    """Return every parameter and buffer of ``module`` as a numpy array, in ``state_dict`` order.

    Under ``strategy="fsdp"`` the whole weights are gathered: every rank calls it.
    """
    return [distributed.full_tensor(t).detach().cpu().numpy().copy() for t in weight_tensors(module)]


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
            distributed.copy_whole_into(tensor, value)  # A shard's slice under FSDP.


class WeightsMixin:
    """``get_weights`` / ``set_weights`` / ``save_weights`` / ``load_weights`` for a Model.

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
        """Save the weights atomically; ``.safetensors`` or a checksummed torch file by suffix.

        Under ``strategy="fsdp"`` the whole weights are gathered: every rank calls it.
        """
        io.save_weights_file(distributed.full_state_dict(self), str(filepath))

    def load_weights(self, filepath: Any, allow_cast: bool = False) -> None:
        """Load weights saved by :meth:`save_weights` (or a torch ``state_dict`` file), safely.

        A file written by :meth:`save` (also ``ModelCheckpoint``'s full checkpoint) is accepted
        too: its weights are loaded, as Keras's ``load_weights`` reads a ``.keras`` file. The
        file's checksum is verified, and nothing is loaded unless every tensor fits.

        Args:
            filepath: The file.
            allow_cast: Accept tensors of another dtype than the model's (``float64``, integer
                or complex values into ``float32`` weights: torch would cast them silently) or
                another layout than a dense tensor (sparse, ...), converting them. By default
                both are refused with a ``ValueError`` naming the tensor.
        """
        state = io.load_weights_file(str(filepath))
        if isinstance(state, dict) and state.get("format") == "cadence-model":
            state = state["weights"]
        elif isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise ValueError(
                f"load_weights: '{filepath}' is not a dict of parameter names to tensors (a "
                f"state_dict); received {type(state).__name__} in an unknown layout."
            )
        own = self.state_dict()
        for key, value in state.items():
            if key not in own:
                continue  # load_state_dict names unexpected keys.
            if value.layout != torch.strided and not allow_cast:
                raise ValueError(
                    f"load_weights: '{filepath}' holds '{key}' in the layout {value.layout}; the "
                    "model's weights are dense (torch.strided). Pass allow_cast=True to convert it."
                )
            if value.dtype != own[key].dtype and not allow_cast:
                raise ValueError(
                    f"load_weights: '{filepath}' holds '{key}' as {value.dtype}; the model's "
                    f"'{key}' is {own[key].dtype}. Loading would cast it; pass allow_cast=True "
                    "to accept that."
                )
        if allow_cast:
            state = {k: v.to_dense() if v.layout != torch.strided else v for k, v in state.items()}
        distributed.load_full_state_dict(self, state)  # Under FSDP: each rank its slice.
