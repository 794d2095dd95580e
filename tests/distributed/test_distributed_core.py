"""cadence.distributed in one process: no-ops, rank-zero rules, shards, stop agreement rules."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cadence import callbacks, distributed
from cadence import data as cadence_data
from cadence.data import ArrayAdapter, DataLoaderAdapter, Sequence, SequenceAdapter
from cadence.data.adapters import pass_generator
from cadence.data.sharding import shard_order
from cadence.distributed import core

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker  # noqa: E402


@pytest.fixture
def rank_one_of_two(monkeypatch):
    monkeypatch.setattr(core, "rank", lambda: 1)
    monkeypatch.setattr(core, "world_size", lambda: 2)


def test_without_a_process_group_everything_is_a_single_process():
    assert not distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_rank_zero()) == (0, 1, True)
    tensors = [torch.tensor([1.0, 2.0]), torch.tensor(3)]
    assert distributed.all_reduce_sum(tensors) is not tensors
    assert [t.tolist() for t in distributed.all_reduce_sum(tensors)] == [[1.0, 2.0], 3]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_gather_object(5) == [5]
    assert distributed.any_rank(True) is True and distributed.any_rank(False) is False
    distributed.barrier()


def test_local_rank_comes_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.local_rank() == 3
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.local_rank() == 0


def test_rank_zero_only_function_runs_on_rank_zero_only(monkeypatch):
    calls = []

    @distributed.rank_zero_only
    def record(value):
        """Record a value."""
        calls.append(value)
        return value

    assert record(1) == 1 and record.__doc__ == "Record a value."
    monkeypatch.setattr(core, "rank", lambda: 1)
    assert record(2) is None
    assert calls == [1]


def test_rank_zero_only_marks_a_callback_class_and_rejects_other_things():
    @distributed.rank_zero_only
    class Printer(callbacks.Callback):
        pass

    assert Printer.rank_zero_only is True
    with pytest.raises(TypeError, match="rank_zero_only decorates a function, a method or a Callback class; received 3"):
        distributed.rank_zero_only(3)


class Hooks(callbacks.Callback):
    rank_zero_only = frozenset({"on_epoch_end"})


class Whole(callbacks.Callback):
    rank_zero_only = True


class MyCSV(callbacks.CSVLogger):
    pass


def test_which_hooks_run_on_other_ranks(rank_one_of_two, tmp_path):
    runs = distributed.runs_on_this_rank
    csv = callbacks.CSVLogger(str(tmp_path / "log.csv"))
    assert not any(runs(csv, hook) for hook in ("on_train_begin", "on_epoch_end", "on_train_end"))
    assert not runs(MyCSV(str(tmp_path / "b.csv")), "on_epoch_end")
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "w.weights.pt"), save_weights_only=True)
    assert runs(checkpoint, "on_train_begin") and not runs(checkpoint, "on_epoch_end")
    assert not runs(checkpoint, "on_train_batch_end")
    backup = callbacks.BackupAndRestore(str(tmp_path / "backup"))  # Every rank takes part.
    assert all(runs(backup, h) for h in ("on_train_begin", "on_train_batch_end", "on_epoch_end"))
    assert not runs(callbacks.ProgbarLogger(), "on_epoch_end")
    assert runs(callbacks.EarlyStopping(), "on_epoch_end") and runs(callbacks.History(), "on_epoch_end")
    assert runs(Hooks(), "on_train_begin") and not runs(Hooks(), "on_epoch_end")
    assert not runs(Whole(), "on_train_begin")
    # A user class that happens to share a name with a cadence callback is not affected.
    assert runs(type("CSVLogger", (callbacks.Callback,), {})(), "on_epoch_end")


class SavesShards(callbacks.Callback):
    writes_files = True
    collective_when_sharded = True


def test_saving_callbacks_run_on_every_rank_when_the_model_is_sharded(rank_one_of_two, tmp_path):
    runs = distributed.runs_on_this_rank
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "w.weights.pt"), save_weights_only=True)
    mine = SavesShards()
    for strategy, sharded in (("ddp", False), ("fsdp", True)):
        model = dist_worker.mlp_model(strategy)
        checkpoint.set_model(model)
        mine.set_model(model)
        assert runs(checkpoint, "on_epoch_end") is sharded and runs(mine, "on_epoch_end") is sharded
        assert runs(checkpoint, "on_train_batch_end") is sharded
    csv = callbacks.CSVLogger(str(tmp_path / "log.csv"))  # Writes files, gathers nothing.
    csv.set_model(model)
    assert not runs(csv, "on_epoch_end")


def test_every_hook_runs_on_rank_zero(tmp_path):
    assert distributed.runs_on_this_rank(callbacks.CSVLogger(str(tmp_path / "log.csv")), "on_epoch_end")
    assert distributed.runs_on_this_rank(Whole(), "on_epoch_end")


@pytest.mark.parametrize("count", [1, 5, 8, 9])
@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_those_of_distributed_sampler(count, world):
    order = torch.randperm(count, generator=torch.Generator().manual_seed(count))
    for rank in range(world):
        sampler = torch.utils.data.DistributedSampler(
            order.tolist(), num_replicas=world, rank=rank, shuffle=False
        )
        expected = [order[i].item() for i in sampler]
        assert shard_order(order, rank, world, pad=True).tolist() == expected
        assert shard_order(order, rank, world, pad=False).tolist() == order[rank::world].tolist()


def _batches(adapter):
    return [batch for batch in adapter.iterate(0)]


def test_array_shard_of_a_shuffled_pass_is_every_other_sample_of_the_same_order(rank_one_of_two):
    x = torch.arange(10.0).reshape(10, 1)
    adapter = ArrayAdapter(x, x, batch_size=2, shuffle=True, seed=7)
    order = torch.randperm(10, generator=pass_generator(7, 0))
    assert distributed.shard_adapter(adapter, training=True) == "sample"
    assert adapter.num_batches == 3
    seen = torch.cat([b[0] for b in _batches(adapter)]).flatten().long().tolist()
    assert seen == order[1::2].tolist()
    assert [b[0].flatten().tolist() for b in adapter.iterate(0, start=2)] == [[float(seen[4])]]


class Numbered(Sequence):
    def __len__(self):
        return 5

    def __getitem__(self, index):
        return np.full((1, 1), index, np.float32), np.zeros((1, 1), np.float32)


def test_sequence_and_loader_are_cut_by_batch_with_padding_for_training(rank_one_of_two):
    adapter = SequenceAdapter(Numbered())
    assert distributed.shard_adapter(adapter, training=True) == "batch"
    assert adapter.num_batches == 3
    assert [int(b[0]) for b in _batches(adapter)] == [1, 3, 0]
    loader = torch.utils.data.DataLoader(torch.arange(5.0), batch_size=2)  # batches 0, 1, 2
    adapter = DataLoaderAdapter(loader)
    assert distributed.shard_adapter(adapter, training=True) == "batch"
    assert [b.tolist() for b in _batches(adapter)] == [[2.0, 3.0], [0.0, 1.0]]
    adapter = DataLoaderAdapter(loader)
    distributed.shard_adapter(adapter, training=False)
    assert adapter.num_batches == 1 and [b.tolist() for b in _batches(adapter)] == [[2.0, 3.0]]


def test_a_loader_with_a_distributed_sampler_is_used_as_given(rank_one_of_two):
    data = torch.arange(6.0)
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    adapter = DataLoaderAdapter(torch.utils.data.DataLoader(data, batch_size=2, sampler=sampler))
    assert distributed.shard_adapter(adapter, training=True) is None
    assert [b.tolist() for b in _batches(adapter)] == [[1.0, 3.0], [5.0]]


def test_evaluation_data_smaller_than_the_world_is_refused(rank_one_of_two):
    adapter = ArrayAdapter(torch.zeros(1, 2), batch_size=4)
    with pytest.raises(ValueError, match=r"The data has 1 samples for 2 processes: .* Received 1 samples; expected at least 2\."):
        distributed.shard_adapter(adapter, training=False)
    assert adapter.shard is None


def test_wrap_model_needs_a_process_group():
    with pytest.raises(RuntimeError, match="wrap_model needs an initialised torch.distributed process group"):
        distributed.wrap_model(torch.nn.Linear(1, 1))


def _start_group_of_one():
    """A real gloo process group of world size 1 in this process (as torchrun --nproc_per_node=1)."""
    torch.distributed.init_process_group("gloo", rank=0, world_size=1, store=torch.distributed.HashStore())


@pytest.fixture
def group_of_one():
    _start_group_of_one()
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _trained(x, y, **kwargs):
    model = dist_worker.linear_model()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_split=0.25, **kwargs)
    return model, history.history


def test_a_group_of_one_trains_bit_for_bit_as_a_single_process():
    x, y = dist_worker.data(16)
    single, single_logs = _trained(x, y)
    _start_group_of_one()
    try:
        model, logs = _trained(x, y, callbacks=[BatchLogs()])
        assert model._ddp_route is not None
        predicted = model.predict(x, batch_size=3, verbose=0)
        evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
        assert pickle.loads(pickle.dumps(model))._ddp_route is None
        assert copy.deepcopy(model)._ddp_route is None
    finally:
        torch.distributed.destroy_process_group()
    assert single._ddp_route is None
    assert logs == single_logs
    for got, expected in zip(model.get_weights(), single.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(predicted, single.predict(x, batch_size=3, verbose=0))
    assert evaluated == single.evaluate(x, y, verbose=0, return_dict=True)


class BatchLogs(callbacks.Callback):
    """Reads plain batch logs, so fit sums them over ranks at every batch."""

    def on_train_batch_end(self, batch, logs=None):
        assert isinstance(logs["loss"], float)


def test_reduce_logs_reads_global_results_and_keeps_local_states(group_of_one):
    from cadence.metrics import Mean

    metric = Mean(name="m")
    metric.update_state(torch.tensor([1.0, 3.0]))
    logs = distributed.reduce_logs(None, {"m": metric.result(), "extra": torch.tensor(2.5), "note": "x"})
    assert logs == {"m": 2.0, "extra": 2.5, "note": "x"}  # no model metrics: "m" is a plain value
    model = type("M", (), {"metrics": [metric]})()
    assert distributed.reduce_logs(model, {"m": torch.tensor(0.0)}) == {"m": 2.0}
    assert [t.item() for t in metric.state_tensors()] == [4.0, 2.0]  # total, count


def test_strategies_are_checked_at_compile_and_fsdp_refuses_float16():
    assert isinstance(dist_worker.mlp_model("fsdp").distribute_strategy, distributed.FSDP)
    assert isinstance(dist_worker.mlp_model().distribute_strategy, distributed.DDP)
    with pytest.raises(ValueError, match=r"strategy must be one of \['auto', 'ddp', 'fsdp'\] or a "
                       r"cadence.distributed.DDP/FSDP object; received strategy='tpu'\."):
        dist_worker.mlp_model("tpu")
    model = dist_worker.mlp_model("fsdp", precision="16-mixed")
    with pytest.raises(ValueError, match=r"strategy='fsdp' does not take precision='16-mixed'"):
        model.distribute_strategy.wrap(model)
    with pytest.raises(TypeError, match="FSDP's policy must be a function of the model returning modules; received 3"):
        distributed.FSDP(policy=3)


def test_fsdp_default_policy_shards_blocks_and_modules_with_parameters_of_their_own():
    blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()) for _ in range(2)])
    embed, head = torch.nn.Embedding(5, 2), torch.nn.Linear(2, 1)
    model = torch.nn.ModuleDict({"embed": embed, "blocks": blocks, "act": torch.nn.ReLU(), "head": head})
    assert distributed.default_policy(model) == [embed, head, blocks[0], blocks[1]]


def test_collective_timeout_is_settable_and_checked(monkeypatch):
    monkeypatch.setattr(core, "_settings", {"timeout": None})
    monkeypatch.delenv("CADENCE_DISTRIBUTED_TIMEOUT", raising=False)
    assert distributed.collective_timeout() == 600.0
    monkeypatch.setenv("CADENCE_DISTRIBUTED_TIMEOUT", "42")
    assert distributed.collective_timeout() == 42.0
    distributed.set_timeout(7)
    assert distributed.collective_timeout() == 7.0
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds; received 0\."):
        distributed.set_timeout(0)


@pytest.mark.parametrize(("cuda", "backend"), [(True, "nccl"), (False, "gloo")])
def test_init_process_group_chooses_nccl_when_cuda_is_present(monkeypatch, cuda, backend):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(core, "local_cuda_device", lambda: calls.append("device"))
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda name, **kwargs: calls.append((name, kwargs["timeout"].total_seconds())))
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    monkeypatch.setattr(core, "_settings", {"timeout": None})
    distributed.init_process_group(timeout=30)
    assert calls == (["device"] if cuda else []) + [(backend, 30.0)]


def test_cutting_a_source_is_the_adapters_own_method():
    adapter = ArrayAdapter(torch.arange(7.0).reshape(7, 1), batch_size=2)
    assert adapter.shard_units() == ("sample", 7)
    assert adapter.set_shard(1, 3, training=True) == "sample"
    assert adapter.shard == (1, 3, True) and adapter.num_batches == 2  # Samples 1, 4 and 0.
    assert adapter.shard_indices(3).tolist() == [1, 4, 0]
    generator = cadence_data.IterableAdapter(iter([np.zeros((1, 1))]))
    assert generator.shard_units() is None and generator.set_shard(0, 2, training=True) is None
    assert generator.shard is None
    with pytest.raises(ValueError, match="IterableAdapter is not cut between ranks: call set_shard first."):
        generator.shard_indices(1)
