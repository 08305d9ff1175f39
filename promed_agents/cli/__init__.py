"""``promed_agents.cli``: the ``promed`` command line, one module per command group.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

:mod:`.entry` builds the app; :mod:`.options` holds what the commands share (consoles,
``--db``, case selection, one-line errors). Each command module runs the library's
Python API (``promed_agents.graphs``, ``.storage``, ``.trainers``) and prints.
"""

from promed_agents.cli.entry import app, main

__all__ = ["app", "main"]
