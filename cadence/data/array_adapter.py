"""ArrayAdapter: batches of in-memory arrays and tensors, by slicing or one gather per batch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from cadence.data import tree
from cadence.data.base import DataAdapter, pass_generator
from cadence.data.checks import check_lengths
from cadence.data.sharding import SAMPLE, shard_order


def _to_device_once(order: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Return a pass's order on ``device``: copied from page-locked memory to a GPU, no wait."""
    if device.type == "cuda":
        return order.pin_memory().to(device, non_blocking=True)
    return order.to(device)


class ArrayAdapter(DataAdapter):
    """Batches of in-memory arrays and tensors (and nests of them), by slicing or one gather.

    Args:
        x: Inputs: an array, a tensor, or a tuple/list/dict of them.
        y: Targets, same kinds, or ``None``.
        sample_weight: Per-sample weights (an array, or one per output), or ``None``.
        batch_size: Samples per batch; the last batch holds the rest.
        shuffle: Reorder the samples at every pass, with :func:`pass_generator`.
        seed: The run's data seed (part of the training state).
        pin_memory: Gather batches into page-locked memory.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.x = tree.map_structure(tree.to_tensor, x)
        self.y = tree.map_structure(tree.to_tensor, y) if y is not None else None
        self.sample_weight = (
            tree.map_structure(tree.to_tensor, sample_weight) if sample_weight is not None else None
        )
        self.num_samples = check_lengths(self.x, self.y, self.sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pin_memory = pin_memory
        self.num_batches = math.ceil(self.num_samples / batch_size)

    def shard_units(self) -> tuple[str, int]:
        """Return ``("sample", num_samples)``: arrays are cut between ranks by sample."""
        return SAMPLE, self.num_samples

    def iterate(self, pass_index: int, start: int = 0) -> Iterator[Any]:
        """Yield batches by slicing, or by one ``index_select`` per leaf when shuffling."""
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=pass_generator(self.seed, pass_index))
        if self.shard is not None:
            order = shard_order(order if order is not None else torch.arange(self.num_samples),
                                *self.shard)
        count = self.num_samples if order is None else len(order)
        size = self.batch_size
        # The pass's order on each device that holds data, moved there once (not per batch).
        orders: dict[torch.device, torch.Tensor] = {}

        def order_on(device: torch.device) -> torch.Tensor:
            if device not in orders:
                orders[device] = _to_device_once(order, device)
            return orders[device]

        x_all, y_all = self.x, self.y
        if (
            type(x_all) is torch.Tensor
            and type(y_all) is torch.Tensor
            and self.sample_weight is None
            and x_all.device == y_all.device
            and not (self.pin_memory and x_all.device.type == "cpu")
        ):
            # The common case, as a hand-written loop does it: two slices or two gathers, on
            # the device that holds the data.
            if order is not None and x_all.device.type != "cpu":
                order = order_on(x_all.device)
            for index in range(start, self.num_batches):
                begin = index * size
                end = min(begin + size, count)
                if order is None:
                    yield x_all[begin:end], y_all[begin:end]
                else:
                    rows = order[begin:end]
                    yield x_all.index_select(0, rows), y_all.index_select(0, rows)
            return
        for index in range(start, self.num_batches):
            begin = index * size
            end = min(begin + size, count)
            if order is None:
                def take(t, b=begin, e=end):
                    piece = t[b:e]
                    return tree.pin(piece) if self.pin_memory and piece.device.type == "cpu" else piece
            else:
                rows = order[begin:end]

                def take(t, r=rows, b=begin, e=end):
                    if t.device.type != "cpu":
                        return t.index_select(0, order_on(t.device)[b:e])
                    if self.pin_memory:
                        out = tree.pinned_empty((len(r), *t.shape[1:]), t.dtype)
                        return torch.index_select(t, 0, r, out=out)
                    return t.index_select(0, r)

            x = tree.map_structure(take, self.x)
            y = tree.map_structure(take, self.y) if self.y is not None else None
            sw = tree.map_structure(take, self.sample_weight) if self.sample_weight is not None else None
            yield tree.pack_x_y_sample_weight(x, y, sw)
