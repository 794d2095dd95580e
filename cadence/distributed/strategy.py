"""``compile(strategy=...)``: how a model is spread over the ranks of a process group.

================  ==========================================================================
``strategy``      what ``fit`` does when a process group exists (nothing in one process)
================  ==========================================================================
``"auto"``        as ``"ddp"``
``"ddp"``         ``DistributedDataParallel``: every rank holds the whole model and optimizer
                  state; gradients are averaged over ranks (:mod:`cadence.distributed.ddp`).
``"fsdp"``        PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``): parameters,
                  gradients and optimizer state are cut between the ranks, each rank holding
                  about ``1 / world_size`` of them; whole weights are gathered for a forward
                  and freed after it.
``DDP(...)``      ``"ddp"`` with ``DistributedDataParallel``'s options.
``FSDP(...)``     ``"fsdp"`` with a sharding policy, a ``MixedPrecisionPolicy``, ...
================  ==========================================================================

The model is spread when ``fit`` first runs in a process group (every rank starts from rank
0's weights); the optimizer compiled with it is pointed at the sharded parameters. Everything
else works as in one process: metrics over all ranks, rank-0 writers, agreed stops,
``get_weights`` / ``set_weights`` / ``save_weights`` / ``load_weights`` on whole weights (under
FSDP they gather, so every rank calls them), ``predict`` gathered in order.

FSDP's default policy (:func:`default_policy`) makes one all-gather unit of every module that
holds parameters of its own (``nn.Linear``, convolutions, norms, embeddings), and of every
block of an ``nn.ModuleList`` (a transformer's layers) as a whole, then of the model for what
is left. Give your own as ``FSDP(policy=fn)``, ``fn(model)`` returning the modules to shard,
innermost first. Mixed precision: ``FSDP(mp_policy=MixedPrecisionPolicy(param_dtype=...))``,
or ``compile(precision="bf16-mixed")``, which uses a policy computing in bfloat16 and reducing
gradients in float32. ``precision="16-mixed"`` is refused under FSDP: its gradient scaler does
not agree on overflows across ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from cadence.distributed import core
from cadence.distributed.ddp import wrap_ddp

STRATEGIES = ("auto", "ddp", "fsdp")


class Strategy:
    """Base class of the ways a model is spread over ranks; ``fit`` calls :meth:`wrap`."""

    name = "none"

    def wrap(self, model: Any) -> Any:
        """Spread ``model`` over the ranks of the default process group (once; idempotent)."""
        raise NotImplementedError(f"{type(self).__name__} must implement wrap().")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DDP(Strategy):
    """Data parallel: ``DistributedDataParallel`` with these keyword options.

    Args:
        **ddp_kwargs: Options for ``torch.nn.parallel.DistributedDataParallel``
            (``find_unused_parameters=True``, ...).
    """

    name = "ddp"

    def __init__(self, **ddp_kwargs: Any) -> None:
        self.ddp_kwargs = ddp_kwargs

    def wrap(self, model: Any) -> Any:
        """Wrap ``model`` in ``DistributedDataParallel`` (see :func:`cadence.distributed.wrap_model`)."""
        return wrap_ddp(model, **self.ddp_kwargs)


def default_policy(model: nn.Module) -> list[nn.Module]:
    """Return the modules FSDP shards on its own by default, innermost first.

    Every entry of an ``nn.ModuleList`` that holds parameters (a block of a transformer stack)
    is one unit; outside those blocks, every module with parameters of its own is one unit.
    The model itself is sharded last, by :class:`FSDP`, for whatever is left.
    """
    blocks: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            blocks.extend(child for child in module if any(True for _ in child.parameters()))
    inside = {id(m) for block in blocks for m in block.modules()}
    units = [
        module for module in model.modules()
        if module is not model and id(module) not in inside
        and any(True for _ in module.parameters(recurse=False))
    ]
    return units + blocks


class FSDP(Strategy):
    """Fully sharded data parallel with PyTorch's FSDP2 (``fully_shard``).

    Args:
        policy: ``policy(model)`` returns the modules to shard as units, innermost first
            (default :func:`default_policy`); the model is sharded last.
        mp_policy: A ``torch.distributed.fsdp.MixedPrecisionPolicy``; by default the one
            ``compile(precision=...)`` implies (none for ``"32"``).
        reshard_after_forward: Free the gathered weights after each unit's forward (less
            memory, one more all-gather in backward), as ``fully_shard``'s argument.
    """

    name = "fsdp"

    def __init__(
        self,
        policy: Callable[[nn.Module], Iterable[nn.Module]] | None = None,
        mp_policy: Any = None,
        reshard_after_forward: bool = True,
    ) -> None:
        if policy is not None and not callable(policy):
            raise TypeError(
                f"FSDP's policy must be a function of the model returning modules; received {policy!r}."
            )
        self.policy = policy or default_policy
        self.mp_policy = mp_policy
        self.reshard_after_forward = reshard_after_forward

    def __repr__(self) -> str:
        return f"FSDP(policy={getattr(self.policy, '__name__', self.policy)!r}, mp_policy={self.mp_policy!r})"

    def wrap(self, model: Any) -> None:
        """Shard ``model`` with ``fully_shard`` and point its optimizer at the shards."""
        if isinstance(model, FSDPModule):
            return
        if any(isinstance(m, nn.parallel.DistributedDataParallel) for m in model.modules()):
            raise ValueError(
                "strategy='fsdp' cannot shard a model that holds a DistributedDataParallel "
                "module; pass the plain module, or use strategy='ddp'."
            )
        precision = getattr(model, "compile_config", {}).get("precision", "32")
        if precision == "16-mixed":
            raise ValueError(
                "strategy='fsdp' does not take precision='16-mixed' (its gradient scaler would "
                "decide overflows on each rank alone); use precision='bf16-mixed', or an "
                "FSDP(mp_policy=...); received precision='16-mixed'."
            )
        mp_policy = self.mp_policy
        if mp_policy is None and precision == "bf16-mixed":
            mp_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        optimizer = getattr(model, "optimizer", None)
        names = {id(p): name for name, p in model.named_parameters()}
        full_optimizer_state = _full_optimizer_state(model, optimizer)
        _broadcast_from_rank_zero(model)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        mesh = init_device_mesh(device.type, (core.world_size(),))
        options: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": self.reshard_after_forward}
        if mp_policy is not None:
            options["mp_policy"] = mp_policy
        for module in self.policy(model):
            if module is not model and not isinstance(module, FSDPModule):
                fully_shard(module, **options)
        fully_shard(model, **options)
        if optimizer is not None:
            _point_optimizer_at(optimizer, names, dict(model.named_parameters()))
            if full_optimizer_state is not None:
                set_optimizer_state_dict(model, optimizer, full_optimizer_state,
                                         options=StateDictOptions(full_state_dict=True))


def _full_optimizer_state(model: nn.Module, optimizer: Any) -> Any:
    """Return the optimizer's state keyed by parameter names when it has any (else None)."""
    if optimizer is None or not optimizer.state:
        return None
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))


def _broadcast_from_rank_zero(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (as DDP's construction does)."""
    device = core.collective_device(next((p.device for p in model.parameters()), None))
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            moved = tensor.detach().to(device)
            dist.broadcast(moved, src=0)
            tensor.copy_(moved)


def _point_optimizer_at(optimizer: Any, names: dict[int, str], params: dict[str, Any]) -> None:
    """Replace the optimizer's parameters by the sharded ones of the same names."""
    for group in optimizer.param_groups:
        group["params"] = [params[names[id(p)]] if id(p) in names else p for p in group["params"]]


def shards(model: Any) -> bool:
    """Return whether ``model`` is, or will be when ``fit`` runs, sharded by FSDP."""
    return isinstance(model, FSDPModule) or isinstance(getattr(model, "distribute_strategy", None), FSDP)


def get_strategy(strategy: Any) -> Strategy:
    """Return the :class:`Strategy` that ``compile(strategy=...)`` names.

    Raises:
        ValueError: If ``strategy`` is neither one of ``"auto"``, ``"ddp"``, ``"fsdp"`` nor a
            :class:`Strategy`.
    """
    if isinstance(strategy, Strategy):
        return strategy
    if strategy in ("auto", "ddp"):
        return DDP()
    if strategy == "fsdp":
        return FSDP()
    raise ValueError(
        f"strategy must be one of {list(STRATEGIES)} or a cadence.distributed.DDP/FSDP object; "
        f"received strategy={strategy!r}."
    )


def wrap_model(model: Any, **ddp_kwargs: Any) -> Any:
    """Spread ``model`` over the ranks by its compiled strategy; ``fit`` calls it for you.

    Call it yourself before ``fit`` to choose DDP's options (``find_unused_parameters=True``,
    ``gradient_as_bucket_view=True``, ...), or give ``compile(strategy=DDP(...))``. A model
    already spread is left as it is.

    Args:
        model: A compiled :class:`cadence.Model` (on its device).
        **ddp_kwargs: Options for ``DistributedDataParallel`` (this call then uses DDP).

    Returns:
        The ``DistributedDataParallel`` wrapper under DDP (``None`` when the model holds its
        own); ``None`` under FSDP, which shards the model in place.

    Raises:
        RuntimeError: Without an initialised process group.
    """
    if not core.is_initialized():
        raise RuntimeError(
            "wrap_model needs an initialised torch.distributed process group (run under "
            "torchrun, or call torch.distributed.init_process_group first)."
        )
    if ddp_kwargs:
        return wrap_ddp(model, **ddp_kwargs)
    strategy = getattr(model, "distribute_strategy", None) or DDP()
    return strategy.wrap(model)
