"""Open-ended case formats: AgentClinic's OSCE records, and a plain JSON Lines format.

**file** -> case (open-ended) -> consultation graph -> trace in SQL -> Shapley/SIG -> ...

Read through :mod:`promed_agents.loader` (formats ``agentclinic`` and ``open-ended``).

``agentclinic``: one ``{"OSCE_Examination": {...}}`` a line (AgentClinic's MedQA cases).
Its ``Objective_for_Doctor`` is the case's question and ``Correct_Diagnosis`` its
diagnosis. Every other field becomes atomic facts, each with its source
(:class:`~promed_agents.case.FactSource`) and field path:

- ``Patient_Actor`` fields are what the patient can tell (kind ``patient``); the
  narrative ones (``History``, ``Past_Medical_History``, ``Social_History``,
  ``Review_of_Systems``) one fact a sentence, the others one fact a value, written
  ``<field>: <value>`` ("Primary symptom: Double vision", "Secondary symptoms:
  Difficulty climbing stairs").
- ``Physical_Examination_Findings`` and ``Test_Results`` leaves are what a measurement
  reveals (kind ``measurement``), one fact a value, written ``<field>: <value>`` with the
  field named by its last key, or its last two when the last is a generic one
  ("Chest CT findings: Normal, no thymoma ...").
- Values that say nothing ("Information not provided.", "No additional symptoms
  provided.") are left out.

The doctor starts, as in AgentClinic, from the objective, the demographics and the chief
complaint: those two facts are the case's ``initial_fact_ids`` (partial-information
policy ``initial``). Cases are ``agentclinic-<line index from 0>``.

``open-ended``: one object a line with ``id``, ``question``, ``facts`` (strings, or
objects ``{"text", "kind", "path"}``), ``initial_facts`` (indices into ``facts``),
``diagnosis`` and an optional ``recommendation``: any open-ended set (for instance
DoctorAgent-RL's MTMedDialog, converted) in that shape.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NARRATIVE = ("History", "Past_Medical_History", "Social_History", "Review_of_Systems")
"""Patient-actor fields that are prose: one fact a sentence."""
OPENING = ("Demographics", "Primary_Symptom")
"""The fields the doctor is given at the start (AgentClinic's opening)."""
_GENERIC = {"findings", "finding", "result", "results", "value", "values", "description"}
_SAYS_NOTHING = re.compile(
    r"^\s*(information |data )?not (provided|available|specified|reported)\.?\s*$"
    r"|^\s*no additional .* provided\.?\s*$|^\s*(n/?a|none provided|-)\.?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


class OsceExamination(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Objective_for_Doctor: str = Field(min_length=1)
    Patient_Actor: dict[str, Any]
    Physical_Examination_Findings: dict[str, Any] = Field(default_factory=dict)
    Test_Results: dict[str, Any] = Field(default_factory=dict)
    Correct_Diagnosis: str = Field(min_length=1)


class OsceRecord(BaseModel):
    """An AgentClinic case as its file holds it."""

    model_config = ConfigDict(extra="ignore")

    OSCE_Examination: OsceExamination


class OpenFact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    kind: Literal["patient", "measurement"] = "patient"
    path: str | None = None


class OpenCaseRecord(BaseModel):
    """A case of the plain open-ended format."""

    model_config = ConfigDict(extra="ignore")

    id: int | str
    question: str
    facts: list[str | OpenFact]
    initial_facts: list[int] = Field(default_factory=list)
    diagnosis: str
    recommendation: str | None = None
    context: list[str] = Field(default_factory=list)


def _label(path: list[str]) -> str:
    """A field path's name for a fact: its last key, or its last two when the last is
    generic; underscores as spaces, later words lower-case except acronyms."""
    keys = [k for k in path if not k.startswith("[")]
    named = keys[-2:] if len(keys) > 1 and keys[-1].lower() in _GENERIC else keys[-1:]
    words = " ".join(k.replace("_", " ") for k in named).split()
    # "Chest_CT", "Findings" -> "Chest CT findings": later words lower-cased, acronyms kept
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])]) \
        if words else ""


def _leaves(value: Any, path: list[str]) -> list[tuple[list[str], str]]:
    """``(path, text)`` of every leaf under ``value`` that says something."""
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() for leaf in _leaves(inner, [*path, key])]
    if isinstance(value, list):
        return [leaf for i, inner in enumerate(value) for leaf in _leaves(inner, [*path, f"[{i}]"])]
    text = str(value).strip() if value is not None else ""
    return [] if not text or _SAYS_NOTHING.match(text) else [(path, text)]


def _dotted(path: list[str]) -> str:
    return ".".join(path).replace(".[", "[")


def osce_case_fields(record: OsceRecord, number: int, source: str, split: str | None
                     ) -> dict[str, Any]:
    """The :class:`~promed_agents.case.Case` fields of AgentClinic record ``number``."""
    exam = record.OSCE_Examination
    facts: list[str] = []
    sources: list[dict[str, str]] = []
    initial: list[int] = []
    for key, value in exam.Patient_Actor.items():
        for path, text in _leaves(value, ["Patient_Actor", key]):
            pieces = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()] \
                if key in NARRATIVE else [f"{_label(path)}: {text}"]
            for piece in pieces:
                if any(part in OPENING for part in path):
                    initial.append(len(facts))
                facts.append(piece)
                sources.append({"kind": "patient", "path": _dotted(path)})
    for section in ("Physical_Examination_Findings", "Test_Results"):
        for path, text in _leaves(getattr(exam, section), [section]):
            facts.append(f"{_label(path)}: {text}")
            sources.append({"kind": "measurement", "path": _dotted(path)})
    return dict(id=f"{source}-{number}", source=source, split=split,
                question=exam.Objective_for_Doctor.strip(),
                diagnosis=exam.Correct_Diagnosis.strip(), facts=facts,
                fact_sources=sources, initial_fact_ids=initial)


def open_case_fields(record: OpenCaseRecord, source: str, split: str | None
                     ) -> dict[str, Any]:
    """The :class:`~promed_agents.case.Case` fields of a plain open-ended record."""
    facts = [f if isinstance(f, OpenFact) else OpenFact(text=f) for f in record.facts]
    return dict(id=f"{source}-{record.id}", source=source, split=split,
                question=record.question.strip(), diagnosis=record.diagnosis.strip(),
                recommendation=record.recommendation, context=record.context,
                facts=[f.text for f in facts],
                fact_sources=[{"kind": f.kind, "path": f.path} for f in facts],
                initial_fact_ids=record.initial_facts or None)
