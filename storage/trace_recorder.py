"""The trace recorder: finished consultations into the store, one transaction each.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> training -> evaluation

A :class:`TraceRecorder` is the ``on_episode`` sink of
``promed_agents.graphs.consultation_runner.arun_consultations``: it tags each episode with
its experiment and writes it with ``TraceStore.record_episode``.
"""

from __future__ import annotations

from promed_agents.storage.trace_store import TraceStore
from promed_agents.trace import EpisodeRecord


class TraceRecorder:
    """Writes each episode it is given; remembers the ids it wrote."""

    def __init__(self, store: TraceStore, experiment_id: int | None = None) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self.episode_ids: list[int] = []

    def __call__(self, episode: EpisodeRecord) -> int:
        if self.experiment_id is not None and episode.experiment_id != self.experiment_id:
            episode = episode.model_copy(update={"experiment_id": self.experiment_id})
        episode_id = self.store.record_episode(episode)
        self.episode_ids.append(episode_id)
        return episode_id
