"""Check an output path before any work, so a bad path fails at once, not after an epoch.

Callbacks that write files call these in ``on_train_begin``: a path that can never be written
(a folder where a file must go, a file where a folder must go, a parent that is a file, a
symbolic link to nothing) raises :class:`OutputPathError` naming the callback, the argument
and what is wrong, before the first batch. Only local paths are checked; a URL such as
``s3://...`` is left to the library that writes it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PathLike = str | os.PathLike

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the callback and the argument."""


def _is_url(path: str) -> bool:
    return bool(_URL.match(path))


def _problem_with_parents(path: Path) -> str | None:
    """Describe why the folders above ``path`` cannot be created, or return None."""
    for parent in path.parents:
        if os.path.islink(parent) and not parent.exists():
            target = os.readlink(parent)
            return (
                f"cannot be created: its parent '{parent}' is a symbolic link to '{target}', "
                "which does not exist"
            )
        if parent.exists():
            if not parent.is_dir():
                return f"cannot be created: its parent '{parent}' is a file, not a folder"
            return None
    return None


def check_output_folder(path: PathLike, owner: str, argument: str) -> None:
    """Raise :class:`OutputPathError` if ``path`` cannot be (or become) a writable folder.

    Args:
        path: The folder.
        owner: The callback, for the message (``"BackupAndRestore"``).
        argument: The argument that named the path (``"backup_dir"``).
    """
    text = os.fspath(path)
    if _is_url(text):
        return
    folder = Path(text)
    problem = None
    if os.path.islink(folder) and not folder.exists():
        problem = f"is a symbolic link to '{os.readlink(folder)}', which does not exist"
    elif folder.exists() and not folder.is_dir():
        problem = "is a file, not a folder"
    elif folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        problem = "is a folder this process cannot write to"
    else:
        problem = _problem_with_parents(folder)
    if problem is not None:
        raise OutputPathError(f"{owner}: {argument}={text!r} {problem}; expected a folder to write to.")


def check_output_file(path: PathLike, owner: str, argument: str) -> None:
    """Raise :class:`OutputPathError` if a file cannot be written at ``path``.

    Args:
        path: The file.
        owner: The callback, for the message (``"CSVLogger"``).
        argument: The argument that named the path (``"filename"``).
    """
    text = os.fspath(path)
    if _is_url(text):
        return
    file = Path(text)
    problem = None
    if file.is_dir():
        problem = "is a folder, not a file"
    elif file.parent.is_dir() and not os.access(file.parent, os.W_OK | os.X_OK):
        problem = f"is in the folder '{file.parent}', which this process cannot write to"
    else:
        problem = _problem_with_parents(file)
    if problem is not None:
        raise OutputPathError(f"{owner}: {argument}={text!r} {problem}; expected a file to write.")
