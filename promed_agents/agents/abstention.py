"""MediQ's abstaining doctor: ask only while not confident enough to answer.

case -> **consultation graph (a node before the doctor)** -> trace in SQL -> ... -> evaluation

MediQ (arXiv 2406.00922) makes the decision to ask explicit: before each turn the doctor
estimates how confident it is that it could pick the right option now, and asks a
question only below a threshold; at or above it, it answers. :class:`Abstention` is that
estimate as a LangGraph node for ``build_consultation_graph``'s ``doctor_hooks``
(``promed_agents.graphs.abstaining_consultation_graph`` builds that graph). It puts one
extra question to the doctor model, on the conversation so far, which enters neither
the conversation nor the stored turns; the estimates are stored in the episode's
metadata (``confidences``). Two of MediQ's elicitation variants:

- ``numerical``: a probability between 0 and 1 (a percentage is read as one);
- ``scale``: a five-point scale from "very unconfident" to "very confident", read as
  0, 0.25, 0.5, 0.75 and 1.

An unreadable estimate counts as 0 (keep asking). The budget still holds: a doctor that
never reaches the threshold answers when its questions run out (and is not asked then).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import HumanMessage

from promed_agents.trace import ConsultationMode

VARIANTS = ("numerical", "scale")
DEFAULT_THRESHOLD = 0.8
NUMERICAL_PROMPT = (
    "Before you go on: how likely is it that you would choose the correct option if you "
    "answered now? Reply with one number between 0.0 and 1.0 and nothing else.")
SCALE_PROMPT = (
    "Before you go on: how confident are you that you would choose the correct option if "
    "you answered now? Reply with one of: very confident, somewhat confident, neither "
    "confident nor unconfident, somewhat unconfident, very unconfident.")
SCALE = (("neither confident nor unconfident", 0.5), ("somewhat unconfident", 0.25),
         ("very unconfident", 0.0), ("somewhat confident", 0.75), ("very confident", 1.0),
         ("unconfident", 0.25), ("confident", 0.75))
"""Scale answers, most specific first (so "very unconfident" is not read as "confident")."""
ANSWER_NOW = "You are confident enough. Give your final answer now, written as " \
    "'answer: <option letter>'."
OPEN_ANSWER_NOW = "You are confident enough. Give your diagnosis now, written as " \
    "'diagnosis: <diagnosis>'."
"""What an abstaining doctor of an open-ended case is told."""
_NUMBER = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(%?)")


def read_confidence(text: str, variant: str) -> float:
    """The confidence a reply states, in [0, 1]; 0 when it states none."""
    lowered = " ".join(text.lower().split())
    if variant == "scale":
        return next((value for phrase, value in SCALE if phrase in lowered), 0.0)
    match = _NUMBER.search(lowered)
    if match is None:
        return 0.0
    value = float(match.group(1))
    if match.group(2) or value > 1.0:
        value /= 100.0
    return min(max(value, 0.0), 1.0)


@dataclass(frozen=True)
class Abstention:
    """A node before the doctor: estimate confidence; at ``threshold`` or above, ask for
    the final answer (``final_requested``)."""

    variant: str = "numerical"
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"abstention variant {self.variant!r}: choose one of "
                             f"{', '.join(VARIANTS)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"abstention threshold {self.threshold} is not in [0, 1]")

    async def __call__(self, state: dict[str, Any], runtime: Any) -> dict[str, Any]:
        ctx = runtime.context
        if state.get("final_requested") or state.get("status") or \
                ctx.mode is not ConsultationMode.PROACTIVE or \
                state["questions"] >= state["budget"]:
            return {}  # nothing to decide: the doctor must answer now
        prompt = NUMERICAL_PROMPT if self.variant == "numerical" else SCALE_PROMPT
        messages = [*state["messages"], HumanMessage(prompt)]
        reply = await asyncio.wait_for(ctx.doctor.ainvoke(messages, **ctx.doctor_kwargs),
                                       ctx.model_timeout_s)
        confidence = read_confidence(str(reply.content), self.variant)
        if confidence < self.threshold:
            return {"confidences": [confidence]}
        return {"confidences": [confidence], "final_requested": True,
                "messages": [HumanMessage(OPEN_ANSWER_NOW if state["case"].open_ended
                                          else ANSWER_NOW)]}
