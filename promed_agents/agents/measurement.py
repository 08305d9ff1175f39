"""The measurement agent: what an examination or a test the doctor orders reveals.

case (open-ended) -> doctor -> **measurement** (test orders) / patient (questions) -> ...

AgentClinic's doctor orders tests from a measurement agent ("REQUEST TEST: Chest_X-Ray")
besides talking to the patient. :class:`FactSelectMeasurement` reveals, verbatim, the
case's measurement facts (:meth:`~promed_agents.case.Case.measurement_fact_ids`: physical
examination findings and test results) that the order names, by the patient's
harvest-proof rule (:class:`~promed_agents.agents.patient.FactSelectPatient`) over each
fact's text and the words of its field path ("vital signs" names
``Physical_Examination_Findings.Vital_Signs.Heart_Rate``), at most ``max_facts`` of them:
never what the patient tells, never the whole case ("all tests" names no topic). An order
that names nothing gets :data:`NO_RESULT`. :class:`LLMMeasurement` is AgentClinic's
measurement actor on any chat model: it words the results from the case's findings, and
may state only the facts :class:`FactSelectMeasurement` would reveal, and never the
diagnosis (otherwise those facts, verbatim). :func:`resolve_measurement` turns
``fact-select`` or ``llm:MODEL_SPEC`` into one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.agents.patient import (
    FactChecker,
    FactSelectPatient,
    PatientReply,
    leaks,
    lexical_fact_checker,
)
from promed_agents.backends.model_spec import resolve_chat_model
from promed_agents.case import Case
from promed_agents.errors import ConsultationError

NO_RESULT = "No result: that examination or test is not available."


class Measurement(Protocol):
    """Anything that answers a doctor's test order about a case."""

    name: str

    async def order(self, case: Case, test: str) -> PatientReply: ...


_SECTION_WORDS = {"test", "tests", "result", "results", "finding", "findings",
                  "examination", "examinations", "exam", "physical"}
"""Path words that name no test ("Test_Results", "Physical_Examination_Findings",
"Findings"): an order such as "all tests" must not name every result."""


def path_words(path: str | None) -> str:
    """The words of a fact's field path that name a test ("Vital Signs Heart Rate" for
    ``Physical_Examination_Findings.Vital_Signs.Heart_Rate``)."""
    words = (path or "").replace("_", " ").replace(".", " ").split()
    return " ".join(w for w in words if w.lower() not in _SECTION_WORDS)


def _searchable(case: Case) -> list[str]:
    """Each fact with the words of its field path before it (measurement facts only
    are searched)."""
    return [f"{path_words(source.path)} {fact}"
            for fact, source in zip(case.facts, case.fact_sources, strict=True)] \
        if case.fact_sources else list(case.facts)


@dataclass
class FactSelectMeasurement:
    """Reveals the measurement facts a test order names, verbatim."""

    max_facts: int = 4
    """At most this many facts per order (a panel such as "vital signs" has several)."""
    topics: FactSelectPatient = field(default_factory=FactSelectPatient)
    """The topic rule (the patient's)."""
    name: str = "fact-select"

    def select(self, case: Case, test: str) -> list[int]:
        found = self.topics.relevant_among(_searchable(case), test,
                                           case.measurement_fact_ids())
        return sorted(found[: self.max_facts])

    async def order(self, case: Case, test: str) -> PatientReply:
        return PatientReply.verbatim(case, self.select(case, test), NO_RESULT)


MEASUREMENT_SYSTEM = (
    "You are the measurement reader of a clinic. The doctor orders one examination or "
    "test; report its results in one or two short sentences, using ONLY the findings "
    "below. If the findings do not include it, say \"No result.\"\n\nFindings:\n{findings}")
"""AgentClinic's measurement prompt, shortened: the results the case holds, nothing else."""


@dataclass
class LLMMeasurement:
    """A chat model reading out the results a test order names (AgentClinic's
    measurement agent), held to what :class:`FactSelectMeasurement` reveals."""

    model: BaseChatModel
    fact_checker: FactChecker = field(default_factory=lexical_fact_checker)
    rule: FactSelectMeasurement = field(default_factory=FactSelectMeasurement)
    """Which facts an order may reveal; a reply stating others (or none of them while
    some are due) becomes those facts, verbatim."""
    name: str = "llm"

    def messages(self, case: Case, test: str) -> list:
        findings = "\n".join(
            f"- {path_words(case.fact_sources[i].path) if case.fact_sources else ''}: "
            f"{case.facts[i]}" for i in case.measurement_fact_ids())
        return [SystemMessage(MEASUREMENT_SYSTEM.format(findings=findings)),
                HumanMessage(test)]

    async def order(self, case: Case, test: str) -> PatientReply:
        allowed = self.rule.select(case, test)
        if not allowed:  # nothing the order names: no model can make a result up
            return PatientReply.verbatim(case, [], NO_RESULT)
        reply = await self.model.ainvoke(self.messages(case, test))
        text = str(reply.content).strip()
        stated = self.fact_checker(text, case.facts) if text else []
        if not stated or not set(stated) <= set(allowed) or leaks(text, case):
            return PatientReply.verbatim(case, allowed, NO_RESULT)
        return PatientReply(text=text, disclosed_fact_ids=sorted(stated))


def resolve_measurement(spec: str) -> Measurement:
    """``fact-select``: the findings a test order names, verbatim; ``llm:MODEL_SPEC``: a
    chat model reading them out (:class:`LLMMeasurement`)."""
    if spec == "fact-select":
        return FactSelectMeasurement()
    if spec.startswith("llm:") and spec[len("llm:"):]:
        return LLMMeasurement(model=resolve_chat_model(spec[len("llm:"):]))
    raise ConsultationError(f"--measurement {spec!r}: use fact-select or llm:MODEL_SPEC")
