"""Fused fast paths: one torch kernel for the common, unweighted case of a built-in loss.

A Keras loss is defined per sample (``call`` returns one value per sample) and then reduced.
Without sample weights and with the ``"sum_over_batch_size"`` reduction, the mean of the
per-sample means of a dense batch equals the mean over all its elements, which torch computes
in one fused kernel with a one-node backward (``F.mse_loss``, ``F.l1_loss``,
``F.cross_entropy``, ``F.binary_cross_entropy_with_logits``). The values agree with the
per-sample path up to float rounding; anything unusual (weights, other reductions, mixed
devices or dtypes, shapes the per-sample path would align) takes the per-sample path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

_FLOATS = (torch.float32, torch.float64)


def dense_pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor] | None:
    """Return ``(y_true, y_pred)`` with equal shapes and y_pred's dtype, or None if unusual."""
    if type(y_true) is not Tensor or type(y_pred) is not Tensor:
        return None
    if y_pred.dtype not in _FLOATS or y_true.device != y_pred.device:
        return None
    if y_true.shape != y_pred.shape:
        # The per-sample path meets (n,) with (n, 1); do the same here, nothing else.
        if y_true.dim() == 1 and y_pred.dim() == 2 and y_pred.shape[1] == 1 \
                and y_true.shape[0] == y_pred.shape[0]:
            y_true = y_true.unsqueeze(1)
        else:
            return None
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    return y_true, y_pred


def sparse_categorical_crossentropy_from_logits(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted crossentropy of logits ``(n, classes)`` and labels ``(n,)``."""
    if type(y_true) is not Tensor or type(y_pred) is not Tensor:
        return None
    if y_pred.dtype not in _FLOATS or y_pred.dim() != 2 or y_true.device != y_pred.device:
        return None
    if y_true.dim() == 2 and y_true.shape[1] == 1:
        y_true = y_true[:, 0]
    if y_true.dim() != 1 or y_true.shape[0] != y_pred.shape[0]:
        return None
    if y_true.is_floating_point():
        return None  # The per-sample path checks and rounds float labels.
    return F.cross_entropy(y_pred, y_true.long())


def binary_crossentropy_from_logits(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted binary crossentropy of logits, without label smoothing."""
    pair = dense_pair(y_true, y_pred)
    return None if pair is None else F.binary_cross_entropy_with_logits(pair[1], pair[0])


# ------------------------------------------------------------------ kernels without checks
#: ``kernel(y_true, y_pred) -> Tensor``: a fused computation decided once for a batch signature.
Kernel = Callable[[Tensor, Tensor], Tensor]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


def _native_of(public: Any, name: str) -> Any:
    """Return torch's kernel behind ``F.<name>`` when it agrees with ``public``, else ``None``.

    ``F.mse_loss`` and ``F.l1_loss`` check their arguments, broadcast them and map the
    reduction's name to a code before calling ``torch._C._nn.<name>(input, target, code)``;
    a planned kernel has made those checks once, so it calls the native kernel directly (one
    autograd node fewer, a few microseconds less per batch). A torch without that kernel, or
    whose kernel does not give ``public``'s values, keeps ``public``.
    """
    native = getattr(getattr(torch._C, "_nn", None), name, None)
    if native is None:
        return None
    prediction = torch.tensor([[0.5], [2.0], [-1.25]])
    target = torch.tensor([[1.0], [0.0], [-1.0]])
    try:
        agrees = all(
            torch.equal(native(prediction, target, code), public(prediction, target, reduction=key))
            for key, code in _REDUCTION_CODES.items()
        )
    except Exception:  # noqa: BLE001 - a probe: any failure means "use the public function".
        return None
    return native if agrees else None


_NATIVE = {
    op: native
    for op, native in ((F.mse_loss, _native_of(F.mse_loss, "mse_loss")),
                       (F.l1_loss, _native_of(F.l1_loss, "l1_loss")))
    if native is not None
}


def elementwise_kernel(op: Any, y_true: Any, y_pred: Any, reduction: str = "mean") -> Kernel | None:
    """Return ``op(y_pred, aligned y_true, reduction=...)`` decided once for batches like these.

    The decision :func:`dense_pair` makes on every batch (add the trailing axis of a ``(n,)``
    target, cast it to the prediction's dtype) is taken here, from these tensors, so the
    kernel checks nothing. It is valid for every batch with the same signature: the same
    tensor types, dtypes, devices, dimensions and sizes after the batch axis, and equal batch
    sizes in ``y_true`` and ``y_pred`` (:mod:`cadence.trainer.step_plan` checks that).

    Args:
        op: A torch function ``op(input, target, reduction=...)`` such as ``F.mse_loss``.
        y_true: A batch of targets.
        y_pred: A batch of predictions.
        reduction: Passed to ``op``.

    Returns:
        The kernel, or ``None`` when these tensors need the per-sample path.
    """
    if dense_pair(y_true, y_pred) is None:
        return None
    expand = y_true.dim() != y_pred.dim()
    dtype = y_pred.dtype if y_true.dtype != y_pred.dtype else None
    native = _NATIVE.get(op)
    code = _REDUCTION_CODES[reduction]

    def kernel(target: Tensor, prediction: Tensor) -> Tensor:
        if expand:
            target = target.unsqueeze(1)
        if dtype is not None:
            target = target.to(dtype)
        if native is not None:
            return native(prediction, target, code)
        return op(prediction, target, reduction=reduction)

    return kernel


def absolute_error_sum(prediction: Tensor, target: Tensor, reduction: str = "sum") -> Tensor:
    """Return ``sum(|prediction - target|)`` in one kernel (``torch.dist`` with ``p=1``)."""
    return torch.dist(prediction, target, 1)


def sparse_crossentropy_kernel(y_true: Any, y_pred: Any) -> Kernel | None:
    """Return ``F.cross_entropy`` of logits and integer labels decided once for batches like these.

    See :func:`elementwise_kernel` for which batches the kernel is valid for.
    """
    if sparse_categorical_crossentropy_from_logits(y_true, y_pred) is None:
        return None
    squeeze = y_true.dim() == 2
    cast = y_true.dtype != torch.int64

    def kernel(target: Tensor, prediction: Tensor) -> Tensor:
        if squeeze:
            target = target[:, 0]
        if cast:
            target = target.long()
        return F.cross_entropy(prediction, target)

    return kernel
