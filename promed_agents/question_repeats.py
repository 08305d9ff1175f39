"""Repeated questions: a question whose content an earlier question of the same
consultation already asked.

case -> consultation graph (**evaluator**) -> trace in SQL -> SFT data / **GRPO rewards**
-> **evaluation**

Two questions are the same question when they have the same content words and numbers
(stemmed, with the words of asking left out: :func:`~promed_agents.text_similarity.
content_tokens`), DoctorAgent-RL's rule without its LLM judge: "What did the physical
examination show?" and "what did the physical examination show" repeat each other, "What
did the abdominal examination show?" does not repeat either. A question with no content
words ("What?") repeats nothing. One rule serves everywhere a repeat matters:

- the evaluator gives a repeat no information gain, whatever the patient says to it;
- SFT never trains a repeat (it stays context);
- ProMed's GRPO reward pays a repeat nothing, not even its format reward;
- evaluations report the share of questions that repeat an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from promed_agents.text_similarity import content_tokens
from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord


def question_key(text: str) -> frozenset[str]:
    """What a question asks about: its content words and numbers (empty: nothing)."""
    words, numbers = content_tokens(text)
    return frozenset(words | numbers)


def repeats_earlier(question: str, earlier: Iterable[str]) -> bool:
    """Whether ``question`` asks what one of the ``earlier`` questions asked."""
    key = question_key(question)
    return bool(key) and any(question_key(text) == key for text in earlier)


def repeated_flags(turns: Sequence[TurnRecord]) -> list[bool]:
    """For each doctor turn of ``turns`` (in order): whether it is a question that repeats
    an earlier question of the consultation (or a test order an earlier order)."""
    seen: set[tuple[TurnKind, frozenset[str]]] = set()
    flags = []
    for turn in turns:
        if turn.role is not Role.DOCTOR:
            continue
        asking = turn.kind in (TurnKind.QUESTION, TurnKind.TEST)
        key = question_key(turn.text) if asking else frozenset()
        flags.append(bool(key) and (turn.kind, key) in seen)
        if key:
            seen.add((turn.kind, key))
    return flags


def repeated_count(episode: EpisodeRecord) -> int:
    """How many of ``episode``'s questions repeat an earlier one."""
    return sum(repeated_flags(episode.turns))
