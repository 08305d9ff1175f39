"""The second bad-input census: what a new user tried that the first
(test_bad_input.py) did not cover. Each kind below is one test; each holds the README's
promise: one line on stderr naming what, where and how to fix, exit status 1 (130 or 143
for a signal), nothing written, nothing replaced that is not a regular file the user
named, no secret printed or stored, and a run that did not finish shown as not
finished."""

from __future__ import annotations

import os
import stat

import pytest

from promed_agents.loader import bundled_sample
from promed_agents.storage import TraceStore

from helpers import episode, run


@pytest.fixture
def store_url(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases(bundled_sample())
        experiment_id = store.create_experiment("existing", "consult")
        store.record_episode(episode(experiment_id=experiment_id))
    return sqlite_url


def one_line(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


# -- output paths --------------------------------------------------------------------------

def _node(kind: str, tmp_path):
    """An existing path that is not a regular file, and how to tell it is still there."""
    path = tmp_path / kind
    if kind == "named-pipe":
        os.mkfifo(path)
        return path, lambda: stat.S_ISFIFO(path.lstat().st_mode)
    if kind == "symlink":
        target = tmp_path / "target.txt"
        target.write_text("kept")
        path.symlink_to(target)
        return path, lambda: path.is_symlink() and target.read_text() == "kept"
    if kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere.txt")
        return path, lambda: path.is_symlink() and not (tmp_path / "nowhere.txt").exists()
    if kind == "device":  # a copy of /dev/null: the real one must never be at stake
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
        return path, lambda: stat.S_ISCHR(path.lstat().st_mode)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["named-pipe", "symlink", "dangling-symlink", "device"])
@pytest.mark.parametrize("command", [["traces", "export", "{out}"],
                                     ["report", "--out", "{out}"]],
                         ids=["export", "report"])
def test_outputs_that_are_not_regular_files_are_refused(store_url, tmp_path, kind, command):
    path, still_there = _node(kind, tmp_path)
    args = [str(path) if a == "{out}" else a for a in command]
    line = one_line(run(*args, "--db", store_url))
    assert str(path) in line and "give the path of a regular file" in line
    assert still_there()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_regular_file_is_still_replaced_whole(store_url, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    result = run("traces", "export", out, "--db", store_url)
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") == 1 and '"case_id"' in out.read_text()


def test_standard_output_takes_the_report(store_url):
    result = run("report", "--out", "-", "--db", store_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!doctype html>")


def test_a_run_named_twice_in_the_report_is_shown_once(store_url, tmp_path):
    out = tmp_path / "r.html"
    result = run("report", "--experiment", "existing", "--experiment", "existing",
                 "--out", out, "--db", store_url)
    assert result.exit_code == 0, result.output
    assert out.read_text().count("<td>existing</td>") == 1


def test_a_full_disk_is_one_line_and_keeps_the_old_file(store_url, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    real_replace = os.replace

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    for args in (["traces", "export", out], ["report", "--out", out]):
        line = one_line(run(*args, "--db", store_url))
        assert "No space left on device" in line and "free some space" in line
    monkeypatch.setattr(os, "replace", real_replace)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


# -- secrets in model specs ----------------------------------------------------------------

SECRET = "S3cretPw"
SERVER = f"openai:m@http://user:{SECRET}@127.0.0.1:1/v1"


def _stored_text(url: str) -> str:
    """Every value in every table of the SQLite store, as one string."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return "\n".join(str(row) for line in db.iterdump() for row in [line])


@pytest.mark.parametrize("args", [
    ["consult", "--cases", "1", "--doctor", SERVER],
    ["consult", "--cases", "1", "--doctor", "fake:question: Any fever?||answer: A",
     "--patient", f"llm:{SERVER}"],
    ["eval", "--cases", "1", "--modes", "proactive", "--doctor", SERVER],
    ["mcts", "--experiment", "m", "--cases", "1", "--iterations", "1",
     "--doctor", "fake:question: Any fever?||answer: A", "--proposer", SERVER],
    ["shapley", "--cases", "1", "--scorer", SERVER],
], ids=["doctor", "patient", "eval", "proposer", "scorer"])
def test_no_model_spec_password_is_printed_or_stored(store_url, args):
    result = run(*args, "--db", store_url)
    assert SECRET not in result.output and SECRET not in result.stderr
    assert SECRET not in _stored_text(store_url)
    shown = run("traces", "show", "2", "--db", store_url)
    assert SECRET not in shown.output
