"""Trace import: consultations recorded elsewhere, in as traces.

dialogues recorded elsewhere -> **import** -> trace in SQL -> Shapley/SIG -> SFT -> ...

``promed traces import FILE`` reads one dialogue a JSON line (:class:`Dialogue`)::

    {"case_id": "imedqa-3", "source": "learn-to-ask",
     "messages": [
       {"role": "doctor", "content": "question: Do you have a fever?"},
       {"role": "patient", "content": "Yes, since Monday.", "disclosed_fact_ids": [4]},
       {"role": "doctor", "content": "answer: C"}]}

- ``case_id`` names a stored case; or ``case`` holds it inline (the fields of ``promed
  cases import``'s JSON Lines), stored with the dialogues.
- ``messages``: the consultation after the case was put to the doctor, in order. Roles
  ``doctor`` (or ``assistant``) and ``patient`` (or ``user``); ``system`` messages are
  left out (the doctor's prompt is this project's). A doctor message is a turn as said:
  ``question: ...``, ``answer: <letters>``, or anything else, an invalid turn, which no
  reply follows. With ``plain_turns`` each doctor message is a bare question, written
  ``question: <text>``. A patient message may say which facts it disclosed
  (``disclosed_fact_ids``, indices into the case's facts); without them, the facts its
  text states are found with the project's fact matcher
  (:func:`~promed_agents.agents.patient.lexical_fact_checker`).
- Open-ended cases (a diagnosis, no options): doctor messages are ``question: ...``,
  ``test: ...`` or ``diagnosis: ...``; a test order's result is a message of role
  ``measurement`` (with ``disclosed_fact_ids`` as a patient's); the diagnosis is judged by
  the import's judge.
- ``final_answer`` (optional): the answer letters (an open-ended case's diagnosis text),
  added as the doctor's last turn unless its last message already gives them.
- ``source`` (optional): where the dialogue was recorded [default: the file's name].
- ``known_fact_ids`` and ``partial_policy`` (optional): what the doctor knew at the start
  [default: the case's view under ``half-facts``]; ``max_questions`` (optional): the
  budget [default: every doctor turn but a final answer]; ``mode`` (optional).

Other keys are ignored and records whose ``status`` is ``failed`` are skipped, so a
``promed traces export`` file imports as it is. Each dialogue is replayed through the
consultation graph with its recorded turns in place of the doctor's and the patient's
models: an imported episode's turn kinds, format scores, acquired facts, SIG and recall
come from the same code as those of a consultation run here, and its doctor conversation
is recorded as the graph prompts it. Imported episodes are marked ``imported_from`` their
source and carry no token ids or logprobs: SFT renders them in the trained model's tokens;
off-policy GRPO refuses them. :func:`read_dialogues` and :func:`replay_dialogue` touch no
store; ``promed_agents.runs.import_run`` writes only after every record replayed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from promed_agents.agents.doctor import answer_turn, parse_doctor_turn
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.open_doctor import diagnosis_turn
from promed_agents.agents.patient import PatientReply, lexical_fact_checker
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.case import Case
from promed_agents.errors import TraceError
from promed_agents.graphs.consultation import ConsultationContext, build_consultation_graph
from promed_agents.graphs.consultation_runner import episode_from_state, recursion_limit
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view
from promed_agents.trace import ConsultationMode, EpisodeRecord, Role, TurnKind

GRAPH_NAME = "imported"
DOCTOR_ROLES = ("doctor", "assistant")
PATIENT_ROLES = ("patient", "user")
MEASUREMENT_ROLES = ("measurement",)


class DialogueMessage(BaseModel):
    """One message of an imported dialogue."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["doctor", "assistant", "patient", "user", "measurement", "system"]
    content: str
    disclosed_fact_ids: list[int] | None = Field(default=None, description=(
        "Patient and measurement messages: the case's facts the reply disclosed; None: "
        "found by the fact matcher."))


class Dialogue(BaseModel):
    """One consultation recorded elsewhere (see the module docstring)."""

    model_config = ConfigDict(extra="ignore")

    case_id: str | None = None
    case: Case | None = None
    messages: list[DialogueMessage]
    final_answer: list[str] | None = None
    source: str | None = None
    known_fact_ids: list[int] | None = None
    partial_policy: PartialInfoPolicy = DEFAULT_POLICY
    max_questions: int | None = Field(default=None, ge=0)
    mode: ConsultationMode = ConsultationMode.PROACTIVE
    status: str | None = None

    @field_validator("final_answer", mode="before")
    @classmethod
    def _letters(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def turns(self) -> list[DialogueMessage]:
        """The messages of the consultation (without system messages)."""
        return [m for m in self.messages if m.role != "system"]


def read_dialogues(path: str | Path) -> list[tuple[int, Dialogue]]:
    """``(line number, dialogue)`` of each record of the JSON Lines file ``path`` (blank
    lines and records whose ``status`` is ``failed`` left out); a record that is not a
    dialogue is a :class:`TraceError` naming its line and what to fix."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read {path}: {exc}") from None
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{where}: not JSON ({exc.msg}); write one dialogue a "
                             "line") from None
        if not isinstance(record, dict):
            raise TraceError(f"{where}: a dialogue is a JSON object, not "
                             f"{type(record).__name__}")
        try:
            dialogue = Dialogue.model_validate(record)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "record"
            raise TraceError(f"{where}: field '{field}': {error['msg']} (the format is in "
                             "docs/training_from_traces.md)") from None
        if dialogue.status == "failed":
            continue
        if dialogue.case_id is None and dialogue.case is None:
            raise TraceError(f"{where}: no case_id and no inline case; give the id of a "
                             "stored case, or the case itself as 'case'")
        if dialogue.case and dialogue.case_id and dialogue.case.id != dialogue.case_id:
            raise TraceError(f"{where}: case_id {dialogue.case_id!r} is not the inline "
                             f"case's id {dialogue.case.id!r}")
        if not dialogue.turns():
            raise TraceError(f"{where}: the dialogue has no doctor or patient message")
        found.append((number, dialogue))
    return found


class _RecordedPatient:
    """The dialogue's patient (or measurement) messages, in order, as a patient's replies
    (or test results)."""

    name = "imported"

    def __init__(self, replies: list[DialogueMessage], who: str = "patient reply") -> None:
        self._replies = list(replies)
        self._who = who
        self._check = lexical_fact_checker()

    async def order(self, case: Case, test: str) -> PatientReply:
        return await self.reply(case, test)

    async def reply(self, case: Case, question: str) -> PatientReply:
        if not self._replies:
            raise TraceError(f"the doctor's turn {question!r} has no {self._who} after it")
        message = self._replies.pop(0)
        facts = message.disclosed_fact_ids
        if facts is None:
            facts = self._check(message.content, case.facts)
        elif any(not 0 <= i < len(case.facts) for i in facts):
            raise TraceError(f"disclosed_fact_ids {facts} are not all facts of case "
                             f"{case.id} (it has {len(case.facts)}: 0 to "
                             f"{len(case.facts) - 1})")
        return PatientReply(message.content, sorted(set(facts)))


def _doctor_texts(dialogue: Dialogue, case: Case, plain_turns: bool) -> list[str]:
    texts = [f"question: {m.content.strip()}" if plain_turns else m.content
             for m in dialogue.turns() if m.role in DOCTOR_ROLES]
    if dialogue.final_answer:
        answer = diagnosis_turn(dialogue.final_answer[0]) if case.open_ended else \
            answer_turn(dialogue.final_answer)
        last = parse_doctor_turn(texts[-1], case) if texts else None
        if last is not None and last.kind is TurnKind.ANSWER and not plain_turns:
            if sorted(last.letters) != sorted(dialogue.final_answer):
                raise TraceError(f"final_answer {dialogue.final_answer} is not the answer "
                                 f"of the last doctor message ({texts[-1]!r})")
        else:
            texts.append(answer)
    return texts


def _budget(dialogue: Dialogue, texts: list[str], case: Case) -> int:
    if dialogue.max_questions is not None:
        return dialogue.max_questions
    ends_answered = bool(texts) and parse_doctor_turn(texts[-1], case).kind is TurnKind.ANSWER
    return len(texts) - 1 if ends_answered else len(texts)


async def replay_dialogue(dialogue: Dialogue, case: Case, evaluator: Evaluator, *,
                          source: str, plain_turns: bool = False) -> EpisodeRecord:
    """The trace of ``dialogue`` about ``case``: replayed through the consultation graph
    with its turns in place of the models, scored by ``evaluator``, marked imported from
    ``source``, without token ids. A dialogue the graph does not replay as recorded (a
    reply after a turn that is no question, a question without a reply, no answer at the
    end) is a :class:`TraceError` saying which."""
    view = partial_view(case, dialogue.partial_policy)
    if dialogue.known_fact_ids is not None:
        if any(not 0 <= i < len(case.facts) for i in dialogue.known_fact_ids):
            raise TraceError(f"known_fact_ids {dialogue.known_fact_ids} are not all facts of "
                             f"case {case.id} (it has {len(case.facts)})")
        view = view.model_copy(update={"known_fact_ids": sorted(set(dialogue.known_fact_ids))})
    texts = _doctor_texts(dialogue, case, plain_turns)
    if not texts:
        raise TraceError("the dialogue has no doctor message and no final_answer")
    budget = _budget(dialogue, texts, case)
    doctor = ScriptedChatModel(responses=texts, spec=f"imported:{source}")
    context = ConsultationContext(
        doctor=doctor, patient=_RecordedPatient(
            [m for m in dialogue.turns() if m.role in PATIENT_ROLES]),
        measurement=_RecordedPatient(
            [m for m in dialogue.turns() if m.role in MEASUREMENT_ROLES], "test result"),
        evaluator=evaluator, mode=dialogue.mode, max_questions=budget, doctor_kwargs={})
    graph = build_consultation_graph(retry_policy=None).compile()
    try:
        state = await graph.ainvoke({"case": case, "view": view}, context=context,
                                    config={"recursion_limit": recursion_limit(budget)})
    except TraceError:
        raise
    except Exception as exc:  # the graph's own invariants: say what broke, not a trace
        raise TraceError(f"the dialogue does not replay ({type(exc).__name__}: {exc})"
                         ) from None
    episode = episode_from_state(state, context, GRAPH_NAME)
    _check_replayed(_as_written(dialogue, texts), episode)
    return episode.model_copy(update={
        "sampling": None, "patient_spec": "imported", "imported_from": source,
        "metadata": {}, "turns": [t.model_copy(update={
            "prompt_token_ids": None, "token_ids": None, "logprobs": None, "latency_s": None})
            for t in episode.turns]})


def _as_written(dialogue: Dialogue, texts: list[str]) -> list[tuple[str, str]]:
    """``(role, text)`` of the consultation as it must replay: the dialogue's messages,
    its doctor messages as written (``texts``, in order), then the turn the import added
    (the final answer), if any."""
    doctor = iter(texts)
    written = [("doctor", next(doctor)) if m.role in DOCTOR_ROLES else
               ("measurement" if m.role in MEASUREMENT_ROLES else "patient", m.content)
               for m in dialogue.turns()]
    return written + [("doctor", text) for text in doctor]


def _check_replayed(recorded: list[tuple[str, str]], episode: EpisodeRecord) -> None:
    replayed = [(t.role.value, t.text) for t in episode.turns]
    if replayed == recorded:
        return
    at = next((k for k, (a, b) in enumerate(zip(replayed, recorded, strict=False)) if a != b),
              min(len(replayed), len(recorded)))
    if at >= len(recorded):
        raise TraceError(f"the dialogue ends after {len(recorded)} messages, before the "
                         "doctor's answer: give its final_answer")
    role, text = recorded[at]
    before = episode.turns[at - 1] if 0 < at <= len(episode.turns) else None
    wanted = TurnKind.TEST if role == "measurement" else TurnKind.QUESTION
    if role != "doctor" and before is not None and before.role is Role.DOCTOR and \
            before.kind is not wanted and not before.late_question:
        hint = ("a reply follows a doctor message that is no 'question: ...' turn (give "
                "bare questions with --plain-turns)") if role == "patient" else \
            "a test result follows a doctor message that is no 'test: ...' turn"
    else:
        hint = "the doctor's question budget ran out before it: give max_questions"
    raise TraceError(f"the dialogue does not replay as recorded at message {at + 1} "
                     f"({role}: {text[:60]!r}): {hint}")
