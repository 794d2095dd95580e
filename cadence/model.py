"""Model: a ``torch.nn.Module`` with Keras's compile, fit, evaluate and predict."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cadence import distributed, saving
from cadence import metrics as metrics_module
from cadence import optimizers as optimizers_module
from cadence.data import tree
from cadence.keras_model import KerasModelMixin
from cadence.steps import LogsOnRead, StepsMixin
from cadence.trainer import loops
from cadence.trainer.compile_utils import CompiledLoss, CompiledMetrics
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


def _check_optimizer_holds(optimizer: Any, trainable: list[nn.Parameter]) -> None:
    """Refuse an optimizer that would train none of the model's trainable parameters."""
    if not trainable:
        return
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(id(p) in held for p in trainable):
        raise ValueError(
            f"The optimizer ({type(optimizer).__name__}) holds none of the model's "
            f"{len(trainable)} trainable parameters, so fit would train nothing: build it over "
            "model.parameters(), or pass a name or class (e.g. optimizer='adam') and compile "
            f"builds it. Received an optimizer over {len(held)} other parameters."
        )


def _build_optimizer(optimizer: Any, trainable: list[nn.Parameter]) -> Any:
    """Return the compiled optimizer; with nothing to train, one over an empty group."""
    if trainable or isinstance(optimizer, torch.optim.Optimizer):
        return optimizers_module.get(optimizer, trainable)
    # torch refuses an empty parameter list but not an empty group; Keras fits such a model.
    return optimizers_module.get(optimizer, [{"params": []}])


class Model(KerasModelMixin, StepsMixin, WeightsMixin, nn.Module):
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
        self.stop_evaluating = False
        self.stop_predicting = False
        self.history: Any = None
        self.optimizer: Any = None
        self.compiled = False
        self.jit_compile = False
        self.gradient_accumulation_steps = 1
        self.precision = "32"
        self.device = torch.device("cpu")
        self._compiled_loss: CompiledLoss | None = None
        self._compiled_metrics: CompiledMetrics | None = None
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._forward_training_arg: bool | None = None
        self._autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        # The run fit is in (a cadence.trainer.state.TrainState: accumulation counter, gradient
        # scaler); None outside fit. Written by the loops only, read by backward_and_step.
        self._train_state: Any = None
        self._ddp_route: Any = None  # Set by fit in several processes (cadence.distributed.ddp).
        self.distribute_strategy: Any = None  # compile(strategy=...): cadence.distributed.strategy.
        self._logs_on_read = LogsOnRead()  # Switched on by the step functions (steps.py).

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
        if self._input_spec is None or not args or type(args[0]) is not torch.Tensor:
            args = self.prepare_call(args)  # numpy inputs; the first input's shape (summary)
        if training is not None:
            if bool(training) != self.training:
                self.train(bool(training))
            if self._forward_takes_training():
                kwargs["training"] = training
        if self._ddp_route is not None and self._ddp_route.routes(self):  # cadence.distributed
            return self._ddp_route.call(args, kwargs)  # Through DDP, which calls back here.
        return super().__call__(*args, **kwargs)

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

        This replaces ``torch.nn.Module.compile``; ``jit_compile=True`` runs the model's forward
        pass through ``torch.compile`` (the step around it stays eager, see
        :meth:`make_train_function`).

        Args:
            optimizer: A Keras name (``"adam"``), a ``cadence.optimizers`` object, a torch
                optimizer instance or class. An optimizer instance must hold the model's
                trainable parameters.
            loss: A Keras name, a ``cadence.losses.Loss``, a function ``fn(y_true, y_pred)``, a
                torch loss module, or a list/dict of them for several outputs.
            metrics: Metric names, objects or functions (a list, or per output).
            loss_weights: Weights of the per-output losses.
            weighted_metrics: Metrics computed with sample weights.
            jit_compile: ``True`` runs the model through ``torch.compile``.
            steps_per_execution: Accepted for Keras compatibility; must be 1.
            device: ``"auto"`` (CUDA when present, else CPU) or a device.
            precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (autocast; each ``fit``
                scales the loss with a fresh ``torch.amp.GradScaler`` for float16).
            gradient_accumulation_steps: Apply the optimizer every this many batches, with the
                gradients of those batches averaged; each ``fit`` starts a fresh window.
            strategy: How ``fit`` spreads the model over the ranks of a process group:
                ``"auto"`` or ``"ddp"`` (DistributedDataParallel), ``"fsdp"`` (FSDP2 sharding),
                or a ``cadence.distributed.DDP(...)`` / ``FSDP(...)`` with options (see
                :mod:`cadence.distributed.strategy`). Nothing changes in one process.

        Raises:
            ValueError: For an unknown precision or strategy, ``steps_per_execution`` other than
                1, a bad ``gradient_accumulation_steps``, or an optimizer that holds none of the
                model's trainable parameters.
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
        trainable = self.trainable_weights
        if isinstance(optimizer, torch.optim.Optimizer):
            _check_optimizer_holds(optimizer, trainable)
        self.device = resolve_device(device)
        self.to(self.device)
        self._compiled_loss = CompiledLoss(loss, loss_weights) if loss is not None else None
        self._compiled_metrics = CompiledMetrics(metrics, weighted_metrics, self._compiled_loss)
        self.optimizer = _build_optimizer(optimizer, trainable)
        self.precision = precision
        dtype = _PRECISIONS[precision]
        self._autocast = (
            contextlib.nullcontext if dtype is None
            else functools.partial(torch.autocast, self.device.type, dtype=dtype)
        )
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.distribute_strategy = strategy
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.jit_compile = jit_compile is True
        if self.jit_compile:
            nn.Module.compile(self)
        self.compile_config = {
            "optimizer": type(optimizers_module.updating_optimizer(self.optimizer)).__name__,
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

    # ----------------------------------------------------------------- loops
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str | bool = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int | list[int] = 1,
        workers: int | None = None,
        use_multiprocessing: bool | None = None,
        max_queue_size: int | None = None,
        profile_callbacks: bool = False,
    ) -> Any:
        """Train the model; Keras's arguments and meaning (see :func:`cadence.trainer.loops.fit`)."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.fit(
                self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                callbacks=callbacks, validation_split=validation_split,
                validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                sample_weight=sample_weight, initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                validation_batch_size=validation_batch_size, validation_freq=validation_freq,
                workers=workers, use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size, profile_callbacks=profile_callbacks,
            )

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str | bool = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Any = None,
        return_dict: bool = False,
        workers: int | None = None,
        use_multiprocessing: bool | None = None,
        max_queue_size: int | None = None,
    ) -> Any:
        """Evaluate the model; returns a scalar, a list, or a dict with ``return_dict=True``."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.evaluate(
                self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
                steps=steps, callbacks=callbacks, return_dict=return_dict, workers=workers,
                use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size,
            )

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str | bool = "auto",
        steps: int | None = None,
        callbacks: Any = None,
        workers: int | None = None,
        use_multiprocessing: bool | None = None,
        max_queue_size: int | None = None,
    ) -> Any:
        """Return the model's predictions as numpy arrays (nests keep their structure)."""
        with distributed.watch():  # Several processes: a failed rank stops every rank.
            return loops.predict(
                self, x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks,
                workers=workers, use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size,
            )

    # ----------------------------------------------------------------- saving
    def save(self, filepath: Any) -> None:
        """Save weights, optimizer state and compile config atomically (see :mod:`cadence.saving`)."""
        saving.save_model(self, filepath)
