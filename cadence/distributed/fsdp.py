"""Whole weights of a model sharded by FSDP: gathering, setting, and evaluating with them.

Under ``strategy="fsdp"`` every parameter is a ``DTensor`` of which each rank holds a slice.
These functions give the rest of cadence whole weights without knowing that: each is a plain
pass-through for a model that is not sharded, and a collective (every rank calls it at the
same point) for one that is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor, distribute_tensor


def is_sharded(model: Any) -> bool:
    """Return whether ``model`` is sharded by FSDP (``compile(strategy="fsdp")`` and ``fit``)."""
    return isinstance(model, FSDPModule)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Return the whole tensor: gathered from every rank for a ``DTensor``, else ``tensor``."""
    if isinstance(tensor, DTensor):
        return tensor.full_tensor()
    return tensor


def copy_whole_into(tensor: torch.Tensor, value: torch.Tensor) -> None:
    """Copy the whole ``value`` into ``tensor``; into this rank's slice for a ``DTensor``.

    ``value`` must be the same on every rank (each keeps its own slice; nothing is sent).
    """
    with torch.no_grad():
        if isinstance(tensor, DTensor):
            value = distribute_tensor(value.to(tensor.device, tensor.dtype), tensor.device_mesh,
                                      tensor.placements, src_data_rank=None)
        tensor.copy_(value.to(tensor.dtype) if not isinstance(value, DTensor) else value)


def full_state_dict(model: nn.Module) -> dict[str, Any]:
    """Return ``model.state_dict()`` with whole tensors (gathered, on every rank, under FSDP)."""
    if not is_sharded(model):
        return model.state_dict()
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def full_optimizer_state_dict(
    model: nn.Module, optimizer: Any, rank_zero_only: bool = True
) -> dict[str, Any]:
    """Return ``optimizer.state_dict()`` with whole tensors (under FSDP every rank calls).

    The result has torch's own layout (states keyed by the parameter's position in the groups),
    so a one-process optimizer of the same model loads it with ``load_state_dict``. Under FSDP
    the gathered tensors are on the CPU of rank 0 (other ranks get an empty state), or on every
    rank without ``rank_zero_only``.
    """
    if not is_sharded(model):
        return optimizer.state_dict()
    named = get_optimizer_state_dict(
        model, optimizer,
        options=StateDictOptions(full_state_dict=True, cpu_offload=rank_zero_only),
    )
    index: dict[str, int] = {}
    groups = []
    for group in named.get("param_groups", []):  # Ranks other than 0 receive nothing.
        positions = []
        for name in group["params"]:
            index[name] = len(index)
            positions.append(index[name])
        groups.append({**group, "params": positions})
    return {"state": {index[name]: value for name, value in named.get("state", {}).items()},
            "param_groups": groups}


def load_full_optimizer_state_dict(model: nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
    """Load a whole optimizer state in torch's own layout (the same on every rank), sharded or not."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    named = {
        "state": {order[int(index)]: value for index, value in state["state"].items()},
        "param_groups": [{**group, "params": [order[int(i)] for i in group["params"]]}
                         for group in state["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))


def load_full_state_dict(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a whole ``state_dict`` (the same on every rank) into ``model``, sharded or not."""
    if not is_sharded(model):
        model.load_state_dict(state)
        return
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def _units(model: nn.Module) -> list[Any]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _reshards_after_forward(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "distribute_strategy", None), "reshard_after_forward", True))


@contextlib.contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Keep an FSDP model's whole weights on every rank inside the block (no-op otherwise).

    Evaluation and prediction give ranks unequal numbers of batches; a sharded forward is a
    collective, so every rank gathers the weights once on entering (all ranks enter at the same
    point) and then runs its forwards alone; the slices are taken back on leaving.
    """
    units = _units(model)
    if not units:
        yield
        return
    inner = [unit for unit in units if unit is not model]  # The root keeps FSDP's own setting.
    for unit in inner:
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        for unit in units:
            unit.unshard()
        yield
    finally:
        for unit in units:
            unit.reshard()
        for unit in inner:
            unit.set_reshard_after_forward(_reshards_after_forward(model), recurse=False)
