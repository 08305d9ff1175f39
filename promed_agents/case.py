"""The case model: the first stop of the data path.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

A :class:`Case` is one exam question with its vignette broken into atomic facts. Loaders
(:mod:`promed_agents.loader`) build cases from benchmark files; the store keeps them;
the partial-information view (:mod:`promed_agents.partial_view`) decides which facts the
doctor knows at the start of a consultation.

A case either has options (a multiple-choice exam question: the answer is one or more
option letters) or none (an open-ended case, as AgentClinic's: the answer is a
``diagnosis`` text, optionally with a ``recommendation``). A fact may say where it comes
from (:class:`FactSource`): what the patient can tell, or what an examination or test
reveals, with its field path in the source record.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

OPTION_LETTER = re.compile(r"^[A-Z]$")
OPEN_ENDED_FIELDS = ("diagnosis", "recommendation", "fact_sources", "initial_fact_ids")
"""Fields of open-ended cases (and of facts' sources), unset in multiple-choice ones."""


class FactSource(BaseModel):
    """Where one fact of a case comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["patient", "measurement"] = Field(description=(
        "``patient``: what the patient can tell when asked; ``measurement``: what an "
        "examination or a test order reveals."))
    path: str | None = Field(default=None, description=(
        "The fact's field in the source record, e.g. "
        "``Test_Results.Imaging.Chest_CT.Findings``."))


class Case(BaseModel):
    """One benchmark case.

    ``facts`` may be empty only for a pure knowledge question, that is when ``context`` is
    empty too (MediQ has a few): there is then nothing for the doctor to ask.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Store-wide id, '<source>-<id in the source file>'.")
    source: str = Field(description="Where the case comes from: 'imedqa', 'medqa', 'cmb'.")
    language: str = Field(default="en", description="ISO 639-1 code of the case text.")
    split: str | None = Field(default=None, description="Dataset split, e.g. 'dev'.")
    question: str = Field(min_length=1, description=(
        "The exam question put to the doctor (an open-ended case: the doctor's objective)."))
    options: dict[str, str] = Field(default_factory=dict, description=(
        "Option letter -> option text; empty for an open-ended case."))
    answer: list[str] = Field(default_factory=list, description=(
        "Correct letter(s), CMB may have several; empty for an open-ended case."))
    diagnosis: str | None = Field(default=None, description=(
        "An open-ended case's correct diagnosis (its answer); None with options."))
    recommendation: str | None = Field(default=None, description=(
        "An open-ended case's recommendation (treatment, next step), if the source has one."))
    context: list[str] = Field(default_factory=list, description="Vignette sentences, in order.")
    facts: list[str] = Field(default_factory=list, description="Atomic facts of the vignette.")
    fact_sources: list[FactSource] = Field(default_factory=list, description=(
        "Where each fact comes from, in the order of ``facts``; empty when the source "
        "does not say (every fact is then the patient's to tell)."))
    initial_fact_ids: list[int] | None = Field(default=None, description=(
        "The facts the doctor is given at the start, when the source says (AgentClinic: "
        "demographics and chief complaint); None: the partial-information policy decides."))
    demographics: dict[str, Any] | None = Field(default=None, description="Age, sex, etc.")

    @field_validator("options")
    @classmethod
    def _options_are_lettered(cls, options: dict[str, str]) -> dict[str, str]:
        for letter, text in options.items():
            if not OPTION_LETTER.match(letter):
                raise ValueError(f"option key {letter!r} is not a single capital letter")
            if not text.strip():
                raise ValueError(f"option {letter} is empty")
        return dict(sorted(options.items()))

    @field_validator("answer")
    @classmethod
    def _answer_among_options(cls, answer: list[str], info: ValidationInfo) -> list[str]:
        options = info.data.get("options")
        if options is None:  # options failed validation; that error is reported instead
            return answer
        if options and not answer:
            raise ValueError("must name at least one option letter")
        if not options and answer:
            raise ValueError(f"names option letter(s) {''.join(answer)} but the case has no "
                             "options (an open-ended case's answer is its diagnosis)")
        for letter in answer:
            if letter not in options:
                raise ValueError(
                    f"answer letter {letter!r} is not among the options {', '.join(options)}"
                )
        if len(set(answer)) != len(answer):
            raise ValueError(f"answer letters repeat: {''.join(answer)}")
        return sorted(answer)

    @field_validator("context", "facts")
    @classmethod
    def _no_blank_items(cls, items: list[str], info: ValidationInfo) -> list[str]:
        for i, item in enumerate(items):
            if not item.strip():
                raise ValueError(f"item {i} is empty")
        if info.field_name == "facts" and not items and info.data.get("context"):
            raise ValueError(
                f"is empty but context has {len(info.data['context'])} sentence(s); only a "
                "knowledge question without a vignette may have no facts"
            )
        return [item.strip() for item in items]

    @model_validator(mode="after")
    def _open_ended_or_options(self) -> Case:
        if not self.options and not (self.diagnosis or "").strip():
            raise ValueError("a case needs options (with an answer) or, open-ended, a "
                             "diagnosis")
        if self.options and self.diagnosis is not None:
            raise ValueError("a case with options has no diagnosis (its answer is a "
                             "letter); leave options out for an open-ended case")
        if self.fact_sources and len(self.fact_sources) != len(self.facts):
            raise ValueError(f"fact_sources has {len(self.fact_sources)} entries for "
                             f"{len(self.facts)} facts")
        bad = [i for i in self.initial_fact_ids or [] if not 0 <= i < len(self.facts)]
        if bad:
            raise ValueError(f"initial_fact_ids {bad} are not facts of the case (it has "
                             f"{len(self.facts)})")
        return self

    @property
    def open_ended(self) -> bool:
        """Whether the answer is a diagnosis text (no options)."""
        return not self.options

    @property
    def answer_text(self) -> str:
        """The correct answer as text: the correct option(s), joined by '; ' when there are
        several, or an open-ended case's diagnosis."""
        if self.open_ended:
            return self.diagnosis or ""
        return "; ".join(self.options[letter] for letter in self.answer)

    def measurement_fact_ids(self) -> list[int]:
        """The facts an examination or test reveals (none when sources are not given)."""
        return [i for i, s in enumerate(self.fact_sources) if s.kind == "measurement"]

    def content_hash(self) -> str:
        """A stable digest of everything but the id, used to make re-imports idempotent
        (fields a case leaves unset that older cases did not have are left out, so a
        stored case keeps its digest)."""
        payload = self.model_dump(mode="json", exclude={"id"})
        for name in OPEN_ENDED_FIELDS:
            if payload.get(name) in (None, []):
                payload.pop(name, None)
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()
