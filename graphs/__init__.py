"""``promed_agents.graphs``: consultation graphs (doctor, patient and evaluator as LangGraph
nodes). Import as ``promed_agents.graphs``; the folder ``graphs/`` installs under that name.

case -> **consultation graph** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Empty until the consultation graph lands (issue #3).
"""
