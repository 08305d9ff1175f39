"""The progress bar's label is plain text."""

from __future__ import annotations

import io

from rich.console import Console

from promed_agents.cli.progress_bar import progress_bar


def test_a_label_is_never_markup_or_an_emoji():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bar(console) as progress:
        progress.add_task("consulting (fake:question: any fever? [bold]x[/])", total=2)
        progress.refresh()
    text = out.getvalue()
    assert "fake:question: any fever? [bold]x[/]" in text
    assert "\u2753" not in text  # the emoji rich would make of :question:


def test_the_console_reporter_prints_text_as_text_and_warns_on_the_other_console():
    from promed_agents.cli.progress_bar import ConsoleReporter

    out, err = io.StringIO(), io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=200, color_system=None),
                               Console(file=err, width=200, color_system=None))
    reporter.note("dataset [bold]x[/]: 3 sample(s)\x1b[31m")
    reporter.warn("case imedqa-0 failed: [red]gone[/]")
    with reporter.task("MCTS", total=2) as progress:
        progress.advance()
        progress.update(2, 2)
    assert out.getvalue() == "dataset [bold]x[/]: 3 sample(s)\\x1b[31m\n"
    assert err.getvalue() == "warning: case imedqa-0 failed: [red]gone[/]\n"
