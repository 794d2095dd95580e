r"""Remote and cloud paths (``s3://``, ``gs://``, ``memory://``, ...) through ``fsspec``.

:mod:`cadence.io` sends a path here when it names a URL whose protocol is not the local file
system; a local path (or a ``file://`` URL, turned into a local path by :func:`local_path`)
keeps io's own atomic writes (temporary file, fsync, rename).

On an object store a file is whole or absent: what cadence writes goes to a local temporary
file first, then one ``put`` uploads it (an object store publishes an object only once its
upload is complete), so a reader, or a run restarted after a kill, never sees part of a file.
Rotation keeps its rule (at least one complete state at every instant): the previous state is
copied to its ``.prev`` name on the server before the new one replaces it.

Connection settings (endpoint, credentials) come from the usual places of each file system: for
``s3://`` the AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) or fsspec's
configuration (``fsspec.config.conf["s3"] = {"endpoint_url": ...}``, or the environment variable
``FSSPEC_S3_ENDPOINT_URL``). ``s3://`` needs ``s3fs`` and ``gs://`` ``gcsfs``: the ``remote``
extra, ``pip install "cadence[remote]"``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import unquote, urlsplit

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_EXTRAS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def protocol(path: str | os.PathLike) -> str | None:
    """Return the URL protocol of ``path`` (``"s3"``, ``"file"``, ...), or None for a plain path."""
    if not isinstance(path, str):
        return None  # A pathlib.Path is always local.
    found = _URL.match(path)
    return found.group(1).lower() if found else None


def is_remote(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a URL that cadence reads and writes through fsspec.

    ``file://`` URLs are local (see :func:`local_path`); so is every path without a protocol.
    """
    return protocol(path) not in (None, "file", "local")


def local_path(path: str | os.PathLike) -> str | os.PathLike:
    """Return ``path`` with a ``file://`` URL turned into the local path it names.

    Anything else is returned unchanged. ``file:///tmp/x`` gives ``/tmp/x``; ``file://host/x``
    with a host other than ``localhost`` is refused.

    Raises:
        ValueError: For a ``file://`` URL naming another host.
    """
    if protocol(path) not in ("file", "local"):
        return path
    parts = urlsplit(os.fspath(path))
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"A file:// URL must name a file on this machine (file:///path); received: {path!r}."
        )
    return unquote(parts.path)


def join(folder: str | os.PathLike, name: str) -> str | os.PathLike:
    """Join a file name to a folder, local (``os.path.join``) or remote (with ``/``)."""
    if is_remote(folder):
        return os.fspath(folder).rstrip("/") + "/" + name
    return os.path.join(local_path(folder), name)


def filesystem(path: str) -> tuple[Any, str]:
    """Return ``(fsspec file system, path within it)`` for a remote URL.

    Raises:
        ImportError: If fsspec, or the package the protocol needs, is not installed; the message
            says what to install.
    """
    try:
        import fsspec
    except ImportError as error:
        raise ImportError(
            f"Remote paths such as {path!r} need fsspec: pip install 'cadence[remote]'."
        ) from error
    try:
        return fsspec.core.url_to_fs(path)
    except ImportError as error:
        package = _EXTRAS.get(protocol(path) or "", "the fsspec implementation of this protocol")
        raise ImportError(
            f"Remote paths such as {path!r} need {package}: pip install 'cadence[remote]' "
            f"(or pip install {package}). ({error})"
        ) from error


def read_bytes(path: str) -> bytes:
    """Return the bytes of a remote file.

    Raises:
        FileNotFoundError: If it does not exist.
    """
    fs, inner = filesystem(path)
    try:
        return fs.cat_file(inner)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such remote file: '{path}'.") from None


def exists(path: str) -> bool:
    """Return whether a remote file exists (asking the server, not a cached listing)."""
    fs, inner = filesystem(path)
    with contextlib.suppress(Exception):  # Not every file system caches listings.
        fs.invalidate_cache(inner)
    return bool(fs.exists(inner)) and not fs.isdir(inner)


def isdir(path: str) -> bool:
    """Return whether a remote path is a folder (a prefix holding objects, on object stores)."""
    fs, inner = filesystem(path)
    with contextlib.suppress(Exception):
        fs.invalidate_cache(inner)
    return bool(fs.isdir(inner))


def remove(path: str) -> bool:
    """Remove a remote file; return whether it existed."""
    fs, inner = filesystem(path)
    try:
        fs.rm_file(inner)
    except FileNotFoundError:
        return False
    return True


def copy(source: str, target: str) -> None:
    """Copy a remote file to another name on the same file system (server-side where possible)."""
    fs, inner = filesystem(source)
    fs.copy(inner, filesystem(target)[1])


def put_bytes(path: str, data: bytes) -> None:
    """Upload ``data`` as the remote file ``path``, whole or not at all."""
    with open_write(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def open_write(
    path: str, mode: str = "wb", encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a local temporary file that is uploaded as the remote file ``path`` when the block ends.

    If the block raises, nothing is uploaded and the remote file is untouched. The temporary file
    is removed in every case.

    Args:
        path: The remote file.
        mode: ``"wb"`` for bytes, ``"w"`` or ``"wt"`` for text.
        encoding: Text encoding for text modes (``"utf-8"`` by default).
        newline: Passed to ``open`` in text modes.

    Yields:
        The open local file to write to.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"open_write mode must be 'wb', 'w' or 'wt'; received: mode={mode!r}")
    fs, inner = filesystem(path)
    name = f"cadence-upload-{os.getpid()}-{secrets.token_hex(4)}"
    local = os.path.join(tempfile.gettempdir(), name)
    try:
        if mode == "wb":
            f = open(local, "xb")  # noqa: SIM115 (closed below, before the upload)
        else:
            f = open(local, "x", encoding=encoding or "utf-8", newline=newline)  # noqa: SIM115
        with f:
            yield f
        parent = inner.rsplit("/", 1)[0] if "/" in inner else ""
        if parent:
            with contextlib.suppress(Exception):  # Object stores have no folders to create.
                fs.makedirs(parent, exist_ok=True)
        fs.put_file(local, inner)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local)


def read_any(path: str | os.PathLike) -> bytes:
    """Return the bytes of a file, local (a path or ``file://`` URL) or remote."""
    if is_remote(path):
        return read_bytes(os.fspath(path))
    with open(local_path(path), "rb") as f:
        return f.read()


def exists_any(path: str | os.PathLike) -> bool:
    """Return whether a file exists, local (a path or ``file://`` URL) or remote."""
    if is_remote(path):
        return exists(os.fspath(path))
    return os.path.isfile(local_path(path))


class RemoteLockedError(RuntimeError):
    """Another run holds the lock object of a remote folder."""


class RemoteLock:
    """An exclusive lock on a remote folder: a lock object created only if it does not exist.

    Object stores have no locks that the OS drops when a process dies, so the lock is an object,
    ``<folder>/.lock``, written with an exclusive create (S3's ``If-None-Match: *``; fsspec's
    ``mode="create"``) and holding the holder's host, process id and start time. A second run
    is refused, naming the holder. A lock left by a process that no longer runs on this same
    machine is taken over; one left by another machine cannot be checked and must be deleted by
    hand (the message says which object), as a killed run on a lost machine cannot remove it.

    Args:
        folder: The remote folder to lock (a URL).
        owner: Who takes the lock, for the message (``"BackupAndRestore"``).
    """

    def __init__(self, folder: str, owner: str) -> None:
        self.url = str(join(folder, ".lock"))
        self.owner = owner
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RemoteLockedError` naming its holder."""
        if self.held:
            return
        import json
        import socket
        import time

        fs, inner = filesystem(self.url)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        for _ in range(2):
            try:
                fs.pipe_file(inner, json.dumps(me).encode(), mode="create")
                self.held = True
                return
            except FileExistsError:
                holder = self._holder(fs, inner)
                if not _dead_here(holder, me["host"]):
                    break
                remove(self.url)  # Its process died on this machine: take the lock over.
        raise RemoteLockedError(
            f"{self.owner}: '{self.url[: -len('/.lock')]}' is in use by process "
            f"{holder.get('pid', '?')} on host {holder.get('host', '?')} (lock object "
            f"'{self.url}'). Use another folder, or delete the lock object if that run is gone."
        )

    def release(self) -> None:
        """Remove the lock object, if this object holds it."""
        if self.held:
            remove(self.url)
            self.held = False

    @staticmethod
    def _holder(fs: Any, inner: str) -> dict[str, Any]:
        import json

        try:
            found = json.loads(fs.cat_file(inner))
        except (FileNotFoundError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}


def _dead_here(holder: dict[str, Any], host: str) -> bool:
    """Return whether ``holder`` is a process of this host that no longer runs."""
    pid = holder.get("pid")
    if holder.get("host") != host or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # It runs, as another user.
        return False
    return False
