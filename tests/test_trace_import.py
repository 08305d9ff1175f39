"""Dialogues recorded elsewhere, imported as traces: replayed, scored, round-tripped."""

from __future__ import annotations

import asyncio
import json

import pytest

from promed_agents.agents.evaluator import Evaluator
from promed_agents.errors import TraceError
from promed_agents.loader import bundled_sample
from promed_agents.storage import TraceStore
from promed_agents.storage.trace_import import Dialogue, read_dialogues, replay_dialogue
from promed_agents.trace import EpisodeStatus, Role, TurnKind

from helpers import contents, one_line, run

CASES = bundled_sample()[:3]
CULTURE = "question: What did the culture of the joint fluid show?"


def replay(record, plain_turns=False, case=CASES[0]):
    return asyncio.run(replay_dialogue(Dialogue.model_validate(record), case, Evaluator(),
                                       source="test", plain_turns=plain_turns))


def figures(episode):
    return (episode.case_id, episode.status, episode.final_answer, episode.correct,
            episode.information_gain, episode.fact_recall, episode.weighted_recall,
            episode.format_score, episode.num_questions, episode.max_questions,
            episode.known_fact_ids,
            [(t.role, t.text, t.kind, t.disclosed_fact_ids, t.sig, t.format_score,
              t.late_question) for t in episode.turns])


def test_export_then_import_into_a_fresh_store_gives_the_same_episodes(db_url, tmp_path):
    """Junk (reminded), a question, a repeat, a right answer; a wrong answer; a question
    at the final request (a timeout): texts, kinds, facts, SIG and figures come back."""
    sqlite_url = f"sqlite:///{tmp_path / 'first.db'}"
    for name, doctor, budget in (
            ("asked", f"fake:Well.||{CULTURE}||{CULTURE}||answer: C", "4"),
            ("wrong", "fake:question: Do you have a fever?||answer: B", "3"),
            ("late", "fake:question: Any fever?||question: Any rash?", "1")):
        assert run("consult", "--cases", "3", "--doctor", doctor, "--max-questions", budget,
                   "--experiment", name, "--db", sqlite_url).exit_code == 0
    exported = tmp_path / "traces.jsonl"
    assert run("traces", "export", exported, "--db", sqlite_url).exit_code == 0
    with TraceStore(db_url) as fresh:
        fresh.import_cases(CASES)
    imported = run("traces", "import", exported, "--experiment", "back", "--db", db_url)
    assert imported.exit_code == 0, imported.output + imported.stderr
    assert "imported 9 consultation(s) into run back (traces.jsonl: 9)" in imported.output
    with TraceStore(sqlite_url) as first, TraceStore(db_url) as fresh:
        originals = list(first.iter_episodes())
        back = list(fresh.iter_episodes(fresh.experiment_id("back")))
        assert fresh.experiment("back").kind == "import"
    assert [figures(e) for e in back] == [figures(e) for e in originals]
    assert {e.status for e in back} == {EpisodeStatus.COMPLETED, EpisodeStatus.TIMEOUT}
    assert any(t.kind is TurnKind.INVALID for e in back for t in e.turns)
    assert all(e.imported_from == "traces.jsonl" and e.doctor_spec == "imported:traces.jsonl"
               and e.sampling is None for e in back)
    assert all(t.token_ids is None and t.prompt_token_ids is None and t.logprobs is None
               for e in back for t in e.turns)
    assert back[0].doctor_messages[0].role == "system"  # rendered later in any template


def test_facts_are_found_by_the_fact_matcher_when_a_reply_does_not_say():
    episode = replay({"case_id": "imedqa-0", "messages": [
        {"role": "doctor", "content": CULTURE},
        {"role": "patient", "content": "The culture of joint fluid shows a bacteria."},
        {"role": "doctor", "content": "answer: C"}]})
    reply = episode.turns[1]
    assert reply.disclosed_fact_ids == [5]
    assert episode.turns[0].sig == pytest.approx(1 / 9) and episode.correct
    said = replay({"case_id": "imedqa-0", "messages": [
        {"role": "doctor", "content": CULTURE},
        {"role": "patient", "content": "Yes.", "disclosed_fact_ids": [6, 7]},
        {"role": "doctor", "content": "answer: C"}]})
    assert said.turns[1].disclosed_fact_ids == [6, 7]
    assert said.information_gain == pytest.approx(2 / 9)


def test_a_human_log_of_bare_questions_and_a_final_answer():
    episode = replay({"case_id": "imedqa-0", "final_answer": "C", "messages": [
        {"role": "system", "content": "You are a triage nurse."},
        {"role": "assistant", "content": "Any fever?"},
        {"role": "user", "content": "Yes, I complain of fever."},
        {"role": "assistant", "content": "What did the culture of the joint fluid show?"},
        {"role": "user", "content": "It shows a bacteria."}]}, plain_turns=True)
    assert [t.text for t in episode.turns if t.role is Role.DOCTOR] == [
        "question: Any fever?", CULTURE, "answer: C"]
    assert episode.num_questions == 2 and episode.correct and episode.format_score == 1.0
    assert episode.turns[1].disclosed_fact_ids == [2]
    assert "triage nurse" not in " ".join(m.content for m in episode.doctor_messages)


@pytest.mark.parametrize("record, problem", [
    ({"case_id": "imedqa-0", "messages": [
        {"role": "doctor", "content": "Tell me more."},
        {"role": "patient", "content": "I have a fever."},
        {"role": "doctor", "content": "answer: C"}]},
     "message 2 (patient: 'I have a fever.'): a reply follows a doctor message that is no "
     "'question: ...' turn"),
    ({"case_id": "imedqa-0", "messages": [
        {"role": "doctor", "content": CULTURE}, {"role": "patient", "content": "Bacteria."}]},
     "the dialogue ends after 2 messages, before the doctor's answer: give its final_answer"),
    ({"case_id": "imedqa-0", "max_questions": 0, "messages": [
        {"role": "doctor", "content": CULTURE}, {"role": "patient", "content": "Bacteria."},
        {"role": "doctor", "content": "answer: C"}]},
     "the doctor's question budget ran out before it"),
    ({"case_id": "imedqa-0", "messages": [{"role": "doctor", "content": CULTURE}]},
     "has no patient reply after it"),
    ({"case_id": "imedqa-0", "final_answer": ["B"], "messages": [
        {"role": "doctor", "content": "answer: C"}]},
     "final_answer ['B'] is not the answer of the last doctor message"),
    ({"case_id": "imedqa-0", "messages": [
        {"role": "doctor", "content": CULTURE},
        {"role": "patient", "content": "Yes.", "disclosed_fact_ids": [42]},
        {"role": "doctor", "content": "answer: C"}]},
     "disclosed_fact_ids [42] are not all facts of case imedqa-0"),
])
def test_a_dialogue_that_does_not_replay_as_recorded_says_where(record, problem):
    with pytest.raises(TraceError) as caught:
        replay(record)
    assert problem in str(caught.value)


def write(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


GOOD = {"case_id": "imedqa-0", "source": "clinic-log", "messages": [
    {"role": "doctor", "content": CULTURE},
    {"role": "patient", "content": "The culture of joint fluid shows a bacteria."},
    {"role": "doctor", "content": "answer: C"}]}


@pytest.mark.parametrize("bad, message", [
    ("{not json", "traces.jsonl:line 2: not JSON"),
    ('["a list"]', "traces.jsonl:line 2: a dialogue is a JSON object, not list"),
    ({"case_id": "imedqa-0"}, "traces.jsonl:line 2: field 'messages': Field required"),
    ({"messages": GOOD["messages"]}, "line 2: no case_id and no inline case"),
    ({**GOOD, "case_id": "imedqa-99"}, "line 2: case 'imedqa-99' is not in the store; "
     "import it with promed cases import, or give it inline as 'case'"),
    ({**GOOD, "messages": [{"role": "doctor", "content": "Hello."},
                           {"role": "patient", "content": "Hi."}]},
     "line 2: the dialogue does not replay as recorded at message 2"),
    ({**GOOD, "case_id": None, "case": {**CASES[1].model_dump(), "id": "imedqa-0"}},
     "line 2: the inline case 'imedqa-0' differs from the case of that id"),
])
def test_a_bad_record_is_one_line_naming_it_and_nothing_is_written(sqlite_url, tmp_path,
                                                                   bad, message):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
    before = contents(sqlite_url)
    path = write(tmp_path / "traces.jsonl", GOOD, bad)
    assert message in one_line(run("traces", "import", path, "--db", sqlite_url))
    assert contents(sqlite_url) == before


def test_an_inline_case_is_stored_with_its_dialogues_and_a_name_is_not_reused(
        sqlite_url, tmp_path):
    inline = {**CASES[2].model_dump(), "id": "clinic-7", "source": "clinic"}
    path = write(tmp_path / "log.jsonl", {**GOOD, "case_id": None, "case": inline,
                                          "final_answer": ["D"], "messages": [
                                              {"role": "doctor", "content": "answer: D"}]},
                 {**GOOD, "case_id": "clinic-7", "messages": [
                     {"role": "doctor", "content": "answer: A"}]},
                 {**GOOD, "status": "failed"})  # a failed export record is skipped
    done = run("traces", "import", path, "--db", sqlite_url)
    assert done.exit_code == 0, done.output + done.stderr
    assert "imported 2 consultation(s) into run import-log (clinic-log: 2; 1 new case(s))" \
        in done.output
    with TraceStore(sqlite_url) as store:
        assert store.get_case("clinic-7").answer == ["D"]
        assert [e.correct for e in store.iter_episodes(store.experiment_id("import-log"))] \
            == [True, False]
    again = one_line(run("traces", "import", path, "--db", sqlite_url))
    assert "an experiment named 'import-log' already exists" in again


def test_read_dialogues_skips_blank_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", GOOD, "", GOOD)
    assert [n for n, _ in read_dialogues(path)] == [1, 3]


def test_imported_dialogues_train_with_sft_and_off_policy_grpo_refuses_them(
        sqlite_url, tmp_path, tiny_model_folder):
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
    path = write(tmp_path / "log.jsonl", GOOD, {**GOOD, "case_id": "imedqa-1", "messages": [
        {"role": "doctor", "content": "question: How often do you vomit?"},
        {"role": "patient", "content": "She has had 6–8 episodes of bilious vomiting."},
        {"role": "doctor", "content": "answer: B"}]})
    assert run("traces", "import", path, "--experiment", "log", "--db",
               sqlite_url).exit_code == 0
    model = f"local:{tiny_model_folder}"
    refused = one_line(run("train", "grpo", "--model", model, "--output", tmp_path / "g",
                           "--from-traces", "log", "--num-generations", "2", "--max-steps",
                           "1", "--db", sqlite_url))
    assert "was imported (from clinic-log): it holds no logprobs" in refused
    assert not (tmp_path / "g").exists()
    trained = run("train", "sft", "--from", "log", "--model", model, "--max-steps", "1",
                  "--batch-size", "2", "--output", tmp_path / "s", "--db", sqlite_url)
    assert trained.exit_code == 0, trained.output + trained.stderr
    assert "log (import): consultations 2, finished 2, samples 2, rendered in the " \
           "student's tokens 2" in trained.output
    rows = [json.loads(x) for x in (tmp_path / "s" / "sft_data.jsonl").read_text().splitlines()]
    assert [(r["case_id"], r.get("answer_replaced", False)) for r in rows] == [
        ("imedqa-0", False), ("imedqa-1", True)]  # the wrong answer is taught as the right


def test_open_ended_consultations_with_test_orders_round_trip(db_url, tmp_path):
    """AgentClinic cases consulted with questions, test orders and diagnoses: stored,
    exported and imported into a fresh store, they come back with the measurement
    agent's results, the tests ordered and the judge's verdicts."""
    from conftest import ROOT

    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    sqlite_url = f"sqlite:///{tmp_path / 'first.db'}"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    doctor = ("fake:question: When did it start?||test: Vital signs||test: Chest X-ray||"
              "diagnosis: Myasthenia gravis")
    consulted = run("consult", "--cases", "3", "--doctor", doctor, "--policy", "initial",
                    "--judge", "token-f1:0.5", "--max-questions", "3", "--experiment", "ac",
                    "--db", sqlite_url)
    assert consulted.exit_code == 0, consulted.output + consulted.stderr
    assert "judged by token-f1:0.5" in consulted.output + consulted.stderr
    exported = tmp_path / "traces.jsonl"
    assert run("traces", "export", exported, "--db", sqlite_url).exit_code == 0
    with TraceStore(db_url) as fresh:
        fresh.import_cases(TraceStore(sqlite_url).list_cases())
    imported = run("traces", "import", exported, "--experiment", "back", "--judge",
                   "token-f1:0.5", "--db", db_url)
    assert imported.exit_code == 0, imported.output + imported.stderr
    with TraceStore(sqlite_url) as first, TraceStore(db_url) as fresh:
        originals = list(first.iter_episodes())
        back = list(fresh.iter_episodes(fresh.experiment_id("back")))

    def open_figures(episode):
        return figures(episode), episode.tests_ordered, episode.verdict

    assert [open_figures(e) for e in back] == [open_figures(e) for e in originals]
    by_case = {e.case_id: e for e in back}
    assert {c: e.correct for c, e in by_case.items()} == {  # only case 0 is MG
        "agentclinic-0": True, "agentclinic-1": False, "agentclinic-2": False}
    assert all(e.tests_ordered == 2 and e.verdict.judge == "token-f1:0.5" for e in back)
    roles = [t.role for t in by_case["agentclinic-0"].turns]
    assert roles.count(Role.MEASUREMENT) == 2 and roles.count(Role.PATIENT) == 1
    vitals = by_case["agentclinic-0"].turns[3]
    assert vitals.role is Role.MEASUREMENT and vitals.disclosed_fact_ids == [11, 12, 13, 14]
    first = next(e for e in originals if e.case_id == "agentclinic-0")
    shown = run("traces", "show", str(first.id), "--db", sqlite_url)
    assert "3 measurement: Temperature" in shown.output
    assert ("final answer Myasthenia gravis: correct (judged by token-f1:0.5, score "
            "1.000); tests ordered 2") in shown.output
