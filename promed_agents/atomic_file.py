"""Files written whole or not at all: exports, datasets, reports.

case -> ... -> trace in SQL -> **JSONL exports, SFT data, report.html**

:func:`atomic_writer` writes to a temporary file beside the target and renames it into
place only when the writing finished, so a crash, a full disk or an error never leaves a
half-written file (and never replaces a good one with it). The file gets the permissions
a plain ``open`` would give (``0o666`` minus the umask), not ``mkstemp``'s private
``0o600``.

Renaming over the target is right for a regular file only: it would turn a device, a
named pipe or a symbolic link into a plain file. :func:`check_output_path` refuses those
(and folders) before anything is written; commands call it up front, before their work.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from promed_agents.errors import OutputError

STANDARD_OUTPUT = "-"
"""The output path that means standard output, where a command takes it."""


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_output_path(path: str | Path) -> Path:
    """``path`` as a file an atomic write may create or replace: missing, or a regular
    file. A folder, a symbolic link, a device, a named pipe or a socket is an
    :class:`~promed_agents.errors.OutputError` (writing would replace it with a file)."""
    path = Path(path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    kind = _kind(mode)
    if kind is None:
        return path
    if kind == "a folder":
        raise OutputError(f"{path} is a folder; give the path of a file (in it or "
                          "elsewhere)")
    where = f" (to {os.readlink(path)})" if kind == "a symbolic link" else ""
    hint = " or - for standard output" if kind in ("a device", "a named pipe") else ""
    raise OutputError(f"{path} is {kind}{where}; writing would replace it with a file, so "
                      f"give the path of a regular file{hint}")


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text handle (UTF-8) whose content becomes ``path`` when the block ends.

    A ``path`` that :func:`check_output_path` refuses, or one that cannot be created, is
    an :class:`~promed_agents.errors.OutputError` before anything is written; a write
    that fails (a full disk) is one too, and leaves the old file as it was."""
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        check_output_path(path)  # nothing put a link or a device there meanwhile
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        room = "free some space or " if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; it was left as it "
                          f"was ({room}give another path)") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
