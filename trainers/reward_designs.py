"""Reward designs: how a finished consultation rewards the doctor's tokens in GRPO.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **reward design** -> GRPO batch
-> GRPO step

A :class:`RewardDesign` maps a consultation (its turns, their SIG and format scores, the
correctness of its answer) to a reward per doctor turn, which every token of the turn gets,
and turns a group's token rewards into advantages. The designs on the same graph, patient
and budget (``promed train grpo --reward NAME``, :data:`REWARD_DESIGNS`):

- ``promed`` (:class:`SIGReward`): ProMed's token-level SIG distribution
  (:mod:`~promed_agents.trainers.token_rewards`); advantage = token reward minus the mean
  over the group's trained tokens.
- ``doctoragent`` (:class:`DoctorAgentReward`): DoctorAgent-RL's per-turn rewards summed
  into one episode reward, with standard GRPO advantages.
- ``outcome`` (:class:`OutcomeReward`): correctness only (outcome-only GRPO).
- ``rollout-level`` (:class:`RolloutLevelReward`): ProMed's rollout-level ablation,
  ``4 x correct + mean format + Shapley-weighted fact recall``.

Episode-level designs (:class:`EpisodeLevelReward`) give every doctor turn the episode's
reward; their advantage is the group-normalised reward ``(R - mean) / (std + 1e-4)`` over
the group's trainable consultations (TRL's ``scale_rewards="group"``, sample standard
deviation), the same on every trained token. :class:`LengthPenalty` wraps any design: the
answer turn loses ``weight x answer tokens / max_new_tokens`` (Med-U1); for an episode-level
design the episode's reward does, since all its tokens share one reward. :class:`TestCost`
wraps any design the same way: each test order of an open-ended case costs a fixed amount
(SDBench's cost of tests). Correctness is the episode's: an open-ended case's is the
judge's verdict. A group whose
rewards are all equal gets advantage 0 (it teaches nothing), as TRL does; the
reference's rollout-level code gives such a group random advantages of +-1 instead,
which trains on noise, so that is not offered.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS
from promed_agents.errors import TrainingError
from promed_agents.question_repeats import question_key
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind
from promed_agents.trainers.token_rewards import (
    REFERENCE_WEIGHTS,
    RewardWeights,
    episode_turn_rewards,
    group_advantages,
)

ADVANTAGE_EPSILON = 1e-4
"""Added to the group's standard deviation (TRL's value)."""


@runtime_checkable
class RewardDesign(Protocol):
    """Rewards for the policy's tokens of finished consultations."""

    name: str

    def turn_rewards(self, episode: EpisodeRecord) -> list[float]:
        """The reward of each doctor turn of ``episode``, in order (each of its tokens
        gets it)."""
        ...

    def advantages(self, rewards: Sequence[Sequence[float]],
                   masks: Sequence[Sequence[int]]) -> list[list[float]]:
        """Advantages of one group's sequences from their token rewards and loss masks
        (1 on trained tokens); 0 on untrained tokens."""
        ...


@dataclass(frozen=True)
class SIGReward:
    """ProMed's token-level rewards: questions by SIG, the answer by correctness, every turn
    by format (:func:`~promed_agents.trainers.token_rewards.turn_reward`)."""

    weights: RewardWeights = REFERENCE_WEIGHTS
    name: str = "promed"

    def turn_rewards(self, episode: EpisodeRecord) -> list[float]:
        return episode_turn_rewards(episode, self.weights)

    def advantages(self, rewards: Sequence[Sequence[float]],
                   masks: Sequence[Sequence[int]]) -> list[list[float]]:
        return group_advantages(rewards, masks)


def normalised_group(values: Sequence[float]) -> list[float]:
    """``(v - mean) / (std + eps)`` with the sample standard deviation (0 for one value)."""
    if not values:
        return []
    mean = sum(values) / len(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return [(v - mean) / (std + ADVANTAGE_EPSILON) for v in values]


class EpisodeLevelReward:
    """A design with one reward per consultation (:meth:`episode_reward`), given to every
    doctor turn, and standard GRPO advantages."""

    name = "episode-level"

    def episode_reward(self, episode: EpisodeRecord) -> float:
        raise NotImplementedError

    def turn_rewards(self, episode: EpisodeRecord) -> list[float]:
        reward = self.episode_reward(episode)
        return [reward for turn in episode.turns if turn.role is Role.DOCTOR]

    def advantages(self, rewards: Sequence[Sequence[float]],
                   masks: Sequence[Sequence[int]]) -> list[list[float]]:
        if len(rewards) != len(masks):
            raise ValueError(f"{len(rewards)} reward sequences for {len(masks)} masks")
        trained = [i for i, mask in enumerate(masks) if any(mask)]
        episode = {i: next(r for r, bit in zip(rewards[i], masks[i], strict=True) if bit)
                   for i in trained}
        scaled = dict(zip(trained, normalised_group([episode[i] for i in trained]),
                          strict=True))
        return [[scaled[i] if bit else 0.0 for bit in mask] if i in scaled
                else [0.0] * len(mask) for i, mask in enumerate(masks)]


@dataclass(frozen=True)
class DoctorAgentReward(EpisodeLevelReward):
    """DoctorAgent-RL's rewards (arXiv 2505.19630, its environment's constants), summed
    over the consultation's doctor turns:

    - a malformed turn (no ``question:``/``answer:`` marker): ``invalid`` (-2);
    - a question turn without exactly one question mark: ``invalid`` (-2, "one question at
      a time");
    - a repeated question (the same content words as an earlier one): ``repeated`` (-2);
    - otherwise a question the patient answered (its reply disclosed a fact the doctor did
      not know) ``answered`` (+1), one it could not answer ``unanswered`` (-1);
    - the budget spent without an answer: ``budget_spent`` (-5; a question asked when
      the turns ran out earns only this, as in its code);
    - the final answer: ``correct`` (+5) when right (the multiple-choice form of its
      diagnosis score), 0 otherwise; an open-ended case's diagnosis: ``correct`` x its
      ROUGE-L F1 against the case's (its code's score; the recommendation's half is left
      out: the doctor here gives none);
    - an open-ended case's test order is scored as a question without the question-mark
      rule: ``answered`` when its result revealed a new fact, ``unanswered`` otherwise,
      ``repeated`` when it repeats an earlier order.
    """

    invalid: float = -2.0
    repeated: float = -2.0
    answered: float = 1.0
    unanswered: float = -1.0
    budget_spent: float = -5.0
    correct: float = 5.0
    name: str = "doctoragent"

    def episode_reward(self, episode: EpisodeRecord) -> float:
        if episode.status is EpisodeStatus.FAILED:
            return 0.0
        total, asked = 0.0, []
        known = set(episode.known_fact_ids)
        turns = episode.turns
        for i, turn in enumerate(turns):
            if turn.role is not Role.DOCTOR:
                continue
            if turn.late_question:
                continue  # a question when the turns ran out: the budget penalty only
            if turn.kind is TurnKind.INVALID:
                total += self.invalid
            elif turn.kind in (TurnKind.QUESTION, TurnKind.TEST):
                key = (turn.kind, question_key(turn.text))
                if turn.kind is TurnKind.QUESTION and \
                        turn.text.count("?") + turn.text.count("？") != 1:
                    total += self.invalid
                elif key[1] and key in asked:
                    total += self.repeated
                else:
                    reply = turns[i + 1] if i + 1 < len(turns) and \
                        turns[i + 1].role is not Role.DOCTOR else None
                    new = set(reply.disclosed_fact_ids) - known if reply else set()
                    total += self.answered if new else self.unanswered
                    known |= new
                asked.append(key)
        if episode.status is EpisodeStatus.TIMEOUT:
            total += self.budget_spent
        if episode.diagnosis_rouge is not None:  # an open-ended case: its code's score
            total += self.correct * episode.diagnosis_rouge
        elif episode.correct:
            total += self.correct
        return total


@dataclass(frozen=True)
class OutcomeReward(EpisodeLevelReward):
    """Outcome-only GRPO: 1 for a right answer, 0 otherwise."""

    name: str = "outcome"

    def episode_reward(self, episode: EpisodeRecord) -> float:
        return 1.0 if episode.correct else 0.0


@dataclass(frozen=True)
class RolloutLevelReward(EpisodeLevelReward):
    """ProMed's rollout-level ablation: ``correct_weight x correct + mean format score of
    the doctor turns + Shapley-weighted fact recall`` (the weight of the facts known at
    the end, under the evaluator's fact weights, recorded as ``weighted_recall``)."""

    correct_weight: float = 4.0
    name: str = "rollout-level"

    def episode_reward(self, episode: EpisodeRecord) -> float:
        if episode.status is EpisodeStatus.FAILED:
            return 0.0
        recall = episode.weighted_recall
        if recall is None:
            raise TrainingError(
                f"episode {episode.id} of case {episode.case_id} recorded no weighted fact "
                "recall, which the rollout-level reward needs: train on fresh rollouts or "
                "on traces recorded by this version")
        doctor = [t.format_score or 0.0 for t in episode.turns if t.role is Role.DOCTOR]
        mean_format = sum(doctor) / len(doctor) if doctor else 0.0
        return self.correct_weight * (1.0 if episode.correct else 0.0) + mean_format + \
            float(recall)


def episode_level(design: RewardDesign) -> bool:
    """Whether ``design`` (or the design a wrapper such as :class:`LengthPenalty` wraps)
    gives one reward per consultation, so that a penalty is taken from that reward."""
    inner = getattr(design, "design", None)
    return isinstance(design, EpisodeLevelReward) or (inner is not None and
                                                     episode_level(inner))


@dataclass(frozen=True)
class LengthPenalty:
    """Any design with Med-U1's length penalty on the answer: ``weight x (answer tokens /
    max_new_tokens)`` is taken from the answer turn's reward (from the episode's reward for an
    episode-level design). An answer recorded without token ids counts its words."""

    design: RewardDesign
    weight: float
    max_new_tokens: int

    @property
    def name(self) -> str:
        return f"{self.design.name}+length"

    def penalty(self, episode: EpisodeRecord) -> float:
        answers = [t for t in episode.turns if t.role is Role.DOCTOR
                   and t.kind is TurnKind.ANSWER]
        if not answers:
            return 0.0
        tokens = len(answers[-1].token_ids or ()) or len(answers[-1].text.split())
        return self.weight * tokens / self.max_new_tokens

    def turn_rewards(self, episode: EpisodeRecord) -> list[float]:
        rewards = self.design.turn_rewards(episode)
        penalty = self.penalty(episode)
        if not penalty:
            return rewards
        if episode_level(self.design):
            return [r - penalty for r in rewards]
        doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
        return [r - penalty if t.kind is TurnKind.ANSWER and t is doctor[-1] else r
                for r, t in zip(rewards, doctor, strict=True)]

    def advantages(self, rewards: Sequence[Sequence[float]],
                   masks: Sequence[Sequence[int]]) -> list[list[float]]:
        return self.design.advantages(rewards, masks)


@dataclass(frozen=True)
class TestCost:
    """Any design with a cost per test order (open-ended cases): each test turn's reward
    loses ``cost`` (an episode-level design's episode reward loses ``cost`` x the tests
    ordered, since all its tokens share one reward)."""

    design: RewardDesign
    cost: float

    @property
    def name(self) -> str:
        return f"{self.design.name}+test-cost"

    def turn_rewards(self, episode: EpisodeRecord) -> list[float]:
        rewards = self.design.turn_rewards(episode)
        doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
        if episode_level(self.design):
            charged = self.cost * sum(t.kind is TurnKind.TEST for t in doctor)
            return [r - charged for r in rewards]
        return [r - self.cost if t.kind is TurnKind.TEST else r
                for r, t in zip(rewards, doctor, strict=True)]

    def advantages(self, rewards: Sequence[Sequence[float]],
                   masks: Sequence[Sequence[int]]) -> list[list[float]]:
        return self.design.advantages(rewards, masks)


REWARD_DESIGNS: dict[str, Callable[[RewardWeights], RewardDesign]] = {
    "promed": lambda weights: SIGReward(weights),
    "doctoragent": lambda _weights: DoctorAgentReward(),
    "outcome": lambda _weights: OutcomeReward(),
    "rollout-level": lambda _weights: RolloutLevelReward(),
}
"""The designs by the name ``--reward`` takes; each gets ProMed's weights (only
``promed`` uses them)."""


@dataclass(frozen=True)
class RewardChoice:
    """A design by name with its options, as a command or a config names it."""

    reward: str = "promed"
    length_penalty: float = 0.0
    max_new_tokens: int = DOCTOR_TURN_TOKENS
    weights: RewardWeights = field(default=REFERENCE_WEIGHTS)

    def design(self) -> RewardDesign:
        if self.reward not in REWARD_DESIGNS:
            raise TrainingError(f"no reward design {self.reward!r}: choose one of "
                                f"{', '.join(REWARD_DESIGNS)}")
        if not math.isfinite(self.length_penalty) or self.length_penalty < 0:
            raise TrainingError(f"length penalty {self.length_penalty} must be a finite "
                                "number >= 0")
        design = REWARD_DESIGNS[self.reward](self.weights)
        if self.length_penalty:
            design = LengthPenalty(design, self.length_penalty, self.max_new_tokens)
        if not math.isfinite(self.weights.test_cost) or self.weights.test_cost < 0:
            raise TrainingError(f"test cost {self.weights.test_cost} must be a finite "
                                "number >= 0")
        if self.weights.test_cost:
            design = TestCost(design, self.weights.test_cost)
        return design
