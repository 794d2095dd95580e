"""Keras 3's loss classes, each a thin `Loss` around a per-sample function."""

from collections.abc import Callable
from typing import Any

from torch import Tensor

from cadence.losses import crossentropy, regression
from cadence.losses.loss import Loss, ignored_fraction_scale
from cadence.losses.shapes import float_predictions


class _FunctionLoss(Loss):
    """A built-in loss: `call` forwards to `fn(y_true, y_pred, **self.fn_kwargs)`.

    The loss's own arguments (`label_smoothing`, `from_logits`, `delta`, ...) are attributes,
    read on every call: a callback that sets `loss.label_smoothing = 0.1` changes the next
    batch's loss.
    """

    fn: Callable[..., Tensor]

    def __init__(
        self,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        **fn_kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction)
        self._fn_arg_names = tuple(fn_kwargs)
        for key, value in fn_kwargs.items():
            setattr(self, key, value)

    @property
    def fn_kwargs(self) -> dict[str, Any]:
        """The loss's own arguments as they are now, passed to `fn` by `call`."""
        return {key: getattr(self, key) for key in self._fn_arg_names}

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Computes per-sample losses.

        Args:
            y_true: Targets.
            y_pred: Predictions.

        Returns:
            Losses of shape `(batch,)`.
        """
        return type(self).fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments of this loss.

        Returns:
            A dict with `name`, `reduction` and the loss's own arguments.
        """
        return {**super().get_config(), **self.fn_kwargs}


class MeanSquaredError(_FunctionLoss):
    """Mean of squared errors (Keras name `mean_squared_error`)."""

    default_name = "mean_squared_error"
    fn = regression.mean_squared_error


class MeanAbsoluteError(_FunctionLoss):
    """Mean of absolute errors (Keras name `mean_absolute_error`)."""

    default_name = "mean_absolute_error"
    fn = regression.mean_absolute_error


class MeanAbsolutePercentageError(_FunctionLoss):
    """Mean absolute percentage error (Keras name `mean_absolute_percentage_error`)."""

    default_name = "mean_absolute_percentage_error"
    fn = regression.mean_absolute_percentage_error


class MeanSquaredLogarithmicError(_FunctionLoss):
    """Mean squared logarithmic error (Keras name `mean_squared_logarithmic_error`)."""

    default_name = "mean_squared_logarithmic_error"
    fn = regression.mean_squared_logarithmic_error


class Huber(_FunctionLoss):
    """Huber loss (Keras name `huber_loss`).

    Args:
        delta: The error at which the loss switches from quadratic to linear.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    default_name = "huber_loss"
    fn = regression.huber

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(name=name, reduction=reduction, delta=delta)


class LogCosh(_FunctionLoss):
    """Logarithm of the hyperbolic cosine of the error (Keras name `log_cosh`)."""

    default_name = "log_cosh"
    fn = regression.log_cosh


class Poisson(_FunctionLoss):
    """Poisson loss (Keras name `poisson`)."""

    default_name = "poisson"
    fn = regression.poisson


class Hinge(_FunctionLoss):
    """Hinge loss for -1/1 (or 0/1) labels (Keras name `hinge`)."""

    default_name = "hinge"
    fn = regression.hinge


class SquaredHinge(_FunctionLoss):
    """Squared hinge loss for -1/1 (or 0/1) labels (Keras name `squared_hinge`)."""

    default_name = "squared_hinge"
    fn = regression.squared_hinge


class KLDivergence(_FunctionLoss):
    """Kullback-Leibler divergence (Keras name `kl_divergence`)."""

    default_name = "kl_divergence"
    fn = regression.kl_divergence


class CosineSimilarity(_FunctionLoss):
    """Negative cosine similarity (Keras name `cosine_similarity`).

    Args:
        axis: The axis along which the similarity is computed.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    default_name = "cosine_similarity"
    fn = regression.cosine_similarity

    def __init__(
        self,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(name=name, reduction=reduction, axis=axis)


class BinaryCrossentropy(_FunctionLoss):
    """Binary crossentropy (Keras name `binary_crossentropy`).

    Args:
        from_logits: Whether predictions are logits rather than probabilities.
        label_smoothing: Targets are moved towards 0.5 by this fraction.
        axis: The axis that is averaged.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    default_name = "binary_crossentropy"
    fn = crossentropy.binary_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(_FunctionLoss):
    """Crossentropy for one-hot targets (Keras name `categorical_crossentropy`).

    Args:
        from_logits: Whether predictions are logits rather than probabilities.
        label_smoothing: Targets are mixed with the uniform distribution by this
            fraction.
        axis: The class axis.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    default_name = "categorical_crossentropy"
    fn = crossentropy.categorical_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(_FunctionLoss):
    """Crossentropy for integer labels (Keras name `sparse_categorical_crossentropy`).

    With `ignore_class`, entries with that label contribute nothing and the mean
    reductions average over the remaining entries only, as in Keras.

    Args:
        from_logits: Whether predictions are logits rather than probabilities.
        ignore_class: A label value to ignore (for example a padding or void class).
        reduction: See `Loss`.
        name: Name of the loss.
    """

    default_name = "sparse_categorical_crossentropy"
    fn = crossentropy.sparse_categorical_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(
            name=name, reduction=reduction, from_logits=from_logits, ignore_class=ignore_class
        )


    def mean_scale(self, y_true: Any, y_pred: Any) -> Tensor | None:
        """Returns `entries / valid entries` when `ignore_class` is set, else `None`.

        Args:
            y_true: Integer labels.
            y_pred: Predictions.

        Returns:
            The factor that turns the mean over all entries into the mean over valid
            entries.
        """
        ignore_class = self.ignore_class
        if ignore_class is None:
            return None
        y_pred = float_predictions(y_pred)
        labels = crossentropy.sparse_labels(y_true, y_pred)
        return ignored_fraction_scale(labels != ignore_class, y_pred.dtype)
