"""Many processes, many machines: ``fit``, ``evaluate`` and ``predict`` under ``torch.distributed``.

Launch the same script once per device with ``torchrun`` (or initialise a process group
yourself); nothing else changes. When a process group is initialised, cadence

- spreads the model over the ranks by ``compile(strategy=...)``: ``DistributedDataParallel``
  (:mod:`cadence.distributed.ddp`) or FSDP2 sharding (:mod:`cadence.distributed.strategy`);
- gives every rank its share of the data, as ``DistributedSampler`` does, with every pass's
  shuffled order the same on all ranks (:mod:`cadence.distributed.sharding`);
- sums the metric states over ranks before logs are built, so every rank's epoch logs,
  validation logs and ``evaluate`` results hold the values of all the data
  (:mod:`cadence.distributed.logs`); ``predict`` returns all outputs, in order, on every rank;
- runs the hooks of callbacks that write files or print (checkpoints, CSV, TensorBoard, MLflow,
  backups, the progress bar) on rank 0 only, and makes every rank agree on
  ``model.stop_training`` (:mod:`cadence.distributed.callbacks`).
- under FSDP gives whole weights to ``get_weights`` and friends, ``evaluate`` and ``predict``
  (:mod:`cadence.distributed.fsdp`) and lets ``BackupAndRestore`` write sharded backups
  (:mod:`cadence.distributed.checkpoint`);
- keeps a watchdog per ``fit`` / ``evaluate`` / ``predict`` call, so that a rank that fails makes
  every other rank fail within seconds, naming it (:mod:`cadence.distributed.watchdog`);
  collectives time out after :func:`collective_timeout` seconds (:func:`set_timeout`).

Start the group with :func:`init_process_group` (NCCL with CUDA, else gloo; each ``torchrun``
restart under a store prefix of its own) or with torch's own ``init_process_group``.

Without a process group, none of this runs and every function here is a cheap no-op.

Example:
    ```python
    from cadence import distributed

    if distributed.is_rank_zero():
        print("world size", distributed.world_size())
    ```
"""

from cadence.distributed.callbacks import StopAgreement, rank_zero_hooks, runs_on_this_rank
from cadence.distributed.checkpoint import (
    check_same_backup,
    check_sharded,
    delete_shards,
    gather_metric_states,
    load_sharded,
    own_metric_states,
    prune_shards,
    save_sharded,
    sharded_as_loaded,
)
from cadence.distributed.core import (
    all_gather_object,
    all_reduce_sum,
    any_rank,
    barrier,
    broadcast_object,
    collective_timeout,
    init_process_group,
    is_initialized,
    is_rank_zero,
    local_cuda_device,
    local_rank,
    rank,
    rank_zero_only,
    set_timeout,
    world_size,
)
from cadence.distributed.fsdp import (
    copy_whole_into,
    full_optimizer_state_dict,
    full_state_dict,
    full_tensor,
    gathered,
    is_sharded,
    load_full_optimizer_state_dict,
    load_full_state_dict,
)
from cadence.distributed.logs import reduce_logs
from cadence.distributed.sharding import gather_predictions, shard_adapter
from cadence.distributed.strategy import DDP, FSDP, Strategy, default_policy, get_strategy, wrap_model
from cadence.distributed.watchdog import watch

__all__ = [
    "DDP",
    "FSDP",
    "Strategy",
    "StopAgreement",
    "all_gather_object",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_object",
    "check_same_backup",
    "check_sharded",
    "collective_timeout",
    "copy_whole_into",
    "default_policy",
    "delete_shards",
    "full_optimizer_state_dict",
    "full_state_dict",
    "full_tensor",
    "gather_predictions",
    "gather_metric_states",
    "gathered",
    "init_process_group",
    "get_strategy",
    "is_initialized",
    "is_rank_zero",
    "is_sharded",
    "load_full_optimizer_state_dict",
    "load_full_state_dict",
    "load_sharded",
    "own_metric_states",
    "prune_shards",
    "local_cuda_device",
    "local_rank",
    "rank",
    "rank_zero_hooks",
    "rank_zero_only",
    "reduce_logs",
    "runs_on_this_rank",
    "save_sharded",
    "sharded_as_loaded",
    "set_timeout",
    "shard_adapter",
    "watch",
    "wrap_model",
    "world_size",
]
