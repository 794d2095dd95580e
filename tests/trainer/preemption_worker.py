"""One rank of tests/trainer/test_preemption.py's two-process run (gloo on the CPU).

Usage: ``python preemption_worker.py BACKUP_DIR [SIGNAL_RANK SIGNAL_AT]`` with ``RANK``,
``WORLD_SIZE`` and ``CADENCE_TEST_INIT_METHOD`` (a ``file://`` rendezvous) set. It trains
3 epochs of 4 batches per rank with ``BackupAndRestore``, prints ``B <global step>`` after every
batch, and rank ``SIGNAL_RANK`` alone sends itself SIGTERM after its ``SIGNAL_AT``-th batch.
This file is a helper, not a test module (pytest does not collect it).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import cadence
from cadence import callbacks


class Progress(callbacks.Callback):
    def __init__(self, signal_at):
        super().__init__()
        self.signal_at = signal_at
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        print(f"B {self.run.global_step}", flush=True)
        if self.batches == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    backup_dir = sys.argv[1]
    signal_rank = int(sys.argv[2]) if len(sys.argv) > 2 else -1
    signal_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    dist.init_process_group(
        "gloo", init_method=os.environ["CADENCE_TEST_INIT_METHOD"], timeout=timedelta(seconds=60),
        world_size=int(os.environ["WORLD_SIZE"]), rank=int(os.environ["RANK"]),
    )
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse")
    chain = [Progress(signal_at if dist.get_rank() == signal_rank else 0),
             callbacks.BackupAndRestore(backup_dir)]
    try:
        model.fit(x, x.sum(axis=1, keepdims=True), batch_size=4, epochs=3, verbose=0, callbacks=chain)
        dist.barrier()  # As torch advises: no rank tears the group down while another still uses it.
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
