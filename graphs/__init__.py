"""``promed_agents.graphs``: consultation graphs (doctor, patient and evaluator as LangGraph
nodes). Import as ``promed_agents.graphs``; the folder ``graphs/`` installs under that name.

case -> **consultation graph** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

- :mod:`.consultation`: the uncompiled :class:`~langgraph.graph.StateGraph` factory, its
  state and its runtime context (the models);
- :mod:`.consultation_runner`: many consultations with bounded concurrency, each finished
  one handed to ``on_episode`` (a :class:`~promed_agents.storage.TraceRecorder`);
- :mod:`.token_sequence`: a recorded consultation's policy tokens, per turn or stitched
  into one sequence (what SFT and GRPO train on; GRPO's rollouts are consultations of
  this graph, :class:`~promed_agents.trainers.GraphRollouts`);
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
from promed_agents.graphs.token_sequence import (
    PolicySample,
    StitchedSequence,
    policy_samples,
    stitch,
)

__all__ = ["ConsultationContext", "ConsultationState", "PolicySample", "QuestionHook",
           "StitchedSequence", "abstaining_consultation_graph", "arun_consultations",
           "build_consultation_graph", "check_checkpointer", "checkpoint_serializer",
           "checkpointer", "episode_from_state", "policy_samples", "reply_instead",
           "run_consultations", "stitch"]
