"""Files written whole or not at all."""

from __future__ import annotations

import os

import pytest

from promed_agents.atomic_file import atomic_writer


def test_the_file_appears_whole_with_plain_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_writer(target) as out:
        out.write("one\n")
        assert not target.exists()  # nothing visible until the block ends
        out.write("two\n")
    assert target.read_text() == "one\ntwo\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_folder_or_an_unwritable_place_is_refused_before_writing(tmp_path):
    from promed_agents.errors import OutputError

    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder; give the path of a file"):
        with atomic_writer(folder) as out:
            out.write("x")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        with atomic_writer(tmp_path / "a-file" / "out.txt") as out:
            out.write("x")
    assert list(folder.iterdir()) == []
