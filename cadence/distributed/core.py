"""Rank, world size and the few collectives cadence needs, all no-ops in a single process."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

F = TypeVar("F")

#: Seconds a collective of cadence's (and of a group started by :func:`init_process_group`)
#: waits for the other ranks before failing; ``CADENCE_DISTRIBUTED_TIMEOUT`` sets the default.
DEFAULT_TIMEOUT = 600.0
_settings = {"timeout": None}


def collective_timeout() -> float:
    """Return the collective timeout in seconds (see :func:`set_timeout`)."""
    if _settings["timeout"] is not None:
        return _settings["timeout"]
    value = os.environ.get("CADENCE_DISTRIBUTED_TIMEOUT")
    return _checked_timeout(float(value), "CADENCE_DISTRIBUTED_TIMEOUT") if value else DEFAULT_TIMEOUT


def _checked_timeout(seconds: Any, name: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
        math.isfinite(seconds) and seconds > 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds; received {seconds!r}.")
    return float(seconds)


def set_timeout(seconds: float) -> None:
    """Set how long cadence's collectives wait for the other ranks, in seconds (default 600).

    It bounds the watchdog's status exchange (:mod:`cadence.distributed.watchdog`) and is the
    timeout of a group started by :func:`init_process_group`. A group you start yourself
    keeps the ``timeout=`` you give ``torch.distributed.init_process_group`` for its own
    collectives (gradients, metrics): give it the same bound.
    """
    _settings["timeout"] = _checked_timeout(seconds, "timeout")


def init_process_group(backend: str | None = None, timeout: float | None = None, **kwargs: Any) -> None:
    """Start the default process group as ``torchrun`` expects, with cadence's timeout.

    Args:
        backend: ``"nccl"`` when CUDA is available, else ``"gloo"``, by default.
        timeout: Seconds a collective waits (sets :func:`set_timeout` too); default
            :func:`collective_timeout`.
        **kwargs: More arguments for ``torch.distributed.init_process_group`` (``init_method``,
            ``rank``, ``world_size``, ...); by default the ``env://`` variables torchrun sets.
            Under ``torchrun`` each restart of the group (``--max-restarts``) meets under a key
            prefix of its own in torchrun's store: torch's own ``env://`` start reuses the keys
            of the previous attempt, and a restarted rank may then try to connect to a dead one.
    """
    if timeout is not None:
        set_timeout(timeout)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        local_cuda_device()
    limit = timedelta(seconds=collective_timeout())
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is not None and not {"init_method", "store"} & set(kwargs):
        # Under torchrun every restart of the group meets in the same store: keys of this
        # attempt get a prefix of their own, so no rank reads a dead worker's address.
        rank_now = int(os.environ["RANK"])
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              int(os.environ["WORLD_SIZE"]), is_master=not agent and rank_now == 0,
                              timeout=limit)
        kwargs.update(store=dist.PrefixStore(f"cadence/attempt_{attempt}", store), rank=rank_now,
                      world_size=int(os.environ["WORLD_SIZE"]))
    dist.init_process_group(backend, timeout=limit, **kwargs)


def is_initialized() -> bool:
    """Return whether a ``torch.distributed`` process group is initialised (by torchrun or you)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Return this process's rank in the default process group (0 without one)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Return the number of processes in the default process group (1 without one)."""
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """Return this process's rank on its machine.

    ``torchrun`` sets the ``LOCAL_RANK`` environment variable; without it, a process group
    started by hand is taken to run on one machine (the local rank is the rank).
    """
    value = os.environ.get("LOCAL_RANK")
    if value is not None:
        return int(value)
    return rank()


def local_cuda_device() -> torch.device:
    """Return this process's GPU, ``cuda:<local_rank>``, and make it the current CUDA device."""
    device = torch.device("cuda", local_rank())
    torch.cuda.set_device(device)
    return device


def is_rank_zero() -> bool:
    """Return whether this process is rank 0 (always True in a single process)."""
    return rank() == 0


def rank_zero_only(obj: F) -> F:
    """Run a function, method or whole callback on rank 0 only.

    On a function or method: other ranks skip the call and get ``None``. On a
    :class:`~cadence.callbacks.Callback` subclass: it sets the class attribute
    ``rank_zero_only = True``, so ``fit`` runs none of its hooks on other ranks. Use it for
    code that writes files, prints or talks to a server; never for code that decides
    something every rank needs (whether to stop, a learning rate), nor around a collective.

    Example:
        ```python
        @cadence.distributed.rank_zero_only
        def report(text):
            print(text)
        ```
    """
    if isinstance(obj, type):
        obj.rank_zero_only = True  # type: ignore[attr-defined]
        return obj
    if not callable(obj):
        raise TypeError(
            f"rank_zero_only decorates a function, a method or a Callback class; received {obj!r}."
        )

    @functools.wraps(obj)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_rank_zero():
            return obj(*args, **kwargs)  # type: ignore[operator]
        return None

    return wrapper  # type: ignore[return-value]


def collective_device(device: torch.device | None = None) -> torch.device:
    """Return the device collectives use: the current CUDA device for NCCL, else the CPU."""
    if is_initialized() and dist.get_backend() == "nccl":
        if device is not None and device.type == "cuda":
            return device
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Sum ``tensors`` over all ranks, in place, with one collective for all of them.

    The tensors are flattened into one float64 buffer on the collective's device, summed
    and copied back, so they may have any shapes, floating or integer dtypes and devices.
    Without a process group the tensors are returned unchanged.

    Args:
        tensors: The tensors to sum (each rank passes the same shapes in the same order).

    Returns:
        The same tensors, now holding the sums.
    """
    tensors = list(tensors)
    if not is_initialized() or not tensors:
        return tensors
    device = collective_device(tensors[0].device)
    flat = torch.cat([t.detach().reshape(-1).to(device, torch.float64) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    with torch.no_grad():
        for tensor in tensors:
            count = tensor.numel()
            tensor.copy_(flat[offset:offset + count].reshape(tensor.shape).to(tensor.dtype))
            offset += count
    return tensors


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """Return True on every rank when ``flag`` is True on at least one (a MAX all-reduce)."""
    if not is_initialized():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=collective_device(device))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every rank (pickled; for small Python objects)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_object_device())
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Return the list of every rank's ``obj``, indexed by rank (pickled; small objects)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait until every rank reaches this point (nothing without a process group)."""
    if is_initialized():
        dist.barrier()


def _object_device() -> torch.device | None:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None

