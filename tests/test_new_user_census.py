"""The second bad-input census: what a new user tried that the first
(test_bad_input.py) did not cover, for outputs, secrets, case files, printing and late
checks (runs left in the wrong state: test_run_states_census.py). Each kind below is one
test; each holds the README's promise: one line on stderr naming what, where and how to
fix, exit status 1, nothing written, nothing replaced that is not a regular file the
user named, and no secret printed or stored."""

from __future__ import annotations

import os
import stat

import pytest

from promed_agents.storage import TraceStore

from helpers import one_line, run, store_with_a_run


@pytest.fixture
def store_url(sqlite_url):
    return store_with_a_run(sqlite_url)


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
    html = out.read_text()
    assert html.count("<td>existing</td>") == 1
    assert html.count("<h3>existing</h3>") == 2  # its top questions and its consultations


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


class _Answering:
    """A chat-completions server that answers every turn "answer: A"."""

    @staticmethod
    def handler():
        from fake_http import JsonHandler

        class Handler(JsonHandler):
            def respond(self, body):
                return {"id": "c", "object": "chat.completion", "created": 0,
                        "model": body.get("model", "m"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant",
                                                 "content": "answer: A"}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                  "total_tokens": 2}}

        return Handler


@pytest.fixture(scope="module")
def server_spec():
    """``openai:m@http://user:PASSWORD@127.0.0.1:PORT/v1``: a server that answers."""
    from fake_http import serve

    with serve(_Answering.handler()) as base:
        yield "openai:m@" + base.replace("http://", f"http://user:{SECRET}@")


def _stored_text(url: str) -> str:
    """Every value in every table of the SQLite store, as one string."""
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return "\n".join(db.iterdump())


@pytest.mark.parametrize("args", [
    ["consult", "--cases", "1", "--doctor", "{server}"],
    ["consult", "--cases", "1", "--doctor", "fake:question: Any fever?||answer: A",
     "--patient", "llm:{server}"],
    ["eval", "--cases", "1", "--modes", "proactive", "--doctor", "{server}"],
    ["mcts", "--experiment", "m", "--cases", "1", "--iterations", "1",
     "--doctor", "fake:question: Any fever?||answer: A", "--proposer", "{server}"],
    ["shapley", "--cases", "1", "--scorer", "{server}"],
], ids=["doctor", "patient", "eval", "proposer", "scorer"])
def test_no_model_spec_password_is_printed_or_stored(store_url, server_spec, args):
    args = [a.replace("{server}", server_spec) for a in args]
    result = run(*args, "--db", store_url)
    assert SECRET not in result.output and SECRET not in result.stderr
    assert SECRET not in _stored_text(store_url)
    with TraceStore(store_url) as store:
        last = store.count_episodes()
    shown = run("traces", "show", str(last), "--db", store_url)
    assert SECRET not in shown.output


# -- case files ----------------------------------------------------------------------------

def _good_record() -> dict:
    import json

    from malformed_inputs import GOOD

    return json.loads(GOOD)


def test_case_files_as_editors_and_datasets_ship_them_are_read(sqlite_url, tmp_path):
    import codecs
    import gzip
    import json

    good = json.dumps(_good_record())
    (tmp_path / "bom.jsonl").write_bytes(codecs.BOM_UTF8 + good.encode() + b"\n")
    (tmp_path / "cases.jsonl.gz").write_bytes(gzip.compress(good.encode() + b"\n"))
    for name in ("bom.jsonl", "cases.jsonl.gz"):
        result = run("cases", "import", tmp_path / name, "--db", sqlite_url)
        assert result.exit_code == 0, result.output
    with TraceStore(sqlite_url) as store:
        assert store.count_cases() == 1  # the same case, read twice


@pytest.mark.parametrize("kind, problem", [
    ("utf-16", "UTF-16 text, not UTF-8 (save it as UTF-8"),
    ("surrogate", "holds \\ud800, half of a UTF-16 pair"),
    ("deep", "JSON nested too deeply"),
    ("option-twice", "the key 'A' appears twice in one object"),
    ("not-gzip", "not a gzip file"),
])
def test_case_files_that_cannot_be_read_as_they_are_meant(sqlite_url, tmp_path, kind,
                                                          problem):
    import json

    record = _good_record()
    path = tmp_path / ("cases.jsonl.gz" if kind == "not-gzip" else "cases.jsonl")
    if kind == "utf-16":
        path.write_bytes((json.dumps(record) + "\n").encode("utf-16"))
    elif kind == "surrogate":
        record["id"] = "case-\ud800"
        path.write_text(json.dumps(record) + "\n")
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    elif kind == "option-twice":
        path.write_text(json.dumps(record).replace('"options": {', '"options": {"A": "x", ')
                        + "\n")
    else:
        path.write_text(json.dumps(record) + "\n")
    assert problem in one_line(run("cases", "import", path, "--db", sqlite_url))
    with TraceStore(sqlite_url) as store:
        assert store.count_cases() == 0


# -- printing ------------------------------------------------------------------------------

def test_listings_keep_ids_on_one_line_and_in_80_columns(sqlite_url, tmp_path):
    import json

    first, second = _good_record(), _good_record()
    first["id"], second["id"] = "x" * 10_000, "a\nb"
    second["question"] = "Another question?"
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    assert run("cases", "import", path, "--db", sqlite_url).exit_code == 0
    listed = run("cases", "list", "--db", sqlite_url, env={"COLUMNS": "80"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, listed.stdout
    assert any("a\\x0ab" in line for line in lines)


@pytest.mark.parametrize("args", [["cases", "list", "--format", "json"],
                                  ["traces", "show", "1"], ["report", "--out", "-"]])
def test_standard_output_on_a_full_device_is_one_line(store_url, args):
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "promed_agents.cli", *args, "--db",
                               store_url], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "cannot write to standard output: No space left on device" in lines[0]


# -- settings checked before the work -----------------------------------------------------

def test_a_cache_that_is_a_file_is_named_before_the_conversion(store_url, tmp_path):
    import subprocess
    import sys

    (tmp_path / "cache").write_text("a file")  # a fresh process: nothing loaded yet
    done = subprocess.run([sys.executable, "-m", "promed_agents.cli", "consult", "--cases",
                           "1", "--doctor", "local:smollm2", "--db", store_url],
                          env={**os.environ, "PROMED_CACHE": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "$PROMED_CACHE" in lines[0] and "is a file, not a folder" in lines[0]


@pytest.mark.parametrize("damage", ["config.json", "model.safetensors"])
def test_a_damaged_local_checkpoint_is_refused_up_front(store_url, tmp_path, damage):
    from helpers import counts

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / damage).write_bytes(b"\x00garbage, cut off")
    before = counts(store_url)
    line = one_line(run("consult", "--cases", "1", "--doctor", f"local:{folder}", "--db",
                        store_url))
    assert damage in line and "damaged" in line
    assert counts(store_url) == before


def test_the_demo_checks_its_doctor_before_making_its_store(tmp_path):
    where = tmp_path / "demo.db"
    line = one_line(run("demo", "--doctor", "nope:x", "--db", where))
    assert "Unsupported provider='nope'" in line
    assert not where.exists()


def test_checkpoints_that_are_a_folder_are_one_line(store_url, tmp_path):
    result = run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--checkpoints",
                 tmp_path, "--db", store_url)
    assert "it is a folder" in one_line(result)


def test_a_store_on_a_read_only_filesystem_can_be_listed(tmp_path):
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)]
                      ).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        from promed_agents.loader import bundled_sample

        with TraceStore(f"sqlite:///{mount / 's.db'}") as store:
            store.import_cases(bundled_sample()[:2])
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        listed = run("cases", "list", "--db", mount / "s.db")
        assert listed.exit_code == 0, listed.output
        assert "2 of 2 case(s)" in listed.stdout
    finally:
        subprocess.run(["umount", str(mount)], check=False)
