"""Timing of callbacks: the slow-hook check and the per-callback profile table."""

from __future__ import annotations

import warnings
from typing import Any

#: Batches of each mode (train, test, predict) run before the slow-hook check starts timing.
WARMUP_BATCHES = 2
#: Batches of each mode whose hooks and steps the slow-hook check times, after the warm-up.
TIMED_BATCHES = 5
#: A hook is reported as slow only if its mean time is also at least this many seconds.
SLOW_HOOK_FLOOR_SECONDS = 1e-3
#: The pseudo-callback that profiling charges the conversion of logs to Python floats to.
LOGS_LABEL = "(logs to floats)"

MODES = ("train", "test", "predict")


class SlowCheck:
    """The timing state of the slow-hook check for one mode."""

    __slots__ = ("batches", "batch_start", "batch_time", "hook_time")

    def __init__(self) -> None:
        self.batches = 0
        self.batch_start = 0.0
        self.batch_time = 0.0
        self.hook_time: dict[tuple[str, str], float] = {}

    @property
    def measuring(self) -> bool:
        """Whether the warm-up batches are over (this batch's hooks and step are timed)."""
        return self.batches >= WARMUP_BATCHES


def callback_labels(callbacks: list[Any]) -> dict[int, str]:
    """Name each callback by its class, numbering those that share a class name."""
    counts: dict[str, int] = {}
    labels: dict[int, str] = {}
    for callback in callbacks:
        name = type(callback).__name__
        counts[name] = counts.get(name, 0) + 1
        labels[id(callback)] = name if counts[name] == 1 else f"{name}#{counts[name]}"
    return labels


def warn_slow(check: SlowCheck) -> None:
    """Warn once for each callback hook whose mean time exceeded the mean batch time."""
    batch_mean = check.batch_time / TIMED_BATCHES
    for (label, hook), total in check.hook_time.items():
        mean = total / TIMED_BATCHES
        if mean > batch_mean and mean >= SLOW_HOOK_FLOOR_SECONDS:
            warnings.warn(
                f"Callback method `{hook}` of {label} is slow compared to the batch time "
                f"(batch time: {batch_mean:.4f}s vs `{hook}` time: {mean:.4f}s, means over "
                f"{TIMED_BATCHES} batches). Check your callbacks.",
                UserWarning,
                stacklevel=4,
            )


def format_callback_times(rows: list[dict[str, Any]]) -> str:
    """Format :meth:`CallbackList.callback_times` as a table, one line per callback and hook."""
    if not rows:
        return "Callback times: no callback overrides any hook that ran."
    width = max(len("callback"), *(len(row["callback"]) for row in rows))
    hook_width = max(len("hook"), *(len(row["hook"]) for row in rows))
    lines = [
        "Callback times:",
        f"{'callback':<{width}}  {'hook':<{hook_width}}  {'calls':>8}  {'total s':>10}  "
        f"{'mean ms':>10}",
    ]
    for row in rows:
        lines.append(
            f"{row['callback']:<{width}}  {row['hook']:<{hook_width}}  {row['calls']:>8}  "
            f"{row['total_s']:>10.4f}  {row['mean_s'] * 1000:>10.4f}"
        )
    return "\n".join(lines)
