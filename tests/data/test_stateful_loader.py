"""StatefulDataLoaderAdapter: a run interrupted mid-epoch resumes bit-identically."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks
from cadence.data import StatefulDataLoaderAdapter, get_adapter

stateful_dataloader = pytest.importorskip("torchdata.stateful_dataloader")
StatefulDataLoader = stateful_dataloader.StatefulDataLoader

# torchdata 0.11 calls torch.set_vital, which torch 2.13 deprecates: torchdata's, not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")

STEPS_PER_EPOCH = 13  # 100 samples in batches of 8.


class CrashAtStep(callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise RuntimeError(f"crash at step {self.step}")




def _dataset():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100, 5, generator=generator)
    y = x @ torch.randn(5, 1, generator=generator)
    return torch.utils.data.TensorDataset(x, y)


def _model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    model.compile(optimizer=cadence.optimizers.Adam(learning_rate=0.01), loss="mse")
    return model


def _fit(loader_class, backup_dir, crash_at=None, seed=0):
    model = _model()  # Seeds torch's generator: the same initial weights every time.
    torch.manual_seed(seed)  # Then the run's own random numbers (shuffling, dropout).
    loader = loader_class(_dataset(), batch_size=8, shuffle=True)
    extra = [CrashAtStep(crash_at)] if crash_at else []
    history = model.fit(loader, epochs=3, verbose=0, callbacks=[
        *extra, callbacks.BackupAndRestore(backup_dir, save_freq=5)])
    return model, history


def _interrupted(loader_class, tmp_path):
    backup = tmp_path / f"backup-{loader_class.__name__}"
    with pytest.raises(RuntimeError, match="crash at step 18"):
        _fit(loader_class, backup, crash_at=18)  # Mid-epoch 2 (steps 14-26); backed up at 15.
    # A new process: another global random state, a new loader; the backup restores both.
    return _fit(loader_class, backup, seed=12345)


def test_get_adapter_picks_the_stateful_adapter():
    adapter = get_adapter(StatefulDataLoader(_dataset(), batch_size=8))
    assert isinstance(adapter, StatefulDataLoaderAdapter) and adapter.num_batches == STEPS_PER_EPOCH
    with pytest.raises(TypeError, match="needs a DataLoader with state_dict.*received DataLoader"):
        StatefulDataLoaderAdapter(torch.utils.data.DataLoader(_dataset()))


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_mid_epoch_resumes_bit_identically(tmp_path, workers):
    loader_class = functools.partial(StatefulDataLoader, num_workers=workers)
    loader_class.__name__ = f"StatefulDataLoader{workers}"
    reference, ref_history = _fit(loader_class, tmp_path / "reference")
    resumed, history = _interrupted(loader_class, tmp_path)
    assert history.history == ref_history.history
    assert list(resumed.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_a_plain_shuffling_dataloader_does_not_resume_exactly(tmp_path):
    # The control: without the loader's state, the rest of epoch 2 is drawn in another order.
    reference, _ = _fit(torch.utils.data.DataLoader, tmp_path / "reference")
    resumed, _ = _interrupted(torch.utils.data.DataLoader, tmp_path)
    assert not all(torch.equal(resumed.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_distributed_restore_is_refused():
    adapter = StatefulDataLoaderAdapter(StatefulDataLoader(_dataset(), batch_size=8))
    adapter.shard = (0, 2, False)
    with pytest.raises(ValueError, match="resumes exactly mid-epoch in a single-process run"):
        adapter.load_state_dict(adapter.state_dict())
