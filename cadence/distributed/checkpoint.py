"""Sharded backups of an FSDP model with ``torch.distributed.checkpoint`` (DCP).

Under ``strategy="fsdp"`` no rank holds the whole model, so :class:`~cadence.callbacks.BackupAndRestore`
does not gather it: every rank writes its own shard of the weights, of the optimizer state (and
of gradients accumulated so far) with DCP into ``<backup_dir>/shards-<global step>/``, and rank 0
then writes the backup file as usual (training state, callbacks, metric states), which names that
folder. The file is written last and atomically, so a backup is complete exactly when its file
exists; the folder of the newest backup and of the one before it are kept, older ones deleted.

Restoring reads the shards into whatever layout the model has now: the same world size resumes
bit for bit; another world size (or one process, without a process group) works when asked
(``BackupAndRestore(reshard=True)``), DCP cutting the saved tensors anew. Mid-epoch the data is then
cut between a different number of ranks, so that epoch is not the one an uninterrupted run would
have seen, which is why it is not done silently.

The model's part of the run's state (``TrainState.state_dict()["model"]``, see
:mod:`cadence.trainer.model_state`) is what the shards replace: ``BackupAndRestore`` gets the
run's state from ``self.run``, has each rank write its shard (:func:`save_sharded`), and keeps in
the file a marker naming the folder. On restore, nothing loads before the shards' metadata
(:func:`check_sharded`: folder, world size, names and shapes of the weights) and the rest of the
state (``TrainState.check_state_dict`` on :func:`sharded_as_loaded`) have been checked.

Before anything is restored, every rank compares what it found in its backup folder
(:func:`check_same_backup`): ranks that read different backups (per-machine folders that are not
one shared file system) are refused, naming what each rank found.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from cadence.distributed import core

PREFIX = "shards-"
METADATA = ".metadata"


def save_sharded(model: Any, model_state: dict[str, Any], backup_dir: str | os.PathLike,
                 global_step: int) -> dict[str, Any]:
    """Write this rank's shard of the weights and optimizer state; every rank calls it.

    Args:
        model: The sharded model (its ``optimizer`` is saved with it).
        model_state: The model's part of ``TrainState.state_dict()``
            (:mod:`cadence.trainer.model_state`), its metric states gathered
            (:func:`gather_metric_states`): its weights, optimizer state and gradients are
            replaced by the shards' folder.
        backup_dir: The backup folder.
        global_step: The run's global step (names the folder).

    Returns:
        ``model_state`` with ``"weights"`` empty, ``"optimizer"`` and ``"grads"`` ``None`` and
        ``"sharded"``: ``{"folder", "world_size", "grads"}``.
    """
    folder = f"{PREFIX}{int(global_step)}"
    model_dict, optimizer_dict = get_state_dict(model, model.optimizer)
    grads = {}
    if model_state.get("grads") is not None:  # Between two steps of gradient accumulation.
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    dcp.save({"model": model_dict, "optim": optimizer_dict, "grads": grads},
             checkpoint_id=Path(backup_dir) / folder)
    return {**model_state, "weights": {}, "optimizer": None, "grads": None,
            "sharded": {"folder": folder, "world_size": core.world_size(), "grads": sorted(grads)}}


def gather_metric_states(model_state: dict[str, Any]) -> dict[str, Any]:
    """Add every rank's metric states to a backup's model state; every rank calls it.

    A metric's state on a rank holds that rank's own sums (they are summed over ranks when logs
    are read), so a backup taken mid-epoch keeps all of them, and each rank gets its own back
    (:func:`own_metric_states`). Without a process group ``model_state`` is returned as it is.
    """
    if not core.is_initialized():
        return model_state
    return {**model_state, "metrics_by_rank": core.all_gather_object(_to_cpu(model_state["metrics"]))}


def own_metric_states(model_state: dict[str, Any]) -> dict[str, Any]:
    """Return a backup's model state with this rank's own metric states as ``"metrics"``.

    With another number of ranks than the backup's, rank ``r`` gets those of rank
    ``r % saved``: the logs of the resumed, partly done epoch are then approximate.
    """
    by_rank = model_state.get("metrics_by_rank")
    if not by_rank:
        return model_state
    return {**model_state, "metrics": by_rank[core.rank() % len(by_rank)]}


def _to_cpu(nest: Any) -> Any:
    if isinstance(nest, torch.Tensor):
        return nest.detach().cpu()
    if isinstance(nest, dict):
        return {key: _to_cpu(value) for key, value in nest.items()}
    if isinstance(nest, list | tuple):
        return type(nest)(_to_cpu(value) for value in nest)
    return nest


def check_sharded(model: Any, model_state: dict[str, Any], backup_dir: str | os.PathLike,
                  source: Any, reshard: bool = False) -> None:
    """Refuse, before anything is loaded, shards that cannot be loaded into ``model``.

    Reads only the shards' metadata: the folder must hold it, the world size must be this run's
    (unless ``reshard``), and the saved weights must have the model's names and whole shapes.

    Args:
        model: The model (sharded or not).
        model_state: The backup's model entry, with ``"sharded"``.
        backup_dir: The backup folder.
        source: The backup file (named in errors).
        reshard: Allow a world size other than the backup's.

    Raises:
        ValueError: Naming ``source`` and what does not fit.
    """
    marker = model_state["sharded"]
    folder = Path(backup_dir) / str(marker["folder"])
    if not (folder / METADATA).is_file():
        raise ValueError(
            f"'{source}' names the sharded weights in '{folder}', which holds no "
            "torch.distributed.checkpoint metadata: the backup folder must be one folder that "
            "every rank writes to (a shared file system), and be left whole."
        )
    saved, now = int(marker["world_size"]), core.world_size()
    if saved != now and not reshard:
        raise ValueError(
            f"'{source}' was written by {saved} processes with the model sharded "
            f"(strategy='fsdp'); this run has {now}. Resuming on another number of processes "
            "continues with the data cut differently, so it is done only when asked: "
            "BackupAndRestore(..., reshard=True)."
        )
    prefix = "model."
    stored = {
        key[len(prefix):]: tuple(meta.size)
        for key, meta in dcp.FileSystemReader(folder).read_metadata().state_dict_metadata.items()
        if key.startswith(prefix) and getattr(meta, "size", None) is not None
    }
    current = {key: tuple(value.shape) for key, value in get_model_state_dict(model).items()
               if isinstance(value, torch.Tensor)}
    problems = []
    if sorted(set(current) - set(stored)):
        problems.append(f"missing keys {sorted(set(current) - set(stored))}")
    if sorted(set(stored) - set(current)):
        problems.append(f"unexpected keys {sorted(set(stored) - set(current))}")
    shapes = [f"{key}: {stored[key]} in the shards, {shape} in the model"
              for key, shape in current.items() if key in stored and stored[key] != shape]
    if shapes:
        problems.append("different shapes (" + "; ".join(shapes) + ")")
    if problems:
        raise ValueError(
            f"'{source}' names shards in '{folder}' written by a model of another layout: "
            + ", ".join(problems) + ". Build the model with the same code as the one that wrote it."
        )


def sharded_as_loaded(model: Any, model_state: dict[str, Any]) -> dict[str, Any]:
    """Return the model entry :func:`load_sharded` will return, before loading anything.

    Its weights and optimizer state are the model's own (the shards have their layout, checked
    by :func:`check_sharded`), so the rest of a backup can be checked against the run
    (``TrainState.check_state_dict``: optimizer class, metrics, callbacks, ...) first.
    """
    return {**model_state, "weights": model.state_dict(), "optimizer": model.optimizer.state_dict()}


def load_sharded(model: Any, model_state: dict[str, Any], backup_dir: str | os.PathLike,
                 source: Any, reshard: bool = False) -> dict[str, Any]:
    """Load the shards a backup names into ``model`` and its optimizer; every rank calls it.

    Args:
        model: The model (sharded or not) with its compiled optimizer.
        model_state: The backup's model entry, with ``"sharded"``.
        backup_dir: The backup folder.
        source: The backup file (named in errors).
        reshard: Allow a world size other than the backup's.

    Returns:
        ``model_state`` with the model's weights and optimizer state as they now are, for the
        loading of the rest of the training state.

    Raises:
        ValueError: If :func:`check_sharded` refuses the shards; nothing is loaded then.
    """
    check_sharded(model, model_state, backup_dir, source, reshard)
    marker = model_state["sharded"]
    folder = Path(backup_dir) / str(marker["folder"])
    model_dict, optimizer_dict = get_state_dict(model, model.optimizer)
    params = dict(model.named_parameters())
    grads = {name: torch.zeros_like(params[name]) for name in marker["grads"]}
    state = {"model": model_dict, "optim": optimizer_dict, "grads": grads}
    with warnings.catch_warnings():  # One process reading shards is what was asked for here.
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.load(state, checkpoint_id=folder, no_dist=not core.is_initialized())
    set_state_dict(model, model.optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optim"])
    for name, grad in state["grads"].items():
        params[name].grad = grad
    return sharded_as_loaded(model, model_state)


def prune_shards(backup_dir: str | os.PathLike, model_state: dict[str, Any]) -> None:
    """Delete shard folders older than the newest backup's and the one before it (rank 0)."""
    marker = model_state.get("sharded")
    if marker is None or not core.is_rank_zero():
        return
    current = _step(marker["folder"])
    steps = sorted(s for s in map(_step, _shard_folders(backup_dir)) if s is not None and s <= current)
    for step in steps[:-2]:
        shutil.rmtree(Path(backup_dir) / f"{PREFIX}{step}", ignore_errors=True)


def delete_shards(backup_dir: str | os.PathLike) -> None:
    """Delete every shard folder of a backup folder (when the backup itself is deleted)."""
    for name in _shard_folders(backup_dir):
        shutil.rmtree(Path(backup_dir) / name, ignore_errors=True)


def _shard_folders(backup_dir: str | os.PathLike) -> list[str]:
    folder = Path(backup_dir)
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.is_dir() and _step(p.name) is not None]


def _step(name: str) -> int | None:
    if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
        return None
    return int(name[len(PREFIX):])


def _summary(payload: Any) -> str:
    """Return what identifies a backup: its position and a digest of its training state."""
    if payload is None:
        return "no backup"
    state = payload.get("train_state", {}) if isinstance(payload, dict) else {}
    digest = hashlib.sha256()
    for key in ("epoch", "step_in_epoch", "global_step", "data_seed"):
        digest.update(repr(state.get(key)).encode())
    rng = state.get("rng", {}).get("torch") if isinstance(state.get("rng"), dict) else None
    if isinstance(rng, torch.Tensor):
        digest.update(rng.numpy().tobytes())
    return (f"a backup at epoch {state.get('epoch')}, batch {state.get('step_in_epoch')} "
            f"(global step {state.get('global_step')}, digest {digest.hexdigest()[:12]})")


def check_same_backup(payload: Any, backup_dir: str | os.PathLike) -> None:
    """Refuse, on every rank, a restore where ranks found different backups; every rank calls it.

    Args:
        payload: The backup this rank read (``None`` when it found none).
        backup_dir: This rank's backup folder (named in the error).

    Raises:
        ValueError: Naming what each rank found, when they differ.
    """
    if not core.is_initialized() or core.world_size() == 1:
        return
    found = core.all_gather_object((_summary(payload), os.fspath(backup_dir)))
    if len({summary for summary, _ in found}) > 1:
        detail = "; ".join(f"rank {rank} found {summary} in '{folder}'"
                           for rank, (summary, folder) in enumerate(found))
        raise ValueError(
            f"The ranks read different backups: {detail}. Every rank must restore the same "
            "backup: give backup_dir a folder on a file system shared by all machines (rank 0 "
            "writes the backup file; under FSDP every rank writes its shard into it)."
        )

