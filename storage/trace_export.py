"""Trace export: stored episodes out as JSON Lines for other tools.

case -> consultation graph -> trace in SQL -> **export** -> (datasets, notebooks, other trainers)

One JSON object per episode: the ``prompt`` the doctor started from (system message, the
worked example when the run showed one, and the case as the doctor saw it: the recorded
conversation's opening, or rebuilt from the case for traces that did not record it), the
consultation as a chat-style ``messages`` list (a patient's reply with the facts it
disclosed), the full ``turns``, and the free-form ``metadata`` as a nested JSON object;
``promed traces import`` reads it back (:mod:`promed_agents.storage.trace_import`). The
file loads with ``datasets.load_dataset("json", data_files=PATH)``. A file is written to
a temporary name and renamed into place, so a failed export leaves no partial file;
``-`` writes to standard output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from promed_agents.agents.doctor import opening_messages
from promed_agents.atomic_file import atomic_writer
from promed_agents.backends.chat_tokens import chat_dicts
from promed_agents.case import Case
from promed_agents.graphs.token_sequence import doctor_prompts
from promed_agents.partial_view import partial_view
from promed_agents.storage.trace_store import TraceStore
from promed_agents.trace import ConsultationMode, EpisodeRecord, EpisodeStatus, Role, TurnRecord

_CHAT_ROLES = {"doctor": "assistant", "patient": "user", "system": "system",
               "evaluator": "user", "measurement": "measurement"}


def prompt_messages(case: Case, episode: EpisodeRecord, demonstration: bool = False
                    ) -> list[dict[str, str]] | None:
    """The doctor's opening prompt of ``episode`` as chat messages; None when the case's
    view under the episode's policy is not the one the episode started from."""
    view = partial_view(case, episode.partial_policy)
    if view.known_fact_ids != episode.known_fact_ids:
        return None
    proactive = episode.mode is ConsultationMode.PROACTIVE
    return chat_dicts(opening_messages(case, view, proactive, demonstration))


def _message(turn: TurnRecord) -> dict[str, Any]:
    """A turn as a chat message; a patient's reply (or a test's result, role
    ``measurement``) says which facts it disclosed (so that ``promed traces import``
    reads the export back as it was)."""
    message: dict[str, Any] = {"role": _CHAT_ROLES[turn.role.value], "content": turn.text}
    if turn.role is not Role.DOCTOR:
        message["disclosed_fact_ids"] = turn.disclosed_fact_ids
    return message


def episode_to_json(episode: EpisodeRecord, with_tokens: bool = False,
                    prompt: list[dict[str, str]] | None = None) -> dict[str, Any]:
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
        "max_questions": episode.max_questions,
        "source": episode.imported_from,
        "prompt": prompt,
        "messages": [_message(t) for t in episode.turns],
        "turns": turns,
        "metadata": episode.stored_metadata(),
    }


def export_traces(store: TraceStore, path: str | Path | TextIO, *,
                  experiment_id: int | None = None,
                  status: EpisodeStatus | str | None = None, with_tokens: bool = False,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write the matching episodes to ``path`` (a file name, ``-`` for standard output,
    or an open text handle); returns how many were written."""
    if isinstance(path, str) and path == "-":
        return _write(store, sys.stdout, experiment_id, status, with_tokens, progress)
    if not isinstance(path, (str, Path)):
        return _write(store, path, experiment_id, status, with_tokens, progress)
    with atomic_writer(path) as out:
        return _write(store, out, experiment_id, status, with_tokens, progress)


def _write(store: TraceStore, out: TextIO, experiment_id: int | None,
           status: EpisodeStatus | str | None, with_tokens: bool,
           progress: Callable[[int], None] | None) -> int:
    count = 0
    cases: dict[str, Case] = {}
    shown_example = {e.id: bool(store.experiment_config(e.name)[1].get("demonstration"))
                     for e in store.list_experiments()}
    for episode in store.iter_episodes(experiment_id=experiment_id, status=status):
        if episode.case_id not in cases:
            cases[episode.case_id] = store.get_case(episode.case_id)
        recorded = doctor_prompts(episode)
        prompt = [{"role": m.role, "content": m.content} for m in recorded[0]] if recorded \
            else prompt_messages(cases[episode.case_id], episode,
                                 shown_example.get(episode.experiment_id or -1, False))
        out.write(json.dumps(episode_to_json(episode, with_tokens, prompt),
                             ensure_ascii=False) + "\n")
        count += 1
        if progress is not None:
            progress(1)
    return count
