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


# -- runs left in the wrong state ----------------------------------------------------------

def _stopping_backend(name: str, signum: int, after: int) -> str:
    """A doctor backend that answers ``after`` times, then the process gets ``signum``."""
    import signal as signals

    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from promed_agents.backends import register_backend

    calls = [0]

    class Stopping(BaseChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            calls[0] += 1
            if calls[0] > after:
                if signum == signals.SIGINT:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signum)
                import time

                time.sleep(0.5)  # the signal arrives meanwhile
            return ChatResult(generations=[ChatGeneration(message=AIMessage("answer: A"))])

        @property
        def _llm_type(self) -> str:
            return "stopping"

    register_backend(name, lambda spec: Stopping())
    return f"{name}:x"


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("command", ["consult", "eval"])
def test_a_stopped_run_is_interrupted_says_how_to_resume_and_a_rerun_replaces_it(
        store_url, signame, code, command):
    import signal as signals

    doctor = _stopping_backend(f"stop-{signame.lower()}-{command}",
                               getattr(signals, signame), after=2)
    args = [command, "--cases", "6", "--concurrency", "1", "--experiment", "stopped",
            "--doctor", doctor] + (["--modes", "proactive"] if command == "eval" else [])
    line = one_line(run(*args, "--db", store_url), code=code)
    name = "stopped" if command == "consult" else "stopped-proactive"
    assert f"run {name} was stopped by {signame}" in line and "--experiment stopped" in line
    with TraceStore(store_url) as store:
        stored = store.experiment(name)
        assert stored.status == "interrupted" and "to replace it" in stored.status_reason
    report = run("report", "--out", "-", "--db", store_url)
    assert "status-interrupted" in report.stdout
    again = [a if a != doctor else "fake:answer: A" for a in args]
    rerun = run(*again, "--db", store_url)
    assert rerun.exit_code == 0, rerun.output
    with TraceStore(store_url) as store:
        assert store.experiment(name).status == "complete"
        assert store.count_episodes(experiment_id=store.experiment_id(name)) == 6


def test_a_run_that_stops_on_a_full_disk_is_failed(store_url, monkeypatch):
    from promed_agents.errors import StoreError

    def full(self, episode):
        raise StoreError("cannot use the database: database or disk is full")

    monkeypatch.setattr(TraceStore, "record_episode", full)
    line = one_line(run("consult", "--cases", "2", "--doctor", "fake:answer: A",
                        "--experiment", "full", "--db", store_url))
    assert "disk is full" in line
    monkeypatch.undo()
    with TraceStore(store_url) as store:
        assert store.experiment("full").status == "failed"


def test_a_killed_run_shows_as_not_finished(store_url):
    with TraceStore(store_url) as store:  # what SIGKILL leaves: a run still "running"
        run_id = store.create_experiment("killed", "consult", status="running")
        store.record_episode(episode(experiment_id=run_id))
    report = run("report", "--out", "-", "--db", store_url)
    assert "status-running" in report.stdout and "killed" in report.stdout
    compared = run("eval", "compare", "existing", "killed", "--db", store_url)
    assert "warning: run killed is running" in compared.stderr


def test_a_failed_run_has_a_row_and_cannot_be_compared(store_url):
    with TraceStore(store_url) as store:
        run_id = store.create_experiment("dead", "consult")
        store.finish_experiment(run_id, "failed", "the server went away")
    report = run("report", "--out", "-", "--db", store_url)
    assert "<td>dead</td>" in report.stdout and "the server went away" in report.stdout
    line = one_line(run("eval", "compare", "existing", "dead", "--db", store_url))
    assert "run 'dead' has no finished consultation" in line and "failed" in line


def test_a_database_that_is_not_a_store_is_left_alone(tmp_path):
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    before = other.read_bytes()
    for args in (["cases", "list"], ["consult", "--cases", "1", "--doctor", "fake:answer: A"]):
        line = one_line(run(*args, "--db", other))
        assert "is not a ProMed store" in line and "invoices" in line
        assert "promed db upgrade" in line
    assert other.read_bytes() == before
    made = run("db", "upgrade", "--db", other)  # the user asks for it: then it is one
    assert made.exit_code == 0, made.output
    assert run("cases", "list", "--db", other).exit_code == 0


def test_an_older_revision_is_refused_not_ignored(store_url):
    line = one_line(run("db", "upgrade", "0001", "--db", store_url))
    assert "past '0001'" in line and "only go forward" in line


@pytest.mark.parametrize("args, problem", [
    (["train", "grpo", "--output", "{tmp}/g", "--loss-type", "bogus", "--cases", "1"],
     "--loss-type 'bogus' is not one TRL computes"),
    (["consult", "--case-ids", "imedqa-0,imedqa-0", "--doctor", "fake:answer: A"],
     "names 'imedqa-0' more than once"),
    (["consult", "--cases", "1000", "--doctor", "fake:answer: A"],
     "--cases 1000: the store holds 50 case(s)"),
    (["eval", "--cases", "1", "--modes", "proactive,proactive", "--doctor", "fake:answer: A"],
     "each once"),
    (["train", "sft", "--from", "search", "--output", "{tmp}/a-file"], "is a file, not a folder"),
    (["train", "grpo", "--output", "{tmp}/a-file", "--cases", "1"], "is a file, not a folder"),
    (["consult", "--resume", "--experiment", "nope", "--checkpoints", "{tmp}/ck.sqlite",
      "--doctor", "fake:answer: A"], "no experiment named 'nope'"),
    (["mcts", "--experiment", "existing", "--cases", "1", "--checkpoints", "{tmp}/ck.sqlite",
      "--doctor", "fake:answer: A"], "is not an MCTS search"),
], ids=["loss-type", "case-ids-twice", "too-many-cases", "modes-twice", "sft-output-file",
        "grpo-output-file", "resume-nothing", "mcts-not-a-search"])
def test_checked_before_anything_is_written(store_url, tmp_path, args, problem):
    from helpers import contents

    with TraceStore(store_url) as store:
        store.create_experiment("search", "mcts", {"kind": "mcts", "doctor": "local:smollm2"})
    (tmp_path / "a-file").write_text("mine")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = contents(store_url)
    assert problem in one_line(run(*args, "--db", store_url))
    assert contents(store_url) == before
    assert not (tmp_path / "ck.sqlite").exists() and not (tmp_path / "g").exists()
    assert (tmp_path / "a-file").read_text() == "mine"


def test_an_in_memory_store_is_refused():
    line = one_line(run("consult", "--cases", "1", "--doctor", "fake:answer: A",
                        "--db", "sqlite://"))
    assert "in-memory database keeps nothing" in line


def test_a_resume_under_another_doctor_is_refused(store_url, tmp_path):
    checkpoints = str(tmp_path / "ck.sqlite")
    first = run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--experiment", "r",
                "--checkpoints", checkpoints, "--db", store_url)
    assert first.exit_code == 0, first.output
    line = one_line(run("consult", "--resume", "--experiment", "r", "--checkpoints",
                        checkpoints, "--doctor", "fake:answer: B", "--db", store_url))
    assert "ran with --doctor fake:answer: A, not fake:answer: B" in line


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
