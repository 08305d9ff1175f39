"""SIG-guided token rewards and group-relative advantages (ProMed stage 2).

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **token rewards** -> GRPO

The paper's reward distribution, per doctor turn of a consultation, on every token of the
turn (weights :class:`RewardWeights`, reference alpha 2, beta 1, gamma 3, format 1):

- a question ``q``: ``alpha * SIG(q) + beta * SIG(q) * correct``;
- the final answer: ``gamma * correct``;
- plus ``format * format_score`` on any turn (1 when the turn starts with its marker, 0.5
  when the marker comes later, 0 for an invalid turn);
- every other token (prompts, patient replies, reminders) gets 0 and is not trained.

``correct`` is 1 when the episode's final answer is right, else 0. Advantages
(:func:`group_advantages`, the reference's rule): within a group of consultations of one
case, each trained token's advantage is its reward minus the mean reward over all trained
tokens of the group, without dividing by the standard deviation; untrained tokens get 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promed_agents.trace import EpisodeRecord, Role, TurnKind


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward parts (reference values)."""

    alpha: float = 2.0
    """Question tokens: weight of the question's SIG."""
    beta: float = 1.0
    """Question tokens: weight of SIG times correctness."""
    gamma: float = 3.0
    """Answer tokens: weight of correctness."""
    format: float = 1.0
    """Every doctor turn: weight of its format score."""


def turn_reward(kind: TurnKind | None, sig: float | None, format_score: float | None,
                correct: bool, weights: RewardWeights) -> float:
    """The reward each token of one doctor turn gets."""
    right = 1.0 if correct else 0.0
    reward = weights.format * (format_score or 0.0)
    if kind is TurnKind.QUESTION:
        reward += weights.alpha * (sig or 0.0) + weights.beta * (sig or 0.0) * right
    elif kind is TurnKind.ANSWER:
        reward += weights.gamma * right
    return reward


def episode_token_rewards(episode: EpisodeRecord, weights: RewardWeights = RewardWeights()
                          ) -> list[list[float]]:
    """Per doctor turn of ``episode`` (in order), the reward of each of its tokens."""
    correct = bool(episode.correct)
    rewards = []
    for turn in episode.turns:
        if turn.role is not Role.DOCTOR:
            continue
        value = turn_reward(turn.kind, turn.sig, turn.format_score, correct, weights)
        rewards.append([value] * len(turn.token_ids or ()))
    return rewards


def sequence_token_rewards(turn_rewards: Sequence[Sequence[float]],
                           policy_mask: Sequence[int]) -> list[float]:
    """Per-turn token rewards laid over a stitched sequence's completion: the policy's
    tokens (mask 1) take the rewards of the turns in order, the environment's get 0."""
    flat = [r for turn in turn_rewards for r in turn]
    if sum(policy_mask) != len(flat):
        raise ValueError(f"the mask has {sum(policy_mask)} policy tokens but the turns have "
                         f"{len(flat)}")
    values = iter(flat)
    return [next(values) if bit else 0.0 for bit in policy_mask]


def group_advantages(rewards: Sequence[Sequence[float]],
                     masks: Sequence[Sequence[int]]) -> list[list[float]]:
    """Advantages of a group's sequences: reward minus the mean reward of every trained
    token (mask 1) of the group; 0 on untrained tokens. No standard-deviation scaling."""
    if len(rewards) != len(masks):
        raise ValueError(f"{len(rewards)} reward sequences for {len(masks)} masks")
    trained = [r for seq, mask in zip(rewards, masks, strict=True)
               for r, bit in zip(seq, mask, strict=True) if bit]
    mean = sum(trained) / len(trained) if trained else 0.0
    return [[(r - mean) if bit else 0.0 for r, bit in zip(seq, mask, strict=True)]
            for seq, mask in zip(rewards, masks, strict=True)]
