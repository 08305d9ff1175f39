"""A knob: a config field whose default and help are declared once."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from promed_agents.knob import knob, knob_from
from promed_agents.trainers.mcts_search import MCTSConfig


def test_a_knob_is_a_field_with_its_help_and_option_settings():
    @dataclass(frozen=True)
    class Settings:
        count: int = knob(2, help="How many.", min=1)
        depth: float = knob_from(MCTSConfig, "decay", max=0.95)

    count, depth = fields(Settings)
    assert Settings().count == 2 and dict(count.metadata) == {"help": "How many.", "min": 1}
    library = {f.name: f for f in fields(MCTSConfig)}["decay"]
    assert Settings().depth == MCTSConfig.decay
    assert depth.metadata["help"] == library.metadata["help"] and depth.metadata["max"] == 0.95


def test_knob_settings_are_checked():
    with pytest.raises(TypeError, match="unknown option settings"):
        knob(1, help="h", minimum=0)
    with pytest.raises(TypeError, match="no field 'nope'"):
        knob_from(MCTSConfig, "nope")
