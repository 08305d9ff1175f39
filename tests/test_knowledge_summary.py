from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.knowledge_summary import KnowledgeSummary, summary_prompt
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, run_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import TurnKind


@pytest.fixture(scope="module")
def cases():
    return load_cases(bundled_sample_path())[:4]


def echo_replies(messages):
    """A summariser that repeats what the patient said (a perfect summary)."""
    text = str(messages[-1].content)
    return "\n".join(line[len("Patient: "):] for line in text.splitlines()
                     if line.startswith("Patient: "))


def test_the_summary_decides_the_known_facts_and_never_sees_the_exam(cases):
    case = cases[0]
    seen = []

    def summarise(messages):
        seen.append("\n".join(str(m.content) for m in messages))
        return f"The patient says: {case.facts[3]}"

    summary = KnowledgeSummary(ScriptedChatModel(responder=summarise))
    known = asyncio.run(summary.known_facts(case, [0, 1], [("question: Any pain?", "Yes.")]))
    assert known == [0, 1, 3]
    prompt = seen[0]
    assert case.facts[0] in prompt and "Doctor: question: Any pain?" in prompt
    assert case.question not in prompt
    assert not any(option in prompt for option in case.options.values())
    assert summary_prompt(case, [], []).startswith("Notes at the start: (none)")


def consult(cases, evaluator):
    """Two questions per case, asking about its last two facts (so something is new)."""
    episodes = []
    for case in cases:
        doctor = ScriptedChatModel(responses=[f"question: {case.facts[-1]}",
                                              f"question: {case.facts[-2]}", "answer: A"])
        episodes += run_consultations([case], ConsultationContext(
            doctor=doctor, evaluator=evaluator, max_questions=2))
    return episodes


def test_a_perfect_summary_gives_the_same_sig_as_disclosure(cases):
    by_disclosure = consult(cases, Evaluator())

    def verbatim(text, facts):
        return [i for i, fact in enumerate(facts) if fact in text]

    by_summary = consult(cases, Evaluator(summary=KnowledgeSummary(
        ScriptedChatModel(responder=echo_replies), checker=verbatim)))
    for a, b in zip(by_disclosure, by_summary, strict=True):
        sig_a = [t.sig for t in a.turns if t.kind is TurnKind.QUESTION]
        sig_b = [t.sig for t in b.turns if t.kind is TurnKind.QUESTION]
        assert sig_b == pytest.approx(sig_a)
        assert b.fact_recall == pytest.approx(a.fact_recall)
        assert b.information_gain == pytest.approx(sum(sig_a))
    assert any(t.sig > 0 for e in by_summary for t in e.turns if t.sig is not None)


def test_an_empty_summary_gains_nothing(cases):
    episodes = consult(cases, Evaluator(summary=KnowledgeSummary(
        ScriptedChatModel(responder=lambda messages: "Nothing new."))))
    for case, episode in zip(cases, episodes, strict=True):
        questions = [t for t in episode.turns if t.kind is TurnKind.QUESTION]
        assert len(questions) == 2 and all(t.sig == 0 for t in questions)
        # only the facts known at the start count, although the patient disclosed more
        assert any(t.disclosed_fact_ids for t in episode.turns)
        assert episode.fact_recall == pytest.approx(
            len(episode.known_fact_ids) / len(case.facts))
