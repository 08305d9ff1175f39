from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select

from promed_agents.storage.column_types import PackedArray, UtcDateTime


def test_round_trip_through_sqlite_keeps_values_and_types():
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True),
                  Column("ids", PackedArray("int32")), Column("lp", PackedArray("float32")))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [
            {"ids": [0, 1, -5, 2**31 - 1], "lp": [-0.25, 0.0, 3.5]},
            {"ids": None, "lp": []},
        ])
        rows = connection.execute(select(table.c.ids, table.c.lp).order_by(table.c.id)).all()
    assert rows[0] == ([0, 1, -5, 2**31 - 1], [-0.25, 0.0, 3.5])
    assert rows[1] == (None, [])


def test_stored_compactly_as_four_bytes_per_value():
    packed = PackedArray("float32").process_bind_param([1.0] * 100, dialect=None)
    assert isinstance(packed, bytes) and len(packed) == 400


def test_rejects_bad_dtype_and_out_of_range_ids():
    with pytest.raises(ValueError, match="dtype must be one of"):
        PackedArray("int64")
    with pytest.raises(OverflowError):
        PackedArray("int32").process_bind_param([2**40], dialect=None)


def test_timestamps_come_back_aware_in_utc():
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True),
                  Column("at", UtcDateTime()))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    plus_two = timezone(timedelta(hours=2))
    with engine.begin() as connection:
        connection.execute(insert(table), [{"at": datetime(2026, 1, 1, 12, tzinfo=plus_two)},
                                           {"at": datetime(2026, 1, 1, 12)}, {"at": None}])
        values = connection.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
    assert values[0] == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    assert values[0].tzinfo is timezone.utc
    assert values[1] == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert values[2] is None
