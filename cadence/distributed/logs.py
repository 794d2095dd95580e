"""Logs over all ranks: metric states summed across processes before results are read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cadence.distributed import core
from cadence.logs import MetricLogs, to_python


def reduce_logs(model: Any, logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``logs`` as a plain dict of floats whose values hold for all ranks together.

    Every rank must call this at the same point (it is one collective). The state tensors of
    the model's metrics (``Metric.state_tensors()``: sums over samples) are summed over ranks
    into a copy, the results are computed from the sums, and each metric's own state is left
    as it was, so it goes on accumulating this rank's batches. A key of ``logs`` that names one
    of ``model.metrics`` gets that metric's global result, also when a custom ``train_step``
    returned ``{m.name: m.result() for m in self.metrics}``; any other tensor value is averaged
    over ranks; other values (Python numbers, strings) are kept as this rank has them.

    Args:
        model: The model whose ``metrics`` produced the logs.
        logs: A lazy :class:`~cadence.logs.MetricLogs`, a mapping, or ``None``.

    Returns:
        A new ``dict`` of Python values, the same on every rank.
    """
    if logs is None:
        return {}
    if isinstance(logs, MetricLogs):
        metrics = list(logs._metrics)
        logs = {m.name: None for m in metrics}
    else:
        metrics = list(getattr(model, "metrics", []))
    by_name = {m.name: m for m in metrics}
    extra = [
        key for key, value in logs.items()
        if key not in by_name and isinstance(value, torch.Tensor) and value.numel() == 1
    ]
    states = [t for m in metrics for t in m.state_tensors()]
    saved = [t.detach().clone() for t in states]
    values = [logs[key].detach().reshape(()).to(torch.float64).clone() for key in extra]
    core.all_reduce_sum(states + values)
    try:
        # Read the results before the local states come back (a result may alias a state).
        results = to_python({key: by_name[key].result() for key in logs if key in by_name})
    finally:
        with torch.no_grad():
            for tensor, local in zip(states, saved, strict=True):
                tensor.copy_(local)
    out: dict[str, Any] = {}
    world = core.world_size()
    for key, value in logs.items():
        if key in results:
            out[key] = results[key]
        elif key in extra:
            out[key] = values[extra.index(key)] / world
        else:
            out[key] = value
    return to_python(out)
