"""The knobs that several runs share, each declared once: which cases, which doctor and
patient, the question and token budgets, the worked example.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
(the settings every stage's run shares)

Each ``*_knob()`` returns a fresh config field (:func:`promed_agents.knob.knob`) with its
default and help, for the run configs of :mod:`promed_agents.runs`; the command line
generates its options from those fields. :func:`case_id_list` and :func:`budget_range`
read the two knobs given as text.
"""

from __future__ import annotations

from typing import Any

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS
from promed_agents.agents.judge import DEFAULT_JUDGE
from promed_agents.errors import ConsultationError, PromedError
from promed_agents.graphs.consultation import DEFAULT_MAX_QUESTIONS
from promed_agents.knob import knob
from promed_agents.partial_view import DEFAULT_POLICY

__all__ = ["DEFAULT_DOCTOR", "DEFAULT_PATIENT", "budget_range", "case_id_list",
           "case_ids_knob", "cases_knob", "demonstration_knob", "doctor_knob", "judge_knob",
           "max_new_tokens_knob", "max_questions_knob", "measurement_knob", "patient_knob",
           "policy_knob", "split_knob"]

DEFAULT_DOCTOR = "local:smollm2"
"""The doctor every run uses unless told: the embedded SmolLM2-135M-Instruct."""
DEFAULT_PATIENT = "fact-select"


def case_id_list(text: str | None, flag: str = "--case-ids") -> list[str]:
    """``--case-ids a, b`` (or another comma-separated ``flag``) as a list; given, it must
    name at least one."""
    if text is None:
        return []
    ids = [c.strip() for c in text.split(",") if c.strip()]
    twice = sorted({c for c in ids if ids.count(c) > 1})
    if twice:
        raise ConsultationError(f"{flag} names {', '.join(map(repr, twice))} more than once; "
                                "name each once")
    if not ids:
        example = "imedqa-0,imedqa-1 (see `promed cases list`)" if flag == "--case-ids" \
            else "NAME1,NAME2"
        raise ConsultationError(f"{flag} {text!r} names nothing; give comma-separated "
                                f"names, e.g. {flag} {example}")
    return ids


def budget_range(text: str | None) -> tuple[int, int] | None:
    """``--dynamic-budget LOW-HIGH`` (doctor turns, both included) as a pair."""
    if text is None:
        return None
    parts = text.replace(" ", "").split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or \
            not 1 <= int(parts[0]) <= int(parts[1]) <= 100:
        raise PromedError(f"--dynamic-budget {text!r}: give the fewest and most doctor "
                          "turns as LOW-HIGH with 1 <= LOW <= HIGH <= 100, e.g. 2-10")
    return int(parts[0]), int(parts[1])


def cases_knob() -> Any:
    return knob(None, help="The first N stored cases.", min=1)


def case_ids_knob() -> Any:
    return knob((), help="Comma-separated case ids.", parse=case_id_list)


def split_knob() -> Any:
    return knob(None, help="Only cases of this split.")


def doctor_knob(help: str = "Doctor model spec.") -> Any:  # noqa: A002
    return knob(DEFAULT_DOCTOR, help=help)


def patient_knob() -> Any:
    return knob(DEFAULT_PATIENT, help="fact-select or llm:MODEL_SPEC.")


def measurement_knob() -> Any:
    return knob("fact-select", help="Who answers open-ended cases' test orders: "
                                    "fact-select or llm:MODEL_SPEC.")


def max_questions_knob() -> Any:
    return knob(DEFAULT_MAX_QUESTIONS, help="Question budget.", min=0)


def max_new_tokens_knob() -> Any:
    return knob(DOCTOR_TURN_TOKENS, help="Tokens per doctor turn.", min=1)


def demonstration_knob() -> Any:
    return knob(False, help="Show the doctor a worked example consultation first (small "
                            "models need it to follow the turn format).")


def judge_knob() -> Any:
    return knob(DEFAULT_JUDGE, help="How an open-ended case's diagnosis is judged: exact, "
                                    "rouge[:T] or token-f1[:T] (F1 at least T, default 0.5), "
                                    "or llm:MODEL_SPEC (AgentClinic's moderator).")


def policy_knob() -> Any:
    return knob(DEFAULT_POLICY, help="Partial-information policy: half-facts, first-sentence, "
                                     "initial (the facts an open-ended case gives at the "
                                     "start) or none (the question only).")
