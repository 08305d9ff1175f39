"""The case model: the first stop of the data path.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

A :class:`Case` is one exam question with its vignette broken into atomic facts. Loaders
(:mod:`promed_agents.loader`) build cases from benchmark files; the store keeps them;
the partial-information view (:mod:`promed_agents.partial_view`) decides which facts the
doctor knows at the start of a consultation.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

OPTION_LETTER = re.compile(r"^[A-Z]$")


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
    question: str = Field(min_length=1, description="The exam question put to the doctor.")
    options: dict[str, str] = Field(description="Option letter -> option text.")
    answer: list[str] = Field(min_length=1, description="Correct letter(s); CMB may have several.")
    context: list[str] = Field(default_factory=list, description="Vignette sentences, in order.")
    facts: list[str] = Field(default_factory=list, description="Atomic facts of the vignette.")
    demographics: dict[str, Any] | None = Field(default=None, description="Age, sex, etc.")

    @field_validator("options")
    @classmethod
    def _options_are_lettered(cls, options: dict[str, str]) -> dict[str, str]:
        if not options:
            raise ValueError("must have at least one option")
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

    @property
    def answer_text(self) -> str:
        """The text of the correct option(s), joined by '; ' when there are several."""
        return "; ".join(self.options[letter] for letter in self.answer)

    def content_hash(self) -> str:
        """A stable digest of everything but the id, used to make re-imports idempotent."""
        payload = self.model_dump(mode="json", exclude={"id"})
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()
