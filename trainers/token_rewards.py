"""SIG-guided token rewards and group-relative advantages (ProMed stage 2).

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **token rewards** -> GRPO

The paper's reward distribution, per doctor turn of a consultation, on every token of the
turn (weights :class:`RewardWeights`: ``sig_weight`` 2, ``sig_correct_weight`` 1,
``answer_weight`` 3, ``format_weight`` 1, the paper's alpha, beta, gamma and format):

- a question ``q``: ``sig_weight * SIG(q) + sig_correct_weight * SIG(q) * correct``;
- the final answer: ``answer_weight * correct``;
- plus ``format_weight * format_score`` on any turn (1 when the turn starts with its marker, 0.5
  when the marker comes later, 0 for an invalid turn);
- every other token (prompts, patient replies, reminders, a stop token the chat template
  re-renders) gets 0 and is not trained.

``correct`` is 1 when the episode's final answer is right, else 0.

One departure from the reference: a question that repeats an earlier question of the
consultation (:mod:`~promed_agents.question_repeats`) earns nothing, not even its format
reward. The reference pays the format reward for any well-formed turn, so asking one
acquiring question again and again pays 1 per turn; its SIG is 0 already (the facts are
known), so only the format part changes. A repeat's 0 is below the group's mean, so its
advantage is negative: repeating costs what any other zero-reward turn costs. Advantages
(:func:`group_advantages`, the reference's rule): within a group of consultations of one
case, each trained token's advantage is its reward minus the mean reward over all trained
tokens of the group, without dividing by the standard deviation; untrained tokens get 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promed_agents.knob import knob
from promed_agents.question_repeats import repeated_flags
from promed_agents.trace import EpisodeRecord, Role, TurnKind


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward parts, named as the CLI flags and :class:`DoctorGRPOConfig`
    name them (the reference's alpha, beta and gamma; its values are the defaults)."""

    sig_weight: float = knob(
        2.0, help="Question tokens get sig_weight x SIG (the reference's alpha: 2).")
    sig_correct_weight: float = knob(
        1.0, help="Question tokens also get sig_correct_weight x SIG x correct (the "
                  "reference's beta: 1; TRL's beta is the KL weight).")
    answer_weight: float = knob(
        3.0, help="Answer tokens get answer_weight x correct (the reference's gamma: 3).")
    format_weight: float = knob(
        1.0, help="Every doctor turn's tokens get format_weight x its format score "
                  "(reference: 1).")
    test_cost: float = knob(
        0.0, help="Open-ended cases: each test order costs this, taken from the test "
                  "turn's reward (from the episode's in an episode-level design); SDBench "
                  "charges tests (0: free).", min=0.0)


REFERENCE_WEIGHTS = RewardWeights()


def turn_reward(kind: TurnKind | None, sig: float | None, format_score: float | None,
                correct: bool, weights: RewardWeights, repeated: bool = False) -> float:
    """The reward each token of one doctor turn gets (0 for a repeated question)."""
    if repeated:
        return 0.0
    right = 1.0 if correct else 0.0
    reward = weights.format_weight * (format_score or 0.0)
    if kind in (TurnKind.QUESTION, TurnKind.TEST):  # a test order is rewarded by its SIG too
        reward += (weights.sig_weight * (sig or 0.0)
                   + weights.sig_correct_weight * (sig or 0.0) * right)
    elif kind is TurnKind.ANSWER:
        reward += weights.answer_weight * right
    return reward


def episode_turn_rewards(episode: EpisodeRecord, weights: RewardWeights = REFERENCE_WEIGHTS
                         ) -> list[float]:
    """The reward of each doctor turn of ``episode`` (in order): each of the turn's tokens
    gets it."""
    correct = bool(episode.correct)
    doctor = [turn for turn in episode.turns if turn.role is Role.DOCTOR]
    return [turn_reward(turn.kind, turn.sig, turn.format_score, correct, weights, repeated)
            for turn, repeated in zip(doctor, repeated_flags(episode.turns), strict=True)]


def with_token_rewards(episode: EpisodeRecord, weights: RewardWeights = REFERENCE_WEIGHTS,
                       turn_rewards: Sequence[float] | None = None) -> EpisodeRecord:
    """A copy of ``episode`` whose doctor turns carry their reward (``reward`` and, where
    the turn has token ids, ``token_rewards``) and whose ``total_reward`` is their sum: the
    trace then shows what each turn earned in training. ``turn_rewards`` (one per doctor
    turn, from another reward design) replace the SIG rewards under ``weights``."""
    rewards = list(turn_rewards) if turn_rewards is not None else \
        episode_turn_rewards(episode, weights)
    turns, total = [], 0.0
    for turn in episode.turns:
        if turn.role is Role.DOCTOR:
            value = rewards.pop(0)
            total += value
            turn = turn.model_copy(update={
                "reward": value,
                "token_rewards": [value] * len(turn.token_ids) if turn.token_ids else None})
        turns.append(turn)
    return episode.model_copy(update={"turns": turns, "total_reward": total})


def sequence_token_rewards(turn_rewards: Sequence[float],
                           turn_index: Sequence[int]) -> list[float]:
    """Per-turn rewards laid over a stitched sequence's completion
    (:class:`~promed_agents.graphs.token_sequence.StitchedSequence`): a policy token takes the
    reward of the turn that generated it, an environment token (index -1) gets 0."""
    if turn_index and max(turn_index) >= len(turn_rewards):
        raise ValueError(f"a token of doctor turn {max(turn_index)} but rewards for "
                         f"{len(turn_rewards)} turns")
    return [turn_rewards[i] if i >= 0 else 0.0 for i in turn_index]


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
