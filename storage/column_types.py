"""Portable column types of the trace store.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> training

- :class:`PackedArray`: per-token arrays (token ids, log-probs, token rewards). Turns carry
  one number per generated token; as JSON these would dominate the database, so they are
  stored as little-endian int32 or float32 bytes (BLOB on SQLite, BYTEA on PostgreSQL) and
  handed back as plain Python lists.
- :class:`UtcDateTime`: timestamps that come back time-zone aware (UTC) on every backend;
  SQLite would otherwise return naive datetimes.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, LargeBinary
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


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC; naive inputs are taken as UTC, outputs are always aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


SQL_INT_MAX = 2**63 - 1
"""The largest integer SQLite and PostgreSQL's BIGINT hold."""


def row_limit(count: int | None) -> int | None:
    """A LIMIT the database takes: a count beyond 64 bits asks for every row."""
    return None if count is None or count > SQL_INT_MAX else count


def row_offset(offset: int) -> int:
    """An OFFSET the database takes: one beyond 64 bits is past every row anyway."""
    return min(offset, SQL_INT_MAX)
