"""Rollouts: the consultation graph as the RL environment.

case -> **consultation graph (rollout)** -> trace in SQL -> Shapley/SIG -> **GRPO** -> ...

:func:`arollout` runs ``group_size`` consultations per case with the policy as the doctor
(sampling, so the group differs) through the same graph and runner as evaluation, and
returns :class:`TrajectoryGroup` objects. A trajectory keeps the episode (to record it)
and the policy's tokens:

- ``samples``: one :class:`PolicySample` per doctor turn (prompt ids, completion ids,
  logprobs, kind, SIG), exact training data from the backend's metadata;
- ``sequence``: the whole consultation as one :class:`StitchedSequence` (first prompt,
  then everything after it), where each completion token knows the doctor turn that
  generated it, or is an environment token (patient replies, reminders), as TRL's
  ``env_mask`` wants; None when the turns do not stitch (see :func:`stitch`), then use
  ``samples``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS, doctor_sampling
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.patient import FactSelectPatient, Patient
from promed_agents.case import Case
from promed_agents.graphs.consultation import DEFAULT_MAX_QUESTIONS, ConsultationContext
from promed_agents.graphs.consultation_runner import EpisodeSink, arun_consultations
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy
from promed_agents.trace import EpisodeRecord, Role, TurnKind


@dataclass(frozen=True)
class PolicySample:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    kind: TurnKind
    sig: float | None


@dataclass(frozen=True)
class StitchedSequence:
    """A consultation as one token sequence: ``prompt_ids`` then ``completion_ids``.

    ``turn_index`` has one entry per completion token: the index of the doctor turn that
    generated it (into the episode's doctor turns), or -1 for an environment token
    (patient replies, reminders, the chat template's end-of-turn markers). ``logprobs``
    are the sampling logprobs of policy tokens and 0 elsewhere. ``dropped`` counts sampled
    tokens left out because the next prompt re-renders them differently (see
    :func:`stitch`)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    turn_index: list[int]
    logprobs: list[float]
    dropped: int = 0

    @property
    def policy_mask(self) -> list[int]:
        """1 on the policy's tokens, 0 on the environment's (TRL's ``env_mask``)."""
        return [int(i >= 0) for i in self.turn_index]


@dataclass
class Trajectory:
    episode: EpisodeRecord
    samples: list[PolicySample]
    sequence: StitchedSequence | None = None

    @property
    def stitched(self) -> bool:
        return self.sequence is not None

    @property
    def correct(self) -> bool:
        return bool(self.episode.correct)


@dataclass
class TrajectoryGroup:
    case: Case
    trajectories: list[Trajectory]


def policy_samples(episode: EpisodeRecord) -> list[PolicySample]:
    """The doctor turns of ``episode`` as policy samples (exact token ids and logprobs)."""
    return [PolicySample(prompt_ids=t.prompt_token_ids or [], completion_ids=t.token_ids or [],
                         logprobs=t.logprobs or [], kind=t.kind or TurnKind.INVALID, sig=t.sig)
            for t in episode.turns if t.role is Role.DOCTOR]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def stitch(samples: Sequence[PolicySample], max_dropped: int = 2) -> StitchedSequence | None:
    """``samples`` as one sequence, or None when it cannot be stitched.

    Each turn's prompt must extend the previous turn's prompt token for token. The
    previous completion is kept up to where the new prompt re-renders it differently: a
    turn stopped at a stop string (the doctor's newline) is re-rendered by the chat
    template with its end-of-turn marker instead, so its last sampled token is not in any
    later context and is dropped (not trained); the re-rendered marker is an environment
    token. More than ``max_dropped`` dropped tokens in a turn (a template that rewrites
    the text itself) gives None."""
    if not samples:
        return None
    context = list(samples[0].prompt_ids)  # tokens before the current turn's completion
    completion: list[int] = []
    turn_index: list[int] = []
    logprobs: list[float] = []
    dropped = 0
    for k, sample in enumerate(samples[1:], start=1):
        previous = samples[k - 1]
        if sample.prompt_ids[: len(context)] != context:
            return None
        rest = sample.prompt_ids[len(context):]
        kept = _common_prefix(previous.completion_ids, rest)
        if len(previous.completion_ids) - kept > max_dropped:
            return None
        dropped += len(previous.completion_ids) - kept
        completion += rest
        turn_index += [k - 1] * kept + [-1] * (len(rest) - kept)
        logprobs += list(previous.logprobs[:kept]) + [0.0] * (len(rest) - kept)
        context = list(sample.prompt_ids)
    last = samples[-1]
    completion += last.completion_ids
    turn_index += [len(samples) - 1] * len(last.completion_ids)
    logprobs += last.logprobs
    return StitchedSequence(list(samples[0].prompt_ids), completion, turn_index, logprobs,
                            dropped)


def _trajectory(episode: EpisodeRecord) -> Trajectory:
    samples = policy_samples(episode)
    return Trajectory(episode=episode, samples=samples, sequence=stitch(samples))


async def arollout(cases: Sequence[Case], policy: BaseChatModel, group_size: int, *,
                   patient: Patient | None = None, evaluator: Evaluator | None = None,
                   max_questions: int = DEFAULT_MAX_QUESTIONS, temperature: float = 0.7,
                   max_new_tokens: int = DOCTOR_TURN_TOKENS,
                   partial_policy: PartialInfoPolicy | str = DEFAULT_POLICY,
                   concurrency: int = 16, on_episode: EpisodeSink | None = None
                   ) -> list[TrajectoryGroup]:
    """``group_size`` sampled consultations per case, grouped by case, in case order.

    Args:
        cases: the cases, each consulted ``group_size`` times.
        policy: the doctor sampled (a local model records its tokens and logprobs).
        group_size: consultations per case (GRPO's group).
        patient: who answers [default: the fact-select patient].
        evaluator: how questions are scored [default: uniform-weight SIG].
        max_questions: the question budget.
        temperature: the doctor's sampling temperature.
        max_new_tokens: new tokens per doctor turn.
        partial_policy: what the doctor is shown at the start.
        concurrency: consultations at once.
        on_episode: called with each episode as it ends.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    context = ConsultationContext(
        doctor=policy, patient=patient or FactSelectPatient(),
        evaluator=evaluator or Evaluator(), max_questions=max_questions,
        doctor_kwargs=doctor_sampling(policy, max_new_tokens=max_new_tokens,
                                      temperature=temperature))
    repeated = [case for case in cases for _ in range(group_size)]
    episodes = await arun_consultations(repeated, context, policy=partial_policy,
                                        concurrency=concurrency, on_episode=on_episode,
                                        graph_name="rollout")
    groups = []
    for start in range(0, len(episodes), group_size):
        trajectories = [_trajectory(e) for e in episodes[start:start + group_size]]
        groups.append(TrajectoryGroup(case=repeated[start], trajectories=trajectories))
    return groups
