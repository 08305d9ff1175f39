"""Reference doctors without a model: the question bank at random or in order, the oracle."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from langchain_core.messages import HumanMessage

from promed_agents.agents.doctor import ConsultationSoFar, case_prompt
from promed_agents.agents.question_bank import bank_questions
from promed_agents.agents.reference_doctors import BankDoctor, resolve_doctor
from promed_agents.backends import resolve_chat_model
from promed_agents.errors import BackendError
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.partial_view import partial_view
from promed_agents.trace import Role, TurnKind

CASES = load_cases(bundled_sample_path())[:12]


def consult(doctor, cases=CASES, budget=5, seed=None):
    kwargs = {"seed": seed} if seed is not None else {}
    context = ConsultationContext(doctor=doctor, max_questions=budget,
                                  doctor_kwargs={"stop": ["\n"], **kwargs})
    return asyncio.run(arun_consultations(cases, context, concurrency=4))


def questions(episode):
    return [t.text.removeprefix("question: ") for t in episode.turns
            if t.role is Role.DOCTOR and t.kind is TurnKind.QUESTION]


def new_facts(episode):
    disclosed = {i for t in episode.turns for i in t.disclosed_fact_ids}
    return len(disclosed - set(episode.known_fact_ids))


def test_bank_random_asks_distinct_bank_questions_until_the_budget_then_answers():
    bank = set(bank_questions())
    episodes = consult(resolve_doctor("bank:random"))
    for episode in episodes:
        asked = questions(episode)
        assert len(asked) == 5 == len(set(asked)) and set(asked) <= bank
        last = episode.turns[-1]
        assert last.kind is TurnKind.ANSWER and episode.final_answer
    again = consult(resolve_doctor("bank:random"))
    assert [questions(e) for e in again] == [questions(e) for e in episodes]  # reproducible
    other_seed = consult(resolve_doctor("bank:random"), seed=1)
    assert [questions(e) for e in other_seed] != [questions(e) for e in episodes]


def test_bank_fixed_recites_the_bank_in_order(tmp_path):
    for episode in consult(resolve_doctor("bank:fixed"), budget=3):
        assert questions(episode) == bank_questions()[:3]
    script = tmp_path / "bank.json"
    script.write_text('["Do you have a fever?", "Do you smoke?"]')
    (episode,) = consult(resolve_doctor(f"bank:fixed:{script}"), cases=CASES[:1], budget=4)
    assert questions(episode) == ["Do you have a fever?", "Do you smoke?"]  # then answers


def test_the_oracle_asks_the_unknown_facts_and_acquires_them():
    episodes = consult(resolve_doctor("oracle"), budget=3)
    for case, episode in zip(CASES, episodes, strict=True):
        unknown = [f for i, f in enumerate(case.facts) if i not in episode.known_fact_ids]
        asked = questions(episode)
        # unknown facts in the case's order, skipping those a reply already disclosed
        assert asked == [f for f in unknown if f in asked]
        assert len(asked) == min(3, len(unknown)) and new_facts(episode) >= len(asked)
        replies = " ".join(t.text for t in episode.turns if t.role is Role.PATIENT)
        assert all(fact in replies for fact in asked)
    random_runs = consult(resolve_doctor("bank:random"), budget=3)
    assert sum(map(new_facts, episodes)) > 3 * sum(map(new_facts, random_runs))
    with pytest.raises(BackendError, match="reads the consultation, not a prompt"):
        resolve_doctor("oracle").invoke([HumanMessage(case_prompt(CASES[0], partial_view(
            CASES[0])))])  # outside the graph there is no consultation to read


def test_reference_doctors_read_the_case_not_the_prompt(monkeypatch):
    """Rewording the doctor's prompt and final request changes nothing they do."""
    import promed_agents.graphs.consultation as graph_module
    from promed_agents.agents import doctor as doctor_module
    from promed_agents.agents.similar_cases import SimilarCases

    similar = BankDoctor(spec="bank:similar", order="similar", questions={
        "en": bank_questions()}, similar=SimilarCases(CASES, {"en": bank_questions()}))
    doctors = [resolve_doctor("bank:random"), resolve_doctor("bank:fixed"),
               resolve_doctor("oracle"), similar]

    def runs():
        return [[(questions(e), e.final_answer, e.status) for e in consult(d, budget=3)]
                for d in doctors]

    before = runs()
    monkeypatch.setattr(doctor_module, "case_prompt", lambda case, view: (
        f"Known so far -- {view.opening_text(case)}\nExam item: {case.question}\n" +
        " | ".join(f"({k}) {v}" for k, v in case.options.items())))
    monkeypatch.setattr(graph_module, "final_request",
                        lambda case: "Time is up: reply with answer: X.")
    after = runs()
    assert after == before
    assert len({tuple(q) for q, _, _ in before[0]}) > 1  # bank:random draws per case


def test_the_final_answer_is_the_option_sharing_most_with_what_is_known():
    case = CASES[0].model_copy(update={
        "options": {"A": "Migraine", "B": "A sexually acquired infection", "C": "Gout"}})
    (episode,) = consult(resolve_doctor("bank:fixed"), cases=[case], budget=1)
    assert episode.final_answer == ["B"]  # "sexually" is in a known fact


def test_the_bank_proposer_widens_a_node_in_the_bank_order():
    proposer = resolve_doctor("bank")
    bank = proposer.questions["en"]
    messages = [HumanMessage(case_prompt(CASES[0], partial_view(CASES[0])))]
    start = ConsultationSoFar(CASES[0], partial_view(CASES[0]))

    def propose(consultation=start, taken=()):
        return proposer.invoke(messages, consultation=consultation, exclude=list(taken)).content

    assert propose() == f"question: {bank[0]}"
    taken = [f"question: {bank[0]}", f"question: {bank[2]}"]
    assert propose(taken=taken) == f"question: {bank[1]}"
    taken.append(f"question: {bank[1]}")
    assert propose(taken=taken) == f"question: {bank[3]}"
    asked = replace(start, asked=(bank[3],), replies=("no",))
    assert propose(asked, taken) == f"question: {bank[4]}"


def test_specs():
    assert isinstance(resolve_chat_model("bank:random"), BankDoctor)
    assert resolve_doctor("bank").widens_in_order
    with pytest.raises(BackendError, match="bank:random, bank:fixed"):
        resolve_doctor("bank:shuffled")


def _open_episodes(spec, budget=19, count=3):
    from conftest import ROOT

    cases = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[:count]
    return cases, asyncio.run(arun_consultations(
        cases, ConsultationContext(doctor=resolve_doctor(spec), max_questions=budget),
        policy="initial"))


def test_on_open_ended_cases_the_bank_alternates_history_questions_and_tests():
    from promed_agents.agents.question_bank import bank_tests, measurement_questions
    from promed_agents.agents.reference_doctors import OPEN_REFERENCE_DIAGNOSIS

    cases, episodes = _open_episodes("bank:fixed", budget=6)
    doctor = [t for t in episodes[0].turns if t.role is Role.DOCTOR]
    assert [t.kind for t in doctor] == [TurnKind.QUESTION, TurnKind.TEST] * 3 + \
        [TurnKind.ANSWER]
    assert [t.text for t in doctor if t.kind is TurnKind.TEST] == \
        [f"test: {name}" for name in bank_tests()[:3]]
    assert not {t.text.removeprefix("question: ") for t in doctor} & measurement_questions()
    vitals = episodes[0].turns[3]
    assert vitals.role is Role.MEASUREMENT and vitals.disclosed_fact_ids == [11, 12, 13, 14]
    assert doctor[-1].text == OPEN_REFERENCE_DIAGNOSIS
    assert all(e.correct is False and e.tests_ordered == 3 for e in episodes)


def test_on_open_ended_cases_the_oracle_orders_each_unknown_measurement_by_its_field():
    _, oracle = _open_episodes("oracle")
    _, bank = _open_episodes("bank:fixed")
    for episode in oracle:
        tests = [t.text for t in episode.turns if t.kind is TurnKind.TEST]
        assert tests and all(not t.startswith("test: Physical") for t in tests)
        assert episode.fact_recall >= 0.9
    assert "test: Vital Signs Temperature" in [t.text for t in oracle[0].turns]
    assert sum(e.fact_recall for e in oracle) > sum(e.fact_recall for e in bank)
