"""The doctor: its prompt and the parsing of its turns.

case -> partial view -> **doctor** <-> patient -> evaluator -> trace in SQL -> training

Each proactive turn must be ``question: <one question>`` or ``answer: <letter(s)>`` (the
ProMed format). :func:`parse_doctor_turn` classifies a raw completion and scores its format
as the ProMed reward does: 1 when the one marker starts the turn, 0.5 when it appears
later, 0 when there are several markers or none (then the turn is invalid).

Rule for invalid turns (documented, applied by the consultation graph): an invalid turn is
recorded with kind ``invalid`` and format score 0, uses up one question of the budget, and
the doctor is reminded of the format. Once the budget is spent (at once in reactive mode)
the doctor is asked for its final answer. If that turn is malformed but still names an
option (:func:`recover_answer`: "D. Trimethoprim", "The answer is D"), the option is taken
as the final answer while the turn stays ``invalid`` with format score 0; otherwise the
episode ends with status ``timeout`` and no answer. A question there (only an answer is
allowed) earns what a timeout earns: it is recorded as ``invalid`` with format score 0.

An open-ended case (a diagnosis, no options) has its own prompt and turn format
(:mod:`promed_agents.agents.open_doctor`: ``question:``, ``test:`` or ``diagnosis:``); the
functions here take either kind of case and call that module for an open-ended one, so
the graph, the trainers and the imports need not tell them apart. Its final answer is the
diagnosis text (``letters`` holds it), and no answer is recovered from a malformed turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from promed_agents.agents.open_doctor import (
    OPEN_FINAL_REQUEST,
    OPEN_FORMAT_REMINDER,
    diagnosis_turn,
    open_case_prompt,
    open_opening_messages,
    parse_open_turn,
)
from promed_agents.backends import sampling_kwargs
from promed_agents.case import Case
from promed_agents.partial_view import PartialView
from promed_agents.trace import TurnKind

DOCTOR_TURN_TOKENS = 48
"""New tokens per doctor turn, the one default of every command (consult, eval, mcts,
GRPO): a turn is one line, ``question: ...`` or ``answer: X``, and ends at the line's
end; 48 tokens hold the longest question the reference's doctors ask."""

PROACTIVE_SYSTEM = (
    "You are a doctor answering a medical exam question about a patient. You know only part "
    "of the patient's case. Each turn, do exactly one of two things:\n"
    "- ask the patient ONE short question to learn missing information, written as\n"
    "  question: <your question>\n"
    "- or, when you are confident, give your final answer, written as\n"
    "  answer: <option letter>\n"
    "Write nothing else.")
REACTIVE_SYSTEM = (
    "You are a doctor answering a medical exam question about a patient. Answer now, "
    "written as\n  answer: <option letter>\nWrite nothing else.")
FORMAT_REMINDER = ("Reply with exactly one line: 'question: <your question>' or "
                   "'answer: <option letter>'.")
FINAL_REQUEST = ("You have no questions left. Give your final answer now, written as "
                 "'answer: <option letter>'.")

_EXAMPLE_CASE = ("What you know about the patient: Patient is a 30-year-old woman.\n\n"
                 "Question: What is the most likely diagnosis?\nOptions:\nA. Influenza\n"
                 "B. Migraine")
DEMONSTRATION: tuple[BaseMessage, ...] = (
    HumanMessage(_EXAMPLE_CASE, example=True),
    AIMessage("question: What symptoms do you have?", example=True),
    HumanMessage("Patient: I have a headache on one side and nausea.", example=True),
    AIMessage("answer: B", example=True))
"""A worked example consultation placed before the case when asked for (LangChain's
``example=True`` marks its messages as an example, not the conversation): small models
follow the turn format far more often after one (SmolLM2-135M-Instruct: 23 of 32 first
turns well-formed with it, 0 of 32 without, at temperature 0.7)."""
REACTIVE_DEMONSTRATION: tuple[BaseMessage, ...] = (HumanMessage(_EXAMPLE_CASE, example=True),
                                                   AIMessage("answer: B", example=True))

DOCTOR_STOP = ("\n",)
"""The format allows one line per turn; stopping there also saves generation time."""


def doctor_sampling(model: BaseChatModel, *, max_new_tokens: int | None = None,
                    temperature: float | None = None) -> dict[str, object]:
    """Per-call arguments for a doctor model: stop at the end of the line, plus the given
    budget and temperature under the names ``model``'s backend uses."""
    return sampling_kwargs(model, max_tokens=max_new_tokens, temperature=temperature,
                           stop=list(DOCTOR_STOP))


@dataclass(frozen=True)
class ConsultationSoFar:
    """The consultation as a doctor that reads the case, not its prompt, is told it: the
    model-free reference doctors (a chat model whose ``reads_consultation`` is true gets
    it from the consultation graph as the ``consultation`` keyword of each call). So a
    change to the prompt's wording cannot change what they do."""

    case: Case
    view: PartialView
    asked: tuple[str, ...] = ()
    """The questions asked so far, as parsed (:func:`parse_doctor_turn`)."""
    replies: tuple[str, ...] = ()
    """The patient's replies (and the measurement agent's results) so far."""
    ordered: tuple[str, ...] = ()
    """An open-ended case's test orders so far, as parsed."""
    final_requested: bool = False
    """Only an answer is allowed now (the budget is spent, or a reactive consultation)."""

    def known_text(self) -> str:
        """What the doctor knows: the opening, the patient's replies and the results."""
        return " ".join([self.view.opening_text(self.case), *self.replies])


_MARKER = re.compile(r"\b(question|answer)\s*[:：]", re.IGNORECASE)
_LETTERS = re.compile(r"^[\s(\[*]*([A-Z](?:\s*(?:,|/|&|and|、)?\s*[A-Z])*)\s*(?:[.):\]*]|$)")
"""Option letters at the start of an answer, standing alone or followed by ``.``, ``)``,
``:`` or ``]`` ("C", "(C) Ceftriaxone", "A, B"), so that "A patient with ..." is no
option A."""


@dataclass(frozen=True)
class DoctorTurn:
    """A parsed doctor completion."""

    kind: TurnKind
    question: str | None = None
    """A question's text, or an open-ended case's test order."""
    letters: tuple[str, ...] = ()
    """An answer's option letters, or an open-ended case's diagnosis (one text)."""
    format_score: float = 0.0


def case_prompt(case: Case, view: PartialView) -> str:
    """The first user message: what the doctor knows, the exam question, the options
    (an open-ended case: the objective, :func:`~promed_agents.agents.open_doctor.
    open_case_prompt`)."""
    if case.open_ended:
        return open_case_prompt(case, view)
    known = view.opening_text(case) or "(nothing yet)"
    options = "\n".join(f"{letter}. {text}" for letter, text in case.options.items())
    return f"What you know about the patient: {known}\n\nQuestion: {case.question}\n" \
           f"Options:\n{options}"


def answer_turn(letters: Sequence[str]) -> str:
    """The well-formed final turn naming ``letters``: ``answer: A`` or ``answer: A, C``."""
    return f"answer: {', '.join(letters)}"


def gold_turn(case: Case) -> str:
    """The well-formed final turn with the case's correct answer: its letters, or an
    open-ended case's diagnosis."""
    return diagnosis_turn(case.answer_text) if case.open_ended else answer_turn(case.answer)


def format_reminder(case: Case) -> str:
    """What the doctor is told after an invalid turn."""
    return OPEN_FORMAT_REMINDER if case.open_ended else FORMAT_REMINDER


def final_request(case: Case) -> str:
    """What the doctor is told when its budget is spent."""
    return OPEN_FINAL_REQUEST if case.open_ended else FINAL_REQUEST


def opening_messages(case: Case, view: PartialView, proactive: bool,
                     demonstration: bool = False) -> list[BaseMessage]:
    """The doctor's first prompt: the system message, optionally a worked example
    consultation (:data:`DEMONSTRATION`), then the case."""
    if case.open_ended:
        return open_opening_messages(case, view, proactive, demonstration)
    system = PROACTIVE_SYSTEM if proactive else REACTIVE_SYSTEM
    example = (DEMONSTRATION if proactive else REACTIVE_DEMONSTRATION) if demonstration else ()
    return [SystemMessage(system), *example, HumanMessage(case_prompt(case, view))]


def _answer_letters(rest: str, case: Case) -> tuple[str, ...] | None:
    line = rest.strip().splitlines()[0] if rest.strip() else ""
    match = _LETTERS.match(line)
    if match:
        letters = tuple(dict.fromkeys(re.findall(r"[A-Z]", match.group(1))))
        if letters and all(letter in case.options for letter in letters):
            return letters
    lowered = line.lower().strip(" .")
    by_text = [k for k, v in case.options.items() if lowered and v.lower().strip(" .") == lowered]
    return tuple(by_text) or None


_LEADING_OPTION = re.compile(r"^[\s(\[*]*([A-Z])(?:[.):\]]|\s*$)")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*\(?([A-Z])\b", re.IGNORECASE)


def recover_answer(text: str, case: Case) -> tuple[str, ...] | None:
    """The option a malformed final turn names, if any: a leading option letter, or
    "the answer is X" (none for an open-ended case)."""
    if case.open_ended:
        return None
    for pattern in (_LEADING_OPTION, _ANSWER_IS):
        match = pattern.search(text.strip()) if pattern is _ANSWER_IS else \
            pattern.match(text.strip())
        if match and match.group(1) in case.options:
            return (match.group(1),)
    return None


def parse_doctor_turn(text: str, case: Case) -> DoctorTurn:
    """Classify ``text`` as a question, an answer or invalid (an open-ended case's: also
    a test order), with its format score."""
    if case.open_ended:
        turn = parse_open_turn(text)
        if turn.kind is TurnKind.ANSWER:
            return DoctorTurn(turn.kind, letters=(turn.text or "",),
                              format_score=turn.format_score)
        return DoctorTurn(turn.kind, question=turn.text, format_score=turn.format_score)
    markers = list(_MARKER.finditer(text))
    if len(markers) != 1:
        return DoctorTurn(TurnKind.INVALID)
    marker = markers[0]
    score = 1.0 if not text[: marker.start()].strip() else 0.5
    rest = text[marker.end():]
    if marker.group(1).lower() == "question":
        question = rest.strip().splitlines()[0].strip() if rest.strip() else ""
        if not question:
            return DoctorTurn(TurnKind.INVALID)
        return DoctorTurn(TurnKind.QUESTION, question=question, format_score=score)
    letters = _answer_letters(rest, case)
    if letters is None:
        return DoctorTurn(TurnKind.INVALID)
    return DoctorTurn(TurnKind.ANSWER, letters=letters, format_score=score)
