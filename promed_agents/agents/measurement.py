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
that names nothing gets :data:`NO_RESULT`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from promed_agents.agents.patient import FactSelectPatient, PatientReply
from promed_agents.case import Case

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
        ids = self.select(case, test)
        text = " ".join(case.facts[i] for i in ids) if ids else NO_RESULT
        return PatientReply(text=text, disclosed_fact_ids=ids)
