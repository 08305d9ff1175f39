"""``promed_agents.cli``: the ``promed`` command line, one module per command group.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

:mod:`.entry` builds the app; :mod:`.options` holds what the commands share (consoles,
``--db``, one-line errors). Each command module runs the library's run for its stage
(:mod:`promed_agents.runs`, with a :class:`~.progress_bar.ConsoleReporter`) or its
Python API, and prints.
"""

from promed_agents.cli.entry import app, main

__all__ = ["app", "main"]
