"""No hang, ever: a rank that fails makes every other rank fail, in bounded time, naming it.

A collective waits for every rank. When one rank's ``fit`` raises (in a step or a callback),
the others would wait in their next collective until its timeout (gloo's default is 30
minutes), or for ever if the failed process lingers (a notebook, cleanup code that catches
the error). So while ``fit``, ``evaluate`` or ``predict`` runs in a process group, each rank
keeps a watchdog thread that exchanges a one-line status with the other ranks' watchdogs over
a small gloo group of its own, every :data:`INTERVAL` seconds and at once when the status
changes:

- a rank whose call raises posts ``"<rank> failed: <exception>"`` (with the callback and hook
  cadence names in the exception's notes) and waits until the other ranks have received it
  (at most the collective timeout), then raises as usual;
- a rank that receives another's failure prints ``cadence.distributed.PeerFailure: rank R
  failed: ...`` to stderr and exits at once with status 1 (its own main thread may be blocked
  in a collective that can never complete, and nothing else can free it); under ``torchrun``
  the launcher then stops or restarts the whole group;
- a rank whose peer process died (killed, out of memory) is told by gloo within moments (the
  connection closes) and exits the same way, saying that a rank stopped answering.

The exchange's timeout (:func:`cadence.distributed.collective_timeout`) bounds everything else; set it
with :func:`cadence.distributed.set_timeout` or ``init_process_group(timeout=...)``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from cadence.distributed import core

#: Seconds between two status exchanges while nothing changes.
INTERVAL = 1.0
DONE = "done"

_active = threading.local()


def _side_group() -> Any:
    """Return a new gloo group of all ranks for one call's watchdogs (every rank makes it)."""
    return dist.new_group(backend="gloo", timeout=timedelta(seconds=core.collective_timeout()))


def describe(error: BaseException) -> str:
    """Return ``"Type: message"`` of an exception, with its notes (the callback and hook)."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return " ".join(text.split("\n"))


def _stop_this_rank(message: str) -> None:
    """Say why on stderr and end this process (its collectives may never complete)."""
    print(f"cadence.distributed.PeerFailure: {message}; rank {core.rank()} stops.",
          file=sys.stderr, flush=True)
    os._exit(1)


class Watchdog:
    """The status exchange of one ``fit``/``evaluate``/``predict`` call (see the module docs)."""

    def __init__(self, group: Any, interval: float = INTERVAL) -> None:
        self.group = group
        self.interval = interval
        self.status: str | None = None
        self.rounds = 0
        self.wake = threading.Event()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="cadence-watchdog", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        world = core.world_size()
        while True:
            if self.status is None:  # Once this rank has a final status, rounds follow at once.
                self.wake.wait(self.interval)
            self.wake.clear()
            mine = self.status
            statuses: list[Any] = [None] * world
            try:
                dist.all_gather_object(statuses, mine, group=self.group)
            except Exception as error:  # A peer's process is gone, or did not answer in time.
                if mine is None:
                    _stop_this_rank(f"a rank stopped answering ({describe(error)})")
                self._count_round()
                return
            self._count_round()
            failures = [(rank, status) for rank, status in enumerate(statuses)
                        if status not in (None, DONE)]
            if failures and mine is None:
                rank, status = failures[0]
                _stop_this_rank(f"rank {rank} failed: {status}")
            if all(status is not None for status in statuses):
                return

    def _count_round(self) -> None:
        with self.changed:
            self.rounds += 1
            self.changed.notify_all()

    def post(self, status: str) -> None:
        """Post this rank's final status and wait until the other ranks have had it."""
        with self.changed:
            target = self.rounds + 2  # A round may be under way with the old status.
        self.status = status
        self.wake.set()
        with self.changed:
            self.changed.wait_for(
                lambda: self.rounds >= target or not self.thread.is_alive(), timeout=core.collective_timeout()
            )

    def finish(self) -> None:
        """Say that this rank's call ended normally; wait for the exchange to end."""
        self.status = DONE
        self.wake.set()
        self.thread.join(core.collective_timeout())


@contextlib.contextmanager
def watch() -> Iterator[None]:
    """Run the block under a :class:`Watchdog` when a process group exists (no-op otherwise).

    Nested blocks (a callback calling ``evaluate`` inside ``fit``) share the outer watchdog.
    """
    if not core.is_initialized() or core.world_size() == 1 or getattr(_active, "dog", None):
        yield
        return
    dog = Watchdog(_side_group())
    _active.dog = dog
    try:
        yield
    except BaseException as error:
        dog.post(f"{describe(error)}")
        raise
    else:
        dog.finish()
    finally:
        _active.dog = None
        if not dog.thread.is_alive():  # Every rank's exchange is over: free its connections.
            dist.destroy_process_group(dog.group)
