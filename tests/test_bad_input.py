"""Bad input census: every input gets one line on stderr, no traceback, a
non-zero exit, and nothing written. Malformed case records are in malformed_inputs.py
(tested by test_cli and test_loader); here the rest."""

from __future__ import annotations

import pytest

from promed_agents.storage import TraceStore

from helpers import counts, run
from malformed_inputs import GOOD, MALFORMED


@pytest.fixture
def store_url(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.create_experiment("existing", "consult")
    return sqlite_url


FILES = [("empty", b"", "no cases in the file"),
         ("blank-lines", b"\n  \n\n", "no cases in the file"),
         ("not-utf8", GOOD.encode() + b"\n\xff\xfe\xfa\n", "not UTF-8 text")]

COMMANDS = [
    (["consult", "--cases", "1", "--doctor", "nope:x"], "Unsupported provider='nope'"),
    (["eval", "--cases", "1", "--doctor", "nope:x"], "Unsupported provider='nope'"),
    (["mcts", "--experiment", "m", "--cases", "1", "--doctor", "nope:x"],
     "Unsupported provider='nope'"),
    (["consult", "--cases", "1", "--doctor", "local:/nonexistent/model"], "no config.json"),
    (["train", "grpo", "--output", "/nonexistent/out", "--model", "nope:x"],
     "training needs a local model"),
    (["shapley", "--cases", "1", "--scorer", "nope:x"], "token log-probabilities"),
    (["consult", "--case-ids", "no-such-case", "--doctor", "fake:answer: A"],
     "case 'no-such-case' is not in the store"),
    (["eval", "--modes", "curious", "--doctor", "fake:answer: A"], "--modes 'curious'"),
    (["eval", "compare", "nope", "existing"], "no experiment named 'nope'"),
    (["train", "sft", "--from", "nope", "--output", "/nonexistent/out"],
     "no experiment named 'nope'"),
    (["train", "grpo", "--output", "/nonexistent/out", "--experiment", "existing",
      "--cases", "1"], "is not a GRPO run"),
    (["report", "--experiment", "nope", "--out", "/nonexistent/r.html"],
     "no experiment named 'nope'"),
    (["traces", "show", "999"], "episode 999 is not in the store"),
]

URLS = [("mysql://u@host/db", "mysql"), ("postgresql://u@127.0.0.1:1/x", "cannot open"),
        ("sqlite:///{file}/x.db", ""), ("not a url at all://", "")]


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("name, data, problem", FILES, ids=[f[0] for f in FILES])
def test_unreadable_case_files(store_url, tmp_path, name, data, problem):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(data)
    before = counts(store_url)
    assert problem in one_line(run("cases", "import", path, "--db", store_url))
    assert counts(store_url) == before


@pytest.mark.parametrize("args, problem", COMMANDS, ids=[" ".join(c[0][:2]) + f"-{i}"
                                                          for i, c in enumerate(COMMANDS)])
def test_bad_arguments_and_model_specs(store_url, args, problem):
    before = counts(store_url)
    with TraceStore(store_url) as store:
        runs = len(store.list_experiments())
    assert problem in one_line(run(*args, "--db", store_url))
    assert counts(store_url) == before
    with TraceStore(store_url) as store:
        assert len(store.list_experiments()) == runs


@pytest.mark.parametrize("url, problem", URLS, ids=[u[0].split(":")[0] + str(i)
                                                    for i, u in enumerate(URLS)])
def test_bad_database_urls(url, problem, tmp_path):
    a_file = tmp_path / "plain-file"
    a_file.write_text("not a directory")  # so no database can be made under it
    assert problem in one_line(run("cases", "list", "--db", url.format(file=a_file)))


def test_the_census_has_at_least_thirty_malformed_case_files():
    assert len(MALFORMED) + len(FILES) >= 30


PASSWORD = "S3cretPa%25ss%40w"
"""Percent-encoded: the password is ``S3cretPa%ss@w``."""


def _placeholder(param, tmp_path) -> str:
    if param.name == "episode_id":
        return "1"
    if param.name == "path":  # a case file that imports, so the database is reached
        (tmp_path / "cases.jsonl").write_text(GOOD + "\n", encoding="utf-8")
        return str(tmp_path / "cases.jsonl")
    if param.name in ("out", "output"):
        return str(tmp_path / param.name)
    return "imedqa-0"


NEEDED = {("mcts",): ["--experiment", "m"]}
"""Options a command refuses to run without, beyond those click marks required."""


def _commands_taking(option: str) -> list[tuple[list[str], object]]:
    import typer

    from promed_agents.cli import app

    found = []

    def walk(command, path):
        if any(option in getattr(p, "opts", ()) for p in command.params):
            found.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    return found


def _invocation(path, command, tmp_path) -> list[str]:
    args = list(path) + NEEDED.get(tuple(path), [])
    for param in command.params:
        if param.required:
            value = _placeholder(param, tmp_path)
            args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


DB_COMMANDS = _commands_taking("--db")
CHECKPOINT_COMMANDS = _commands_taking("--checkpoints")


def _no_password_in(result) -> None:
    shown = result.output + result.stderr
    assert "S3cret" not in shown and "Pa%ss" not in shown and "Pa%25ss" not in shown, shown
    assert "Traceback" not in shown, shown


@pytest.mark.parametrize("path, command", DB_COMMANDS,
                         ids=[" ".join(p) or "promed" for p, _ in DB_COMMANDS])
def test_no_command_prints_a_database_password(path, command, tmp_path):
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db"
    result = run(*_invocation(path, command, tmp_path), "--db", url)
    assert "is not valid" in one_line(result)
    _no_password_in(result)


@pytest.mark.parametrize("path, command", CHECKPOINT_COMMANDS,
                         ids=[" ".join(p) for p, _ in CHECKPOINT_COMMANDS])
def test_no_command_prints_a_checkpoint_password(path, command, store_url, tmp_path):
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"
    before = counts(store_url)
    result = run(*_invocation(path, command, tmp_path), "--cases", "1", "--experiment",
                 "with-checkpoints", "--doctor", "fake:answer: A", "--checkpoints", url,
                 "--db", store_url)
    assert "cannot open the checkpoints 'postgresql://u:***@127.0.0.1:1/db'" in \
        one_line(result)
    _no_password_in(result)
    # Checked before anything is written: no sample imported, no experiment left behind
    # (which would make the corrected rerun refuse the name).
    assert counts(store_url) == before
    with TraceStore(store_url) as store:
        assert [e.name for e in store.list_experiments()] == ["existing"]


@pytest.mark.parametrize("path, command", CHECKPOINT_COMMANDS,
                         ids=[" ".join(p) for p, _ in CHECKPOINT_COMMANDS])
def test_unwritable_checkpoints_fail_before_the_store_changes(path, command, store_url,
                                                              tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    result = run(*_invocation(path, command, tmp_path), "--cases", "1", "--experiment",
                 "with-checkpoints", "--doctor", "fake:answer: A", "--checkpoints",
                 tmp_path / "a-file" / "checkpoints.sqlite", "--db", store_url)
    assert "cannot open the checkpoints" in one_line(result)
    with TraceStore(store_url) as store:
        assert [e.name for e in store.list_experiments()] == ["existing"]


def test_every_command_with_a_database_is_in_the_census():
    assert len(DB_COMMANDS) >= 19 and len(CHECKPOINT_COMMANDS) == 2
