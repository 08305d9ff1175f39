from __future__ import annotations

import pytest

from promed_agents.storage import TraceStore

from helpers import run


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
    other_doctor = run("consult", "--doctor", "fake:answer: A", "--experiment", "long",
                       "--resume", "--checkpoints", checkpoints, "--db", sqlite_url)
    assert other_doctor.exit_code == 1 and "ran with --doctor fake:question" in \
        other_doctor.stderr  # its consultations go on under the settings they began with
    again = run("consult", "--doctor", "fake:question: Any fever?||answer: C", "--experiment",
                "long", "--resume", "--checkpoints", checkpoints, "--db", sqlite_url)
    assert again.exit_code == 0, again.output
    with TraceStore(sqlite_url) as store:
        episodes = store.list_episodes(experiment_id=store.experiment_id("long"))
    # every case had finished: nothing ran again, nothing was recorded twice
    assert len(episodes) == 3 and {tuple(e.final_answer) for e in episodes} == {("C",)}
    missing = run("consult", "--resume", "--experiment", "long", "--db", sqlite_url)
    assert missing.exit_code == 1 and "--resume needs --checkpoints" in missing.stderr
    # the first command again resumes the run too; other checkpoints are refused
    same = run("consult", "--cases", "3", "--doctor", "fake:question: Any fever?||answer: C",
               "--experiment", "long", "--checkpoints", checkpoints, "--db", sqlite_url)
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


@pytest.mark.postgres
def test_langgraph_checkpoints_can_live_in_the_postgresql_store(postgres_url):
    """LangGraph's savers have a `checkpoints` table of their own: the store's tables must
    not collide with theirs (``promed mcts`` on PostgreSQL keeps its checkpoints there)."""
    db_url = checkpoints = postgres_url
    for _ in range(2):  # the second run resumes, with LangGraph's tables in place
        done = run("consult", "--cases", "2", "--doctor", "fake:question: Any fever?||answer: C",
                   "--experiment", "beside", "--checkpoints", checkpoints, "--db", db_url)
        assert done.exit_code == 0, done.output
    searched = run("mcts", "--experiment", "search", "--cases", "1", "--iterations", "2",
                   "--max-questions", "1", "--doctor", "fake:answer: C", "--checkpoints",
                   checkpoints, "--db", db_url)
    assert searched.exit_code == 0, searched.output
    with TraceStore(db_url) as store:
        assert store.count_episodes(store.experiment_id("beside")) == 2
        assert store.count_episodes(store.experiment_id("search")) >= 1
        store.register_checkpoint("/models/x", "local:smollm2", 1)
        assert [c.path for c in store.list_checkpoints()] == ["/models/x"]


def test_sqlite_checkpoints_may_not_share_the_store_file(sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    for command in (["consult", "--cases", "1"], ["mcts", "--experiment", "s", "--cases",
                                                  "1"]):
        refused = run(*command, "--doctor", "fake:answer: C", "--checkpoints", path,
                      "--db", sqlite_url)
        assert refused.exit_code == 1 and "is the store's own SQLite file" in refused.stderr
    with TraceStore(sqlite_url) as store:
        assert store.count_cases() == 0 and store.list_experiments() == []
