r"""Atomic, safe file I/O for every file cadence writes or reads.

Files are written to a temporary file in the same folder, fsynced and renamed into place, so a
reader (or a run restarted after SIGKILL) sees the old or the new complete file, never a mix.
Loading unpickles nothing beyond what ``torch.load(weights_only=True)`` allows; other pickled
objects raise :class:`UnsafeFileError`: cadence never runs code from files. A cadence state file
is the bytes of an ordinary ``torch.save`` behind one header line,
``cadence-state v1 <payload size> <sha256 of the payload, hex>\n``, so a truncated or altered
file is detected on load (:class:`CorruptFileError`).

A path may also be a URL: ``file://`` names a local file, and other protocols (``s3://``,
``gs://``, ``memory://``, ...) are read and written through fsspec by :mod:`cadence.remote`,
where a file is written locally and then uploaded whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import secrets
import stat
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from cadence import checksums, remote

PathLike = str | os.PathLike

_MAGIC = b"cadence-state v"
_VERSION = 1
_HEADER_RE = re.compile(rb"cadence-state v(\d+) (\d+) ([0-9a-f]{64})\n")
_MAX_HEADER = 128
_ALLOWED = "tensors, numbers, strings, bools, None, lists, tuples or dicts"
_LEAVES = (torch.Tensor, torch.nn.Parameter, int, float, bool, complex, str, type(None))
_KEYS = (str, int, float, bool, type(None))


class _FileError(ValueError):
    _prefix = ""

    def __init__(self, path: PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self._prefix} '{self.path}': {reason}.")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class CorruptFileError(_FileError):
    """A file is truncated, altered, or in no format cadence can read."""

    _prefix = "Corrupt file"


class UnsafeFileError(_FileError):
    """A file holds pickled Python objects that safe (``weights_only``) loading refuses."""

    _prefix = "Refusing to load"


def _fsync_dir(directory: Path) -> None:
    """Fsync a folder so a rename inside it is durable; best effort where unsupported."""
    with contextlib.suppress(OSError):  # Windows cannot open a folder.
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "wb", encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` atomically when the block succeeds.

    The temporary file, ``.<name>.tmp-<pid>-<random>`` in the folder of ``path``, is flushed,
    fsynced and renamed into place on success, then the folder is fsynced (where the platform
    allows). If the block raises, it is removed and ``path`` is untouched. Parent folders are
    created; an existing file's permission bits are kept. A process killed mid-write leaves its
    hidden temporary file behind, never a half-written ``path``.

    Args:
        path: The file to write.
        mode: ``"wb"`` for bytes, ``"w"`` or ``"wt"`` for text.
        encoding: Text encoding for text modes (``"utf-8"`` by default).
        newline: Passed to ``open`` in text modes (``""`` for CSV files).

    Yields:
        The open file object to write to.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write mode must be 'wb', 'w' or 'wt'; received: mode={mode!r}")
    if remote.is_remote(path):  # An object store: written locally, then put whole.
        with remote.open_write(os.fspath(path), mode, encoding, newline) as f:
            yield f
        return
    target = Path(remote.local_path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, without newline translation."""
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _check(obj: Any, where: str, on_path: set[int]) -> None:
    kind = type(obj)
    if kind in _LEAVES:
        return
    if kind not in (dict, OrderedDict, list, tuple):
        raise TypeError(
            f"Cannot save state: value at '{where}' has type '{kind.__name__}'; "
            f"expected {_ALLOWED}."
        )
    if id(obj) in on_path:
        raise ValueError(f"Cannot save state: value at '{where}' contains itself.")
    on_path.add(id(obj))
    if kind in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in _KEYS:
                raise TypeError(
                    f"Cannot save state: a key of '{where}' has type '{type(key).__name__}'; "
                    "expected str, int, float, bool or None keys."
                )
            _check(value, str(key) if where == "<root>" else f"{where}.{key}", on_path)
    else:
        for i, value in enumerate(obj):
            _check(value, f"{where}[{i}]", on_path)
    on_path.discard(id(obj))


def _encode_state(obj: Any) -> bytes:
    _check(obj, "<root>", set())
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    return f"cadence-state v{_VERSION} {len(payload)} {digest}\n".encode() + payload


def save_state(obj: Any, path: PathLike) -> None:
    """Save a nested state to ``path`` atomically, in cadence's checksummed format.

    Args:
        obj: Nested tensors, numbers, strings, bools, None, lists, tuples and dicts.
        path: The file to write; parent folders are created.

    Raises:
        TypeError: If ``obj`` holds another type (or ``ValueError`` if it contains itself), raised
            before any file is touched; the message names the key path (``a.b[0]``) and type.
    """
    atomic_write_bytes(path, _encode_state(obj))


def _refusal(message: str) -> str:
    found = re.search(r"unsupported GLOBAL ([\w.]+)", message)
    if found:
        what = f"a pickled Python object ({found.group(1)})"
    else:
        found = re.search(r"^\s*(Unsupported[^\n]*)", message, re.MULTILINE)
        what = f"pickle data ({found.group(1).strip()})" if found else "a pickled Python object"
    return (
        f"it contains {what} that weights_only loading refuses, and cadence never runs code from "
        "files (if you trust the file and its classes, see torch.serialization.add_safe_globals)"
    )


def _torch_load(data: memoryview, path: PathLike, map_location: Any, checked: bool) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeFileError(path, _refusal(str(err))) from None
    except (EOFError, RuntimeError) as err:  # Damage, unless the checksum proved the bytes good.
        first = (str(err).splitlines() or ["unexpected end of data"])[0]
        if checked or not (isinstance(err, EOFError) or "PytorchStreamReader" in first):
            raise
        raise CorruptFileError(path, f"unreadable torch file ({first})") from None


def _decode_state(data: bytes, path: PathLike, map_location: Any) -> Any:
    view = memoryview(data)
    if not data:
        raise CorruptFileError(path, "empty file (0 bytes)")
    if data[: len(_MAGIC)] != _MAGIC[: len(data)]:
        if data.startswith(b"PK\x03\x04"):  # A zip file of a plain torch.save: check its CRCs.
            problem = checksums.zip_problem(data)
            if problem is not None:
                raise CorruptFileError(path, problem)
            return _torch_load(view, path, map_location, checked=True)
        if data.startswith(b"\x80"):  # torch's legacy format: no checksum to verify.
            return _torch_load(view, path, map_location, checked=False)
        raise CorruptFileError(
            path, f"not a cadence state file or a torch file (starts with {data[:16]!r})"
        )
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0 and len(data) < _MAX_HEADER:
        raise CorruptFileError(path, f"truncated: incomplete header ({len(data)} bytes)")
    header = _HEADER_RE.fullmatch(data[: end + 1]) if end >= 0 else None
    if header is None:
        raise CorruptFileError(path, f"malformed header {data[: max(end, 0) or _MAX_HEADER]!r}")
    version, size, digest = int(header.group(1)), int(header.group(2)), header.group(3).decode()
    if version != _VERSION:
        raise CorruptFileError(
            path, f"unsupported format version {version}; this cadence reads version {_VERSION}"
        )
    found = len(data) - end - 1
    if found != size:
        problem = "truncated" if found < size else "trailing data"
        raise CorruptFileError(path, f"{problem}: expected {size} bytes, found {found}")
    if hashlib.sha256(view[end + 1 :]).hexdigest() != digest:
        raise CorruptFileError(path, "checksum mismatch (the file's bytes were altered)")
    return _torch_load(view[end + 1 :], path, map_location, checked=True)


def load_state(path: PathLike, map_location: Any = "cpu") -> Any:
    """Load a state saved by :func:`save_state`, verifying its size and checksum.

    Files of a plain ``torch.save`` are accepted too: the CRC-32 of every entry of its zip archive
    is verified (torch's legacy non-zip format has no checksum to verify). Loading always
    uses ``weights_only=True``; ``map_location`` is passed to ``torch.load``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CorruptFileError: If the file is truncated, altered, or in no known format.
        UnsafeFileError: If the file holds pickled objects that safe loading refuses.
    """
    return _decode_state(remote.read_any(path), path, map_location)


def load_torch_file(path: PathLike, map_location: Any = "cpu") -> Any:
    """Load a file written by anyone's ``torch.save`` (or by :func:`save_state`) safely.

    This is :func:`load_state` under the name that says what it is for, e.g. a user's
    ``torch.save(model.state_dict(), "w.pt")``: ``weights_only=True``, and a file holding other
    pickled objects raises :class:`UnsafeFileError` instead of running them.
    """
    return load_state(path, map_location)


def save_weights_file(state_dict: dict[str, torch.Tensor], path: PathLike) -> None:
    """Save model weights atomically, in the format the file's suffix names.

    ``.safetensors`` (any case) writes a safetensors file: no pickle, readable by other tools, a
    flat dict of str to tensor, with a SHA-256 in its metadata (see :mod:`cadence.checksums`),
    verified by :func:`load_weights_file`. Tensors are copied to
    the CPU; shared or non-contiguous ones are cloned, as safetensors refuses them. Any other
    suffix (``.pt``, ``.pth``, ``.bin``, ``.ckpt``, ...) gets cadence's checksummed torch format
    (see :func:`save_state`), which also takes nested states.

    Raises:
        TypeError: If the state does not fit the chosen format.
    """
    if Path(path).suffix.lower() != ".safetensors":
        save_state(state_dict, path)
        return
    from safetensors.torch import save

    tensors, seen = {}, set()
    for key, value in dict(state_dict).items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                "A .safetensors file holds a dict of str to tensor; received key "
                f"{key!r} with a value of type '{type(value).__name__}'."
            )
        tensor = value.detach().cpu()
        if not tensor.is_contiguous() or tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.contiguous().clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    atomic_write_bytes(path, checksums.seal_safetensors(save(tensors, metadata={"format": "pt"})))


def load_weights_file(path: PathLike, map_location: Any = "cpu") -> Any:
    """Load weights written by :func:`save_weights_file` or by a plain ``torch.save``.

    ``.safetensors`` files (``map_location`` is then a device) give a dict of str to tensor,
    after their checksum is verified when they carry one (every file cadence writes does); any
    other suffix is read by :func:`load_state`, with the same errors.
    """
    if Path(path).suffix.lower() != ".safetensors":
        return load_state(path, map_location)
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = remote.read_any(path)
    problem = checksums.safetensors_problem(data)
    if problem is not None:
        raise CorruptFileError(path, problem)
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise CorruptFileError(path, f"unreadable safetensors file ({err})") from None
    return {key: value.to(map_location) for key, value in tensors.items()}


def _looks_complete(path: PathLike) -> bool:
    """Tell whether ``path`` is a whole cadence state file: its size and checksum match its header.

    Only such a file may replace the previous backup, so a damaged newest file never pushes out
    the good one before it.
    """
    try:
        data = remote.read_any(path)
    except OSError:
        return False
    header = _HEADER_RE.match(data[:_MAX_HEADER])
    if header is None or len(data) != header.end() + int(header.group(2)):
        return False
    return hashlib.sha256(memoryview(data)[header.end():]).hexdigest() == header.group(3).decode()


def rotate_write(path: PathLike, obj: Any, prev_suffix: str = ".prev") -> None:
    """Save a state to ``path``, keeping the previous complete one at ``path + prev_suffix``.

    Invariant: at every instant at least one complete, valid state is on disk, even if the process
    is killed between any two system calls. The steps are:

    1. write the new state to ``path + ".next"`` and fsync it;
    2. if ``path`` is a complete state file (so a damaged ``path`` never overwrites a good
       previous one), ``os.replace(path, prev)`` and fsync the folder;
    3. ``os.replace(next, path)`` and fsync the folder.

    Before step 2 ``path`` is complete; between steps 2 and 3 the previous file is; after step 3
    ``path`` is. :func:`load_latest` reads ``path`` and falls back to the previous file. A ``.next``
    file left by a killed writer is overwritten by the next call; one left half-written by an
    error (no space left on the device) is removed at once. Use one writer per ``path``.

    Raises:
        TypeError: If ``obj`` holds types :func:`save_state` refuses; no file is touched then.
    """
    data = _encode_state(obj)
    if remote.is_remote(path):  # Each put is whole or absent: keep the previous, then replace.
        if _looks_complete(path):
            remote.copy(os.fspath(path), os.fspath(path) + prev_suffix)
        remote.put_bytes(os.fspath(path), data)
        return
    target = Path(remote.local_path(path))
    staged = target.with_name(target.name + ".next")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(staged, "wb") as f:  # A fixed name: a killed writer's leftover is overwritten.
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:  # A partial file (no space left, ...) is removed at once.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    if _looks_complete(target):
        os.replace(target, target.with_name(target.name + prev_suffix))
        _fsync_dir(target.parent)
    os.replace(staged, target)
    _fsync_dir(target.parent)


def load_latest(
    path: PathLike, map_location: Any = "cpu", prev_suffix: str = ".prev"
) -> tuple[Any, PathLike]:
    """Load the newest complete state written by :func:`rotate_write`.

    Tries ``path``, then ``path + prev_suffix``. A missing or corrupt ``path`` is skipped with a
    warning naming it and the reason. A file holding unsafe pickled objects is never skipped: its
    :class:`UnsafeFileError` is raised.

    Returns:
        ``(state, path_it_was_read_from)``.

    Raises:
        FileNotFoundError: If neither file exists.
        CorruptFileError: If every existing file is corrupt.
        UnsafeFileError: If a file holds pickled objects that safe loading refuses.
    """
    if remote.is_remote(path):
        newest: PathLike = os.fspath(path)
        previous: PathLike = os.fspath(path) + prev_suffix
    else:
        newest = Path(remote.local_path(path))
        previous = newest.with_name(newest.name + prev_suffix)
    problems = []
    for candidate in (newest, previous):
        try:
            return load_state(candidate, map_location), candidate
        except FileNotFoundError:
            reason = "missing"
        except CorruptFileError as err:
            reason = err.reason
            problems.append(f"'{candidate}': {reason}")
        if candidate is newest and remote.exists_any(previous):
            warnings.warn(
                f"Skipping backup '{newest}' ({reason}); loading '{previous}' instead.",
                stacklevel=2,
            )
    if not problems:
        raise FileNotFoundError(f"No backup found: neither '{newest}' nor '{previous}' exists.")
    raise CorruptFileError(newest, "no complete backup; " + "; ".join(problems))
