"""``python -m promed_agents.cli``: the ``promed`` command (as ``accelerate launch`` runs it)."""

from promed_agents.cli.entry import main

main()
