"""DistributedDataParallel for a cadence Model, without changing how ``train_step`` is written.

A cadence ``Model`` *is* the ``nn.Module`` being trained, and its ``train_step`` calls
``self(x)``. In several processes ``fit`` wraps the model once in
``torch.nn.parallel.DistributedDataParallel`` and keeps the wrapper beside the model (not as a
submodule: it holds no weights of its own and is not saved). While the model is in training
mode with gradients enabled, ``model(x)`` goes through the wrapper, which runs the model's own
forward and makes ``backward()`` average the gradients over ranks; evaluation, prediction and
anything under ``torch.no_grad()`` call the model directly, with no collective. So the default
``train_step``, a custom one, and Keras-2-style ``compiled_loss`` code all train data-parallel
unchanged. A ``train_step`` must call the model once per ``backward`` (as DDP requires), or
wrap it yourself with ``find_unused_parameters=True`` via :func:`wrap_model` when some
parameters get no gradient.

A model that already holds a ``DistributedDataParallel`` module (``cadence.Model(DDP(net))``)
is used as it is and not wrapped again. Note that such a wrapper broadcasts buffers
(BatchNorm statistics) in every forward, also in evaluation, which needs every rank to run the
same number of evaluation batches: use a number of samples divisible by the world size.

The wrapper is dropped when the model is copied or pickled; the next ``fit`` makes a new one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cadence.distributed import core


def _dropped() -> None:
    """Stand in for a route in a copied or unpickled model (it is rebuilt by the next fit)."""
    return None


class DDPRoute:
    """The DDP wrapper of a model, and whether a call is already going through it.

    Args:
        ddp: The ``DistributedDataParallel`` wrapping the model.
    """

    def __init__(self, ddp: DistributedDataParallel) -> None:
        self.ddp = ddp
        self.inside = False

    def routes(self, model: nn.Module) -> bool:
        """Return whether a call of ``model`` now goes through DDP (training, with gradients)."""
        return not self.inside and model.training and torch.is_grad_enabled()

    def call(self, args: tuple, kwargs: dict) -> Any:
        """Run ``ddp(*args, **kwargs)``; the model's own call inside it goes straight through."""
        self.inside = True
        try:
            return self.ddp(*args, **kwargs)
        finally:
            self.inside = False

    def __reduce__(self) -> tuple:
        return (_dropped, ())


def holds_ddp(model: nn.Module) -> bool:
    """Return whether ``model`` contains a ``DistributedDataParallel`` module of its own."""
    return any(isinstance(m, DistributedDataParallel) for m in model.modules())


def wrap_ddp(model: Any, **ddp_kwargs: Any) -> Any:
    """Wrap ``model`` in ``DistributedDataParallel`` for training (``strategy="ddp"``).

    Call it yourself before ``fit`` to choose DDP's options (``find_unused_parameters=True``,
    ``gradient_as_bucket_view=True``, ...). A model already wrapped keeps its wrapper; a model
    that holds its own DDP module is left alone. DDP's construction makes every rank start
    from rank 0's weights and buffers.

    Args:
        model: A compiled :class:`cadence.Model` (on its device).
        **ddp_kwargs: Options for ``DistributedDataParallel``.

    Returns:
        The ``DistributedDataParallel`` wrapper, or ``None`` when the model holds its own.
    """
    if not core.is_initialized():
        raise RuntimeError(
            "wrap_model needs an initialised torch.distributed process group (run under "
            "torchrun, or call torch.distributed.init_process_group first)."
        )
    route = getattr(model, "_ddp_route", None)
    if route is not None:
        return route.ddp
    if holds_ddp(model):
        return None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [device.index])
        ddp_kwargs.setdefault("output_device", device.index)
    ddp = DistributedDataParallel(model, **ddp_kwargs)
    model._ddp_route = DDPRoute(ddp)
    return ddp
