"""Exclusive locks that the OS releases when their process dies, and cleanup of dead writers' files.

A run takes a :class:`FileLock` on what it writes for its whole length (a backup folder, a CSV
file it appends to), so a second run on the same path is refused at its start, with a message
naming the path and the process that holds it, instead of mixing two runs' files. The lock is
``fcntl.flock`` on a small lock file: the OS drops it when its process exits or is killed
(even by SIGKILL), so a restarted run is never blocked by a dead one. Where ``fcntl`` does not
exist (Windows), no lock is taken.

:func:`remove_stale_temp_files` removes the hidden temporary files (``.NAME.tmp-PID-HEX``)
that :func:`cadence.io.atomic_write` leaves when its process is killed mid-write, but only when
process ``PID`` no longer runs on this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the run goes on without one.
    fcntl = None  # type: ignore[assignment]

PathLike = str | os.PathLike

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


class LockedError(RuntimeError):
    """Another live process holds the lock of a path this run wants to write."""


class FileLock:
    """An exclusive, non-blocking lock held through an open lock file.

    Args:
        lock_file: The lock file (created when needed; it holds the holder's process id).
        owner: Who takes the lock, for the error message (``"BackupAndRestore"``).
        what: What the lock protects, for the error message (``"backup_dir '/runs/a'"``).
    """

    def __init__(self, lock_file: PathLike, owner: str, what: str) -> None:
        self.lock_file = Path(lock_file)
        self.owner = owner
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`LockedError` naming the holder's process id.

        Taking a lock this object already holds does nothing.
        """
        if self._fd is not None or fcntl is None:
            return
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # Retried only when the file was replaced while being locked.
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise LockedError(
                    f"{self.owner}: {self.what} is in use by another run (process "
                    f"{holder if holder is not None else 'unknown'} holds its lock "
                    f"'{self.lock_file}'). Use one path per run, or stop the other run first."
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder may have removed the file between our open and our lock: then the
            # lock is on a file nobody else sees, and must be taken again on the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_file))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise LockedError(f"{self.owner}: could not lock '{self.lock_file}' for {self.what}.")

    def release(self, remove: bool = True) -> None:
        """Release the lock (and remove its file, with ``remove``); nothing if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if remove:  # Removed while still locked, so no other process can hold this inode.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_file)
        os.close(fd)  # Closing the last descriptor drops the flock.

    def __del__(self) -> None:  # An abandoned lock is released with its object.
        with contextlib.suppress(Exception):
            self.release(remove=False)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def pid_is_running(pid: int) -> bool:
    """Return whether process ``pid`` exists on this machine (a zombie counts as dead)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # Someone else's live process.
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return False
    return True


def remove_stale_temp_files(folder: PathLike, name: str | None = None) -> list[Path]:
    """Remove temporary files of :func:`cadence.io.atomic_write` whose writer is dead.

    Args:
        folder: The folder to clean (nothing happens if it is not a folder).
        name: Only the temporary files of this file name (``".log.csv.tmp-PID-HEX"`` for
            ``"log.csv"``); all of them when ``None``.

    Returns:
        The files removed. A file whose process ``PID`` still runs is kept.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        found = _TEMP_RE.match(path.name)
        if found is None or (name is not None and found.group("name") != name):
            continue
        if pid_is_running(int(found.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
