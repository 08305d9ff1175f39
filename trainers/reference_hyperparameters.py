"""SIG-GRPO's hyperparameters as the reference (ProMed) sets them: the one place the
trainer config (:class:`~promed_agents.trainers.DoctorGRPOConfig`), the command's config
and the ``promed train grpo`` flags take their defaults from.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / **GRPO** -> evaluation

Torch-free, so the command line can show the defaults without loading TRL. The reward
weights' defaults are :data:`~promed_agents.trainers.token_rewards.REFERENCE_WEIGHTS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GRPOHyperparameters:
    learning_rate: float = 5e-6
    beta: float = 0.04
    """TRL's name: weight of the k3 KL to the starting model."""
    epsilon: float = 0.1
    """TRL's name: PPO clipping."""
    temperature: float = 0.7
    num_generations: int = 4
    """TRL's name: consultations per case and step (the group, G; the reference's config
    and ``shared/notes/method.md``: 4 per prompt)."""
    loss_type: str = "grpo"


REFERENCE_GRPO = GRPOHyperparameters()
