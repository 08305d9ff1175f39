"""`promed eval` and `promed eval compare` with scripted doctors."""

from __future__ import annotations

import re

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore

from helpers import run

CASES = load_cases(bundled_sample_path())[:6]


def accuracy(letter: str) -> float:
    return sum(case.answer == [letter] for case in CASES) / len(CASES)


def test_eval_runs_each_mode_and_seed_and_stores_the_runs(sqlite_url):
    result = run("eval", "--doctor", "fake:answer: C", "--cases", "6", "--seeds", "2",
                 "--experiment", "e", "--max-questions", "2", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "e-proactive" in result.output and "e-reactive" in result.output
    assert "relative accuracy gain of proactive over reactive" in result.output
    with TraceStore(sqlite_url) as store:
        for mode in ("proactive", "reactive"):
            run_id, config = store.experiment_config(f"e-{mode}")
            assert config["kind"] == "eval" and config["mode"] == mode
            assert store.count_episodes(run_id) == 12  # 6 cases x 2 seeds
            episodes = list(store.iter_episodes(run_id))
            assert {e.mode.value for e in episodes} == {mode}
            assert {e.graph for e in episodes} == {"consultation"}  # the graph's name
            seeds = sorted(e.metadata["doctor_kwargs"]["seed"] for e in episodes)
            assert seeds == [0] * 6 + [1] * 6
            assert store.experiment(f"e-{mode}").status == "complete"


def test_compare_reports_paired_differences_and_the_gain(sqlite_url):
    for name, letter in (("c", "C"), ("a", "A")):
        assert run("eval", "--doctor", f"fake:answer: {letter}", "--cases", "6",
                   "--modes", "proactive", "--experiment", name, "--db",
                   sqlite_url).exit_code == 0
    compared = run("eval", "compare", "c-proactive", "a-proactive", "--db", sqlite_url)
    assert compared.exit_code == 0, compared.output
    assert "6 shared cases" in compared.output
    difference = accuracy("A") - accuracy("C")
    assert f"{difference:+.3f}" in compared.output
    assert "relative accuracy gain" in compared.output


def test_bad_eval_arguments_are_one_line_errors(sqlite_url):
    bad_mode = run("eval", "--modes", "curious", "--doctor", "fake:answer: A", "--db",
                   sqlite_url)
    assert bad_mode.exit_code == 1 and "give proactive, reactive or both" in bad_mode.stderr
    nowhere = run("eval", "compare", "x", "y", "--db", sqlite_url)
    assert nowhere.exit_code == 1 and "does not exist" in nowhere.stderr
    TraceStore(sqlite_url).close()
    missing = run("eval", "compare", "x", "y", "--db", sqlite_url)
    assert missing.exit_code == 1 and "no experiment named 'x'" in missing.stderr


def test_reference_doctors_are_evaluated_with_the_asking_metrics(sqlite_url):
    for doctor, name in (("bank:random", "r"), ("oracle", "o")):
        result = run("eval", "--doctor", doctor, "--cases", "6", "--modes", "proactive",
                     "--max-questions", "3", "--experiment", name, "--db", sqlite_url)
        assert result.exit_code == 0, result.output
        assert "answerable share of questions" in result.output
        assert "SIG / episode (uniform weights)" in result.output
    with TraceStore(sqlite_url) as store:
        oracle = list(store.iter_episodes(store.experiment_id("o-proactive")))
        assert {e.doctor_spec for e in oracle} == {"oracle"} and all(
            e.num_questions == 3 for e in oracle)
    compared = run("eval", "compare", "r-proactive", "o-proactive", "--db", sqlite_url)
    assert compared.exit_code == 0 and "facts acquired / episode" in compared.output


def test_failed_consultations_are_reported_left_out_and_mark_the_run(sqlite_url):
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from promed_agents.backends import register_backend

    class DownForOneCase(BaseChatModel):
        """Answers C, except that the server is gone for case imedqa-0."""

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if any("cell wall synthesis" in str(m.content) for m in messages):
                raise ConnectionError("the server went away")
            return ChatResult(generations=[ChatGeneration(message=AIMessage("answer: C"))])

        @property
        def _llm_type(self) -> str:
            return "down-for-one-case"

    register_backend("down-for-one", lambda spec: DownForOneCase())
    result = run("eval", "--doctor", "down-for-one:x", "--cases", "4", "--modes",
                 "proactive", "--experiment", "half", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "warning: run half-proactive is incomplete: 1 of 4 consultations failed; " \
           "the first: ConnectionError: the server went away" in result.stderr
    assert re.search(r"half-proactive\s+.\s+3\s+.\s+1 failed \(left out\)", result.output)
    answers_c = sum(case.answer == ["C"] for case in CASES[1:4]) / 3
    accuracy = result.output.split("accuracy")[1]
    assert f"{answers_c:.3f} " in accuracy.splitlines()[1]  # over the three that ran
    with TraceStore(sqlite_url) as store:
        ended = store.experiment("half-proactive")
    assert ended.status == "incomplete" and "1 of 4" in ended.status_reason


def test_an_abstaining_doctor_is_evaluated_and_its_confidence_stored(sqlite_url):
    # the fake doctor says "0.9" whenever it is asked anything at its first turn: it rates
    # itself confident and then answers (badly: "0.9" names no option)
    result = run("eval", "--doctor", "fake:0.9||answer: C", "--cases", "3", "--modes",
                 "proactive", "--abstain", "numerical", "--experiment", "ab", "--db",
                 sqlite_url)
    assert result.exit_code == 0, result.output
    with TraceStore(sqlite_url) as store:
        run_id, config = store.experiment_config("ab-proactive")
        episodes = list(store.iter_episodes(run_id))
    assert config["abstain"] == "numerical" and config["abstain_threshold"] == 0.8
    assert [e.confidences for e in episodes] == [[0.9]] * 3
    assert all(e.num_questions == 0 for e in episodes)
    bad = run("eval", "--doctor", "fake:answer: C", "--cases", "1", "--abstain", "vibes",
              "--db", sqlite_url)
    assert bad.exit_code == 1 and "variant 'vibes'" in bad.stderr
    with TraceStore(sqlite_url) as store:
        assert not any(e.name.startswith("eval-") for e in store.list_experiments())


def test_bank_similar_reads_the_known_split_and_is_refused_without_one(sqlite_url):
    from helpers import contents

    assert run("eval", "--doctor", "bank:random", "--cases", "6", "--modes", "proactive",
               "--max-questions", "1", "--experiment", "seed", "--db", sqlite_url
               ).exit_code == 0  # imports the bundled sample (split dev)
    before = contents(sqlite_url)
    refused = run("eval", "--doctor", "bank:similar", "--cases", "6", "--modes",
                  "proactive", "--experiment", "s", "--db", sqlite_url)
    assert refused.exit_code == 1 and "split 'train'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and contents(sqlite_url) == before
    result = run("eval", "--doctor", "bank:similar:dev", "--cases", "6", "--modes",
                 "proactive", "--max-questions", "2", "--experiment", "s", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    with TraceStore(sqlite_url) as store:
        episodes = list(store.iter_episodes(store.experiment_id("s-proactive")))
    assert len(episodes) == 6 and all(e.num_questions == 2 for e in episodes)
    assert {e.doctor_spec for e in episodes} == {"bank:similar:dev"}


def test_eval_on_open_ended_cases_judges_counts_tests_and_refuses_mixed_judges(sqlite_url):
    """AgentClinic cases: judged accuracy, tests per episode and ROUGE-L F1 are shown,
    with the judge; runs judged by different judges are not compared."""
    from conftest import ROOT

    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    doctor = "fake:test: Vital signs||test: Chest X-ray||diagnosis: Myasthenia gravis"
    for name, judge in (("rouge", "rouge:0.5"), ("exact", "exact"), ("again", "rouge:0.5")):
        result = run("eval", "--doctor", doctor, "--modes", "proactive", "--policy",
                     "initial", "--judge", judge, "--experiment", name, "--db", sqlite_url)
        assert result.exit_code == 0, result.output + result.stderr
    text = " ".join(result.output.split())
    assert "judged by rouge:0.5" in text
    assert re.search(r"tests ordered / episode.*?2\.000", text, re.S)
    assert "diagnosis ROUGE-L F1" in text
    with TraceStore(sqlite_url) as store:
        episodes = list(store.iter_episodes(store.experiment_id("again-proactive")))
        assert store.experiment_config("again-proactive")[1]["judge"] == "rouge:0.5"
    assert {e.verdict.judge for e in episodes} == {"rouge:0.5"}
    assert sorted(e.correct for e in episodes) == [False, False, True]
    assert all(e.partial_policy.value == "initial" for e in episodes)
    mixed = run("eval", "compare", "rouge-proactive", "exact-proactive", "--db", sqlite_url)
    assert mixed.exit_code == 1
    assert "judged differently (rouge:0.5 vs exact)" in mixed.stderr
    alike = run("eval", "compare", "rouge-proactive", "again-proactive", "--db", sqlite_url)
    assert alike.exit_code == 0 and "tests ordered / episode" in alike.output
