"""MediQ's abstaining doctor as a node before the doctor, with scripted models."""

from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.abstention import (
    ANSWER_NOW,
    Abstention,
    read_confidence,
)
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, abstaining_consultation_graph
from promed_agents.graphs.consultation_runner import episode_from_state, recursion_limit
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.partial_view import partial_view
from promed_agents.trace import ConsultationMode, TurnKind

CASE = load_cases(bundled_sample_path())[0]  # answer C


def scripted(confidences, turns):
    """A doctor that rates its confidence from ``confidences`` when asked, and otherwise
    says ``turns[k]`` at its k-th turn (the last ones repeat)."""
    asked = []

    def respond(messages):
        turn = sum(1 for m in messages if m.type == "ai")
        if "Before you go on" in str(messages[-1].content):
            asked.append(turn)
            return confidences[min(len(asked), len(confidences)) - 1]
        return turns[min(turn, len(turns) - 1)]

    return ScriptedChatModel(responder=respond)


def consult(graph, confidences, turns, **context):
    ctx = ConsultationContext(doctor=scripted(confidences, turns), **context)
    state = asyncio.run(graph.compile().ainvoke(
        {"case": CASE, "view": partial_view(CASE)}, context=ctx,
        config={"recursion_limit": recursion_limit(ctx.max_questions)}))
    return state, episode_from_state(state, ctx)


@pytest.mark.parametrize(("text", "variant", "value"), [
    ("0.85", "numerical", 0.85), ("I'd say 70%", "numerical", 0.7), ("90", "numerical", 0.9),
    ("confidence: .5", "numerical", 0.5), ("no idea", "numerical", 0.0),
    ("Very confident.", "scale", 1.0), ("somewhat unconfident", "scale", 0.25),
    ("Very unconfident", "scale", 0.0), ("Neither confident nor unconfident", "scale", 0.5),
    ("Somewhat Confident", "scale", 0.75), ("pass", "scale", 0.0)])
def test_confidence_is_read_from_either_variant(text, variant, value):
    assert read_confidence(text, variant) == pytest.approx(value)


def test_the_doctor_asks_while_unsure_and_answers_once_confident():
    graph = abstaining_consultation_graph("numerical", 0.8)
    state, episode = consult(graph, ["0.3", "0.9"], ["question: What did the culture of the "
                                                     "joint fluid show?", "answer: C"])
    doctor = [t.kind for t in episode.turns if t.role.value == "doctor"]
    assert doctor == [TurnKind.QUESTION, TurnKind.ANSWER] and episode.correct
    assert episode.confidences == [0.3, 0.9]
    assert state["messages"][-2].content == ANSWER_NOW  # confidence prompts are not kept
    assert not any("how likely" in str(m.content) for m in state["messages"])


def test_a_confident_doctor_answers_at_once_and_a_question_then_is_invalid():
    graph = abstaining_consultation_graph("scale", 0.8)
    _, episode = consult(graph, ["very confident"], ["question: Any fever?"])
    assert [t.kind for t in episode.turns] == [TurnKind.INVALID]
    assert episode.status.value == "timeout" and episode.confidences == [1.0]


def test_the_budget_still_holds_and_reactive_runs_are_not_asked():
    graph = abstaining_consultation_graph("numerical", 0.8)
    _, episode = consult(graph, ["0.1"], ["question: Any fever?", "answer: C"],
                         max_questions=1)
    assert [t.kind for t in episode.turns if t.role.value == "doctor"] == \
        [TurnKind.QUESTION, TurnKind.ANSWER]
    assert episode.confidences == [0.1]  # not asked once the budget is spent
    _, reactive = consult(graph, ["1.0"], ["answer: C"], mode=ConsultationMode.REACTIVE)
    assert reactive.correct and "confidences" not in reactive.metadata


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="variant 'vibes'"):
        Abstention("vibes")
    with pytest.raises(ValueError, match="threshold 1.5"):
        Abstention(threshold=1.5)


def test_an_open_ended_case_s_abstaining_doctor_is_asked_for_its_diagnosis():
    from promed_agents.agents.abstention import OPEN_ANSWER_NOW
    from promed_agents.loader import agentclinic_sample_path

    case = load_cases(agentclinic_sample_path())[0]
    ctx = ConsultationContext(doctor=scripted(["0.2", "0.9"], [
        "test: Vital signs", "diagnosis: Myasthenia gravis"]))
    state = asyncio.run(abstaining_consultation_graph("numerical", 0.8).compile().ainvoke(
        {"case": case, "view": partial_view(case, "initial")}, context=ctx,
        config={"recursion_limit": recursion_limit(ctx.max_questions)}))
    assert state["messages"][-2].content == OPEN_ANSWER_NOW
    assert state["tests"] == 1 and state["correct"] is True
