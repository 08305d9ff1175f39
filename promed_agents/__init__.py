"""ProMed Agents: teach medical LLMs to ask before they answer.

The data path, one module (or package) per stop:

    case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

- :mod:`promed_agents.case`, :mod:`promed_agents.loader`, :mod:`promed_agents.partial_view`:
  benchmark cases and what the doctor knows at the start;
- :mod:`promed_agents.trace`: consultation records as they cross into storage;
- ``promed_agents.graphs``: consultation graphs (LangGraph);
- ``promed_agents.storage``: the SQL trace store (SQLAlchemy + Alembic);
- ``promed_agents.trainers``: Shapley values, MCTS-SFT and SIG-GRPO trainers.

Importing this package loads neither torch, trl nor SQLAlchemy.
"""

from promed_agents.case import Case
from promed_agents.errors import PromedError
from promed_agents.loader import (
    CaseFormat,
    agentclinic_sample_path,
    bundled_sample_path,
    load_cases,
)
from promed_agents.partial_view import PartialInfoPolicy, PartialView, partial_view
from promed_agents.trace import EpisodeRecord, TurnRecord

__version__ = "0.1.0"

__all__ = [
    "Case",
    "CaseFormat",
    "EpisodeRecord",
    "PartialInfoPolicy",
    "PartialView",
    "PromedError",
    "TurnRecord",
    "agentclinic_sample_path",
    "bundled_sample_path",
    "load_cases",
    "partial_view",
]
