"""Files written whole or not at all: exports, datasets, reports.

case -> ... -> trace in SQL -> **JSONL exports, SFT data, report.html**

:func:`atomic_writer` writes to a temporary file beside the target and renames it into
place only when the writing finished, so a crash or an error never leaves a half-written
file (and never replaces a good one with it). The file gets the permissions a plain
``open`` would give (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from promed_agents.errors import OutputError


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text handle (UTF-8) whose content becomes ``path`` when the block ends.

    A ``path`` that is a folder, or one that cannot be created, is an
    :class:`~promed_agents.errors.OutputError` before anything is written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the path of a file (in it or "
                          "elsewhere)")
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
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
