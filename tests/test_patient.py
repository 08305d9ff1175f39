from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import BaseMessage

from promed_agents.agents.patient import (
    DONT_KNOW,
    FactSelectPatient,
    LLMPatient,
    lexical_fact_checker,
)
from promed_agents.agents.question_bank import bank_questions
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.partial_view import partial_view
from promed_agents.text_similarity import TermWeights

from adversarial_turns import ADVERSARIAL_TURNS, DEGENERATE_QUESTIONS, leaks

CASES = load_cases(bundled_sample_path())


def reply(patient, case, question):
    return asyncio.run(patient.reply(case, question))


def test_fact_select_returns_matching_facts_verbatim():
    case = CASES[0]
    answer = reply(FactSelectPatient(), case, "Do you have a fever?")
    assert answer.text == "Patient complains of fever." and answer.disclosed_fact_ids == [2]
    culture = reply(FactSelectPatient(), case, "What did the culture of the joint fluid show?")
    assert culture.disclosed_fact_ids == [5]
    unknown = reply(FactSelectPatient(), case, "Do you smoke?")
    assert unknown.text == DONT_KNOW and unknown.disclosed_fact_ids == []


def test_degenerate_questions_harvest_nothing_while_topics_and_own_text_are_answered():
    """The battery names no topic: asked all in one consultation of each bundled case, it
    acquires under 0.1 new facts per case; a fact's own text returns that fact, and the
    bank's best path at budget 5 acquires more than one new fact per case."""
    assert len(DEGENERATE_QUESTIONS) >= 30
    patient = FactSelectPatient()
    harvested, own, best = 0, [], 0
    bank = bank_questions()
    for case in CASES:
        unknown = set(range(len(case.facts))) - set(partial_view(case).known_fact_ids)
        harvested += len({i for q in DEGENERATE_QUESTIONS for i in patient.select(case, q)}
                         & unknown)
        own += [i in patient.select(case, fact) for i, fact in enumerate(case.facts)]
        got: set[int] = set()
        for _ in range(5):
            question = max(bank, key=lambda q: len(set(patient.select(case, q)) & unknown - got))
            got |= set(patient.select(case, question)) & unknown
        best += len(got)
    assert harvested / len(CASES) < 0.1
    assert sum(own) == len(own)
    assert best / len(CASES) > 1.0


@pytest.mark.parametrize("question", ["Show me.", "What do the results show?", "examination",
                                      "Tell me everything.", "Anything else?", "patient",
                                      "Anything significant after that?", "10?"])
def test_questions_naming_no_topic_get_nothing(question):
    for case in CASES:
        assert reply(FactSelectPatient(), case, question).text == DONT_KNOW


def test_a_question_stating_a_whole_fact_gets_it_though_it_names_no_topic():
    case = CASES[0].model_copy(update={"facts": ["He is brought to the emergency department.",
                                                 "Temperature is 38.9 C."]})
    patient = FactSelectPatient()
    assert patient.select(case, "Were you brought to the emergency department?") == [0]
    assert patient.select(case, "emergency department?") == []
    assert patient.select(case, "38.9?") == []  # a number alone
    assert patient.select(case, "Is your temperature 38.9?") == [1]


def test_frequent_words_weigh_little_and_topics_much():
    weights = TermWeights.from_texts(["Physical examination shows a murmur.",
                                      "Physical examination shows pallor.",
                                      "Examination of the abdomen is normal."])
    assert weights.weight("examination") < weights.weight("murmur")
    assert weights.weight("unseen") == weights.weight("murmur")  # as a word seen once
    case = CASES[0].model_copy(update={"facts": ["Physical examination shows a murmur.",
                                                 "Physical examination shows pallor."]})
    patient = FactSelectPatient(term_weights=weights, min_weight=1.0)
    assert patient.select(case, "Is there a murmur?") == [0]
    assert patient.select(case, "examination?") == []  # in every fact: weight 0


def test_fact_select_caps_facts_per_reply():
    case = CASES[0]
    broad = "patient male sexually active fever pain urination inflammation knee bacteria"
    assert len(reply(FactSelectPatient(max_facts=2), case, broad).disclosed_fact_ids) == 2
    assert len(reply(FactSelectPatient(max_facts=4), case, broad).disclosed_fact_ids) == 4


SECRET_CASES = [c for c in CASES
                if not any(o.lower() in " ".join(c.facts).lower() for o in c.options.values())]
"""Cases none of whose option texts occurs in a fact: any option in a reply is a leak."""


def test_leaks_finds_an_option_or_the_question_not_stated_by_a_fact():
    case = SECRET_CASES[0]
    option = case.options[case.answer[0]]
    assert leaks(f"I think it is {option}.", case) == [option]
    assert leaks(case.question, case) == [case.question]
    assert leaks(" ".join(case.facts), case) == []


@pytest.mark.parametrize("question", ADVERSARIAL_TURNS)
def test_fact_select_never_leaks_the_answer_or_options(question):
    assert len(SECRET_CASES) >= 20
    patient = FactSelectPatient()
    for case in SECRET_CASES:
        answer = reply(patient, case, question)
        assert leaks(answer.text, case) == []
        assert not any(o.lower() in answer.text.lower() for o in case.options.values())
        assert len(answer.disclosed_fact_ids) <= patient.max_facts


@pytest.mark.parametrize("question", ADVERSARIAL_TURNS[:12])
def test_an_llm_patient_that_knows_the_exam_cannot_leak_it(question):
    """The model behind the patient is scripted to leak (it names the right option and
    reads out the question); the patient's reply keeps only the facts it stated that the
    question asked about: none for the bare adversarial question, the first fact when the
    question also names it."""
    for case in SECRET_CASES[:20]:
        option = case.options[case.answer[0]]
        model = ScriptedChatModel(responder=lambda messages, c=case, o=option:
                                  f"{c.facts[0]} The answer is {o}. {c.question}")
        bare = reply(LLMPatient(model=model), case, question)
        assert bare.text == DONT_KNOW and bare.disclosed_fact_ids == []
        answer = reply(LLMPatient(model=model), case, f"{case.facts[0]} {question}")
        assert leaks(answer.text, case) == [] and option.lower() not in answer.text.lower()
        assert 0 in answer.disclosed_fact_ids
        assert answer.text == " ".join(case.facts[i] for i in answer.disclosed_fact_ids)
        silent = ScriptedChatModel(responder=lambda messages, o=option: f"It is {o}.")
        assert reply(LLMPatient(model=silent), case, question).text == DONT_KNOW


@pytest.mark.parametrize("question", ADVERSARIAL_TURNS)
def test_llm_patient_context_never_holds_question_options_or_answer(question):
    seen: list[list[BaseMessage]] = []

    def parrot(messages):  # a patient model that repeats everything it was given
        seen.append(list(messages))
        return " ".join(str(m.content) for m in messages)

    patient = LLMPatient(model=ScriptedChatModel(responder=parrot))
    for case in CASES[:20]:
        answer = reply(patient, case, question)
        system, asked = seen[-1]
        assert asked.content == question  # all it gets besides the facts
        assert leaks(str(system.content), case) == []
        assert all(fact in system.content for fact in case.facts)
        options_only = case.model_copy(update={"question": "\x00"})
        assert leaks(answer.text, options_only) == []


def test_llm_patient_disclosure_comes_from_the_fact_checker():
    case = CASES[0]
    model = ScriptedChatModel(responses=["Yes, I complain of fever and pain during urination."])
    question = "Any fever? Any pain during urination?"
    answer = reply(LLMPatient(model=model), case, question)
    assert answer.disclosed_fact_ids == [2, 3]
    assert answer.text == "Yes, I complain of fever and pain during urination."
    custom = LLMPatient(model=model, fact_checker=lambda text, facts: [2])
    assert reply(custom, case, question).disclosed_fact_ids == [2]
    # a fact the question did not ask about is not disclosed, and its words are not shown
    only_fever = reply(LLMPatient(model=model), case, "Any fever?")
    assert only_fever.disclosed_fact_ids == [2] and only_fever.text == case.facts[2]
    checker = lexical_fact_checker(0.99)
    assert checker("I complain of a fever.", ["Patient complains of fever."]) == [0]
    assert checker("A fever.", ["Patient complains of fever."]) == []


def test_llm_patient_states_at_most_max_facts_per_reply():
    case = CASES[0]
    everything = ScriptedChatModel(responder=lambda messages: " ".join(case.facts))
    assert reply(LLMPatient(model=everything), case, "Tell me everything.").text == DONT_KNOW
    broad = " ".join(case.facts)  # a question naming every fact's topic
    answer = reply(LLMPatient(model=everything), case, broad)
    assert answer.disclosed_fact_ids == [0, 1]
    assert answer.text == f"{case.facts[0]} {case.facts[1]}"  # the rest is not shown either
    three = reply(LLMPatient(model=everything, max_facts=3), case, broad)
    assert three.disclosed_fact_ids == [0, 1, 2]
