"""The open-ended doctor's turns: a question, a test order or a diagnosis."""

from __future__ import annotations

import pytest

from promed_agents.agents.open_doctor import (
    OPEN_SYSTEM,
    open_opening_messages,
    parse_open_turn,
)
from promed_agents.loader import load_cases
from promed_agents.partial_view import partial_view
from promed_agents.trace import TurnKind

from conftest import ROOT


@pytest.mark.parametrize("text, kind, said, score", [
    ("question: How long have you had double vision?", TurnKind.QUESTION,
     "How long have you had double vision?", 1.0),
    ("test: Chest CT", TurnKind.TEST, "Chest CT", 1.0),
    ("Test： Acetylcholine receptor antibodies\nthen more", TurnKind.TEST,
     "Acetylcholine receptor antibodies", 1.0),
    ("diagnosis: Myasthenia gravis", TurnKind.ANSWER, "Myasthenia gravis", 1.0),
    ("I think the diagnosis: myasthenia gravis", TurnKind.ANSWER, "myasthenia gravis", 0.5),
    ("test: Chest CT, then diagnosis: MG", TurnKind.INVALID, None, 0.0),
    ("diagnosis:", TurnKind.INVALID, None, 0.0),
    ("Myasthenia gravis", TurnKind.INVALID, None, 0.0),
])
def test_each_turn_is_parsed_with_its_format_score(text, kind, said, score):
    turn = parse_open_turn(text)
    assert (turn.kind, turn.text, turn.format_score) == (kind, said, score)


def test_the_opening_gives_the_objective_and_the_initial_facts_only():
    case = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]
    system, opening = open_opening_messages(case, partial_view(case, "initial"))
    assert system.content == OPEN_SYSTEM and "test: <examination or test>" in OPEN_SYSTEM
    assert opening.content == ("What you know about the patient: Demographics: 35-year-old "
                               "female Primary symptom: Double vision\n\nObjective: "
                               f"{case.question}")
    assert "Myasthenia" not in opening.content and "Options" not in opening.content
