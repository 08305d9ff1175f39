"""``promed_agents.trainers``: Shapley values, SIG-guided MCTS with SFT, and SIG-augmented
GRPO, all reading traces from ``promed_agents.storage``. Import as
``promed_agents.trainers``; the folder ``trainers/`` installs under that name.

case -> consultation graph -> trace in SQL -> **Shapley/SIG -> MCTS-SFT / GRPO** -> evaluation

- :mod:`.shapley_job`: Shapley values of case facts under a scorer, stored per case.
"""
