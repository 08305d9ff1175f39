"""Patients: who answers the doctor's questions, from the case's atomic facts only.

case -> partial view -> doctor <-> **patient** -> evaluator -> trace in SQL -> training

A patient sees the facts and the doctor's question, never the exam question, the options
or the answer, so it cannot leak them. Every reply records the fact ids it disclosed.

- :class:`FactSelectPatient` (default; no model): returns verbatim the facts most similar
  to the question, at most ``max_facts`` of them, so "tell me everything" harvests nothing.
- :class:`LLMPatient`: a chat model answers in the first person from the facts; which
  facts it disclosed is decided by a :data:`FactChecker` (lexical by default), a reply
  stating more than ``max_facts`` facts is cut down to them, and a reply naming an option
  or the exam question (a model that knows the exam) is replaced by the facts it stated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.case import Case
from promed_agents.text_similarity import coverage

DONT_KNOW = "I don't know."


@dataclass(frozen=True)
class PatientReply:
    text: str
    disclosed_fact_ids: list[int]
    token_ids: list[int] | None = None


class Patient(Protocol):
    """Anything that answers a doctor's question about a case."""

    name: str

    async def reply(self, case: Case, question: str) -> PatientReply: ...


FactChecker = Callable[[str, Sequence[str]], list[int]]
"""``checker(reply, facts) -> ids of the facts the reply states``."""


def lexical_fact_checker(threshold: float = 0.6) -> FactChecker:
    """A fact checker that accepts a fact when ``threshold`` of its content is in the reply."""

    def check(reply: str, facts: Sequence[str]) -> list[int]:
        return [i for i, fact in enumerate(facts) if coverage(fact, reply) >= threshold]

    return check


@dataclass
class FactSelectPatient:
    """Replies with the facts most relevant to the question, verbatim (MediQ FactSelect)."""

    max_facts: int = 2
    min_score: float = 0.34
    name: str = "fact-select"

    def select(self, case: Case, question: str) -> list[int]:
        # Symmetric: a short question naming part of a fact, or a fact answering part of
        # a long question, both count; the cap keeps broad questions from harvesting.
        scored = [(max(coverage(question, fact), coverage(fact, question)), i)
                  for i, fact in enumerate(case.facts)]
        chosen = [(s, i) for s, i in scored if s >= self.min_score]
        chosen.sort(key=lambda pair: (-pair[0], pair[1]))
        return sorted(i for _, i in chosen[: self.max_facts])

    async def reply(self, case: Case, question: str) -> PatientReply:
        ids = self.select(case, question)
        text = " ".join(case.facts[i] for i in ids) if ids else DONT_KNOW
        return PatientReply(text=text, disclosed_fact_ids=ids)


PATIENT_SYSTEM = (
    "You are a patient talking to your doctor. Answer the doctor's question in the first "
    "person, in one or two short sentences, using ONLY the facts below. If the facts do not "
    "answer the question, say \"I don't know.\"\n\nFacts about you:\n{facts}")


@dataclass
class LLMPatient:
    """A chat model playing the patient from the case's facts."""

    model: BaseChatModel
    fact_checker: FactChecker = field(default_factory=lexical_fact_checker)
    name: str = "llm"
    max_facts: int = 2
    """At most this many facts per reply: a reply that states more ("tell me everything")
    is replaced by the first ``max_facts`` of them, verbatim, so one question cannot
    harvest the case."""

    def messages(self, case: Case, question: str) -> list:
        facts = "\n".join(f"- {fact}" for fact in case.facts)
        return [SystemMessage(PATIENT_SYSTEM.format(facts=facts)), HumanMessage(question)]

    async def reply(self, case: Case, question: str) -> PatientReply:
        answer = await self.model.ainvoke(self.messages(case, question))
        text = str(answer.content).strip() or DONT_KNOW
        ids = self.fact_checker(text, case.facts)
        # Too many facts, or an option or the question (a model that knows the exam):
        # the reply becomes the facts it stated, verbatim, at most max_facts of them.
        if len(ids) > self.max_facts or leaks(text, case):
            ids = sorted(ids)[: self.max_facts]
            text = " ".join(case.facts[i] for i in ids) or DONT_KNOW
        return PatientReply(text=text, disclosed_fact_ids=ids)


def leaks(text: str, case: Case) -> list[str]:
    """Option texts or the exam question in ``text`` that no fact of ``case`` states (the
    answer is one of the options)."""
    facts = " ".join(case.facts).lower()
    secrets = [*case.options.values(), case.question]
    return [s for s in secrets if s.lower() in text.lower() and s.lower() not in facts]
