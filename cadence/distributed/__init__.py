"""Many processes, many machines: ``fit``, ``evaluate`` and ``predict`` under ``torch.distributed``.

Launch the same script once per device with ``torchrun`` (or initialise a process group
yourself); nothing else changes. When a process group is initialised, cadence

- wraps the model in ``DistributedDataParallel`` for training (:mod:`cadence.distributed.ddp`);
- gives every rank its share of the data, as ``DistributedSampler`` does, with every pass's
  shuffled order the same on all ranks (:mod:`cadence.distributed.sharding`);
- sums the metric states over ranks before logs are built, so every rank's epoch logs,
  validation logs and ``evaluate`` results hold the values of all the data
  (:mod:`cadence.distributed.logs`); ``predict`` returns all outputs, in order, on every rank;
- runs the hooks of callbacks that write files or print (checkpoints, CSV, TensorBoard, MLflow,
  backups, the progress bar) on rank 0 only, and makes every rank agree on
  ``model.stop_training`` (:mod:`cadence.distributed.callbacks`).

Without a process group, none of this runs and every function here is a cheap no-op.

Example:
    ```python
    from cadence import distributed

    if distributed.is_rank_zero():
        print("world size", distributed.world_size())
    ```
"""

from cadence.distributed.callbacks import StopAgreement, rank_zero_hooks, runs_on_this_rank
from cadence.distributed.core import (
    all_gather_object,
    all_reduce_sum,
    any_rank,
    barrier,
    broadcast_object,
    is_initialized,
    is_rank_zero,
    local_cuda_device,
    local_rank,
    rank,
    rank_zero_only,
    world_size,
)
from cadence.distributed.ddp import wrap_model
from cadence.distributed.logs import reduce_logs
from cadence.distributed.sharding import gather_predictions, shard_adapter

__all__ = [
    "StopAgreement",
    "all_gather_object",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_object",
    "gather_predictions",
    "is_initialized",
    "is_rank_zero",
    "local_cuda_device",
    "local_rank",
    "rank",
    "rank_zero_hooks",
    "rank_zero_only",
    "reduce_logs",
    "runs_on_this_rank",
    "shard_adapter",
    "wrap_model",
    "world_size",
]
