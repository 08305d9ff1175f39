from __future__ import annotations

import pytest
from test_cli import run

from promed_agents.storage import TraceStore


def test_consult_on_an_empty_store_uses_the_bundled_sample(sqlite_url):
    result = run("consult", "--cases", "4", "--doctor",
                 "fake:question: Do you have a fever?||answer: C", "--max-questions", "3",
                 "--experiment", "smoke", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "imported the bundled sample" in result.output
    assert "experiment smoke" in result.output
    with TraceStore(sqlite_url) as store:
        experiment = store.experiment_id("smoke")
        episodes = list(store.iter_episodes(experiment_id=experiment))
    assert sorted(e.case_id for e in episodes) == ["imedqa-0", "imedqa-1", "imedqa-2",
                                                   "imedqa-3"]
    assert all(len(e.turns) == 3 and e.num_questions == 1 for e in episodes)


def test_consult_reactive_case_ids_and_errors(sqlite_url):
    ok = run("consult", "--case-ids", "imedqa-3,imedqa-7", "--mode", "reactive",
             "--doctor", "fake:answer: B", "--db", sqlite_url)
    assert ok.exit_code == 1 and "case 'imedqa-3' is not in the store" in ok.stderr
    run("cases", "import", __import__("promed_agents").bundled_sample_path(), "--db", sqlite_url)
    ok = run("consult", "--case-ids", "imedqa-3,imedqa-7", "--mode", "reactive",
             "--doctor", "fake:answer: B", "--db", sqlite_url)
    assert ok.exit_code == 0, ok.output
    with TraceStore(sqlite_url) as store:
        assert sorted(e.case_id for e in store.list_episodes()) == ["imedqa-3", "imedqa-7"]
        assert {e.mode for e in store.list_episodes()} == {"reactive"}
    bad = run("consult", "--cases", "2", "--patient", "oracle", "--doctor", "fake:answer: B",
              "--db", sqlite_url)
    assert bad.exit_code == 1 and "use fact-select or llm:MODEL_SPEC" in bad.stderr
    spec = run("consult", "--cases", "1", "--doctor", "smollm2", "--db", sqlite_url)
    assert spec.exit_code == 1 and "provider:model" in spec.stderr


@pytest.mark.parametrize("where", ["sqlite", pytest.param("postgres",
                                                          marks=pytest.mark.postgres)])
def test_consult_resumes_an_experiment_from_its_checkpoints(where, sqlite_url, tmp_path,
                                                            request):
    checkpoints = str(tmp_path / "ckpt.db") if where == "sqlite" else \
        request.getfixturevalue("postgres_url")  # checkpoints in PostgreSQL
    first = run("consult", "--cases", "3", "--doctor", "fake:question: Any fever?||answer: C",
                "--experiment", "long", "--checkpoints", checkpoints, "--db", sqlite_url)
    assert first.exit_code == 0, first.output
    again = run("consult", "--doctor", "fake:answer: A", "--experiment", "long", "--resume",
                "--checkpoints", checkpoints, "--db", sqlite_url)
    assert again.exit_code == 0, again.output
    with TraceStore(sqlite_url) as store:
        episodes = store.list_episodes(experiment_id=store.experiment_id("long"))
    # every case had finished: nothing ran again, nothing was recorded twice
    assert len(episodes) == 3 and {tuple(e.final_answer) for e in episodes} == {("C",)}
    missing = run("consult", "--resume", "--experiment", "long", "--db", sqlite_url)
    assert missing.exit_code == 1 and "--resume needs --checkpoints" in missing.stderr
    # the first command again resumes the run too; other checkpoints are refused
    same = run("consult", "--cases", "3", "--doctor", "fake:answer: B", "--experiment",
               "long", "--checkpoints", checkpoints, "--db", sqlite_url)
    assert same.exit_code == 0, same.output
    other = run("consult", "--cases", "3", "--doctor", "fake:answer: B", "--experiment",
                "long", "--checkpoints", str(tmp_path / "other.db"), "--db", sqlite_url)
    assert other.exit_code == 1 and "exists and kept its checkpoints in" in other.stderr
    run("consult", "--cases", "1", "--doctor", "fake:answer: B", "--experiment", "plain",
        "--db", sqlite_url)
    plain = run("consult", "--cases", "1", "--doctor", "fake:answer: B", "--experiment",
                "plain", "--checkpoints", checkpoints, "--db", sqlite_url)
    assert plain.exit_code == 1 and "kept no checkpoints" in plain.stderr
    with TraceStore(sqlite_url) as store:
        episodes = store.list_episodes(experiment_id=store.experiment_id("long"))
    assert len(episodes) == 3 and {tuple(e.final_answer) for e in episodes} == {("C",)}
