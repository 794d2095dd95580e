"""Adapter that lets a `torch.nn` loss module act as a cadence `Loss`."""

import copy
from typing import Any

import torch
from torch import Tensor, nn

from cadence.losses.loss import Loss, reduce_weighted
from cadence.losses.shapes import align_ranks, snake_case, to_tensor


class TorchLossWrapper(Loss):
    """A `Loss` around a torch loss module such as `nn.MSELoss()` or `nn.CrossEntropyLoss()`.

    The module is called torch's way, `module(y_pred, y_true)`. Two conveniences keep
    Keras-style targets working: targets of shape `(n,)` meet predictions of shape
    `(n, 1)` as `(n, 1)`, and targets whose shape equals the predictions' are cast to
    the predictions' dtype (so integer 0/1 labels work with `nn.BCEWithLogitsLoss`).
    Class-index targets (`nn.CrossEntropyLoss`) are passed unchanged.

    Without `sample_weight` the module's own reduction is used as is. With a
    `sample_weight`, a copy of the module with `reduction="none"` computes unreduced
    losses, which are weighted and reduced with this wrapper's Keras `reduction`;
    modules without a `reduction` attribute cannot be weighted.

    Args:
        module: The torch loss module.
        name: Name of the loss; defaults to the snake_case of the module's class name
            (`nn.MSELoss` -> `"mse_loss"`).
        reduction: The Keras reduction used when a `sample_weight` is given.
    """

    def __init__(
        self,
        module: nn.Module,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
    ):
        super().__init__(name=name or snake_case(type(module).__name__), reduction=reduction)
        self.module = module
        self._unreduced: nn.Module | None = None

    def _inputs(self, y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
        y_pred = to_tensor(y_pred)
        y_true = to_tensor(y_true, like=y_pred)
        if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == 1:
            y_true, y_pred = align_ranks(y_true, y_pred)
        if y_true.shape == y_pred.shape and torch.is_floating_point(y_pred):
            y_true = y_true.to(y_pred.dtype)
        return y_true, y_pred

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Calls the module as `module(y_pred, y_true)` with its own reduction.

        Args:
            y_true: Targets.
            y_pred: Predictions.

        Returns:
            What the module returns.
        """
        y_true, y_pred = self._inputs(y_true, y_pred)
        return self.module(y_pred, y_true)

    def _unreduced_module(self) -> nn.Module:
        if self._unreduced is None:
            if not hasattr(self.module, "reduction"):
                raise ValueError(
                    f"Loss module {type(self.module).__name__} cannot be used with "
                    "`sample_weight`: it has no `reduction` attribute, so cadence cannot "
                    "ask it for per-sample losses. Expected a module with "
                    "`reduction='none'` support, such as `nn.MSELoss`."
                )
            unreduced = copy.copy(self.module)
            unreduced.reduction = "none"
            self._unreduced = unreduced
        return self._unreduced

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        """Computes the loss, weighting per-sample values when `sample_weight` is given.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, 1)`.

        Returns:
            A 0-d tensor (or unreduced values when the module or reduction says so).

        Raises:
            ValueError: If weights are given and the module has no `reduction`.
        """
        if sample_weight is None:
            return self.call(y_true, y_pred)
        y_true, y_pred = self._inputs(y_true, y_pred)
        values = self._unreduced_module()(y_pred, y_true)
        return reduce_weighted(values, sample_weight, self.reduction)

    def __repr__(self) -> str:
        return f"TorchLossWrapper({self.module!r}, name={self.name!r})"
