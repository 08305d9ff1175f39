"""``promed_agents.graphs``: consultation graphs (doctor, patient and evaluator as LangGraph
nodes). Import as ``promed_agents.graphs``; the folder ``graphs/`` installs under that name.

case -> **consultation graph** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""

from promed_agents.graphs.consultation import (
    ConsultationContext,
    ConsultationState,
    build_consultation_graph,
)
from promed_agents.graphs.consultation_runner import (
    arun_consultations,
    episode_from_state,
    run_consultations,
)

__all__ = ["ConsultationContext", "ConsultationState", "arun_consultations",
           "build_consultation_graph", "episode_from_state", "run_consultations"]
