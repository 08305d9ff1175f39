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
