"""EpochIterator: passes cut into epochs, the position for resume, empty data, pinning."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cadence.data import EpochIterator, get_adapter, tree
from cadence.data.adapters import ArrayAdapter, pass_generator
from cadence.data.epoch_iterator import RAN_OUT_WARNING

X = np.arange(10, dtype=np.float32)[:, None]


def ids(batch):
    return batch[0][:, 0].long().tolist()


def read(iterator, epochs):
    return [[ids(b) for b in iterator.epoch()] for _ in range(epochs)]


def test_one_pass_per_epoch_without_steps_and_new_order_per_pass():
    iterator = EpochIterator(ArrayAdapter(X, X, batch_size=4, shuffle=True, seed=5))
    first, second = read(iterator, 2)
    assert sum(first, []) == torch.randperm(10, generator=pass_generator(5, 0)).tolist()
    assert sum(second, []) == torch.randperm(10, generator=pass_generator(5, 1)).tolist()
    assert iterator.state_dict() == {"pass_index": 2, "batch_in_pass": 0, "batch_in_epoch": 0}
    assert iterator.steps == 3


def test_steps_per_epoch_beyond_the_data_ends_the_epoch_and_the_next_starts_a_fresh_pass():
    iterator = EpochIterator(ArrayAdapter(X, X, batch_size=4), steps_per_epoch=2)
    assert read(iterator, 1) == [[[0, 1, 2, 3], [4, 5, 6, 7]]]
    with pytest.warns(UserWarning, match=re.escape(RAN_OUT_WARNING)):
        assert read(iterator, 1) == [[[8, 9]]]
    assert RAN_OUT_WARNING.startswith("Your input ran out of data; interrupting training. ")
    assert read(iterator, 1) == [[[0, 1, 2, 3], [4, 5, 6, 7]]]
    assert iterator.state_dict() == {"pass_index": 1, "batch_in_pass": 2, "batch_in_epoch": 0}
    assert iterator.steps == 2


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_a_resumed_iterator_reads_the_same_batches_in_the_same_order():
    reference = EpochIterator(ArrayAdapter(X, X, batch_size=3, shuffle=True, seed=11), steps_per_epoch=3)
    everything = read(reference, 4)

    first = EpochIterator(ArrayAdapter(X, X, batch_size=3, shuffle=True, seed=11), steps_per_epoch=3)
    head = read(first, 1)
    epoch = first.epoch()
    head.append([ids(next(epoch))])  # stopped one batch into the second epoch
    saved = first.state_dict()

    resumed = EpochIterator(ArrayAdapter(X, X, batch_size=3, shuffle=True, seed=0), steps_per_epoch=3)
    resumed.load_state_dict(saved)
    resumed.set_seed(11)
    rest = [ids(b) for b in resumed.epoch()]
    assert head[0] == everything[0]
    assert saved == {"pass_index": 0, "batch_in_pass": 4, "batch_in_epoch": 1}
    assert head[1] + rest == everything[1]
    assert read(resumed, 2) == everything[2:]


def test_a_position_at_the_end_of_a_pass_gives_an_empty_rest_of_epoch_then_a_new_pass():
    iterator = EpochIterator(ArrayAdapter(X, X, batch_size=5))
    iterator.load_state_dict({"pass_index": 0, "batch_in_pass": 2})
    assert read(iterator, 2) == [[], [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]]


def test_a_dataloader_keeps_one_live_iterator_across_short_epochs():
    created = []

    class Loader(torch.utils.data.DataLoader):
        def __iter__(self):
            created.append(1)
            return super().__iter__()

    iterator = EpochIterator(get_adapter(Loader(torch.from_numpy(X), batch_size=4)), steps_per_epoch=1)
    assert [[b[:, 0].long().tolist() for b in iterator.epoch()] for _ in range(4)] == [
        [[0, 1, 2, 3]], [[4, 5, 6, 7]], [[8, 9]], [[0, 1, 2, 3]]]
    assert len(created) == 2


def test_a_generator_that_runs_out_is_exhausted():
    source = ((torch.ones(2, 1), torch.ones(2, 1)) for _ in range(3))
    iterator = EpochIterator(get_adapter(source), steps_per_epoch=2)
    assert len(list(iterator.epoch())) == 2
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        assert len(list(iterator.epoch())) == 1
    assert iterator.exhausted


def test_a_generator_read_to_its_end_without_steps_is_one_epoch():
    iterator = EpochIterator(get_adapter(iter([(torch.ones(2, 1),)] * 3)))
    assert len(list(iterator.epoch())) == 3
    assert not iterator.exhausted
    assert list(iterator.epoch()) == []
    assert iterator.exhausted


class Nothing(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter(())


@pytest.mark.parametrize("source", [
    lambda: iter([]),
    lambda: torch.utils.data.DataLoader(Nothing()),
])
def test_data_that_yields_nothing_is_an_error(source):
    with pytest.raises(ValueError, match=r"The data yielded no batches \((IterableAdapter|DataLoaderAdapter)\)"):
        list(EpochIterator(get_adapter(source())).epoch())


@pytest.mark.parametrize("make, message", [
    (lambda: get_adapter(np.zeros((0, 2))), "The data is empty: received 0 samples"),
    (lambda: get_adapter(torch.utils.data.TensorDataset(torch.zeros(0, 2))),
     "The data is empty: the TensorDataset has 0 samples"),
    (lambda: get_adapter(torch.utils.data.DataLoader(torch.zeros(0, 2))),
     "The data is empty: the DataLoader has 0 batches"),
])
def test_empty_data_is_refused_when_the_adapter_is_built(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_pinning_happens_only_when_asked(monkeypatch):
    pinned, gathered = [], []
    monkeypatch.setattr(tree, "pin", lambda data: pinned.append(data) or data)

    def fake_pinned_empty(shape, dtype):
        gathered.append(shape)
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(tree, "pinned_empty", fake_pinned_empty)
    list(EpochIterator(ArrayAdapter(X, X, batch_size=4)).epoch())
    list(EpochIterator(ArrayAdapter(X, X, batch_size=4, shuffle=True)).epoch())
    list(EpochIterator(get_adapter(iter([(torch.ones(2, 1),)]))).epoch())
    assert pinned == [] and gathered == []

    list(EpochIterator(ArrayAdapter(X, X, batch_size=4, pin_memory=True)).epoch())
    assert len(pinned) == 6  # x and y of three sliced batches
    batches = list(EpochIterator(ArrayAdapter(X, X, batch_size=4, shuffle=True, pin_memory=True)).epoch())
    assert gathered == [(4, 1), (4, 1), (4, 1), (4, 1), (2, 1), (2, 1)]  # gathered straight into pinned memory
    assert sorted(sum((ids(b) for b in batches), [])) == list(range(10))
    list(EpochIterator(get_adapter(iter([(torch.ones(2, 1),)]), pin_memory=True)).epoch())
    assert len(pinned) == 7


def test_an_epoch_cut_short_by_the_caller_does_not_shorten_the_next_one():
    iterator = EpochIterator(ArrayAdapter(X, X, batch_size=2), steps_per_epoch=3)
    iterator.load_state_dict({"pass_index": 0, "batch_in_pass": 0, "batch_in_epoch": 1})
    epoch = iterator.epoch()
    assert [ids(next(epoch)) for _ in range(1)] == [[0, 1]]  # the caller stops reading here
    assert [ids(b) for b in iterator.epoch()] == [[2, 3], [4, 5], [6, 7]]


class _ListAdapter:
    """An adapter whose passes are plain iterators (no ``close``), as a custom one may be."""

    repeatable = True
    num_batches = 5

    def iterate(self, pass_index, start=0):
        return iter([(pass_index, index) for index in range(start, 5)])


@pytest.mark.parametrize("move", ["close", "load_state_dict"])
def test_an_iterator_closed_or_repositioned_mid_epoch_continues_from_the_new_position(move):
    iterator = EpochIterator(_ListAdapter(), steps_per_epoch=4)
    seen = []
    for batch in iterator.epoch():
        seen.append(batch)
        if len(seen) == 2:
            if move == "close":
                iterator.close()
            else:
                iterator.load_state_dict({"pass_index": 3, "batch_in_pass": 2, "batch_in_epoch": 0})
    if move == "close":  # The same pass, from the batch after the last one read.
        assert seen == [(0, 0), (0, 1), (0, 2), (0, 3)]
    else:
        assert seen == [(0, 0), (0, 1), (3, 2), (3, 3)]
