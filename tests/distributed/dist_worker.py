"""One rank of the distributed tests: run as torchrun runs a script (RANK, WORLD_SIZE, ... set).

Usage: ``python dist_worker.py SCENARIO[,SCENARIO...] OUT_DIR [BACKUP_DIR [KILL_AT]]``. Every rank works in its own folder
``OUT_DIR/rank<r>`` (so a file written by a rank other than 0 is seen) and saves its results in
``OUT_DIR/rank<r>.npz``. Scenarios: fit, stop, resume, and hang (rank 1 sleeps for an hour while rank 0
waits in a barrier: for the launcher's timeout test). The backend is gloo, or
``CADENCE_TEST_BACKEND`` (nccl on a GPU).

Rendezvous: with ``CADENCE_TEST_INIT_METHOD`` set (the tests set ``file://<fresh file>``), the
process group starts from that URL with the ``RANK`` and ``WORLD_SIZE`` environment variables;
a file needs no free port, so nothing else on the machine can take it first. Without it, the
group starts as under ``torchrun``, by ``cadence.distributed.init_process_group`` (``MASTER_ADDR``,
``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``), e.g. ``CADENCE_TEST_BACKEND=nccl torchrun --nproc_per_node=1
tests/distributed/dist_worker.py fit,stop,resume OUT``. Collectives time out after
``COLLECTIVE_TIMEOUT``, so a rank whose peer is gone fails instead of waiting for ever.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import cadence
from cadence import callbacks, distributed

COLLECTIVE_TIMEOUT = timedelta(seconds=120)


def data(count: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]], dtype=np.float32) + 0.3
         + 0.1 * rng.normal(size=(count, 1)).astype(np.float32))
    return x, y


def linear_model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse",
                  metrics=["mae"], device="auto" if os.environ.get("CADENCE_TEST_BACKEND") else "cpu")
    return model


def mlp_data(count: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 4)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(4, 2)).astype(np.float32))
    return x, y


def mlp_model(strategy="auto", **compile_kwargs):
    """A 4-8-2 MLP (58 parameters, every dimension even: FSDP gives each of 2 ranks 29)."""
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    model.compile(optimizer=torch.optim.Adam(model.parameters(), lr=0.05), loss="mse",
                  metrics=["mae"], strategy=strategy,
                  device="auto" if os.environ.get("CADENCE_TEST_BACKEND") else "cpu", **compile_kwargs)
    return model


def flat_weights(model):
    return np.concatenate([w.ravel() for w in model.get_weights()])


def scenario_fsdp(results):
    """FSDP: training, whole weights, the share of parameters each rank holds, evaluate, predict."""
    x, y = mlp_data(16)
    x_val, y_val = mlp_data(11, seed=1)
    model = mlp_model("fsdp")
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=True, verbose=0,
                        validation_data=(x_val, y_val),
                        callbacks=[callbacks.ModelCheckpoint("fsdp_checkpoint.pt")])
    results["fsdp_sharded"] = np.array(distributed.is_sharded(model))
    results["fsdp_local_params"] = np.array(sum(p.to_local().numel() for p in model.parameters()))
    results["fsdp_weights"] = flat_weights(model)
    results["fsdp_history"] = json.dumps(history.history)
    results["fsdp_evaluate"] = np.array(model.evaluate(x_val, y_val, batch_size=2, verbose=0))
    results["fsdp_predict"] = model.predict(x_val, batch_size=2, verbose=0)
    model.save("../fsdp_model.pt")  # Every rank gathers; rank 0 writes into the shared folder.
    model.save_weights("fsdp.weights.pt")
    model.set_weights([np.full_like(w, 0.5) for w in model.get_weights()])
    results["fsdp_set"] = flat_weights(model)
    model.load_weights("fsdp.weights.pt")
    results["fsdp_loaded"] = flat_weights(model)
    cadence.load_model("../fsdp_model.pt", model)
    results["fsdp_load_model"] = flat_weights(model)


def scenario_fsdp_bf16(results):
    """FSDP with compile(precision="bf16-mixed"): a bf16 MixedPrecisionPolicy, float32 shards."""
    x, y = mlp_data(16)
    model = mlp_model("fsdp", precision="bf16-mixed")
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    results["bf16_loss"] = np.array(history.history["loss"])
    results["bf16_param_dtypes"] = np.array(sorted({str(p.dtype) for p in model.parameters()}))
    results["bf16_weights"] = flat_weights(model)


class BreakOnRankOne(callbacks.Callback):
    """Raise at training batch 1 on rank 1 only."""

    def on_train_batch_end(self, batch, logs=None):
        if distributed.rank() == 1 and batch == 1:
            raise ValueError("rank one broke")


def scenario_linger(results, strategy):
    """Rank 1's callback raises; its process catches the error and lingers for an hour."""
    x, y = mlp_data(64)
    model = mlp_model(strategy)
    try:
        model.fit(x, y, batch_size=4, epochs=50, verbose=0, callbacks=[BreakOnRankOne()])
    except ValueError as error:
        print(f"rank {distributed.rank()} caught {error!r}; lingering", flush=True)
        time.sleep(3600)
    results["linger_finished"] = np.array(True)


class Items(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index]


class Batches(cadence.data.Sequence):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, index):
        part = slice(index * self.size, (index + 1) * self.size)
        return self.x[part], self.y[part]


def scenario_fit(results):
    """Train with files written and check evaluate / predict of every data kind."""
    x, y = data(16)
    x_val, y_val = data(11, seed=1)
    model = linear_model()
    history = model.fit(
        x, y, batch_size=4, epochs=3, shuffle=True, verbose=2, validation_data=(x_val, y_val),
        callbacks=[callbacks.CSVLogger("log.csv"), callbacks.ModelCheckpoint("ckpt.weights.pt",
                                                                              save_weights_only=True)],
    )
    results["weights"] = np.concatenate([w.ravel() for w in model.get_weights()])
    results["history"] = json.dumps(history.history)
    results["evaluate"] = np.array(model.evaluate(x_val, y_val, batch_size=2, verbose=0))
    results["evaluate_sequence"] = np.array(model.evaluate(Batches(x_val, y_val, 3), verbose=0))
    results["predict"] = model.predict(x_val, batch_size=2, verbose=0)
    results["predict_dataset"] = model.predict(Items(x_val), batch_size=2, verbose=0)
    results["predict_sequence"] = model.predict(Batches(x_val, y_val, 2), verbose=0)
    loader = torch.utils.data.DataLoader(Items(x_val), batch_size=3)
    results["predict_loader"] = model.predict(loader, verbose=0)


class SkewLoss(callbacks.Callback):
    """On rank 1 only, make the epoch's loss grow, so that only rank 1's EarlyStopping fires."""

    def on_epoch_end(self, epoch, logs=None):
        if distributed.rank() == 1:
            logs["loss"] = float(epoch + 1)


class StopAtBatch(callbacks.Callback):
    """On rank 0 only, stop training at training batch 2 of the first epoch."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if distributed.rank() == 0 and batch == 2:
            self.model.stop_training = True


def scenario_stop(results):
    """A stop one rank decides is agreed: at an epoch end, and at a batch end."""
    x, y = data(64)
    model = linear_model()
    stopper = callbacks.EarlyStopping(monitor="loss", patience=1)
    history = model.fit(x, y, batch_size=4, epochs=20, verbose=0, callbacks=[SkewLoss(), stopper])
    results["epochs_run"] = np.array(len(history.history["loss"]))
    results["stopped_epoch"] = np.array(stopper.stopped_epoch)
    counter = StopAtBatch()
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[counter])
    results["batches_run"] = np.array(counter.batches)


def global_step(callback):
    """The run's global step, from the callback's run state (``self.run``)."""
    return callback.run.global_step


class KillAt(callbacks.Callback):
    """Die at once, like SIGKILL, before training batch ``step`` (global) of the run."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if global_step(self) == self.step:
            sys.stdout.flush()
            os._exit(3)


def scenario_resume(results, backup_dir, kill_at=None):
    """Train 4 epochs of 4 batches with BackupAndRestore every 3 batches; maybe die midway."""
    x, y = data(32)
    model = linear_model()
    chain = [callbacks.BackupAndRestore(backup_dir, save_freq=3)]
    if kill_at is not None:
        chain.append(KillAt(kill_at))
    history = model.fit(x, y, batch_size=4, epochs=4, shuffle=True, verbose=0, callbacks=chain)
    results["weights_resume"] = np.concatenate([w.ravel() for w in model.get_weights()])
    results["history_resume"] = json.dumps(history.history)
    results["epochs"] = np.array(len(history.history["loss"]))
    results["restored"] = np.array(chain[0].restored_from is not None)


class SigkillRankOne(callbacks.Callback):
    """Under torchrun's first attempt only: rank 1 SIGKILLs itself before global batch ``step``."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and distributed.rank() == 1 and global_step(self) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordAt(callbacks.Callback):
    """Save the whole weights to ``weights_at_<step>.npy`` after global batch ``step``."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self) == self.step:
            np.save(f"weights_at_{self.step}.npy", flat_weights(self.model))


def scenario_resume_fsdp(results, backup_dir, kill_at=None, how="exit"):
    """FSDP, 3 epochs of 4 batches, sharded backups every 3 batches; maybe die before ``kill_at``."""
    x, y = mlp_data(32)
    model = mlp_model("fsdp")
    chain = [callbacks.BackupAndRestore(backup_dir, save_freq=3), RecordAt(6)]
    if kill_at is not None:
        chain.append(KillAt(kill_at) if how == "exit" else SigkillRankOne(kill_at))
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=True, verbose=0, callbacks=chain)
    results["weights_fsdp_resume"] = flat_weights(model)
    results["epochs"] = np.array(len(history.history["loss"]))
    results["history"] = json.dumps(history.history)
    results["restored"] = np.array(chain[0].restored_from is not None)
    results["attempt"] = np.array(int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")))


def main() -> None:
    scenario, out = sys.argv[1], sys.argv[2]
    backend = os.environ.get("CADENCE_TEST_BACKEND", "gloo")
    init_method = os.environ.get("CADENCE_TEST_INIT_METHOD")
    if init_method:  # A file:// URL: each launch gives its ranks a fresh file.
        dist.init_process_group(backend, init_method=init_method, timeout=COLLECTIVE_TIMEOUT,
                                world_size=int(os.environ["WORLD_SIZE"]), rank=int(os.environ["RANK"]))
    else:  # As torchrun starts it (each restart under its own key prefix).
        distributed.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT.total_seconds())
    rank = dist.get_rank()
    workdir = os.path.join(out, f"rank{rank}")
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    torch.set_num_threads(1)
    results: dict = {"world_size": np.array(distributed.world_size())}
    for name in scenario.split(","):
        if name == "fit":
            scenario_fit(results)
        elif name.startswith("linger_"):  # linger_ddp, linger_fsdp
            scenario_linger(results, name.split("_")[1])
        elif name == "fsdp":
            scenario_fsdp(results)
        elif name == "fsdp_bf16":
            scenario_fsdp_bf16(results)
        elif name == "stop":
            scenario_stop(results)
        elif name in ("resume", "resume_fsdp", "resume_fsdp_sigkill"):
            # OUT_DIR/backup, or a backup folder given ("{rank}" is this rank), dying at KILL_AT.
            backup_dir = sys.argv[3].format(rank=rank) if len(sys.argv) > 3 else os.path.join(out, "backup")
            kill_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
            if name == "resume":
                scenario_resume(results, backup_dir, kill_at)
            else:
                how = "sigkill" if name.endswith("sigkill") else "exit"
                scenario_resume_fsdp(results, backup_dir, kill_at, how)
        elif name == "hang":  # Rank 1 never reaches the barrier rank 0 waits in.
            if rank == 1:
                time.sleep(3600)
            dist.barrier()
        else:
            raise SystemExit(f"unknown scenario {name!r}")
    np.savez(os.path.join(out, f"rank{rank}.npz"), **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
