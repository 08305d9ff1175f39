"""What the doctor knows, by summary: the reference's alternative way to decide SIG.

case -> doctor <-> patient -> **evaluator** -> trace in SQL -> Shapley/SIG -> training

By default a fact is acquired when the patient discloses it (exact for the fact-select
patient). The reference's MCTS instead asks an LLM to summarise what the doctor now knows
from the dialogue, and a fact checker marks the case facts the summary contains. The
information state after a turn is the weight of the facts known at the start plus those
the summary contains; the SIG of the turn's question is the increase of that state (it
can be negative when a summary drops a fact an earlier one had).

Pass a :class:`KnowledgeSummary` as ``Evaluator(summary=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from promed_agents.agents.patient import FactChecker, lexical_fact_checker
from promed_agents.case import Case

SUMMARY_SYSTEM = (
    "You keep a doctor's notes. From the notes and the dialogue with the patient below, "
    "list everything the doctor now knows about the patient as short statements, one per "
    "line. Use only what is written there; add nothing.")


def summary_prompt(case: Case, known_ids: Sequence[int],
                   dialogue: Sequence[tuple[str, str]]) -> str:
    """The summariser's input: the facts known at the start, then the questions and
    replies. The exam question, options and answer are never shown."""
    notes = " ".join(case.facts[i] for i in sorted(known_ids)) or "(none)"
    lines = [f"Doctor: {question}\nPatient: {reply}" for question, reply in dialogue]
    return f"Notes at the start: {notes}\n\nDialogue:\n" + "\n".join(lines)


@dataclass
class KnowledgeSummary:
    """Facts the doctor knows, as an LLM summary checked against the case's facts."""

    summarizer: BaseChatModel
    checker: FactChecker = field(default_factory=lexical_fact_checker)
    max_tokens: int = 256

    async def known_facts(self, case: Case, known_ids: Sequence[int],
                          dialogue: Sequence[tuple[str, str]]) -> list[int]:
        """Ids of the facts known at the start or contained in the summary."""
        from promed_agents.backends import sampling_kwargs

        reply = await self.summarizer.ainvoke(
            [SystemMessage(SUMMARY_SYSTEM), HumanMessage(summary_prompt(case, known_ids,
                                                                        dialogue))],
            **sampling_kwargs(self.summarizer, max_tokens=self.max_tokens, temperature=0.0))
        contained = self.checker(str(reply.content), case.facts)
        return sorted(set(known_ids) | set(contained))
