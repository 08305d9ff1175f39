"""Bad input census: every input gets one line on stderr, no traceback, a
non-zero exit, and nothing written. Malformed case records are in malformed_inputs.py
(tested by test_cli and test_loader); here the rest."""

from __future__ import annotations

import re

import pytest

from promed_agents.storage import TraceStore

from helpers import contents, counts, one_line, run
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
    before = contents(store_url)
    assert problem in one_line(run(*args, "--db", store_url))
    assert contents(store_url) == before


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


HUGE = "99999999999999999999"
FAKE = ["--doctor", "fake:answer: A"]
INPUTS = [
    (["consult", "--cases", "1", "--doctor", "openai:m@notaurl"], "is not an http(s) URL"),
    (["eval", "--cases", "1", "--doctor", "vllm:m@http://:80/v1"], "has no host"),
    (["consult", "--cases", "1", "--temperature", "inf", *FAKE],
     "--temperature inf: give a finite number"),
    (["eval", "--cases", "1", "--temperature", "inf", *FAKE], "give a finite number"),
    (["mcts", "--experiment", "m", "--cases", "1", "--temperature", "inf", *FAKE],
     "give a finite number"),
    (["consult", "--case-ids", ",,", *FAKE], "--case-ids ',,' names nothing"),
    (["eval", "--case-ids", " , ", *FAKE], "names nothing"),
    (["consult", "--cases", "1", "--case-ids", "imedqa-0", *FAKE],
     "--case-ids and --cases both choose cases"),
    (["eval", "--split", "dev", "--case-ids", "imedqa-0", *FAKE], "both choose cases"),
    (["consult", "--cases", "1", "--sig-scorer", "nothing", *FAKE],
     "--sig-scorer nothing: no Shapley values are stored"),
    (["eval", "--cases", "1", "--sig-scorer", "nothing", *FAKE], "no Shapley values"),
    (["train", "grpo", "--output", "/nonexistent/out", "--model", "local:smollm2",
      "--cases", "1", "--sig-scorer", "nothing"], "no Shapley values"),
    (["consult", "--cases", HUGE, *FAKE], "the largest number it takes"),
    (["traces", "show", HUGE], "the largest number it takes"),
    (["cases", "list", "--offset", HUGE], "the largest number it takes"),
    (["traces", "list", "--status", "bogus"], "no episode status 'bogus'"),
    (["db", "upgrade", "nosuchrev"], "no schema revision 'nosuchrev'"),
]


@pytest.mark.parametrize("args, problem", INPUTS,
                         ids=[" ".join(a[:3]) + f"-{i}" for i, (a, _) in enumerate(INPUTS)])
def test_bad_values_are_one_line_before_anything_is_written(store_url, args, problem):
    before = counts(store_url)
    assert problem in one_line(run(*args, "--db", store_url))
    assert counts(store_url) == before  # not even the bundled sample
    with TraceStore(store_url) as store:
        assert [e.name for e in store.list_experiments()] == ["existing"]


def test_outputs_that_are_folders_are_refused(store_url, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for args in (["traces", "export", folder], ["report", "--out", folder]):
        assert f"{folder} is a folder" in one_line(run(*args, "--db", store_url))
    assert list(folder.iterdir()) == []


READ_ONLY = [["cases", "list"], ["cases", "show", "imedqa-0"], ["traces", "list"],
             ["traces", "show", "1"], ["traces", "export", "{tmp}/out.jsonl"],
             ["report", "--out", "{tmp}/r.html"], ["eval", "compare", "a", "b"],
             ["mcts", "show", "imedqa-0", "--experiment", "m"],
             ["shapley", "show", "imedqa-0"], ["db", "current"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=[" ".join(a[:2]) for a in READ_ONLY])
def test_reading_commands_do_not_create_a_database(args, tmp_path):
    where = tmp_path / "missing" / "store.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert f"the database {where} does not exist" in one_line(run(*args, "--db", where))
    assert not (tmp_path / "missing").exists() and not (tmp_path / "out.jsonl").exists()


def _damaged(kind, tmp_path, store_url) -> str:
    path = tmp_path / f"{kind}.db"
    if kind == "not-sqlite":
        path.write_text("these are notes, not a database\n" * 100)
    else:  # the first 5 KB of a real store
        path.write_bytes((tmp_path / "store.db").read_bytes()[:5000])
    return str(path)


@pytest.mark.parametrize("kind, problem", [("not-sqlite", "file is not a database"),
                                           ("truncated", "malformed")])
@pytest.mark.parametrize("args", [["cases", "list"], ["consult", "--cases", "1", *FAKE],
                                  ["cases", "import", "{good}"]], ids=["list", "consult",
                                                                       "import"])
def test_files_that_are_not_stores_are_one_line(kind, problem, args, store_url, tmp_path):
    (tmp_path / "good.jsonl").write_text(GOOD + "\n", encoding="utf-8")
    path = _damaged(kind, tmp_path, store_url)
    before = (tmp_path / f"{kind}.db").read_bytes()
    args = [a.replace("{good}", str(tmp_path / "good.jsonl")) for a in args]
    line = one_line(run(*args, "--db", path))
    assert "cannot open the database" in line and problem in line
    assert (tmp_path / f"{kind}.db").read_bytes() == before


def test_a_read_only_store_is_one_line_and_unchanged(store_url, tmp_path):
    read_only = f"sqlite:///file:{tmp_path / 'store.db'}?mode=ro&uri=true"
    before = counts(store_url)
    listed = run("cases", "list", "--db", read_only)
    assert listed.exit_code == 0, listed.output  # reading works
    line = one_line(run("consult", "--cases", "1", *FAKE, "--db", read_only))
    assert "attempt to write a readonly database" in line and "writable" in line
    assert counts(store_url) == before


def test_a_run_whose_every_consultation_failed_is_an_error(store_url):
    from langchain_core.language_models import BaseChatModel

    from promed_agents.backends import register_backend

    class AlwaysDown(BaseChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise ConnectionError("the server went away")

        @property
        def _llm_type(self) -> str:
            return "always-down"

    result = run("consult", "--cases", "1", "--doctor", "openai:m@http://127.0.0.1:1/v1",
                 "--experiment", "dead", "--db", store_url)  # a server that is not there
    line = one_line(result)
    assert "run dead failed: 1 of 1 consultations failed; the first:" in line
    assert "Connection error" in line
    register_backend("always-down", lambda spec: AlwaysDown())
    evaluated = run("eval", "--cases", "2", "--doctor", "always-down:x", "--experiment",
                    "dead-eval", "--db", store_url)
    assert "run dead-eval-proactive failed: 2 of 2" in one_line(evaluated)
    assert "accuracy" not in evaluated.output  # no figures for a run that did not run
    with TraceStore(store_url) as store:
        assert store.experiment("dead").status == "failed"
        assert store.experiment("dead-eval-proactive").status == "failed"
        names = [e.name for e in store.list_experiments()]
    assert "dead-eval-reactive" not in names  # the evaluation stopped at the failure


HOSTILE = "[/INST] [bold red]x[/] \x1b[2J\x1b]0;pwned\x07 \x9b31m end"
"""Rich markup, a terminal escape that clears the screen, one that sets the window title,
and a C1 control character."""


@pytest.fixture
def hostile_store(store_url):
    from promed_agents.case import Case
    from promed_agents.sig.shapley import ShapleyEstimate
    from promed_agents.trace import EpisodeStatus

    from helpers import episode

    case = Case(id="imedqa-0", source="imedqa", split=f"s{HOSTILE}",
                question=f"Q {HOSTILE}?", options={"A": f"opt {HOSTILE}", "B": "b",
                                                    "C": "c", "D": "d"},
                answer=["C"], context=[f"ctx {HOSTILE}"],
                facts=[f"fact {HOSTILE}", "f1", "f2", "f3", "f4", "f5"])
    with TraceStore(store_url) as store:
        store.import_cases([case])
        run_id = store.create_experiment(f"run {HOSTILE}", "eval", {})
        turns = episode().turns
        turns[0] = turns[0].model_copy(update={"text": f"question: {HOSTILE}"})
        turns[1] = turns[1].model_copy(update={"text": f"Yes {HOSTILE}"})
        store.record_episode(episode(experiment_id=run_id, turns=turns,
                                     doctor_spec=f"fake:{HOSTILE}",
                                     graph=f"g {HOSTILE}"))
        store.record_episode(episode(experiment_id=run_id, status=EpisodeStatus.FAILED,
                                     failure_reason=f"Boom {HOSTILE}", correct=None,
                                     final_answer=None, turns=[]))
        store.save_shapley("imedqa-0", "local:smollm2", ShapleyEstimate(
            values=[0.1] * 6, method="exact"), weights=[1 / 6] * 6, temperature=1.0)
    return store_url


PRINTING = [["cases", "show", "imedqa-0"], ["traces", "show", "1"], ["traces", "show", "2"],
            ["shapley", "show", "imedqa-0"], ["eval", "compare", f"run {HOSTILE}",
                                              f"run {HOSTILE}"],
            *[[command, "list", "--format", fmt] for command in ("cases", "traces")
              for fmt in ("csv", "json")]]
TABLES = [["cases", "list"], ["traces", "list"]]
"""Tables at 80 columns cut long text short: no markup there to check, only that no
control character reaches the terminal."""


def _printed(result) -> str:
    assert result.exit_code == 0, result.output + result.stderr
    shown = result.output + result.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown), repr(shown)
    return shown


@pytest.mark.parametrize("args", PRINTING, ids=[" ".join(a[:4])[:24] for a in PRINTING])
def test_stored_text_is_printed_as_text(hostile_store, args):
    shown = _printed(run(*args, "--db", hostile_store))
    assert "[/INST]" in shown  # markup shown as it is, not taken as a closing tag
    assert "\\x1b[2J" in shown or "\\u001b[2J" in shown  # the escape, written out


@pytest.mark.parametrize("args", TABLES, ids=[" ".join(a) for a in TABLES])
def test_tables_of_stored_text_hold_no_control_characters(hostile_store, args):
    _printed(run(*args, "--db", hostile_store))


def test_the_report_escapes_stored_text(hostile_store, tmp_path):
    result = run("report", "--out", tmp_path / "r.html", "--db", hostile_store)
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "[/INST]" in html and not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", html)
    assert "\\x1b[2J" in html
