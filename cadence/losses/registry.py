"""Looking up losses by Keras name, and wrapping callables and torch modules."""

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from cadence.losses import classes, focal, overlap, sequence
from cadence.losses.loss import Loss, LossFunctionWrapper
from cadence.losses.torch_loss import TorchLossWrapper

LOSSES: dict[str, Callable[[], Loss]] = {
    "mean_squared_error": classes.MeanSquaredError,
    "mse": classes.MeanSquaredError,
    "mean_absolute_error": classes.MeanAbsoluteError,
    "mae": classes.MeanAbsoluteError,
    "mean_absolute_percentage_error": classes.MeanAbsolutePercentageError,
    "mape": classes.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": classes.MeanSquaredLogarithmicError,
    "msle": classes.MeanSquaredLogarithmicError,
    "binary_crossentropy": classes.BinaryCrossentropy,
    "categorical_crossentropy": classes.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": classes.SparseCategoricalCrossentropy,
    "huber": classes.Huber,
    "huber_loss": classes.Huber,
    "hinge": classes.Hinge,
    "squared_hinge": classes.SquaredHinge,
    "kl_divergence": classes.KLDivergence,
    "kld": classes.KLDivergence,
    "poisson": classes.Poisson,
    "cosine_similarity": classes.CosineSimilarity,
    "log_cosh": classes.LogCosh,
    "logcosh": classes.LogCosh,
    "bce": classes.BinaryCrossentropy,
    "BCE": classes.BinaryCrossentropy,
    "KLD": classes.KLDivergence,
    "MAE": classes.MeanAbsoluteError,
    "MSE": classes.MeanSquaredError,
    "MAPE": classes.MeanAbsolutePercentageError,
    "MSLE": classes.MeanSquaredLogarithmicError,
    "binary_focal_crossentropy": focal.BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": focal.CategoricalFocalCrossentropy,
    "categorical_hinge": overlap.CategoricalHinge,
    "dice": overlap.Dice,
    "tversky": overlap.Tversky,
    "ctc": sequence.CTC,
    "circle": sequence.Circle,
}
"""Loss names and aliases accepted by `get`, as in Keras."""

_CLASSES = {
    cls.__name__: cls
    for cls in vars(classes).values()
    if inspect.isclass(cls) and issubclass(cls, Loss) and not cls.__name__.startswith("_")
}
_CLASSES.pop("Loss", None)
_CLASSES.update(
    (cls.__name__, cls)
    for cls in (
        focal.BinaryFocalCrossentropy,
        focal.CategoricalFocalCrossentropy,
        overlap.CategoricalHinge,
        overlap.Dice,
        overlap.Tversky,
        sequence.CTC,
        sequence.Circle,
    )
)


def valid_names() -> list[str]:
    """Returns every string `get` accepts, sorted.

    Returns:
        Keras loss names, aliases and class names.
    """
    return sorted({*LOSSES, *_CLASSES})


def get(identifier: Any) -> Loss | None:
    """Returns the `Loss` an identifier stands for.

    Args:
        identifier: One of
            - `None` (returned as is);
            - a Keras name or alias such as `"mse"` or `"sparse_categorical_crossentropy"`,
              or a class name such as `"MeanSquaredError"`;
            - a `Loss` instance (returned as is) or `Loss` subclass (instantiated);
            - a torch loss module such as `nn.CrossEntropyLoss()` (or its class), called
              as `module(y_pred, y_true)`, see `TorchLossWrapper`;
            - a function `fn(y_true, y_pred)` returning per-sample losses or a scalar,
              see `LossFunctionWrapper`.

    Returns:
        A `Loss`, or `None`.

    Raises:
        ValueError: If a string is not a known loss name.
        TypeError: If the identifier is of an unsupported type.
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        factory = LOSSES.get(identifier) or _CLASSES.get(identifier)
        if factory is None:
            raise ValueError(
                f"Unknown loss: {identifier!r}. Expected one of: "
                f"{', '.join(repr(name) for name in valid_names())}"
            )
        return factory()
    if inspect.isclass(identifier) and issubclass(identifier, (Loss, nn.Module)):
        identifier = identifier()
        if isinstance(identifier, Loss):
            return identifier
    if isinstance(identifier, nn.Module):
        return TorchLossWrapper(identifier)
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(
        f"Could not interpret loss identifier: {identifier!r} (of type "
        f"{type(identifier).__name__}). Expected a loss name, a `cadence.losses.Loss`, a "
        "torch loss module or a function `fn(y_true, y_pred)`."
    )
