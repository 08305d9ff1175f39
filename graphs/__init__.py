"""``promed_agents.graphs``: consultation graphs (doctor, patient and evaluator as LangGraph
nodes). Import as ``promed_agents.graphs``; the folder ``graphs/`` installs under that name.

case -> **consultation graph** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

- :mod:`.consultation`: the uncompiled :class:`~langgraph.graph.StateGraph` factory, its
  state and its runtime context (the models);
- :mod:`.consultation_runner`: many consultations with bounded concurrency, each finished
  one handed to ``on_episode`` (a :class:`~promed_agents.storage.TraceRecorder`);
- :mod:`.rollout`: groups of consultations of the policy as RL trajectories;
- :mod:`.checkpointer`: LangGraph checkpointers that make runs resumable.
"""

from promed_agents.graphs.checkpointer import check_checkpointer, checkpointer
from promed_agents.graphs.consultation import (
    ConsultationContext,
    ConsultationState,
    QuestionHook,
    abstaining_consultation_graph,
    build_consultation_graph,
    checkpoint_serializer,
    reply_instead,
)
from promed_agents.graphs.consultation_runner import (
    arun_consultations,
    episode_from_state,
    run_consultations,
)
from promed_agents.graphs.rollout import Trajectory, TrajectoryGroup, arollout

__all__ = ["ConsultationContext", "ConsultationState", "QuestionHook", "Trajectory",
           "TrajectoryGroup", "abstaining_consultation_graph", "arollout",
           "arun_consultations", "build_consultation_graph", "check_checkpointer",
           "checkpoint_serializer", "checkpointer", "episode_from_state", "reply_instead",
           "run_consultations"]
