"""SFT data from searches: the best consultations of each MCTS tree as training samples.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT data** -> SFT

For each searched case, the leaf with the highest path reward (SIG sum plus the answer
bonus), and every other leaf whose path reward reaches ``min_reward``, are taken; their
consultations are episodes in the store. A case whose best path earned nothing (no SIG,
no bonus) gives no sample: it would only teach answering without asking. A sample is
made of the doctor's exact token ids from the trace: the whole consultation as one
sequence when its turns stitch token for token
(:func:`promed_agents.graphs.rollout.stitch`), otherwise one sample per doctor turn (its
prompt ids, then its completion). Only the doctor's well-formed turns are trained
(``assistant_masks`` is 1 on their tokens): its questions, and its final answer only when
that answer is right. A best path that ends in a wrong answer (the search found good
questions but no right answer) still teaches its questions, with the wrong answer as
context only; ``correct_only`` drops such paths altogether. Prompts, patient replies,
reminders and invalid turns are context only.

:func:`export_samples` writes the samples as JSON Lines that
``datasets.load_dataset("json", data_files=...)`` loads, with ``input_ids`` and
``assistant_masks`` as TRL's ``SFTTrainer`` takes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promed_agents.atomic_file import atomic_writer
from promed_agents.errors import TrainingError
from promed_agents.graphs.rollout import policy_samples, stitch
from promed_agents.search_tree import SearchNode
from promed_agents.storage.training_records import TrainingSample
from promed_agents.trace import EpisodeRecord, Role, TurnKind

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


@dataclass(frozen=True)
class ExportConfig:
    """Which search paths become samples."""

    min_reward: float | None = None
    """Also keep every leaf whose path reward is at least this (None: the best only)."""
    correct_only: bool = False
    """Keep only consultations that ended with the right answer."""


def chosen_leaves(root: SearchNode, config: ExportConfig) -> list[SearchNode]:
    """The leaves of ``root`` to train on: the best, then those above the threshold, in
    the order they were found; only leaves with a stored episode."""
    leaves = [leaf for leaf in root.leaves() if leaf.episode_id is not None
              and (leaf.correct or not config.correct_only)]
    if not leaves:
        return []
    best = max(leaves, key=lambda leaf: leaf.path_reward())
    if best.path_reward() <= 0:
        return []  # the search found nothing of value here: nothing to teach
    return [leaf for leaf in leaves if leaf is best or (
        config.min_reward is not None and leaf.path_reward() >= config.min_reward)]


def _messages(episode: EpisodeRecord) -> list[dict[str, str]]:
    return [{"role": "assistant" if t.role is Role.DOCTOR else "user", "content": t.text}
            for t in episode.turns]


def trained_turn(kind: TurnKind | None, correct: bool | None) -> bool:
    """Whether a doctor turn of this kind is trained: a question always, an answer only
    when the consultation's final answer was right."""
    return kind is TurnKind.QUESTION or (kind is TurnKind.ANSWER and correct is True)


def episode_samples(episode: EpisodeRecord, weight: float | None = None
                    ) -> list[TrainingSample]:
    """Training samples from ``episode``'s doctor turns (see the module docstring)."""
    turns = policy_samples(episode)
    trained = [trained_turn(t.kind, episode.correct) for t in turns]
    if any(not t.prompt_ids or not t.completion_ids for t in turns):
        raise TrainingError(f"episode {episode.id} (case {episode.case_id}) has doctor turns "
                            "without token ids; its doctor backend did not return them "
                            "(use a local: model, or a server that returns token ids)")
    extra = {"case_id": episode.case_id}
    messages = _messages(episode)
    stitched = stitch(turns)
    if stitched is not None:
        masks = [0] * len(stitched.prompt_ids) + [int(trained[i]) if i >= 0 else 0
                                                  for i in stitched.turn_index]
        if not any(masks):
            return []  # nothing of it is to be learnt
        return [TrainingSample(stitched.prompt_ids + stitched.completion_ids, masks,
                               messages, episode.id, weight, extra)]
    return [TrainingSample(t.prompt_ids + t.completion_ids,
                           [0] * len(t.prompt_ids) + [1] * len(t.completion_ids),
                           messages, episode.id, weight, {**extra, "turn": k})
            for k, t in enumerate(turns) if trained[k]]


def search_samples(store: TraceStore, experiment_id: int, config: ExportConfig
                   ) -> tuple[list[TrainingSample], dict[str, int]]:
    """Samples from every tree of the search ``experiment_id`` in ``store``, and counts of
    what was taken (cases, leaves, samples). ``config`` says which leaves: the best of
    each tree (when it earned anything), and those above ``min_reward``."""
    samples: list[TrainingSample] = []
    case_ids = sorted(store.search_progress(experiment_id))
    leaves_taken = 0
    for case_id in case_ids:
        root = store.load_search_tree(experiment_id, case_id)
        for leaf in chosen_leaves(root, config):
            leaves_taken += 1
            samples += episode_samples(store.get_episode(leaf.episode_id), leaf.path_reward())
    return samples, {"cases": len(case_ids), "leaves": leaves_taken, "samples": len(samples)}


def export_samples(samples: Sequence[TrainingSample], path: str | Path) -> Path:
    """Write ``samples`` to ``path`` as JSON Lines (atomically: a temporary file renamed
    into place, so a failed export leaves no half-written file)."""
    path = Path(path)
    with atomic_writer(path) as out:
        for sample in samples:
            out.write(json.dumps({"input_ids": sample.input_ids,
                                  "assistant_masks": sample.assistant_masks,
                                  "episode_id": sample.episode_id,
                                  "weight": sample.weight, **sample.extra}) + "\n")
    return path
