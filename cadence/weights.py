"""Keras's weight methods for a torch module: get/set as numpy, save/load files atomically and safely."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadence import distributed


class WeightsMixin:
    """``get_weights`` / ``set_weights`` / ``save_weights`` / ``load_weights`` / ``save`` for a Model.

    Mixed into :class:`cadence.Model` ahead of ``torch.nn.Module``; it uses only the module's
    ``state_dict`` and ``load_state_dict``.
    """

    def get_weights(self) -> list[np.ndarray]:
        """Return every parameter and buffer as a numpy array, in ``state_dict`` order.

        Under ``strategy="fsdp"`` the whole weights are gathered: every rank calls it.
        """
        return [distributed.full_tensor(t).detach().cpu().numpy().copy()
                for t in self._weight_tensors()]

    def set_weights(self, weights: list[Any]) -> None:
        """Set every parameter and buffer from numpy arrays returned by :meth:`get_weights`."""
        tensors = self._weight_tensors()
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

    def _weight_tensors(self) -> list[torch.Tensor]:
        state = self.state_dict(keep_vars=True)
        return [t for t in state.values() if isinstance(t, torch.Tensor)]

    def save_weights(self, filepath: Any) -> None:
        """Save the weights atomically; ``.safetensors`` or a checksummed torch file by suffix."""
        from cadence import io

        io.save_weights_file(distributed.full_state_dict(self), str(filepath))

    def load_weights(self, filepath: Any) -> None:
        """Load weights saved by :meth:`save_weights` (or a torch ``state_dict`` file), safely.

        A full checkpoint of ``ModelCheckpoint`` (a dict whose ``"model"`` entry is the
        ``state_dict``) is accepted too: its model weights are loaded.
        """
        from cadence import io

        state = io.load_weights_file(str(filepath))
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        distributed.load_full_state_dict(self, state)

    def save(self, filepath: Any) -> None:
        """Save weights, optimizer state and compile config atomically (see :mod:`cadence.saving`)."""
        from cadence import saving

        saving.save_model(self, filepath)
