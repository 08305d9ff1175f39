from __future__ import annotations

import pytest

from promed_agents.redaction import without_password


@pytest.mark.parametrize(("where", "shown"), [
    ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:Pa%25ss%40w@host:5432/db", "postgresql://u:***@host:5432/db"),
    ("postgresql+psycopg://u:p@ss:w@rd@h/db", "postgresql+psycopg://u:***@h/db"),
    ("postgresql://u:a/b@h/db", "postgresql://u:***@h/db"),
    ("postgresql://h/db?user=u&password=s3cret&sslmode=require",
     "postgresql://h/db?user=u&password=***&sslmode=require"),
    ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
])
def test_passwords_are_masked(where, shown):
    assert without_password(where) == shown


@pytest.mark.parametrize("where", [
    "postgresql://u@h/db", "postgresql://h:5432/db", "sqlite:////tmp/a%b@c.db",
    "sqlite:///:memory:", "/data/x%y.sqlite", "promed.db", "",
])
def test_locations_without_a_password_are_unchanged(where):
    assert without_password(where) == where


def test_none_stays_none():
    assert without_password(None) is None
