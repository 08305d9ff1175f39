"""``promed_agents.storage``: SQL storage of cases and consultation traces.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Import as ``promed_agents.storage`` (the folder ``storage/`` installs under that name).
"""

from promed_agents.storage.case_records import CaseGroup, ImportReport
from promed_agents.storage.database import make_engine, resolve_url, upgrade
from promed_agents.storage.shapley_records import (
    ShapleyRecord,
    SIGEvaluator,
    StoredWeights,
    sig_evaluator,
)
from promed_agents.storage.trace_export import export_traces
from promed_agents.storage.trace_recorder import TraceRecorder
from promed_agents.storage.trace_store import EpisodeSummary, ExperimentSummary, TraceStore
from promed_agents.storage.training_records import CheckpointRecord, TrainingSample

__all__ = ["CaseGroup", "CheckpointRecord", "EpisodeSummary", "ExperimentSummary",
           "ImportReport", "SIGEvaluator",
           "ShapleyRecord", "StoredWeights", "TraceRecorder", "TraceStore", "TrainingSample",
           "export_traces", "make_engine", "resolve_url", "sig_evaluator", "upgrade"]
