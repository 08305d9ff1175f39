"""List output: a table, JSON or CSV with the same rows, and no control characters."""

from __future__ import annotations

import json

from promed_agents.cli.listing import ListFormat, print_rows

ROWS = [(1, "a \x1b[2J", None, ["C"]), (2, "中文 [/INST]", 0.5, [])]


def test_json_and_csv_carry_the_same_rows(capsys):
    print_rows(("id", "text", "score", "answer"), ROWS, ListFormat.JSON, "t")
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"id": 1, "text": "a \x1b[2J", "score": None, "answer": ["C"]},
                    {"id": 2, "text": "中文 [/INST]", "score": 0.5, "answer": []}]
    print_rows(("id", "text", "score", "answer"), ROWS, ListFormat.CSV, "t")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["id,text,score,answer", '1,a \\x1b[2J,,"[""C""]"', "2,中文 [/INST],0.5,[]"]


def test_json_writes_c1_controls_as_escapes(capsys):
    print_rows(("text",), [("x\x9by",)], ListFormat.JSON, "t")
    out = capsys.readouterr().out
    assert "\x9b" not in out and json.loads(out) == [{"text": "x\x9by"}]


def test_a_table_shows_markup_as_text_and_missing_values_as_dashes(capsys):
    print_rows(("id", "text"), [(1, "[bold]x[/bold]"), (2, None)], ListFormat.TABLE, "t",
               wide="text")
    out = capsys.readouterr().out
    assert "[bold]x[/bold]" in out and "│ -" in out
