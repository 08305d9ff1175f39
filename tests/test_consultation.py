from __future__ import annotations

import asyncio

import pytest
from langgraph.graph import StateGraph

from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, build_consultation_graph
from promed_agents.graphs.consultation_runner import recursion_limit
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.partial_view import partial_view
from promed_agents.trace import ConsultationMode, TurnKind

from conftest import ROOT

CASE = load_cases(bundled_sample_path())[0]  # answer C; facts 4..8 hidden under half-facts


def run(doctor, case=CASE, **context):
    graph = build_consultation_graph(retry_policy=context.pop("retry", None)).compile()
    ctx = ConsultationContext(doctor=doctor, **context)
    return asyncio.run(graph.ainvoke(
        {"case": case, "view": partial_view(case)}, context=ctx,
        config={"recursion_limit": recursion_limit(ctx.max_questions)}))


def scripted(*responses):
    return ScriptedChatModel(responses=list(responses))


def test_factory_returns_an_uncompiled_graph():
    assert isinstance(build_consultation_graph(), StateGraph)


def test_question_reply_answer():
    state = run(scripted("question: What did the culture of the joint fluid show?",
                         "answer: C"))
    kinds = [(t.role.value, t.kind) for t in state["turns"]]
    assert kinds == [("doctor", TurnKind.QUESTION), ("patient", TurnKind.REPLY),
                     ("doctor", TurnKind.ANSWER)]
    question, reply_turn, answer = state["turns"]
    assert reply_turn.disclosed_fact_ids == [5]
    assert question.sig == pytest.approx(1 / 9) and answer.sig is None
    assert state["acquired"] == [0, 1, 2, 3, 5] and "turn" not in state
    assert (state["status"], state["final_answer"], state["correct"]) == \
        ("completed", ["C"], True)
    assert question.token_ids and len(question.token_ids) == len(question.logprobs)


def test_question_budget_is_enforced():
    state = run(scripted("question: Do you have a fever?"), max_questions=3)
    doctor = [t for t in state["turns"] if t.role.value == "doctor"]
    # the question asked after the final request earns what a timeout earns
    assert [t.kind for t in doctor] == [TurnKind.QUESTION] * 3 + [TurnKind.INVALID]
    assert [t.format_score for t in doctor] == [1.0, 1.0, 1.0, 0.0]
    assert state["questions"] == 3 and state["status"] == "timeout"
    assert state["final_answer"] is None and state["correct"] is False
    assert "no questions left" in state["messages"][-2].content  # the final request
    assert sum(t.kind is TurnKind.REPLY for t in state["turns"]) == 3


def test_budget_of_zero_and_reactive_mode_answer_at_once():
    for context in ({"max_questions": 0}, {"mode": ConsultationMode.REACTIVE}):
        state = run(scripted("answer: C"), **context)
        assert [t.kind for t in state["turns"]] == [TurnKind.ANSWER]
        assert state["correct"] is True


def test_a_question_in_reactive_mode_is_an_invalid_turn_not_a_question():
    from promed_agents.evaluation import episode_figures
    from promed_agents.graphs.consultation_runner import episode_from_state

    ctx = ConsultationContext(doctor=scripted("question: Any fever?"),
                              mode=ConsultationMode.REACTIVE)
    state = run(ctx.doctor, mode=ConsultationMode.REACTIVE)
    assert [t.kind for t in state["turns"]] == [TurnKind.INVALID]
    assert state["questions"] == 0 and state["status"] == "timeout"
    figures = episode_figures(episode_from_state(state, ctx))
    assert (figures["questions"], figures["valid_turns"], figures["correct"]) == (0, 0, 0)


def test_malformed_output_follows_the_documented_rule():
    state = run(scripted("I am thinking...", "question: Any fever?", "C. Ceftriaxone"),
                max_questions=2)
    doctor = [t for t in state["turns"] if t.role.value == "doctor"]
    assert [t.kind for t in doctor] == [TurnKind.INVALID, TurnKind.QUESTION, TurnKind.INVALID]
    assert [t.format_score for t in doctor] == [0.0, 1.0, 0.0]
    assert "Reply with exactly one line" in state["messages"][3].content
    # the final turn was malformed but named an option: taken as the answer
    assert state["final_answer"] == ["C"] and state["status"] == "completed"
    unreadable = run(scripted("hmm", "still thinking"), max_questions=1)
    assert unreadable["status"] == "timeout" and unreadable["final_answer"] is None


def test_failing_model_is_retried_then_raises():
    calls = []

    def flaky(messages):
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("backend down")
        return "answer: C"

    from langgraph.types import RetryPolicy
    retry = RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False)
    assert run(ScriptedChatModel(responder=flaky), retry=retry)["correct"] is True
    assert len(calls) == 3
    always = ScriptedChatModel(responder=lambda m: (_ for _ in ()).throw(RuntimeError("dead")))
    with pytest.raises(RuntimeError, match="dead"):
        run(always, retry=retry)


def test_a_custom_node_can_be_inserted():
    graph = build_consultation_graph()
    seen = []

    def safety_check(state):
        seen.append(state["turns"][-1].text)
        return {}

    graph.add_node("safety_check", safety_check)
    graph.add_edge("evaluate_final", "safety_check")
    compiled = graph.compile()
    state = asyncio.run(compiled.ainvoke({"case": CASE, "view": partial_view(CASE)},
                                         context=ConsultationContext(doctor=scripted("answer: C"))))
    assert seen == ["answer: C"] and state["correct"] is True


def test_a_dynamic_budget_is_drawn_per_consultation_and_shown_to_the_doctor():
    from promed_agents.graphs.consultation_runner import episode_from_state

    ctx = ConsultationContext(doctor=scripted("question: Any fever?"), budget_range=(3, 3))
    state = run(ctx.doctor, budget_range=(3, 3), max_questions=0)
    doctor = [t.kind for t in state["turns"] if t.role.value == "doctor"]
    assert doctor == [TurnKind.QUESTION] * 2 + [TurnKind.INVALID]  # 3 turns: 2 questions
    shown = [m.content for m in state["messages"] if str(m.content).startswith("Turn ")]
    assert shown == ["Turn 1 of 3.", "Turn 2 of 3.", "Turn 3 of 3."]
    assert episode_from_state(state, ctx).max_questions == 2
    import random

    random.seed(0)
    budgets = {run(scripted("answer: C"), budget_range=(2, 10))["budget"] for _ in range(40)}
    assert budgets <= set(range(1, 10)) and len(budgets) >= 5
    fixed = run(scripted("answer: C"))
    assert fixed["budget"] == 10 and not any(
        str(m.content).startswith("Turn ") for m in fixed["messages"])


class OneNewFactEachTime:
    """A patient who tells one more hidden fact each time, whatever is asked."""

    name = "generous"

    def __init__(self):
        self.told = 3

    async def reply(self, case, question):
        from promed_agents.agents.patient import PatientReply

        self.told += 1
        return PatientReply(text=case.facts[self.told], disclosed_fact_ids=[self.told])


def test_a_repeated_question_acquires_nothing_whatever_the_patient_says():
    state = run(scripted("question: What did the examination show?",
                         "question: what did the EXAMINATION show",
                         "question: Do you have a fever?", "answer: C"),
                patient=OneNewFactEachTime())
    questions = [t for t in state["turns"] if t.kind is TurnKind.QUESTION]
    assert [q.sig for q in questions] == pytest.approx([1 / 9, 0.0, 1 / 9])
    assert state["acquired"] == [0, 1, 2, 3, 4, 6]  # fact 5, told to the repeat, is not


OPEN_CASE = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
"""AgentClinic's first case: myasthenia gravis; 22 facts, 11..14 the vital signs."""


def run_open(doctor, case=OPEN_CASE, **context):
    graph = build_consultation_graph(retry_policy=None).compile()
    ctx = ConsultationContext(doctor=doctor, **context)
    return asyncio.run(graph.ainvoke(
        {"case": case, "view": partial_view(case, "initial")}, context=ctx,
        config={"recursion_limit": recursion_limit(ctx.max_questions)}))


def test_test_orders_go_to_the_measurement_agent_and_questions_to_the_patient():
    state = run_open(scripted("question: When did the double vision start?",
                              "test: Vital signs", "test: vital signs",
                              "diagnosis: Myasthenia gravis"), max_questions=5)
    turns = state["turns"]
    assert [(t.role.value, t.kind) for t in turns] == [
        ("doctor", TurnKind.QUESTION), ("patient", TurnKind.REPLY),
        ("doctor", TurnKind.TEST), ("measurement", TurnKind.REPLY),
        ("doctor", TurnKind.TEST), ("measurement", TurnKind.REPLY),
        ("doctor", TurnKind.ANSWER)]
    measured = set(OPEN_CASE.measurement_fact_ids())
    assert turns[1].disclosed_fact_ids and not set(turns[1].disclosed_fact_ids) & measured
    assert turns[3].disclosed_fact_ids == [11, 12, 13, 14]
    assert "Blood pressure: 125/80 mmHg" in turns[3].text
    n = len(OPEN_CASE.facts)
    # SIG per question and per test order: the weight of the facts newly acquired; the
    # repeated order acquires nothing
    new = set(turns[1].disclosed_fact_ids) - set(OPEN_CASE.initial_fact_ids)
    assert new and turns[0].sig == pytest.approx(len(new) / n)
    assert turns[2].sig == pytest.approx(4 / n) and turns[4].sig == 0.0
    assert state["information_gain"] == pytest.approx(turns[0].sig + 4 / n)
    assert state["tests"] == 2 and state["questions"] == 3  # a test uses the budget
    assert any(m.content.startswith("Result: Temperature") for m in state["messages"])
    assert (state["status"], state["final_answer"]) == ("completed", ["Myasthenia gravis"])
    assert state["correct"] is True
    assert state["verdict"].judge == "rouge:0.5" and state["verdict"].score == 1.0


def test_a_wrong_diagnosis_is_judged_and_a_test_after_the_final_request_is_late():
    wrong = run_open(scripted("diagnosis: Guillain-Barre syndrome"), max_questions=2)
    assert wrong["correct"] is False and wrong["verdict"].correct is False
    assert wrong["tests"] == 0
    late = run_open(scripted("test: Chest X-ray"), max_questions=1)
    doctor = [t for t in late["turns"] if t.role.value == "doctor"]
    assert [t.kind for t in doctor] == [TurnKind.TEST, TurnKind.INVALID]
    assert doctor[-1].late_question and late["status"] == "timeout"
    assert late["verdict"] is None and late["correct"] is False
    assert "Give your diagnosis now" in late["messages"][-2].content


def test_the_evaluator_s_judge_decides_and_is_recorded():
    from promed_agents.agents.evaluator import Evaluator
    from promed_agents.agents.judge import resolve_judge
    from promed_agents.graphs import episode_from_state

    doctor = scripted("diagnosis: myasthenia")  # ROUGE-L F1 2/3 against "Myasthenia gravis"
    lenient = run_open(doctor, evaluator=Evaluator(judge=resolve_judge("rouge:0.6")))
    strict = run_open(scripted("diagnosis: myasthenia"),
                      evaluator=Evaluator(judge=resolve_judge("exact")))
    assert lenient["correct"] is True and lenient["verdict"].score == pytest.approx(2 / 3)
    assert strict["correct"] is False and strict["verdict"].judge == "exact"
    context = ConsultationContext(doctor=doctor, evaluator=Evaluator(judge=resolve_judge("exact")))
    episode = episode_from_state(strict, context)
    assert episode.verdict.judge == "exact" and episode.tests_ordered == 0
    assert episode.correct is False
