"""Keras 3's sequence and similarity losses: CTC and Circle."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cadence.losses.loss import Loss
from cadence.losses.shapes import float_predictions, to_tensor


def ctc(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the CTC loss of each sample, as Keras does.

    Label 0 is both the padding of `y_true` and CTC's blank; every sample uses all
    `max_length` time steps of `y_pred`, whose last axis holds logits (a log-softmax is
    applied).

    Args:
        y_true: Integer labels of shape `(batch, max_label_length)`, padded with 0.
        y_pred: Logits of shape `(batch, max_length, num_classes)`.

    Returns:
        Losses of shape `(batch,)`.

    Raises:
        ValueError: If the ranks are not 2 and 3 (Keras's messages).
    """
    y_pred = float_predictions(y_pred)
    y_true = to_tensor(y_true, like=y_pred)
    if y_true.dim() != 2:
        raise ValueError(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` "
            f"in integer format. Received: y_true.shape={tuple(y_true.shape)}"
        )
    if y_pred.dim() != 3:
        raise ValueError(
            "Logits `y_pred` are expected to be a tensor of shape "
            f"`(batch_size, max_length, num_classes)`. Received: y_pred.shape={tuple(y_pred.shape)}"
        )
    labels = y_true.long()
    batch, steps = y_pred.shape[0], y_pred.shape[1]
    input_lengths = torch.full((batch,), steps, dtype=torch.long, device=y_pred.device)
    label_lengths = (labels != 0).sum(dim=-1)
    log_probs = torch.log_softmax(y_pred.transpose(0, 1), dim=-1)
    return F.ctc_loss(log_probs, labels, input_lengths, label_lengths, blank=0, reduction="none")


class CTC(Loss):
    """Connectionist Temporal Classification loss (Keras name `ctc`); see `ctc`.

    Args:
        reduction: See `Loss`.
        name: Name of the loss.
    """

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "ctc"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Computes the per-sample CTC losses."""
        return ctc(y_true, y_pred)


def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels: Any = None,
    ref_embeddings: Any = None,
    remove_diagonal: bool = True,
    gamma: float = 80,
    margin: float = 0.4,
) -> Tensor:
    """Computes the Circle loss (Sun et al., 2020) of each embedding, as Keras does.

    Cosine distances `d = max(1 - y_pred @ ref_embeddings.T, 0)` are compared with the
    positives (same label; the diagonal removed when `remove_diagonal`) and negatives;
    the loss is `softplus(logsumexp(-gamma * max(margin + d, 0) * (margin - d)) +
    logsumexp(gamma * max(1 + margin - d, 0) * (1 - margin - d)))`. A sample without
    positives or negatives gets 0.

    Args:
        y_true: Integer labels of shape `(batch,)`.
        y_pred: L2-normalised embeddings of shape `(batch, dim)`.
        ref_labels: Labels of the reference embeddings; defaults to `y_true`.
        ref_embeddings: Reference embeddings; defaults to `y_pred`.
        remove_diagonal: Whether an embedding is not its own positive.
        gamma: The scale.
        margin: The relaxation margin.

    Returns:
        Losses of shape `(batch,)`.
    """
    y_pred = float_predictions(y_pred)
    labels = to_tensor(y_true, like=y_pred).long().reshape(-1, 1)
    references = y_pred if ref_embeddings is None else to_tensor(ref_embeddings, like=y_pred).to(
        y_pred.dtype
    )
    reference_labels = labels if ref_labels is None else to_tensor(ref_labels, like=y_pred).long()
    reference_labels = reference_labels.reshape(-1, 1)
    distances = torch.clamp_min(1 - y_pred @ references.T, 0.0)
    positive = labels == reference_labels.T
    negative = ~positive
    if remove_diagonal:
        eye = torch.eye(positive.shape[0], positive.shape[1], dtype=torch.bool, device=y_pred.device)
        positive = positive & ~eye
    positive_weights = torch.clamp_min((margin + distances) * positive, 0.0)
    negative_weights = torch.clamp_min((1 + margin - distances) * negative, 0.0)
    positive_terms = -gamma * positive_weights * (margin - distances)
    negative_terms = gamma * negative_weights * (1 - margin - distances)
    minus_inf = torch.tensor(float("-inf"), dtype=y_pred.dtype, device=y_pred.device)
    positive_loss = torch.logsumexp(torch.where(positive, positive_terms, minus_inf), dim=1)
    negative_loss = torch.logsumexp(torch.where(negative, negative_terms, minus_inf), dim=1)
    return F.softplus(positive_loss + negative_loss)


class Circle(Loss):
    """The Circle loss between integer labels and L2-normalised embeddings (Keras name `circle`).

    As in Keras, samples whose loss is 0 (no positive or no negative in the batch) are
    left out of the mean reductions: `"sum_over_batch_size"` averages over the others.

    Args:
        gamma: The scale. Defaults to 80.
        margin: The relaxation margin. Defaults to 0.4.
        remove_diagonal: Whether an embedding is not its own positive.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "circle",
    ):
        super().__init__(name=name, reduction=reduction)
        self.gamma = gamma
        self.margin = margin
        self.remove_diagonal = remove_diagonal

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Computes the per-sample Circle losses."""
        return circle(
            y_true, y_pred, remove_diagonal=self.remove_diagonal, gamma=self.gamma,
            margin=self.margin,
        )

    def mean_scale(self, y_true: Any, y_pred: Any) -> Tensor | None:
        """Returns `samples / samples with a positive loss`, so means skip the zero losses."""
        with torch.no_grad():
            values = self.call(y_true, y_pred)
        valid = (values > 0).sum(dtype=values.dtype)
        return torch.where(valid > 0, values.numel() / valid.clamp_min(1), torch.zeros_like(valid))

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments of this loss."""
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "margin": self.margin,
            "remove_diagonal": self.remove_diagonal,
        }
