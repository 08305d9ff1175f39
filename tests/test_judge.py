"""Judges of free-text diagnoses: exact match, token F1 and ROUGE-L, an LLM moderator."""

from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.judge import (
    ExactMatchJudge,
    LLMJudge,
    OverlapJudge,
    normalise,
    resolve_judge,
    rouge_l_f1,
    token_f1,
)
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.case import Case
from promed_agents.errors import ConsultationError

CASE = Case(id="o-1", source="o", question="Diagnose the patient.",
            diagnosis="Myasthenia gravis", facts=["Double vision."])


def judged(judge, diagnosis, case=CASE):
    return asyncio.run(judge.ajudge(case, diagnosis))


def test_exact_match_ignores_case_punctuation_articles_and_accents():
    assert normalise("  The Myasthénia-Gravis. ") == "myasthenia gravis"
    assert judged(ExactMatchJudge(), "myasthenia gravis!").correct
    wrong = judged(ExactMatchJudge(), "Ocular myasthenia gravis")
    assert (wrong.correct, wrong.score, wrong.judge) == (False, 0.0, "exact")
    assert not judged(ExactMatchJudge(), "").correct


def test_token_f1_and_rouge_l_score_partial_overlap():
    assert token_f1("ocular myasthenia gravis", "Myasthenia gravis") == pytest.approx(0.8)
    assert token_f1("lupus", "Myasthenia gravis") == 0.0
    assert rouge_l_f1("ocular myasthenia gravis", "Myasthenia gravis") == pytest.approx(0.8)
    # ROUGE-L with stemming: "infections" and "infection" are one token; order counts
    assert rouge_l_f1("urinary tract infections", "Urinary tract infection") == 1.0
    assert rouge_l_f1("gravis myasthenia", "myasthenia gravis") == pytest.approx(0.5)
    verdict = judged(OverlapJudge("rouge", 0.75), "ocular myasthenia gravis")
    assert verdict.correct and verdict.score == pytest.approx(0.8)
    assert verdict.judge == "rouge:0.75"
    assert not judged(OverlapJudge("token-f1", 0.9), "ocular myasthenia gravis").correct


def test_an_llm_judge_asks_the_moderators_question_and_reads_yes_or_no():
    seen = []

    def moderator(messages):
        seen.append(messages[-1].content)
        return "Yes." if "gravis" in messages[-1].content.split("dx:")[1] else "No"

    judge = LLMJudge(ScriptedChatModel(responder=moderator, spec="fake:mod"), "fake:mod")
    right = judged(judge, "MG (myasthenia gravis)")
    assert right.correct and right.detail == "Yes." and right.judge == "llm:fake:mod"
    assert seen[0] == ("Here is the correct diagnosis: Myasthenia gravis\nHere was the "
                       "doctor dx: MG (myasthenia gravis)\nAre these the same?")
    assert not judged(judge, "Lambert-Eaton syndrome").correct


def test_judges_are_named_by_spec_and_bad_specs_are_one_line():
    assert isinstance(resolve_judge("exact"), ExactMatchJudge)
    assert resolve_judge("rouge").name == "rouge:0.5"
    assert resolve_judge("token-f1:0.3").name == "token-f1:0.3"
    assert resolve_judge("llm:fake:Yes").name == "llm:fake:Yes"
    for bad, message in (("bleu", "use exact, rouge"), ("rouge:high", "must be a number"),
                         ("rouge:0", "not in \\(0, 1\\]")):
        with pytest.raises(ConsultationError, match=message):
            resolve_judge(bad)


def test_a_multiple_choice_case_is_not_judged():
    lettered = Case(id="m-1", source="m", question="Which?", options={"A": "x", "B": "y"},
                    answer=["A"])
    with pytest.raises(ConsultationError, match="has options"):
        judged(ExactMatchJudge(), "x", lettered)
