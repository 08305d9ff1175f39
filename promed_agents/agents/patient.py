"""Patients: who answers the doctor's questions, from the case's atomic facts only.

case -> partial view -> doctor <-> **patient** -> evaluator -> trace in SQL -> training

A patient sees the facts and the doctor's question, never the exam question, the options
or the answer, so it cannot leak them. Every reply records the fact ids it disclosed.

- :class:`FactSelectPatient` (default; no model): returns verbatim the facts the question
  names a topic of, at most ``max_facts`` of them. The words a question shares with a fact
  are weighed by inverse document frequency over a corpus of facts
  (:class:`~promed_agents.text_similarity.TermWeights`), words of asking ("show",
  "results", "anything else") count for nothing, and a fact needs ``min_weight`` of
  shared weight (or must be stated whole by the question): so "Show me.", "Tell me
  everything." or "examination?" (a word in most facts) get "I don't know.", while "What
  did the physical examination show?" gets the examination facts and a fact's own words
  get that fact.
- :class:`LLMPatient`: a chat model answers in the first person from the facts; which
  facts it disclosed is decided by a :data:`FactChecker` (lexical by default), and only
  facts the question names a topic of (the same rule) count: a reply stating others, more
  than ``max_facts`` facts, or an option or the exam question (a model that knows the
  exam) is replaced by the facts it may state, verbatim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.case import Case
from promed_agents.text_similarity import (
    TermWeights,
    bundled_term_weights,
    coverage,
    matching_tokens,
)

DONT_KNOW = "I don't know."


@dataclass(frozen=True)
class PatientReply:
    text: str
    disclosed_fact_ids: list[int]
    token_ids: list[int] | None = None

    @classmethod
    def verbatim(cls, case: Case, ids: Sequence[int], nothing: str) -> PatientReply:
        """The facts ``ids`` of ``case`` said as written, or ``nothing`` when there are
        none: what a harvest-proof actor replies."""
        ids = sorted(ids)
        return cls(" ".join(case.facts[i] for i in ids) or nothing, ids)


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
    """Replies with the facts the question names a topic of, verbatim (MediQ FactSelect
    with a harvest-proof match)."""

    max_facts: int = 2
    min_weight: float = 4.0
    """Least inverse-document-frequency weight a question must share with a fact (4 nats:
    a word in at most 1 in 55 facts, or two commoner ones such as "physical examination")."""
    min_score: float = 0.4
    """Least share of the question's weight, or of the fact's, that the two share."""
    term_weights: TermWeights = field(default_factory=bundled_term_weights)
    name: str = "fact-select"

    def relevant(self, case: Case, question: str) -> list[int]:
        """Every fact of ``case`` the patient can tell that the question names a topic
        of, best match first (a case whose facts say their source: only the patient's,
        never an examination's or a test's)."""
        return self.relevant_among(case.facts, question, patient_fact_ids(case))

    def relevant_among(self, facts: Sequence[str], question: str,
                       among: Sequence[int] | None = None) -> list[int]:
        """The ids of ``facts`` (only those ``among``, when given) that ``question``
        names a topic of, best match first."""
        weight = self.term_weights.weight
        asked = matching_tokens(question)
        asked_weight = sum(weight(t) for t in asked)
        scored = []
        allowed = set(range(len(facts))) if among is None else set(among)
        for i, fact in enumerate(facts):
            if i not in allowed:
                continue
            stated = matching_tokens(fact)
            common = asked & stated
            shared = sum(weight(t) for t in common)
            # numbers alone name no topic ("10?"): a shared word is needed too; a question
            # that states the whole fact ("He is started on a medication?") gets it
            if shared < self.min_weight or all(t.startswith("#") for t in common):
                if coverage(fact, question) < 1.0:
                    continue
                scored.append((shared, i))
                continue
            # Symmetric: a short question naming part of a fact, or a fact answering part
            # of a long question, both count; the cap keeps broad questions from harvesting.
            share = max(shared / asked_weight, shared / sum(weight(t) for t in stated))
            if share >= self.min_score:
                scored.append((shared, i))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [i for _, i in scored]

    def select(self, case: Case, question: str) -> list[int]:
        return sorted(self.relevant(case, question)[: self.max_facts])

    async def reply(self, case: Case, question: str) -> PatientReply:
        return PatientReply.verbatim(case, self.select(case, question), DONT_KNOW)


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
    topics: FactSelectPatient = field(default_factory=FactSelectPatient)
    """Decides which facts a question names a topic of; a reply may state only those."""

    def messages(self, case: Case, question: str) -> list:
        facts = "\n".join(f"- {case.facts[i]}" for i in patient_fact_ids(case))
        return [SystemMessage(PATIENT_SYSTEM.format(facts=facts)), HumanMessage(question)]

    async def reply(self, case: Case, question: str) -> PatientReply:
        answer = await self.model.ainvoke(self.messages(case, question))
        text = str(answer.content).strip() or DONT_KNOW
        stated = self.fact_checker(text, case.facts)
        allowed = set(self.topics.relevant(case, question))
        ids = [i for i in stated if i in allowed]
        # Facts the question did not ask about, too many facts, or an option or the
        # question (a model that knows the exam): the reply becomes the facts it may
        # state, verbatim, at most max_facts of them.
        if len(ids) < len(stated) or len(ids) > self.max_facts or leaks(text, case):
            return PatientReply.verbatim(case, sorted(ids)[: self.max_facts], DONT_KNOW)
        return PatientReply(text=text, disclosed_fact_ids=ids)


def patient_fact_ids(case: Case) -> list[int]:
    """The facts the patient can tell: all of them, unless the case says some are what
    an examination or a test reveals (those are the measurement agent's)."""
    measured = set(case.measurement_fact_ids())
    return [i for i in range(len(case.facts)) if i not in measured]


def leaks(text: str, case: Case) -> list[str]:
    """Option texts, the exam question or an open-ended case's diagnosis in ``text`` that
    no fact of ``case`` states (the answer is one of the options, or the diagnosis)."""
    facts = " ".join(case.facts).lower()
    secrets = [*case.options.values(), case.question, *([case.diagnosis] if case.diagnosis
                                                         else [])]
    return [s for s in secrets if s.lower() in text.lower() and s.lower() not in facts]
