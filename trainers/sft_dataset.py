"""SFT data from stored consultations: the best of each MCTS tree, or any logged run's
consultations that pass a filter, as training samples.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT data** -> SFT

:func:`logged_samples` takes the consultations of any runs (consult, eval, GRPO rollouts)
that pass an :class:`EpisodeFilter` (right answer, SIG or facts acquired, no repeated or
invalid turn, few enough questions, the best K of each case) and says how many each
filter kept. :func:`search_samples` takes a search's best paths: for each searched case,
the leaf with the highest path reward (SIG sum plus the answer bonus), and every other
leaf whose path reward reaches ``min_reward``, are taken; their consultations are
episodes in the store. A case whose best path earned nothing (no SIG,
no bonus) gives no sample: it would only teach answering without asking. A sample is
made of the doctor's exact token ids from the trace when they are the trained model's
(the *student*'s); otherwise (another model's consultation, a served API that returned
no token ids, an imported dialogue) of the recorded conversation rendered in the
student's chat template and tokens (:func:`doctor_tokens`), with the same masks. It is
the whole consultation as one sequence when its turns stitch token for token
(:func:`promed_agents.graphs.token_sequence.stitch`), otherwise one sample per doctor turn (its
prompt ids, then its completion). ``assistant_masks`` is 1 on the tokens trained:

- a well-formed question that does not repeat an earlier question of the consultation
  (:mod:`~promed_agents.question_repeats`): a repeat is never trained; with
  ``informative_only``, only questions that acquired something (SIG > 0);
- the final turn, always, as a well-formed answer: the path's own answer when it was
  right and well-formed, otherwise the case's correct answer (``answer: <letters>`` and
  the end-of-turn token, in the policy's tokens: ``answer_ids``) in its place. So every
  sample teaches the turn that answers the final request, and a wrong answer, a junk
  final turn or a question asked when only an answer was allowed is never trained (why
  the correct answer rather than dropping wrong paths: ``docs/concepts.md``);
- nothing else: prompts, patient replies, reminders and invalid turns are context.

``correct_only`` keeps only paths whose own answer was right. Without a student the
final answer is trained only when it was right (and a wrong one stays context).

:func:`export_samples` writes the samples as JSON Lines that
``datasets.load_dataset("json", data_files=...)`` loads, with ``input_ids`` and
``assistant_masks`` as TRL's ``SFTTrainer`` takes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promed_agents.agents.doctor import gold_turn
from promed_agents.atomic_file import atomic_writer
from promed_agents.backends.chat_tokens import ChatTokens
from promed_agents.errors import TrainingError
from promed_agents.graphs.token_sequence import (
    PolicySample,
    doctor_prompts,
    policy_samples,
    rendered_samples,
    stitch,
)
from promed_agents.question_repeats import repeated_flags
from promed_agents.search_tree import SearchNode
from promed_agents.storage.training_records import TrainingSample
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore


@dataclass(frozen=True)
class ExportConfig:
    """Which search paths become samples."""

    min_reward: float | None = None
    """Also keep every leaf whose path reward is at least this (None: the best only)."""
    paths_per_case: int = 1
    """Keep the best this many leaves of each tree that earned a reward (diverse good
    paths: each is a different consultation of the case)."""
    correct_only: bool = False
    """Keep only consultations that ended with the right answer."""
    informative_only: bool = False
    """Train a question only when it acquired something (SIG > 0); False: every
    well-formed question that repeats nothing."""


def chosen_leaves(root: SearchNode, config: ExportConfig) -> list[SearchNode]:
    """The leaves of ``root`` to train on, in the order they were found: the
    ``paths_per_case`` best that earned a reward, and those above ``min_reward``; only
    leaves with a stored episode."""
    leaves = [leaf for leaf in root.leaves() if leaf.episode_id is not None
              and (leaf.correct or not config.correct_only)]
    if not leaves:
        return []
    ranked = sorted(leaves, key=lambda leaf: -leaf.path_reward())  # stable: found first
    if ranked[0].path_reward() <= 0:
        return []  # the search found nothing of value here: nothing to teach
    best = {id(leaf) for leaf in ranked[: config.paths_per_case] if leaf.path_reward() > 0}
    return [leaf for leaf in leaves if id(leaf) in best or (
        config.min_reward is not None and leaf.path_reward() >= config.min_reward)]


def _messages(episode: EpisodeRecord) -> list[dict[str, str]]:
    return [{"role": "assistant" if t.role is Role.DOCTOR else "user", "content": t.text}
            for t in episode.turns]


def trained_turn(kind: TurnKind | None, correct: bool | None, *, repeated: bool = False,
                 sig: float | None = None, informative_only: bool = False) -> bool:
    """Whether a doctor turn of this kind is trained: a question (or an open-ended case's
    test order) that repeats nothing (and, with ``informative_only``, acquired something),
    an answer only when the consultation's final answer was right."""
    if kind in (TurnKind.QUESTION, TurnKind.TEST):
        return not repeated and (not informative_only or (sig or 0.0) > 0)
    return kind is TurnKind.ANSWER and correct is True


def _ends_with_final_turn(episode: EpisodeRecord) -> bool:
    """Whether the episode's last doctor turn is its final turn (an answer, or what the
    doctor said to the final request), not a turn cut short by a failure."""
    return episode.status in (EpisodeStatus.COMPLETED, EpisodeStatus.TIMEOUT)


def doctor_tokens(episode: EpisodeRecord, student: ChatTokens | None = None
                  ) -> tuple[list[PolicySample], bool]:
    """``(samples, rendered)``: the doctor turns of ``episode`` as the recorded token ids
    when they are ``student``'s (its chat template renders the first recorded prompt token
    for token), or without a student; otherwise rendered in the student's tokens from the
    recorded conversation (:func:`~promed_agents.graphs.token_sequence.rendered_samples`):
    another model's consultation, or a backend that returned no token ids."""
    native = policy_samples(episode)
    has_ids = all(t.prompt_ids and t.completion_ids for t in native)
    if has_ids and (student is None or _same_tokens(episode, native, student)):
        return native, False
    where = f"episode {episode.id} (case {episode.case_id}, doctor {episode.doctor_spec})"
    if student is None:
        raise TrainingError(f"{where} has doctor turns without token ids; its doctor "
                            "backend did not return them: give the model to train "
                            "(--model local:...), whose tokens they are rendered in")
    rendered = rendered_samples(episode, student)
    if rendered is None:
        raise TrainingError(f"{where} is not in the trained model's tokens and its trace "
                            "holds no conversation to render (recorded by an earlier "
                            "version): train the model that ran it, or consult again")
    return rendered, True


def _same_tokens(episode: EpisodeRecord, native: list[PolicySample], student: ChatTokens
                 ) -> bool:
    prompts = doctor_prompts(episode)
    if not native or prompts is None:  # nothing to compare: the recorded ids stand
        return True
    chat = [{"role": m.role, "content": m.content} for m in prompts[0]]
    return student.prompt_ids(chat) == native[0].prompt_ids


def episode_samples(episode: EpisodeRecord, weight: float | None = None,
                    answer_ids: list[int] | None = None, informative_only: bool = False,
                    student: ChatTokens | None = None) -> list[TrainingSample]:
    """Training samples from ``episode``'s doctor turns (see the module docstring), in
    ``student``'s tokens (:func:`doctor_tokens`); ``answer_ids`` is the correct answer
    turn in those tokens."""
    turns, rendered = doctor_tokens(episode, student)
    repeats = repeated_flags(episode.turns)
    trained = [trained_turn(t.kind, episode.correct, repeated=r, sig=t.sig,
                            informative_only=informative_only)
               for t, r in zip(turns, repeats, strict=True)]
    extra: dict[str, object] = {"case_id": episode.case_id}
    if rendered:
        extra["rendered"] = True
    if turns and answer_ids and _ends_with_final_turn(episode):
        last = episode.turns[max(i for i, t in enumerate(episode.turns)
                                 if t.role is Role.DOCTOR)]
        own_right = turns[-1].kind is TurnKind.ANSWER and episode.correct is True and \
            last.format_score == 1.0
        if not own_right:  # the messages keep what was said; the ids are what is taught
            turns[-1] = _answer_in_place(turns[-1], answer_ids)
            extra["answer_replaced"] = True
        trained[-1] = True
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


def _answer_in_place(turn: PolicySample, answer_ids: list[int]) -> PolicySample:
    return replace(turn, completion_ids=list(answer_ids), logprobs=[0.0] * len(answer_ids),
                   kind=TurnKind.ANSWER)


def search_samples(store: TraceStore, experiment_id: int, config: ExportConfig,
                   student: ChatTokens | None = None
                   ) -> tuple[list[TrainingSample], dict[str, int]]:
    """Samples from every tree of the search ``experiment_id`` in ``store``, and counts of
    what was taken (cases, leaves, samples). ``config`` says which leaves: the best of
    each tree (the ``paths_per_case`` best that earned anything), and those above
    ``min_reward``. With ``student`` (the tokens of the model to train,
    :meth:`ChatTokens.for_model`), the samples are in its tokens (:func:`doctor_tokens`)
    and every sample ends with a trained, well-formed answer turn (the case's correct
    answer where the path's own was not)."""
    samples: list[TrainingSample] = []
    case_ids = sorted(store.search_progress(experiment_id))
    leaves_taken = 0
    for case_id in case_ids:
        root = store.load_search_tree(experiment_id, case_id)
        leaves = chosen_leaves(root, config)
        gold = student.turn_ids(gold_turn(store.get_case(case_id))) \
            if student and leaves else None
        for leaf in leaves:
            leaves_taken += 1
            samples += episode_samples(store.get_episode(leaf.episode_id), leaf.path_reward(),
                                       gold, config.informative_only, student)
    return samples, {"cases": len(case_ids), "leaves": leaves_taken, "samples": len(samples)}


@dataclass(frozen=True)
class EpisodeFilter:
    """Which logged consultations become samples (each filter in this order)."""

    correct_only: bool = False
    """Only consultations that ended with the right answer."""
    min_sig: float | None = None
    """Only consultations whose SIG (information gain) is at least this."""
    min_facts: int | None = None
    """Only consultations that acquired at least this many facts."""
    clean_only: bool = False
    """Only consultations with no repeated question and no invalid turn."""
    max_asked: int | None = None
    """Only consultations that asked at most this many questions."""
    best_per_case: int | None = None
    """Then only each case's best this many (highest SIG, then right answers first)."""


def _facts_acquired(episode: EpisodeRecord) -> int:
    return len({i for t in episode.turns for i in t.disclosed_fact_ids})


def _clean(episode: EpisodeRecord) -> bool:
    doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
    return not any(repeated_flags(episode.turns)) and \
        all(t.kind is not TurnKind.INVALID for t in doctor)


def filter_episodes(episodes: Sequence[EpisodeRecord], keep: EpisodeFilter
                    ) -> tuple[list[EpisodeRecord], dict[str, int]]:
    """The finished episodes that pass ``keep``, and how many were left after each
    filter (``finished``, then each filter that is set, by its field name)."""
    kept = [e for e in episodes if e.status is not EpisodeStatus.FAILED]
    counts = {"finished": len(kept)}
    tests = {"correct_only": lambda e: e.correct is True,
             "min_sig": lambda e: (e.information_gain or 0.0) >= (keep.min_sig or 0.0),
             "min_facts": lambda e: _facts_acquired(e) >= (keep.min_facts or 0),
             "clean_only": _clean,
             "max_asked": lambda e: e.num_questions <= (keep.max_asked or 0)}
    for name, test in tests.items():
        if getattr(keep, name) not in (None, False):
            kept = [e for e in kept if test(e)]
            counts[name] = len(kept)
    if keep.best_per_case is not None:
        by_case: dict[str, list[EpisodeRecord]] = {}
        for episode in kept:
            by_case.setdefault(episode.case_id, []).append(episode)
        best = {id(e) for group in by_case.values() for e in sorted(
            group, key=lambda e: (-(e.information_gain or 0.0), e.correct is not True)
        )[: keep.best_per_case]}
        kept = [e for e in kept if id(e) in best]
        counts["best_per_case"] = len(kept)
    return kept, counts


def logged_samples(store: TraceStore, experiment_ids: Sequence[int], keep: EpisodeFilter,
                   student: ChatTokens | None = None, informative_only: bool = False
                   ) -> tuple[list[TrainingSample], dict[str, int]]:
    """Samples from the consultations of runs ``experiment_ids`` (any kind) that pass
    ``keep``, each with its provenance (episode id; ``case_id``, ``experiment_id``, and
    ``rendered`` when re-tokenised, in ``extra``), and the counts of
    :func:`filter_episodes` plus ``samples``. With ``student`` the samples are in its
    tokens (another doctor's consultations are rendered in them: distillation), and
    every sample ends with a trained, well-formed answer turn, as a search's do."""
    episodes = [e for experiment_id in experiment_ids
                for e in store.iter_episodes(experiment_id)]
    kept, counts = filter_episodes(episodes, keep)
    samples: list[TrainingSample] = []
    golds: dict[str, list[int]] = {}
    for episode in kept:
        gold = None
        if student is not None:
            if episode.case_id not in golds:
                golds[episode.case_id] = student.turn_ids(
                    gold_turn(store.get_case(episode.case_id)))
            gold = golds[episode.case_id]
        for sample in episode_samples(episode, episode.information_gain, gold,
                                      informative_only, student):
            sample.extra["experiment_id"] = episode.experiment_id
            samples.append(sample)
    rendered = sum(1 for sample in samples if sample.extra.get("rendered"))
    return samples, {"consultations": len(episodes), **counts, "samples": len(samples),
                     **({"rendered in the student's tokens": rendered} if rendered else {})}


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
