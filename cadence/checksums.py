"""Checksums of the file formats cadence reads besides its own: safetensors and torch zip files.

- A ``.safetensors`` file that cadence writes carries a SHA-256 in its metadata, under the key
  ``cadence_sha256``: the digest of its tensor table (names, dtypes, shapes, offsets), its other
  metadata and its data bytes. :func:`seal_safetensors` adds it, :func:`safetensors_problem`
  checks it. Other tools read the file as usual (the metadata is a plain string); a file
  without the key (written by another tool) is read without a check.
- A file of a plain ``torch.save`` is a zip archive whose every entry has a CRC-32, which
  ``torch.load`` does not verify; :func:`zip_problem` does. (cadence's own torch files have a
  SHA-256 header, see :mod:`cadence.io`; torch's legacy non-zip format has no checksum.)

The functions return a reason (a sentence fragment) when the bytes are damaged, None when good.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from typing import Any

SAFETENSORS_KEY = "cadence_sha256"
_MAX_HEADER = 100_000_000  # safetensors' own limit on its JSON header.


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(table: dict[str, Any], metadata: dict[str, str], data: memoryview) -> str:
    digest = hashlib.sha256(_canonical(table) + b"\n" + _canonical(metadata) + b"\n")
    digest.update(data)
    return digest.hexdigest()


def _split(data: bytes) -> tuple[dict[str, Any], int] | str:
    """Return ``(header, data offset)`` of a safetensors file, or the reason it is unreadable."""
    if len(data) < 8:
        return f"truncated: {len(data)} bytes, less than the 8-byte header size"
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_MAX_HEADER, len(data) - 8):
        return f"header size {size} exceeds the file ({len(data)} bytes)"
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (UnicodeDecodeError, ValueError) as error:
        return f"unreadable safetensors header ({error})"
    if not isinstance(header, dict):
        return "unreadable safetensors header (not a JSON object)"
    return header, 8 + size


def seal_safetensors(data: bytes) -> bytes:
    """Return the bytes of a safetensors file with its checksum added to the metadata."""
    found = _split(data)
    if isinstance(found, str):
        raise ValueError(f"cannot seal a safetensors file: {found}")
    header, offset = found
    metadata = dict(header.pop("__metadata__", None) or {})
    metadata.pop(SAFETENSORS_KEY, None)
    digest = _digest(header, metadata, memoryview(data)[offset:])
    header["__metadata__"] = {**metadata, SAFETENSORS_KEY: digest}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data on 8 bytes.
    return struct.pack("<Q", len(text)) + text + data[offset:]


def safetensors_problem(data: bytes) -> str | None:
    """Return why a safetensors file's bytes fail their checksum, or None (no checksum: None)."""
    found = _split(data)
    if isinstance(found, str):
        return found
    header, offset = found
    metadata = dict(header.pop("__metadata__", None) or {})
    expected = metadata.pop(SAFETENSORS_KEY, None)
    ends = [
        entry["data_offsets"][1] for entry in header.values()
        if isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2 and isinstance(entry["data_offsets"][1], int)
    ]
    size = len(data) - offset
    if ends and max(ends) > size:
        return f"truncated: the tensors need {max(ends)} bytes of data, the file has {size}"
    if expected is None:
        return None
    if _digest(header, metadata, memoryview(data)[offset:]) != expected:
        return "checksum mismatch (the file's bytes were altered)"
    return None


def zip_problem(data: bytes) -> str | None:
    """Return why a torch zip file's bytes fail their CRC-32 checks, or None when they pass."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                with archive.open(info) as entry:  # Reading to the end checks the CRC-32.
                    while entry.read(1 << 20):
                        pass
    except zipfile.BadZipFile as error:
        message = str(error)
        if "CRC" in message:
            return f"checksum mismatch in the zip entry ({message})"
        return f"damaged zip archive ({message})"
    except (zlib.error, EOFError, ValueError, NotImplementedError) as error:
        return f"damaged zip archive ({error})"
    return None
