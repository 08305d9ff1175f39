"""The second bad-input census, for runs: a run that did not finish is stored and shown
as not finished, a rerun replaces or resumes it, and what a run cannot use is refused
before anything is written (one line, exit status 1, or 130/143 for a signal). Outputs,
secrets, case files and printing: test_new_user_census.py."""

from __future__ import annotations

import os

import pytest

from promed_agents.storage import TraceStore

from helpers import episode, one_line, run, store_with_a_run


@pytest.fixture
def store_url(sqlite_url):
    return store_with_a_run(sqlite_url)


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
