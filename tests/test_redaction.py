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


@pytest.mark.parametrize(("text", "shown"), [
    ("openai:m@http://user:S3cret@127.0.0.1:1/v1", "openai:m@http://user:***@127.0.0.1:1/v1"),
    ("llm:vllm:m@https://u:p@h/v1", "llm:vllm:m@https://u:***@h/v1"),
    ("doctor openai:a@http://u:x@h/v1, scorer vllm:b@http://v:y@k/v1 failed",
     "doctor openai:a@http://u:***@h/v1, scorer vllm:b@http://v:***@k/v1 failed"),
    ("openai:m@http://h:8000/v1?api_key=sk-123", "openai:m@http://h:8000/v1?api_key=***"),
])
def test_passwords_in_model_specs_and_messages_are_masked(text, shown):
    assert without_password(text) == shown


def test_configurations_are_masked_through_their_nesting():
    from promed_agents.redaction import redacted

    config = {"doctor": "openai:m@http://u:pw@h/v1", "steps": 3,
              "models": ["local:smollm2", {"judge": "openai:j@http://u:pw@h/v1"}]}
    assert "pw" not in str(redacted(config))
    assert redacted(config)["steps"] == 3 and redacted(config)["models"][0] == "local:smollm2"
