"""`promed mcts` and `promed mcts show`: search, store, resume, print a tree."""

from __future__ import annotations

import pytest

from promed_agents.cli.mcts import default_checkpoints
from promed_agents.errors import ConsultationError
from promed_agents.storage import TraceStore

from helpers import FAKE_DOCTOR, run


def test_search_is_stored_resumed_and_shown(sqlite_url, tmp_path):
    args = ["mcts", "--experiment", "e", "--cases", "2", "--iterations", "3",
            "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer", "none",
            "--db", sqlite_url]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "MCTS e" in first.output and "imedqa-1" in first.output
    with TraceStore(sqlite_url) as store:
        experiment = store.experiment_id("e")
        assert store.search_progress(experiment) == {"imedqa-0": 3.0, "imedqa-1": 3.0}
        root = store.load_search_tree(experiment, "imedqa-0")
    # A scripted doctor always says the same: one path, revisited (no duplicate children).
    assert [n.turn_text for n in root.walk()[1:]] == ["question: Do you have a fever?",
                                                      "answer: A"]
    assert (tmp_path / "store.mcts-checkpoints.sqlite").exists()
    more = run(*[a if a != "3" else "5" for a in args])
    assert more.exit_code == 0, more.output
    assert "resuming search e: 2 of 2 cases started" in more.output
    with TraceStore(sqlite_url) as store:
        assert store.search_progress(store.experiment_id("e"))["imedqa-0"] == 5.0
    shown = run("mcts", "show", "imedqa-0", "--experiment", "e", "--db", sqlite_url)
    assert shown.exit_code == 0, shown.output
    assert "question: Do you have a fever?" in shown.output and "visits 5" in shown.output


def test_bad_requests_get_one_line_errors(sqlite_url):
    missing = run("mcts", "--cases", "1", "--db", sqlite_url)
    assert missing.exit_code == 2 and "--experiment" in missing.output
    run("consult", "--cases", "1", "--doctor", "fake:answer: A", "--experiment", "c",
        "--db", sqlite_url)
    clash = run("mcts", "--experiment", "c", "--cases", "1", "--db", sqlite_url)
    assert clash.exit_code == 1 and "is not an MCTS search" in clash.stderr
    shown = run("mcts", "show", "imedqa-0", "--experiment", "c", "--db", sqlite_url)
    assert shown.exit_code == 1 and "no search tree" in shown.stderr


def test_default_checkpoints_sit_beside_the_store():
    assert default_checkpoints("sqlite:////data/promed.db") == \
        "/data/promed.mcts-checkpoints.sqlite"
    assert default_checkpoints("postgresql+psycopg://u:p@h/db") == \
        "postgresql+psycopg://u:p@h/db"
    with pytest.raises(ConsultationError, match="in-memory"):
        default_checkpoints("sqlite://")


@pytest.mark.postgres
def test_stored_settings_never_hold_a_database_password(sqlite_url, postgres_url):
    from sqlalchemy.engine import make_url

    # The test server trusts every local login, so any password reaches it.
    checkpoints = make_url(postgres_url).set(password="S3cret") \
        .render_as_string(hide_password=False).replace("+psycopg", "")
    result = run("mcts", "--experiment", "e", "--cases", "1", "--iterations", "1",
                 "--doctor", FAKE_DOCTOR, "--checkpoints", checkpoints, "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "S3cret" not in result.output + result.stderr
    with TraceStore(sqlite_url) as store:
        _, config = store.experiment_config("e")
    assert config["checkpoints"] == checkpoints.replace("S3cret", "***")


def test_a_bank_proposer_writes_candidate_turns(sqlite_url):
    from promed_agents.agents.question_bank import bank_questions

    result = run("mcts", "--experiment", "p", "--cases", "2", "--iterations", "4",
                 "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer", "bank",
                 "--proposer-ratio", "1", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    bank = {f"question: {q}" for q in bank_questions()}
    with TraceStore(sqlite_url) as store:
        experiment, config = store.experiment_config("p")
        assert config["proposer"] == "bank" and config["proposer_ratio"] == 1.0
        root = store.load_search_tree(experiment, "imedqa-0")
        questions = {n.turn_text for n in root.walk()[1:] if n.turn_kind == "question"}
        # the root widened in the bank's order: its first children, then the script
        assert [c.turn_text for c in root.children] == [
            f"question: {q}" for q in bank_questions()[:len(root.children)]]
        assert questions and questions <= bank and len(root.children) > 1
        episodes = list(store.iter_episodes(experiment))
        assert all(e.metadata["proposer"]["spec"] == "bank" for e in episodes)


def test_a_similar_cases_proposer_ranks_the_bank_for_each_searched_case(sqlite_url):
    from promed_agents.agents.question_bank import bank_questions
    from promed_agents.agents.similar_cases import SimilarCases
    from promed_agents.partial_view import partial_view

    result = run("mcts", "--experiment", "s", "--cases", "4", "--iterations", "2",
                 "--max-questions", "2", "--doctor", FAKE_DOCTOR, "--proposer",
                 "bank:similar", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    with TraceStore(sqlite_url) as store:
        experiment, _ = store.experiment_config("s")
        searched = [store.get_case(f"imedqa-{i}") for i in range(4)]
        # each case's known cases are the other searched ones
        similar = SimilarCases(searched, {"en": bank_questions(), "zh": bank_questions("zh")})
        for case in searched:
            root = store.load_search_tree(experiment, case.id)
            first = similar.ranked(case, partial_view(case))[0]
            assert root.children[0].turn_text == f"question: {first}"
    refused = run("mcts", "--experiment", "t", "--cases", "4", "--doctor", FAKE_DOCTOR,
                  "--proposer", "bank:similar:train", "--db", sqlite_url)
    assert refused.exit_code == 1 and "split 'train'" in refused.stderr
    with TraceStore(sqlite_url) as store:
        assert "t" not in {e.name for e in store.list_experiments()}


def test_a_search_on_open_ended_cases_widens_with_test_orders(sqlite_url, smollm2_folder):
    """On AgentClinic cases the bank proposer widens nodes with history questions and
    test orders; test orders' results are scored as SIG, and the best path trains the
    case's diagnosis."""
    from promed_agents.backends.chat_tokens import ChatTokens
    from promed_agents.trainers.sft_dataset import ExportConfig, search_samples

    from conftest import ROOT

    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    result = run("mcts", "--experiment", "ac", "--case-ids", "agentclinic-0",
                 "--iterations", "6", "--width", "2", "--max-questions", "3", "--doctor",
                 "fake:diagnosis: Myasthenia gravis", "--proposer", "bank", "--policy",
                 "initial", "--judge", "exact", "--db", sqlite_url)
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore(sqlite_url) as store:
        experiment, config = store.experiment_config("ac")
        assert config["policy"] == "initial" and config["judge"] == "exact"
        root = store.load_search_tree(experiment, "agentclinic-0")
        kinds = {n.turn_kind for n in root.walk()[1:]}
        assert {"question", "test"} <= kinds
        tests = [n for n in root.walk()[1:] if n.turn_kind == "test"]
        assert any((n.sig or 0) > 0 and n.disclosed_fact_ids for n in tests)
        episodes = list(store.iter_episodes(experiment))
        assert episodes and all(e.verdict.judge == "exact" for e in episodes)
        assert any(e.tests_ordered for e in episodes)
        student = ChatTokens.for_model(f"local:{smollm2_folder}")
        samples, _ = search_samples(store, experiment, ExportConfig(), student)
    assert samples
    for sample in samples:
        taught = student.tokenizer.decode(
            [t for t, m in zip(sample.input_ids, sample.assistant_masks, strict=True) if m])
        assert taught.endswith("diagnosis: Myasthenia gravis<|im_end|>")
