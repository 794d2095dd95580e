"""Model: a ``torch.nn.Module`` with Keras's compile, fit, evaluate and predict."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence import metrics as metrics_module
from cadence import optimizers as optimizers_module
from cadence.data import tree
from cadence.trainer import loops
from cadence.trainer.compile_utils import CompiledLoss, CompiledMetrics
from cadence.trainer.logs import MetricLogs
from cadence.weights import WeightsMixin

_PRECISIONS = {"32": None, "32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def resolve_device(device: Any) -> torch.device:
    """Return the device ``"auto"`` stands for (CUDA, then MPS, then CPU), or ``device`` itself."""
    if device is None or device == "auto":
        if torch.cuda.is_available():  # Under torch.distributed: this process's own GPU.
            return distributed.local_cuda_device() if distributed.is_initialized() else torch.device("cuda")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', a device string such as 'cpu' or 'cuda:0', or a "
            f"torch.device; received device={device!r}."
        ) from error


def _global_module_hooks() -> bool:
    """Whether hooks registered for every module (``register_module_forward_hook`` ...) exist."""
    hooks = nn.modules.module
    return bool(
        hooks._global_forward_pre_hooks or hooks._global_forward_hooks
        or hooks._global_backward_pre_hooks or hooks._global_backward_hooks
    )


class Model(WeightsMixin, nn.Module):
    """A ``torch.nn.Module`` that trains itself the way a Keras model does.

    Subclass it and write ``forward`` (as you would write Keras's ``call``), or wrap a module:
    ``cadence.Model(module)``. Then ``compile``, ``fit``, ``evaluate`` and ``predict`` take
    Keras's arguments with Keras's meaning, and ``train_step`` / ``test_step`` /
    ``predict_step`` can be overridden as in Keras 3.

    Args:
        module: An existing module to wrap; its ``forward`` becomes this model's.
    """

    def __init__(self, module: nn.Module | None = None) -> None:
        super().__init__()
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(
                f"cadence.Model wraps a torch.nn.Module; received {type(module).__name__}."
            )
        self.module = module
        self.stop_training = False
        self.history: Any = None
        self.optimizer: Any = None
        self.compiled = False
        self._compiled_loss: CompiledLoss | None = None
        self._compiled_metrics: CompiledMetrics | None = None
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._metric_logs: MetricLogs | None = None
        self._metric_logs_key: tuple | None = None
        self._forward_training_arg: bool | None = None
        self._train_state: Any = None
        self.device = torch.device("cpu")
        self._autocast_dtype: torch.dtype | None = None
        self._scaler: Any = None
        self._accumulation = 1
        self._micro_step = 0
        self._ddp_route: Any = None  # Set by fit in several processes (cadence.distributed.ddp).
        self.distribute_strategy: Any = None  # compile(strategy=...): cadence.distributed.strategy.

    # ----------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; subclasses override this with their own computation."""
        if self.module is None:
            raise NotImplementedError(
                "Subclass cadence.Model and define forward(), or wrap a module: "
                "cadence.Model(module)."
            )
        return self.module(*args, **kwargs)

    def __call__(self, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Call the model; ``training=True/False`` switches train/eval mode like Keras's flag."""
        if training is not None:
            if bool(training) != self.training:
                self.train(bool(training))
            if self._forward_takes_training():
                kwargs["training"] = training
        if self._ddp_route is not None and self._ddp_route.routes(self):  # cadence.distributed
            return self._ddp_route.call(args, kwargs)  # Through DDP, which calls back here.
        if self._wraps_plainly():
            # cadence.Model(module) with no hooks of its own: calling the module directly saves
            # a second pass through nn.Module's call machinery on every batch.
            return self.module(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _wraps_plainly(self) -> bool:
        """Whether calling this model is exactly calling its wrapped module."""
        return (
            self._modules.get("module") is not None  # Not self.module: nn.Module's slow lookup.
            and type(self).forward is Model.forward
            and not self._forward_pre_hooks
            and not self._forward_hooks
            and not self._backward_pre_hooks
            and not self._backward_hooks
            and self._compiled_call_impl is None
            and not _global_module_hooks()
        )

    def _forward_takes_training(self) -> bool:
        if self._forward_training_arg is None:
            try:
                parameters = inspect.signature(self.forward).parameters
                self._forward_training_arg = "training" in parameters
            except (TypeError, ValueError):
                self._forward_training_arg = False
        return self._forward_training_arg

    # ----------------------------------------------------------------- compile
    def compile(  # type: ignore[override]
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        loss_weights: Any = None,
        weighted_metrics: Any = None,
        jit_compile: bool | str = False,
        steps_per_execution: int = 1,
        device: Any = "auto",
        precision: str = "32",
        gradient_accumulation_steps: int = 1,
        strategy: Any = "auto",
    ) -> None:
        """Configure the model for training, as Keras's ``compile``.

        This replaces ``torch.nn.Module.compile``; ``jit_compile=True`` applies
        ``torch.compile`` to the model instead.

        Args:
            optimizer: A Keras name (``"adam"``), a ``cadence.optimizers`` object, a torch
                optimizer instance or class.
            loss: A Keras name, a ``cadence.losses.Loss``, a function ``fn(y_true, y_pred)``, a
                torch loss module, or a list/dict of them for several outputs.
            metrics: Metric names, objects or functions (a list, or per output).
            loss_weights: Weights of the per-output losses.
            weighted_metrics: Metrics computed with sample weights.
            jit_compile: ``True`` runs the model through ``torch.compile``.
            steps_per_execution: Accepted for Keras compatibility; must be 1.
            device: ``"auto"`` (CUDA when present, else CPU) or a device.
            precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (autocast; a gradient scaler
                for float16).
            gradient_accumulation_steps: Apply the optimizer every this many batches, with the
                gradients of those batches averaged.
            strategy: How ``fit`` spreads the model over the ranks of a process group:
                ``"auto"`` or ``"ddp"`` (DistributedDataParallel), ``"fsdp"`` (FSDP2 sharding),
                or a ``cadence.distributed.DDP(...)`` / ``FSDP(...)`` with options (see
                :mod:`cadence.distributed.strategy`). Nothing changes in one process.
        """
        strategy = distributed.get_strategy(strategy)
        if precision not in _PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(_PRECISIONS)}; received precision={precision!r}."
            )
        if not isinstance(steps_per_execution, int) or steps_per_execution != 1:
            raise ValueError(
                "cadence runs one batch per step (the loop has no per-step overhead to amortise); "
                f"steps_per_execution must be 1; received steps_per_execution={steps_per_execution!r}."
            )
        if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 1:
            raise ValueError(
                "gradient_accumulation_steps must be an integer >= 1; received "
                f"gradient_accumulation_steps={gradient_accumulation_steps!r}."
            )
        if not isinstance(jit_compile, bool) and jit_compile != "auto":
            raise TypeError(f"jit_compile must be True, False or 'auto'; received {jit_compile!r}.")
        self.device = resolve_device(device)
        self.to(self.device)
        self._compiled_loss = CompiledLoss(loss, loss_weights) if loss is not None else None
        self._compiled_metrics = CompiledMetrics(metrics, weighted_metrics, self._compiled_loss)
        self.optimizer = optimizers_module.get(optimizer, list(self.parameters()))
        self._autocast_dtype = _PRECISIONS[precision]
        self._scaler = None
        if precision == "16-mixed":
            self._scaler = torch.amp.GradScaler(self.device.type)
        self._accumulation = gradient_accumulation_steps
        self._micro_step = 0
        self.distribute_strategy = strategy
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._metric_logs = None
        if jit_compile is True:
            nn.Module.compile(self)
        self.compile_config = {
            "optimizer": type(self.optimizer).__name__,
            "loss": loss if isinstance(loss, str) else getattr(loss, "name", repr(loss)),
            "metrics": [m if isinstance(m, str) else getattr(m, "name", repr(m))
                        for m in (metrics or [])] if isinstance(metrics, list | tuple) else metrics,
            "precision": precision,
            "jit_compile": jit_compile,
            "device": str(self.device),
            "gradient_accumulation_steps": gradient_accumulation_steps,
        }
        self.compiled = True

    @property
    def compiled_loss(self) -> Any:
        """Keras 2's ``compiled_loss(y, y_pred, sample_weight=None, regularization_losses=None)``.

        Calling it returns the batch's loss and, as in Keras 2, updates the ``loss`` metric.
        """
        def call(y_true, y_pred, sample_weight=None, regularization_losses=None):
            loss = self.compute_loss(None, y_true, y_pred, sample_weight)
            for extra in regularization_losses or []:
                loss = loss + extra
            # As Keras 2's compiled_loss, this also updates the "loss" metric.
            self._loss_tracker.update_state(loss.detach(), sample_weight=tree.batch_size_of(y_pred))
            return loss

        return call

    @property
    def compiled_metrics(self) -> CompiledMetrics | None:
        """Keras 2's ``compiled_metrics`` (its ``update_state(y, y_pred, sample_weight)``)."""
        return self._compiled_metrics

    @property
    def losses(self) -> list[torch.Tensor]:
        """Extra losses added by layers (none: torch modules add their terms to the loss)."""
        return []

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        """The parameters that require gradients."""
        return [p for p in self.parameters() if p.requires_grad]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        """Frozen parameters and buffers."""
        return [p for p in self.parameters() if not p.requires_grad] + list(self.buffers())

    @property
    def metrics(self) -> list[Any]:
        """The loss tracker, the per-output loss trackers, then the compiled metrics."""
        found = [self._loss_tracker]
        if self._compiled_loss is not None:
            found.extend(self._compiled_loss.trackers)
        if self._compiled_metrics is not None:
            found.extend(self._compiled_metrics.metrics)
        return found

    @property
    def metrics_names(self) -> list[str]:
        """The names of :attr:`metrics` (the log keys)."""
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """Reset every metric's state."""
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> MetricLogs:
        """Return the metrics' current results as a lazy mapping (no host-device sync)."""
        compiled = self._compiled_metrics
        key = (
            id(compiled.entries) if compiled is not None else None,
            len(self._compiled_loss.trackers) if self._compiled_loss is not None else 0,
            id(self._loss_tracker),
        )
        if self._metric_logs is None or self._metric_logs_key != key:
            self._metric_logs = MetricLogs(self.metrics)
            self._metric_logs_key = key
        return self._metric_logs

    # ----------------------------------------------------------------- steps
    def autocast(self) -> contextlib.AbstractContextManager:
        """Return the autocast context of the compiled precision (a no-op for ``"32"``)."""
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

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
                "The loss needs targets but the batch has no y: pass y to fit/evaluate, or make "
                "the data yield (x, y) batches."
            )
        return self._compiled_loss(y, y_pred, sample_weight)

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> MetricLogs:
        """Update the compiled metrics with a batch and return the lazy results."""
        if self._compiled_metrics is not None:
            if type(y_pred) is torch.Tensor:  # Detaching is enough: no graph, no context switch.
                self._compiled_metrics.update_state(y, y_pred.detach(), sample_weight)
            else:
                with torch.no_grad():
                    self._compiled_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def train_step(self, data: Any) -> Any:
        """Run one training batch: forward, loss, backward, optimizer step, metrics."""
        x, y, sample_weight = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            y_pred = self(x)
        return self._train_on_prediction(x, y, y_pred, sample_weight)

    def _train_on_prediction(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """The rest of ``train_step`` once the model has been called (see ``step_plan``)."""
        with self.autocast():
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        batch_size = x.shape[0] if type(x) is torch.Tensor else tree.batch_size_of(x)
        self._loss_tracker.update_state(loss.detach(), sample_weight=batch_size)
        self.backward_and_step(loss)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step the optimizer (with scaling and accumulation)."""
        if self._accumulation > 1:
            loss = loss / self._accumulation
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
        else:
            loss.backward()
        # Written straight into the instance dict: nn.Module.__setattr__ costs microseconds.
        state = self.__dict__
        state["_micro_step"] = micro_step = state["_micro_step"] + 1
        if micro_step % self._accumulation:
            return
        if self._scaler is not None:
            self._scaler.unscale_(self.optimizer)
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def test_step(self, data: Any) -> Any:
        """Run one evaluation batch: forward, loss, metrics."""
        x, y, sample_weight = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            y_pred = self(x)
        return self._test_on_prediction(x, y, y_pred, sample_weight)

    def _test_on_prediction(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """The rest of ``test_step`` once the model has been called (see ``step_plan``)."""
        with self.autocast():
            if self._compiled_loss is not None and y is not None:
                loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
                batch_size = x.shape[0] if type(x) is torch.Tensor else tree.batch_size_of(x)
                self._loss_tracker.update_state(loss.detach(), sample_weight=batch_size)
        return self.compute_metrics(x, y, y_pred, sample_weight) if y is not None \
            else self.get_metrics_result()

    def predict_step(self, data: Any) -> Any:
        """Return the model's output for one batch."""
        x, _, _ = tree.unpack_x_y_sample_weight(data)
        with self.autocast():
            return self(x)

    # ----------------------------------------------------------------- loops
    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Train the model; Keras's arguments and meaning (see :func:`cadence.trainer.loops.fit`)."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Evaluate the model; returns a scalar, a list, or a dict with ``return_dict=True``."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """Return the model's predictions as numpy arrays (nests keep their structure)."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.predict(self, x, **kwargs)
