"""``promed_agents.trainers``: Shapley values, SIG-guided MCTS with SFT, and SIG-augmented
GRPO, all reading traces from ``promed_agents.storage``. Import as
``promed_agents.trainers``; the folder ``trainers/`` installs under that name.

case -> consultation graph -> trace in SQL -> **Shapley/SIG -> MCTS-SFT / GRPO** -> evaluation

- :mod:`.shapley_job`: Shapley values of case facts under a scorer, stored per case.
- :mod:`.mcts_search`: SIG-guided MCTS with the consultation graph as the environment.
- :mod:`.sft_dataset`: the best search paths as SFT samples (exact token ids, doctor-only
  loss mask), stored and exported as JSON Lines.
- :mod:`.sft_trainer`: TRL ``SFTTrainer`` on those samples (LoRA optional), resumable.
- :mod:`.token_rewards`: SIG-guided token rewards and group-relative advantages (the
  reward side of stage 2; the GRPO trainer is issue #6).
"""
