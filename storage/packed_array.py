"""A compact binary column for per-token arrays (token ids, log-probs, token rewards).

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> training

Turns carry one number per generated token; as JSON these would dominate the database.
:class:`PackedArray` stores them as little-endian int32 or float32 bytes (BLOB on SQLite,
BYTEA on PostgreSQL) and hands back plain Python lists.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_CODES = {"int32": "i", "float32": "f"}


class PackedArray(TypeDecorator[list]):
    """A list of int32 or float32 numbers stored as bytes; None stays NULL."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, dtype: str) -> None:
        if dtype not in _CODES:
            raise ValueError(f"dtype must be one of {sorted(_CODES)}, got {dtype!r}")
        super().__init__()
        self.dtype = dtype
        self._code = _CODES[dtype]
        if array(self._code).itemsize != 4:  # pragma: no cover - exotic platforms
            raise RuntimeError(f"array code {self._code!r} is not 4 bytes on this platform")

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        packed = array(self._code, value)
        if sys.byteorder != "little":  # pragma: no cover
            packed.byteswap()
        return packed.tobytes()

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> list | None:
        if value is None:
            return None
        unpacked = array(self._code)
        unpacked.frombytes(bytes(value))
        if sys.byteorder != "little":  # pragma: no cover
            unpacked.byteswap()
        return unpacked.tolist()
