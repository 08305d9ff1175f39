"""A GRPO batch from consultations: sequences, token rewards, advantages, metrics.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> token rewards -> **GRPO batch**
-> SIG-GRPO step

:func:`score_groups` turns episodes (``group_size`` consecutive episodes per case) into
one :class:`ScoredSequence` each: the consultation stitched into one sequence
(:func:`~promed_agents.graphs.token_sequence.stitch`), every doctor token carrying its turn's
reward and the group's advantages, both from a
:class:`~promed_agents.trainers.reward_designs.RewardDesign` (default ProMed's SIG
rewards: ``reward - mean reward of the trained tokens of the group``). A consultation that
failed, or whose turns have no token ids or do not stitch, keeps its place in the batch
as a one-token row with nothing trained, so the batch keeps its shape; it still counts in
the group's metrics but not in its mean. :func:`rollout_metrics` summarises the episodes
(accuracy, SIG, questions, format) for the training log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promed_agents.errors import TrainingError
from promed_agents.graphs.token_sequence import policy_samples, stitch
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind
from promed_agents.trainers.reward_designs import RewardDesign, SIGReward
from promed_agents.trainers.token_rewards import sequence_token_rewards

SIG_REWARD = SIGReward()


@dataclass(frozen=True)
class ScoredSequence:
    """One consultation as training data: ``prompt_ids`` then ``completion_ids``, with
    per completion token the loss mask (1 on the doctor's tokens), reward, advantage and
    sampling logprob (0 where not trained)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]
    rewards: list[float]
    advantages: list[float]
    sampling_logprobs: list[float]
    episode_id: int | None = None

    @property
    def trained(self) -> bool:
        return any(self.loss_mask)


def _untrainable(episode: EpisodeRecord, pad_id: int) -> ScoredSequence:
    return ScoredSequence([pad_id], [pad_id], [0], [0.0], [0.0], [0.0], episode.id)


def _scored(episode: EpisodeRecord, design: RewardDesign, pad_id: int) -> ScoredSequence:
    samples = policy_samples(episode)
    if episode.status is EpisodeStatus.FAILED or not samples or \
            any(not s.prompt_ids or not s.completion_ids for s in samples):
        return _untrainable(episode, pad_id)
    sequence = stitch(samples)
    if sequence is None:
        return _untrainable(episode, pad_id)
    rewards = sequence_token_rewards(design.turn_rewards(episode),
                                     sequence.turn_index)
    return ScoredSequence(sequence.prompt_ids, sequence.completion_ids, sequence.policy_mask,
                          rewards, [0.0] * len(rewards), sequence.logprobs, episode.id)


def score_groups(episodes: Sequence[EpisodeRecord], group_size: int,
                 design: RewardDesign = SIG_REWARD, pad_id: int = 0
                 ) -> list[ScoredSequence]:
    """Scored sequences of ``episodes``, in order; each run of ``group_size`` consecutive
    episodes is one group (the consultations of one case), rewarded by ``design``."""
    if group_size < 1 or len(episodes) % group_size:
        raise ValueError(f"{len(episodes)} episodes do not split into groups of {group_size}")
    scored: list[ScoredSequence] = []
    for start in range(0, len(episodes), group_size):
        cases = {e.case_id for e in episodes[start:start + group_size]}
        if len(cases) != 1:  # an advantage compares consultations of one case only
            raise TrainingError(f"GRPO group {start // group_size} holds consultations of "
                                f"{len(cases)} cases ({', '.join(sorted(cases))}); each "
                                f"run of {group_size} consecutive episodes must be one "
                                "case's (the sampler repeats each case group_size times)")
        group = [_scored(e, design, pad_id) for e in episodes[start:start + group_size]]
        advantages = design.advantages([s.rewards for s in group],
                                       [s.loss_mask for s in group])
        scored += [ScoredSequence(s.prompt_ids, s.completion_ids, s.loss_mask, s.rewards, a,
                                  s.sampling_logprobs, s.episode_id)
                   for s, a in zip(group, advantages, strict=True)]
    return scored


def rollout_metrics(episodes: Sequence[EpisodeRecord],
                    scored: Sequence[ScoredSequence]) -> dict[str, float]:
    """Per-episode means for the training log: accuracy, SIG, questions, format score of
    doctor turns, mean token reward of trained tokens, and the share of episodes that
    failed or could not be trained on."""
    n = max(len(episodes), 1)
    doctor_turns = [t for e in episodes for t in e.turns if t.role is Role.DOCTOR]
    trained = [r for s in scored for r, bit in zip(s.rewards, s.loss_mask, strict=True) if bit]
    return {
        "episodes/accuracy": sum(bool(e.correct) for e in episodes) / n,
        "episodes/sig": sum(t.sig or 0.0 for e in episodes for t in e.turns
                            if t.kind is TurnKind.QUESTION) / n,
        "episodes/questions": sum(e.num_questions for e in episodes) / n,
        "episodes/format": sum(t.format_score or 0.0 for t in doctor_turns)
        / max(len(doctor_turns), 1),
        "episodes/failed": sum(e.status is EpisodeStatus.FAILED for e in episodes) / n,
        "episodes/untrained": sum(not s.trained for s in scored) / max(len(scored), 1),
        "token_reward/mean": sum(trained) / len(trained) if trained else 0.0,
    }
