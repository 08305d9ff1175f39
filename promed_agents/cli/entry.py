"""The ``promed`` command line: the user's entry to every stage of the data path.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Every command takes ``--db URL`` (or ``$PROMED_DB``; default ``sqlite:///promed.db``).
Storage is imported inside the commands, so ``import promed_agents`` stays light. This is
the only module that configures logging.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from promed_agents.cli.cases import cases_app
from promed_agents.cli.consult import consult_command
from promed_agents.cli.db import db_app
from promed_agents.cli.demo import demo
from promed_agents.cli.evaluate import eval_app
from promed_agents.cli.grpo import grpo
from promed_agents.cli.mcts import mcts_app
from promed_agents.cli.options import err_console
from promed_agents.cli.report import report
from promed_agents.cli.shapley import shapley_app
from promed_agents.cli.traces import traces_app
from promed_agents.cli.train import train_app

app = typer.Typer(help="ProMed Agents: teach medical LLMs to ask before they answer.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"],
                                    "max_content_width": 100})
app.add_typer(cases_app, name="cases")
app.add_typer(db_app, name="db")
app.add_typer(traces_app, name="traces")
app.command("consult", short_help="Run consultations and record them.")(consult_command)
app.add_typer(shapley_app, name="shapley")
app.add_typer(mcts_app, name="mcts")
train_app.command("grpo", short_help="SIG-GRPO training.")(grpo)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.command("report", short_help="Write an HTML report of runs.")(report)
app.command("demo", short_help="Run the whole pipeline, small.")(demo)


def _print_version(asked: bool) -> None:
    if asked:
        from promed_agents import __version__

        typer.echo(f"promed-agents {__version__}")
        raise typer.Exit()


@app.callback()
def _main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                               help="More log output (-vv for debug).")] = 0,
          version: Annotated[bool, typer.Option(
              "--version", callback=_print_version, is_eager=True,
              help="Print the version and exit.")] = False) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
