"""Rollouts: the consultation graph as the RL environment.

case -> **consultation graph (rollout)** -> trace in SQL -> Shapley/SIG -> **GRPO** -> ...

:func:`arollout` runs ``group_size`` consultations per case with the policy as the doctor
(sampling, so the group differs) through the same graph and runner as evaluation, and
returns :class:`TrajectoryGroup` objects. A trajectory keeps the episode (to record it)
and the policy's tokens:

- ``samples``: one :class:`PolicySample` per doctor turn (prompt ids, completion ids,
  logprobs, kind, SIG), exact training data from the backend's metadata;
- ``prompt_ids`` / ``completion_ids`` / ``policy_mask`` / ``logprobs``: the whole
  consultation as one sequence, where ``policy_mask`` is 1 on tokens the policy generated
  and 0 on environment tokens (patient replies, reminders), as TRL's ``env_mask`` wants.
  Built only when each turn's prompt extends the previous prompt and completion token for
  token (``stitched`` says whether it is); otherwise use ``samples``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from promed_agents.case import Case
from promed_agents.doctor import doctor_sampling
from promed_agents.evaluator import Evaluator
from promed_agents.graphs.consultation import DEFAULT_MAX_QUESTIONS, ConsultationContext
from promed_agents.graphs.consultation_runner import EpisodeSink, arun_consultations
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy
from promed_agents.patient import FactSelectPatient, Patient
from promed_agents.trace import EpisodeRecord, Role, TurnKind


@dataclass(frozen=True)
class PolicySample:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    kind: TurnKind
    sig: float | None


@dataclass
class Trajectory:
    episode: EpisodeRecord
    samples: list[PolicySample]
    stitched: bool = False
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    policy_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return bool(self.episode.correct)


@dataclass
class TrajectoryGroup:
    case: Case
    trajectories: list[Trajectory]


@dataclass(frozen=True)
class StitchedSequence:
    """A consultation as one token sequence: ``prompt_ids`` then ``completion_ids``, where
    ``policy_mask`` is 1 on the policy's tokens and 0 on the environment's."""

    prompt_ids: list[int]
    completion_ids: list[int]
    policy_mask: list[int]
    logprobs: list[float]


def policy_samples(episode: EpisodeRecord) -> list[PolicySample]:
    """The doctor turns of ``episode`` as policy samples (exact token ids and logprobs)."""
    return [PolicySample(prompt_ids=t.prompt_token_ids or [], completion_ids=t.token_ids or [],
                         logprobs=t.logprobs or [], kind=t.kind or TurnKind.INVALID, sig=t.sig)
            for t in episode.turns if t.role is Role.DOCTOR]


def stitch(samples: Sequence[PolicySample]) -> StitchedSequence | None:
    """``samples`` as one sequence, or None when a turn's prompt does not extend the
    previous prompt and completion token for token (a chat template that re-renders
    earlier turns differently) or there is nothing to stitch."""
    if not samples:
        return None
    sequence = list(samples[0].prompt_ids)
    completion: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    for k, sample in enumerate(samples):
        if k > 0:
            if sample.prompt_ids[: len(sequence)] != sequence:
                return None
            environment = sample.prompt_ids[len(sequence):]
            completion += environment
            mask += [0] * len(environment)
            logprobs += [0.0] * len(environment)
            sequence += environment
        completion += sample.completion_ids
        mask += [1] * len(sample.completion_ids)
        logprobs += sample.logprobs
        sequence += sample.completion_ids
    return StitchedSequence(list(samples[0].prompt_ids), completion, mask, logprobs)


def _trajectory(episode: EpisodeRecord) -> Trajectory:
    samples = policy_samples(episode)
    trajectory = Trajectory(episode=episode, samples=samples)
    stitched = stitch(samples)
    if stitched is not None:
        trajectory.stitched = True
        trajectory.prompt_ids, trajectory.completion_ids = stitched.prompt_ids, \
            stitched.completion_ids
        trajectory.policy_mask, trajectory.logprobs = stitched.policy_mask, stitched.logprobs
    return trajectory


async def arollout(cases: Sequence[Case], policy: BaseChatModel, group_size: int, *,
                   patient: Patient | None = None, evaluator: Evaluator | None = None,
                   max_questions: int = DEFAULT_MAX_QUESTIONS, temperature: float = 0.7,
                   max_tokens: int = 64, partial_policy: PartialInfoPolicy | str = DEFAULT_POLICY,
                   concurrency: int = 16, on_episode: EpisodeSink | None = None
                   ) -> list[TrajectoryGroup]:
    """``group_size`` sampled consultations per case, grouped by case, in case order."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    context = ConsultationContext(
        doctor=policy, patient=patient or FactSelectPatient(),
        evaluator=evaluator or Evaluator(), max_questions=max_questions,
        doctor_kwargs=doctor_sampling(policy, max_tokens=max_tokens, temperature=temperature))
    repeated = [case for case in cases for _ in range(group_size)]
    episodes = await arun_consultations(repeated, context, policy=partial_policy,
                                        concurrency=concurrency, on_episode=on_episode,
                                        graph_name="rollout")
    groups = []
    for start in range(0, len(episodes), group_size):
        trajectories = [_trajectory(e) for e in episodes[start:start + group_size]]
        groups.append(TrajectoryGroup(case=repeated[start], trajectories=trajectories))
    return groups
