"""``promed train``: train doctor models from what the store holds.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT** -> evaluation

``promed train sft --from EXPERIMENTS --output DIR`` runs
:func:`promed_agents.runs.sft_run.run_sft`: the best paths of MCTS searches and the
filtered consultations of other runs become a training dataset in the store (made once;
a rerun reuses it) and a JSON Lines file in ``DIR``; TRL's ``SFTTrainer`` then fine-tunes
the doctor. A rerun after an interruption resumes from the last checkpoint in ``DIR``.
The result runs as a doctor with ``--doctor local:DIR``. ``promed train grpo`` is
:mod:`promed_agents.cli.grpo`.
"""

from __future__ import annotations

import typer

from promed_agents.cli.config_options import config_command
from promed_agents.cli.options import DbOption, console, err_console, open_store, reports_errors
from promed_agents.cli.progress_bar import ConsoleReporter
from promed_agents.runs.sft_run import SFTCommandConfig, run_sft

__all__ = ["SFTCommandConfig", "run_sft", "train_app"]


# -- the CLI entries ---------------------------------------------------------------------

train_app = typer.Typer(help="Train doctor models from stored searches and traces.")


@train_app.command("sft", short_help="SFT on searches' best paths or logged consultations.")
@reports_errors
@config_command(SFTCommandConfig)
def sft(settings: SFTCommandConfig, db: DbOption = None) -> None:
    """SFT the doctor on the best paths of MCTS searches and on the filtered
    consultations of any other runs (only the doctor's turns are trained); a rerun
    resumes from the last checkpoint."""
    with open_store(db) as store:
        run_sft(store, settings, ConsoleReporter(console, err_console))
