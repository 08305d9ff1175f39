"""SIG-GRPO's hyperparameters as the reference (ProMed) sets them: the one place the
trainer config (:class:`~promed_agents.trainers.DoctorGRPOConfig`), the command's config
and the ``promed train grpo`` flags take their defaults from.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / **GRPO** -> evaluation

Torch-free, so the command line can show the defaults without loading TRL. The reward
weights' defaults are :data:`~promed_agents.trainers.token_rewards.REFERENCE_WEIGHTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from promed_agents.knob import knob


@dataclass(frozen=True)
class GRPOHyperparameters:
    """The reference's GRPO settings, each with its help: the one declaration the trainer
    config and ``promed train grpo`` read (:func:`~promed_agents.knob.knob_from`)."""

    learning_rate: float = knob(5e-6, help="Learning rate (the reference's RL rate).")
    beta: float = knob(0.04, help="TRL's beta: weight of the k3 KL to the starting model "
                                  "(reference: 0.04; 0 skips the reference model).")
    epsilon: float = knob(0.1, help="TRL's epsilon: PPO clipping (reference: 0.1).")
    temperature: float = knob(0.7, help="Sampling temperature of the doctor in rollouts "
                                        "(logprobs use the same).")
    num_generations: int = knob(
        4, help="TRL's num_generations: consultations per case and step (the group, G; "
                "the reference's config and shared/notes/method.md: 4 per prompt).")
    loss_type: str = knob(
        "grpo", help="TRL loss aggregation (grpo, dapo, dr_grpo, ...); 'grpo' (the "
                     "reference's) averages each sequence's trained tokens, then the "
                     "sequences.")


REFERENCE_GRPO = GRPOHyperparameters()
