"""Stored text made safe to show: control characters written out, the rest untouched."""

from __future__ import annotations

from promed_agents.display_text import without_controls


def test_control_characters_are_written_out_and_text_is_kept():
    assert without_controls("a\x1b[2Jb\x07c\x9bd\x7f") == "a\\x1b[2Jb\\x07c\\x9bd\\x7f"
    assert without_controls("line\n\tnext 中文 [/INST]") == "line\n\tnext 中文 [/INST]"
    assert without_controls(3) == "3"
