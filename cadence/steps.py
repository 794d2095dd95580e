"""The steps of a Model, as Keras 3 defines them: ``train_step``, ``test_step``, ``predict_step``.

One implementation of each: ``fit``, ``evaluate`` and ``predict`` call them (yours, when you
override them) through ``make_train_function`` / ``make_test_function`` /
``make_predict_function``, made once per run. Mixed into :class:`cadence.Model`, whose
``compile`` sets what they read: the compiled loss and metrics, the optimizer and the autocast
context of the precision.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import torch

from cadence.data import tree
from cadence.logs import MetricLogs
from cadence.overriding import redefined_below

#: Keras 3's warning for a model with nothing to train.
NO_TRAINABLE_WEIGHTS = "The model does not have any trainable weights."

#: What a step's logs are made of; a model whose class redefines one of these gets plain dicts.
_LOG_MAKERS = ("compute_metrics", "get_metrics_result")


class LogsOnRead:
    """Whether the built-in steps return their logs as a lazy view (set by the step functions).

    ``fit`` and ``evaluate`` read a step's logs only when a hook wants them, or once at the
    end of the epoch: the functions made by ``make_train_function`` / ``make_test_function``
    switch this on around a call of the model's own step, so that ``compute_metrics`` returns
    a :class:`~cadence.logs.MetricLogs` (each metric's ``result()`` computed when read) in
    place of computing every result on every batch. Anywhere else, and whenever the model
    redefines the step, ``compute_metrics`` or ``get_metrics_result``, the steps return a
    new dict, as Keras's do.
    """

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False


class StepsMixin:
    """``compute_loss``, ``compute_metrics``, the three steps and the functions that call them."""

    def autocast(self) -> contextlib.AbstractContextManager:
        """Return the autocast context of the compiled precision (a no-op for ``"32"``)."""
        return self._autocast()

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
        training: bool = True,
    ) -> torch.Tensor:
        """Return the compiled loss of a batch, as Keras 3's ``compute_loss``."""
        if self._compiled_loss is None:
            raise ValueError(
                "No loss to compute: compile the model with a loss, e.g. "
                "model.compile(optimizer='adam', loss='mse'), or override train_step."
            )
        if y is None:
            raise ValueError(
                "The model was compiled with a loss, which needs targets, but the batch has no "
                "y (received x alone): pass y to fit/evaluate, or make the data yield (x, y) "
                "batches."
            )
        return self._compiled_loss(y, y_pred, sample_weight)

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        """Update the compiled metrics with a batch; return every metric's result.

        Returns:
            A new dict of 0-d tensors (``get_metrics_result()``), or, inside ``fit`` and
            ``evaluate`` for a model that keeps the built-in steps, the same values as a lazy
            :class:`~cadence.logs.MetricLogs`, computed only when a hook reads them.
        """
        if self._compiled_metrics is not None and y is not None:
            if isinstance(y_pred, torch.Tensor):  # Detaching is enough: no graph is built.
                self._compiled_metrics.update_state(y, y_pred.detach(), sample_weight)
            else:
                with torch.no_grad():
                    self._compiled_metrics.update_state(y, y_pred, sample_weight)
        if self._logs_on_read.active:
            return MetricLogs(self.metrics)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict[str, Any]:
        """Return the metrics' current results as a new dict of 0-d tensors, as Keras 3 does.

        Nothing is copied to the host: the values stay on the device until a callback reads
        them. A metric whose ``result()`` is a dict contributes its entries.
        """
        return MetricLogs(self.metrics).results()

    def _track_loss(self, x: Any, loss: torch.Tensor) -> None:
        batch_size = x.shape[0] if isinstance(x, torch.Tensor) else tree.batch_size_of(x)
        self._loss_tracker.update_state(loss.detach(), sample_weight=batch_size)

    def train_step(self, data: Any) -> dict[str, Any]:
        """Run one training batch: forward, loss, backward, optimizer step; return the logs.

        Returns:
            A new dict of every metric's result, which an overriding step may extend.
        """
        x, y, sample_weight = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            y_pred = self(x)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._track_loss(x, loss)
        self.backward_and_step(loss)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step the optimizer (with scaling and accumulation).

        In ``fit`` the gradient scaler (``precision="16-mixed"``) and the accumulation counter
        are the run's (:class:`cadence.trainer.state.TrainState`); outside ``fit`` every call
        steps the optimizer. A model without trainable parameters steps nothing.
        """
        if not loss.requires_grad and not self.trainable_weights:
            return  # Nothing to train (Keras fits such a model, warning once per fit).
        run = self._train_state
        if run is None:
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            return
        if run.accumulation > 1:
            loss = loss / run.accumulation
        scaler = run.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        run.micro_step += 1
        if run.micro_step % run.accumulation:
            return
        if scaler is not None:
            scaler.unscale_(self.optimizer)
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def test_step(self, data: Any) -> dict[str, Any]:
        """Run one evaluation batch: forward, loss, metrics; return the logs (a new dict)."""
        x, y, sample_weight = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            y_pred = self(x)
            if self._compiled_loss is not None:
                loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
                self._track_loss(x, loss)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data: Any) -> Any:
        """Return the model's output for one batch."""
        x, _, _ = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            return self(x)

    # ----------------------------------------------------------------- step functions
    def make_train_function(self) -> Callable[[Any], Any]:
        """Return the function ``fit`` calls with every batch, as Keras's ``make_train_function``.

        What depends only on the model and its compilation is decided here, once per ``fit``:
        an overridden ``train_step`` gets its gradients zeroed before each call (at the start
        of each accumulation window), as a Keras step starts with an empty tape; the built-in
        step returns its logs as a lazy view (:class:`LogsOnRead`); a model with no trainable
        parameters is fitted with Keras's warning.
        """
        if not self.trainable_weights:
            warnings.warn(NO_TRAINABLE_WEIGHTS, stacklevel=3)
        if not redefined_below(self, StepsMixin, ("train_step",)):
            return self._logs_read_when_wanted(self.train_step)

        def zeroed_train_step(data: Any) -> Any:
            run = self._train_state
            if run is None or run.micro_step % run.accumulation == 0:
                self.optimizer.zero_grad(set_to_none=True)  # The optimizer of now.
            return self.train_step(data)

        return zeroed_train_step

    def make_test_function(self) -> Callable[[Any], Any]:
        """Return the function ``evaluate`` calls with every batch (``test_step``).

        The built-in step returns its logs as a lazy view (:class:`LogsOnRead`).
        """
        if redefined_below(self, StepsMixin, ("test_step",)):
            return self.test_step
        return self._logs_read_when_wanted(self.test_step)

    def _logs_read_when_wanted(self, step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Return ``step`` returning lazy logs, unless the model redefines what makes them."""
        if redefined_below(self, StepsMixin, _LOG_MAKERS):
            return step
        logs_on_read = self._logs_on_read

        def step_with_logs_on_read(data: Any) -> Any:
            logs_on_read.active = True
            try:
                return step(data)
            finally:
                logs_on_read.active = False

        return step_with_logs_on_read

    def make_predict_function(self) -> Callable[[Any], Any]:
        """Return the function ``predict`` calls with every batch (``predict_step``)."""
        return self.predict_step
