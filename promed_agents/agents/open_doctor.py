"""The doctor of open-ended cases: its prompt and the parsing of its turns.

case (open-ended) -> partial view -> **doctor** <-> patient / measurement -> judge -> trace

An open-ended case has no options: each turn is ``question: <one question>`` to the
patient, ``test: <one examination or test>`` for the measurement agent (AgentClinic's
"REQUEST TEST"), or the final ``diagnosis: <diagnosis>`` (AgentClinic's "DIAGNOSIS
READY"). :func:`parse_open_turn` classifies a completion and scores its format as the
multiple-choice doctor's turns are scored (:mod:`promed_agents.agents.doctor`): 1 when the
one marker starts the turn, 0.5 when it comes later, 0 (invalid) with several markers,
none, or nothing after the marker. The consultation graph sends questions to the patient
and test orders to the measurement agent; the doctor module's functions
(:func:`~promed_agents.agents.doctor.parse_doctor_turn`,
:func:`~promed_agents.agents.doctor.opening_messages`, ...) call these for an open-ended
case, so every caller handles both kinds of case. The budget rule is the multiple-choice
doctor's: a test order, like a question or an invalid turn, uses one turn of the budget
(AgentClinic's turn limit counts them too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from promed_agents.case import Case
from promed_agents.partial_view import PartialView
from promed_agents.trace import TurnKind

OPEN_SYSTEM = (
    "You are a doctor examining a patient. You know only part of the patient's case. Each "
    "turn, do exactly one of three things:\n"
    "- ask the patient ONE short question, written as\n  question: <your question>\n"
    "- order ONE examination or test, written as\n  test: <examination or test>\n"
    "- or, when you are confident, give your diagnosis, written as\n"
    "  diagnosis: <diagnosis>\n"
    "Write nothing else.")
OPEN_FORMAT_REMINDER = ("Reply with exactly one line: 'question: <your question>', 'test: "
                        "<examination or test>' or 'diagnosis: <diagnosis>'.")
OPEN_FINAL_REQUEST = ("You have no turns left. Give your diagnosis now, written as "
                      "'diagnosis: <diagnosis>'.")
OPEN_REACTIVE_SYSTEM = ("You are a doctor examining a patient. Give your diagnosis now, "
                        "written as\n  diagnosis: <diagnosis>\nWrite nothing else.")
RESULT_PREFIX = "Result: "
"""How the doctor is shown what a test order revealed (the patient's replies start
``Patient: ``)."""

_EXAMPLE_CASE = ("What you know about the patient: Patient is a 30-year-old woman. She has "
                 "had a headache for two days.\n\nObjective: Find the most likely "
                 "diagnosis.")
OPEN_DEMONSTRATION: tuple[BaseMessage, ...] = (
    HumanMessage(_EXAMPLE_CASE, example=True),
    AIMessage("question: Where is the headache, and what is it like?", example=True),
    HumanMessage("Patient: It throbs on one side, and light makes it worse.", example=True),
    AIMessage("test: Neurological examination", example=True),
    HumanMessage(f"{RESULT_PREFIX}Neurological examination is normal.", example=True),
    AIMessage("diagnosis: Migraine", example=True))
"""The worked example an open-ended consultation shows first when asked for: one
question, one test order, the diagnosis."""
OPEN_REACTIVE_DEMONSTRATION: tuple[BaseMessage, ...] = (
    HumanMessage(_EXAMPLE_CASE, example=True), AIMessage("diagnosis: Migraine", example=True))

_MARKER = re.compile(r"\b(question|test|diagnosis)\s*[:：]", re.IGNORECASE)
_KINDS = {"question": TurnKind.QUESTION, "test": TurnKind.TEST, "diagnosis": TurnKind.ANSWER}


@dataclass(frozen=True)
class OpenTurn:
    """A parsed turn of the open-ended doctor."""

    kind: TurnKind
    text: str | None = None
    """The question, the test ordered, or the diagnosis (None for an invalid turn)."""
    format_score: float = 0.0


def open_case_prompt(case: Case, view: PartialView) -> str:
    """The first user message: what the doctor knows and the objective."""
    known = view.opening_text(case) or "(nothing yet)"
    return f"What you know about the patient: {known}\n\nObjective: {case.question}"


def open_opening_messages(case: Case, view: PartialView, proactive: bool = True,
                          demonstration: bool = False) -> list[BaseMessage]:
    """The open-ended doctor's first prompt: the system message, optionally a worked
    example (:data:`OPEN_DEMONSTRATION`), then the case."""
    system = OPEN_SYSTEM if proactive else OPEN_REACTIVE_SYSTEM
    example = (OPEN_DEMONSTRATION if proactive else OPEN_REACTIVE_DEMONSTRATION) \
        if demonstration else ()
    return [SystemMessage(system), *example, HumanMessage(open_case_prompt(case, view))]


def diagnosis_turn(diagnosis: str) -> str:
    """The well-formed final turn: ``diagnosis: <diagnosis>``."""
    return f"diagnosis: {diagnosis}"


def parse_open_turn(text: str) -> OpenTurn:
    """Classify ``text`` as a question, a test order, a diagnosis or invalid, with its
    format score."""
    markers = list(_MARKER.finditer(text))
    if len(markers) != 1:
        return OpenTurn(TurnKind.INVALID)
    marker = markers[0]
    rest = text[marker.end():].strip()
    said = rest.splitlines()[0].strip() if rest else ""
    if not said:
        return OpenTurn(TurnKind.INVALID)
    score = 1.0 if not text[: marker.start()].strip() else 0.5
    return OpenTurn(_KINDS[marker.group(1).lower()], said, score)
