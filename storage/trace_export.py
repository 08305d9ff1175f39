"""Trace export: stored episodes out as JSON Lines for other tools.

case -> consultation graph -> trace in SQL -> **export** -> (datasets, notebooks, other trainers)

One JSON object per episode, with a chat-style ``messages`` list and the full ``turns``.
The schema is the same on every line (free-form metadata travels as a JSON string), so the
file loads with ``datasets.load_dataset("json", data_files=PATH)``. The file is written
to a temporary name and renamed into place, so a failed export leaves no partial file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promed_agents.atomic_file import atomic_writer
from promed_agents.storage.trace_store import TraceStore
from promed_agents.trace import EpisodeRecord, EpisodeStatus

_CHAT_ROLES = {"doctor": "assistant", "patient": "user", "system": "system",
               "evaluator": "user"}


def episode_to_json(episode: EpisodeRecord, with_tokens: bool = False) -> dict[str, Any]:
    """The export form of one episode (see the module docstring)."""
    turns = []
    for turn in episode.turns:
        item: dict[str, Any] = {
            "index": turn.index, "role": turn.role.value, "text": turn.text,
            "kind": turn.kind.value if turn.kind else None,
            "disclosed_fact_ids": turn.disclosed_fact_ids, "reward": turn.reward,
            "sig": turn.sig, "format_score": turn.format_score,
        }
        if with_tokens:
            item.update(prompt_token_ids=turn.prompt_token_ids, token_ids=turn.token_ids,
                        logprobs=turn.logprobs,
                        token_rewards=turn.token_rewards)
        turns.append(item)
    return {
        "episode_id": episode.id,
        "case_id": episode.case_id,
        "experiment_id": episode.experiment_id,
        "graph": episode.graph,
        "mode": episode.mode.value,
        "partial_policy": episode.partial_policy.value,
        "known_fact_ids": episode.known_fact_ids,
        "doctor_spec": episode.doctor_spec,
        "patient_spec": episode.patient_spec,
        "evaluator_spec": episode.evaluator_spec,
        "status": episode.status.value,
        "failure_reason": episode.failure_reason,
        "started_at": episode.started_at.isoformat() if episode.started_at else None,
        "finished_at": episode.finished_at.isoformat() if episode.finished_at else None,
        "final_answer": episode.final_answer,
        "correct": episode.correct,
        "total_reward": episode.total_reward,
        "num_questions": episode.num_questions,
        "messages": [{"role": _CHAT_ROLES[t.role.value], "content": t.text}
                     for t in episode.turns],
        "turns": turns,
        "metadata_json": json.dumps(episode.metadata, sort_keys=True),
    }


def export_traces(store: TraceStore, path: str | Path, *, experiment_id: int | None = None,
                 status: EpisodeStatus | str | None = None, with_tokens: bool = False,
                 progress: Callable[[int], None] | None = None) -> int:
    """Write the matching episodes to ``path``; returns how many were written."""
    count = 0
    with atomic_writer(path) as out:
        for episode in store.iter_episodes(experiment_id=experiment_id, status=status):
            out.write(json.dumps(episode_to_json(episode, with_tokens),
                                 ensure_ascii=False) + "\n")
            count += 1
            if progress is not None:
                progress(1)
    return count
